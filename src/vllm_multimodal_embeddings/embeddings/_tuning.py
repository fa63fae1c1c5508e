"""Self-tuning batch size and concurrency: a sans-I/O policy fed with what requests took.

When ``batch_size`` / ``max_concurrency`` are left ``None``, the embedding client asks a
:class:`Tuner` how many inputs go in a chunk (one request) and how many requests may be in
flight, and tells it what happened: the bytes a chunk prepared to, each request answered (its
inputs, when it started, whether it waited for a slot), and overloads (429, 503, timeouts).
The policy works in measurement epochs:

1. Start at 8 inputs x 16 requests in flight (the GPU profile runs 8 API processes, one
   request each: two each overlap preprocessing with the engine). Once the first chunk is
   prepared, its bytes per input size the batch at once, rather than after doublings that a
   job of a few thousand inputs spends entirely ramping: texts fill
   :data:`~.._constants.AUTO_MIN_REQUEST_BYTES` (128 short texts), media
   :data:`~.._constants.AUTO_MEDIA_REQUEST_BYTES` (128 224 px JPEGs; camera photos stay at
   8). Requests so big that 16 of them pass :data:`~.._constants.AUTO_LARGE_REQUEST_BYTES`
   go :data:`~.._constants.AUTO_LARGE_START_CONCURRENCY` in flight.
   When the call's inputs are a sized collection, a chunk takes at most its share of them
   (``len / 16``, 8 at the least), so that a short job still uses every API process.
   A chunk whose inputs differ in size by more than 2x from those the batch was sized for
   (images after texts, on one client) sizes it again, down as well as up. Until it has,
   media cut after a text-sized batch go at most 8 to a chunk: the first photos after a
   query must not all go in one chunk of 256 (one request slot, no vector out until it
   is answered, ~150 MB prepared at once).
2. An epoch is the requests started after the last change, until ``max(4, 2 x concurrency)``
   of them are answered; its throughput is their inputs over the seconds at least one of
   them was in flight (idle time between calls is no slowness; older requests measure the
   old setting, so they are not counted).
3. After a baseline epoch, try one move: double the concurrency, when requests waited for a
   slot (otherwise preparation or the byte window is the bottleneck, and more slots would sit
   idle), else double the batch, while a request stays under ``max_batch_bytes``; once the
   batch can grow no more, double the concurrency anyway (a deeper window prepares more at
   once).
4. The next epoch judges the move: throughput up by :data:`GAIN` or more keeps it (and the same
   move is tried again); anything less undoes it and closes that direction. An epoch whose
   inputs differ in size by more than 2x from the baseline's (texts after photos) judges
   nothing: the measurement starts again from the current values (closed directions stay
   closed: a client alternating texts and photos would otherwise keep growing on noise).
   Small media (images of at most :data:`~.._constants.AUTO_SMALL_INPUT_BYTES` prepared, such
   as 224 px JPEGs) try the batch first, even when requests waited, and an epoch of them is
   one wave (``max(4, concurrency)`` requests): one wave of 128 x 16 already holds 2,048
   images. A batch doubling that gains less than :data:`GAIN` without losing as much gets
   one more doubling, judged against the value before both (on an H100, 64 per request was
   no better than 16; 128 was). Texts and camera photos move as before.
5. An overload halves the concurrency at once (the batch when concurrency is fixed) and closes
   growth in that direction.
6. With both directions closed the setting holds; after :data:`REOPEN_EPOCHS` steady epochs
   both reopen, since the server's load may have changed.
7. Latency stays well inside the client's ``timeout``: no move is tried once twice the
   epoch's mean latency would pass :data:`LATENCY_SHARE` of it (on a server that gains
   nothing from a move, a doubled queue or batch doubles the wait), and an epoch whose mean
   latency passed half the timeout halves the concurrency. On a saturated server the
   throughput is the same at any depth, and every request queued beyond it only waits: on
   the 2-core CPU server, 16 requests of 16 camera photos took ~135 s, and the last one
   timed out (a failed call) where 8 took ~67 s.

Explicit settings are never moved. Each change is logged at DEBUG on the package's logger with
its reason, and :meth:`Tuner.stats` says what was chosen and why. The clock is injectable and
nothing here does I/O, so the policy is tested with canned observations.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import _constants as C

__all__ = ["GAIN", "LATENCY_SHARE", "REOPEN_EPOCHS", "Tuner", "TuningStats"]

log = logging.getLogger("vllm_multimodal_embeddings")

#: Throughput gain a move must bring to be kept (noise on a shared machine is a few percent).
GAIN = 0.10
#: Steady epochs after which closed directions are tried again.
REOPEN_EPOCHS = 16
#: Share of the request timeout that a move's worst-case latency (twice the current) may take.
LATENCY_SHARE = 0.25
_BATCH, _CONC = "batch_size", "max_concurrency"
# Weight of the newest chunk in the running mean of prepared bytes per input.
_BYTES_WEIGHT = 0.2


@dataclass(frozen=True, slots=True)
class TuningStats:
    """What an embedding client chose for batch size and concurrency, and why.

    Attributes:
        batch_size: inputs per request now.
        max_concurrency: requests in flight now.
        tuned: the settings being tuned (those left ``None``); empty when both are fixed.
        reason: why the current values were chosen.
        changes: how many times either value changed.
        requests: requests answered (one per chunk sent; a chunk split by bytes counts once).
        inputs: inputs answered.
        throughput: inputs per second of the last measured epoch, ``None`` before one.
        latency: mean seconds per request of the last measured epoch.
        mean_input_bytes: running mean of prepared bytes per input (what the window counts).
        overloads: 429 / 503 answers and timeouts seen.
        byte_waits: times the pipeline held a chunk back because ``max_inflight_bytes`` was
            reached (the window, not the limits, was the bound then).
    """

    batch_size: int
    max_concurrency: int
    tuned: tuple[str, ...]
    reason: str
    changes: int
    requests: int
    inputs: int
    throughput: float | None
    latency: float | None
    mean_input_bytes: float | None
    overloads: int
    byte_waits: int


@dataclass(slots=True)
class _Epoch:
    start: float
    #: (started, answered) of each request counted. The rate is taken over the time at least
    #: one of them was in flight: a client idle before a call, or between two calls an epoch
    #: spans, would otherwise read as a slow server (measured on the CPU server: an epoch
    #: across calls read 12 inputs/s against ~24, and the next move was kept on that).
    spans: list[tuple[float, float]] = field(default_factory=list)
    requests: int = 0
    inputs: int = 0
    nbytes: int = 0
    seconds: float = 0.0
    waited: bool = False


@dataclass(frozen=True, slots=True)
class _Trial:
    """A move on probation: ``what`` went from ``before`` to ``after``, measured against
    ``tput`` / ``lat`` on inputs of ``size`` bytes each; ``further``: a second doubling past
    a plateau (see rule 4 of the module docstring), which gets no third."""

    what: str
    before: int
    after: int
    tput: float
    lat: float
    size: float
    further: bool = False


def _busy_seconds(spans: list[tuple[float, float]]) -> float:
    """The length of the union of ``spans``: seconds at least one request was in flight."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


def _comparable(a: float, b: float) -> bool:
    """Whether two workloads' bytes per input are alike enough to compare their rates."""
    low, high = sorted((a, b))
    return high <= 2 * low + 64  # + 64: short texts of a few bytes vary a lot in ratio


class Tuner:
    """The batch size and concurrency of one client: fixed where set, tuned where ``None``.

    Thread-safe: chunk tasks of every call on the client report to one tuner.
    """

    def __init__(
        self,
        *,
        batch_size: int | None,
        max_concurrency: int | None,
        max_batch_bytes: int,
        timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``timeout``: the client's per-request timeout in seconds, which tuned latency keeps
        well inside (``None``: no limit)."""
        self._auto = {_BATCH: batch_size is None, _CONC: max_concurrency is None}
        self._value = {
            _BATCH: batch_size or C.AUTO_START_BATCH_SIZE,
            _CONC: max_concurrency or C.AUTO_START_CONCURRENCY,
        }
        self._cap = {
            _BATCH: C.AUTO_MAX_BATCH_SIZE if batch_size is None else batch_size,
            _CONC: C.AUTO_MAX_CONCURRENCY if max_concurrency is None else max_concurrency,
        }
        self._open = dict(self._auto)
        self._max_batch_bytes = max_batch_bytes
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._epoch = _Epoch(clock())
        self._trial: _Trial | None = None
        self._steady = 0
        self._reason = (
            f"measuring from the defaults ({self.batch_size} per request, "
            f"{self.concurrency} in flight)"
            if self.tuned
            else "fixed by the settings"
        )
        self._changes = self._requests = self._inputs = self._overloads = 0
        self._byte_waits = 0
        self._tput: float | None = None
        self._lat: float | None = None
        self._mean_bytes: float | None = None
        # The same by kind (texts: True), for the byte budget's estimates.
        self._kind_mean: dict[bool, float | None] = {True: None, False: None}
        # Bytes per input of the chunk the batch was last sized for (None: not yet), and
        # whether that chunk was texts.
        self._sized_for: float | None = None
        self._sized_text = False
        self._batch_halved = False
        # The concurrency is still a starting value (nothing but the inputs' size moved it).
        self._conc_at_start = self._auto[_CONC]

    # -- what the pipeline reads -------------------------------------------------------------

    @property
    def tuned(self) -> tuple[str, ...]:
        """The settings this tuner moves."""
        return tuple(name for name in (_BATCH, _CONC) if self._auto[name])

    @property
    def batch_size(self) -> int:
        """Inputs for the next chunk (one request)."""
        return self._value[_BATCH]

    def batch_size_for(self, text: bool, total: int | None = None) -> int:
        """Inputs for the next chunk, whose first input is a text (``text``) or not, of a call
        of ``total`` inputs (``None``: a stream). Media after a batch sized for texts get at
        most the starting batch until a chunk of them sizes it; a tuned batch is at most the
        call's share of the starting depth's requests (rule 1)."""
        batch = self._value[_BATCH]
        if self._sized_text and not text:
            batch = min(batch, C.AUTO_START_BATCH_SIZE)
        if total is not None and self._auto[_BATCH]:
            # The starting depth, not the current one: a concurrency trial would otherwise
            # halve the requests too, and be judged on two changes at once.
            share = -(-total // C.AUTO_START_CONCURRENCY)
            batch = min(batch, max(share, C.AUTO_START_BATCH_SIZE))
        return batch

    @property
    def concurrency(self) -> int:
        """Requests that may be in flight now."""
        return self._value[_CONC]

    @property
    def max_concurrency(self) -> int:
        """The most requests in flight this tuner will ever allow (threads are sized by it)."""
        return self._cap[_CONC]

    @property
    def max_batch_size(self) -> int:
        """The most inputs per request this tuner will ever choose."""
        return self._cap[_BATCH]

    def now(self) -> float:
        """The tuner's clock (``started`` times given to it are read from it)."""
        return self._clock()

    def estimate(self, inputs: int, *, text: bool = False) -> int:
        """Bytes ``inputs`` not yet prepared will likely take: the running mean of their kind
        (texts, or media), or before one of that kind was prepared a camera photo's worth
        each (a small budget is then kept from the start; the default one admits the
        count-bounded window as before). One mean for both kinds let images after texts in at
        the texts' few bytes each, far past ``max_inflight_bytes``."""
        mean = self._kind_mean[text]
        return int((C.UNMEASURED_INPUT_BYTES if mean is None else mean) * inputs)

    def stats(self) -> TuningStats:
        """A snapshot of what was chosen and why."""
        with self._lock:
            return TuningStats(
                batch_size=self.batch_size,
                max_concurrency=self.concurrency,
                tuned=self.tuned,
                reason=self._reason,
                changes=self._changes,
                requests=self._requests,
                inputs=self._inputs,
                throughput=self._tput,
                latency=self._lat,
                mean_input_bytes=self._mean_bytes,
                overloads=self._overloads,
                byte_waits=self._byte_waits,
            )

    # -- what the pipeline reports ------------------------------------------------------------

    def prepared(self, inputs: int, nbytes: int, *, text: bool = False) -> None:
        """A chunk of ``inputs`` prepared to ``nbytes`` of payload; ``text``: its inputs are
        texts (as the chunker saw its first one)."""
        if inputs <= 0:
            return
        with self._lock:
            mean = nbytes / inputs
            old = self._mean_bytes
            self._mean_bytes = mean if old is None else old + _BYTES_WEIGHT * (mean - old)
            kind = self._kind_mean[text]
            self._kind_mean[text] = mean if kind is None else kind + _BYTES_WEIGHT * (mean - kind)
            # A batch an overload halved stays where it is; any other is sized to new inputs
            # (an overload may have halved the concurrency already: the probe's requests count).
            sized = self._sized_for
            if (
                self._auto[_BATCH]
                and not self._batch_halved
                and (sized is None or not _comparable(sized, mean) or text != self._sized_text)
            ):
                self._sized_text = text
                self._size_batch(mean, text=text)

    def byte_wait(self) -> None:
        """The window held a chunk back: the byte budget was spent."""
        with self._lock:
            self._byte_waits += 1

    def answered(self, inputs: int, nbytes: int, started: float, *, waited: bool) -> None:
        """A request (a chunk's) of ``nbytes`` started at ``started`` came back with ``inputs``
        vectors; ``waited``: it waited for a concurrency slot first."""
        with self._lock:
            now = self._clock()
            self._requests += 1
            self._inputs += inputs
            epoch = self._epoch
            if not self.tuned or started < epoch.start:
                return
            epoch.requests += 1
            epoch.spans.append((started, now))
            epoch.inputs += inputs
            epoch.nbytes += nbytes
            epoch.seconds += now - started
            epoch.waited |= waited
            if epoch.requests >= self._epoch_requests():
                self._end_epoch(now)

    def _media_mean(self) -> float | None:
        """Prepared bytes per media input, or ``None`` while the inputs are texts (or unseen)."""
        return None if self._sized_text else self._kind_mean[False]

    def _small_media(self) -> bool:
        """Whether the inputs are small media, whose batch is explored first (rule 4)."""
        mean = self._media_mean()
        return self._auto[_BATCH] and mean is not None and mean <= C.AUTO_SMALL_INPUT_BYTES

    def _epoch_requests(self) -> int:
        """Requests an epoch measures: two waves, one of small media (rule 4)."""
        if self._small_media():
            return max(4, self.concurrency)
        return max(4, 2 * self.concurrency)

    def overloaded(self, why: str, started: float) -> None:
        """The server answered 429 / 503 or timed out a request started at ``started``."""
        with self._lock:
            self._overloads += 1
            if started < self._epoch.start:
                return  # an answer to the setting before the last change: already acted on
            name = _CONC if self._auto[_CONC] else _BATCH
            if not self._auto[name] or self._value[name] == 1:
                return
            self._halve(name, why)

    def _halve(self, name: str, why: str) -> None:
        """Halve ``name`` at once, close growth in that direction, and measure afresh."""
        before = self._value[name]
        after = max(1, before // 2)
        self._trial = None
        self._open[name] = False
        self._batch_halved |= name == _BATCH
        self._set(name, after, f"{why}: halved {name} {before} -> {after}")
        self._epoch = _Epoch(self._clock())

    # -- the policy ---------------------------------------------------------------------------

    def _end_epoch(self, now: float) -> None:
        epoch = self._epoch
        tput = epoch.inputs / max(_busy_seconds(epoch.spans), 1e-9)
        lat = epoch.seconds / epoch.requests
        self._tput, self._lat = tput, lat
        size = epoch.nbytes / max(epoch.inputs, 1)
        base_tput, base_lat = tput, lat
        trial, self._trial = self._trial, None
        # Requests well short of the batch (a short call's share, the tail of calls): a bigger
        # batch would send the same requests, and its trial would be judged on nothing.
        full = epoch.inputs >= 0.75 * self._value[_BATCH] * epoch.requests
        if trial is not None and not _comparable(trial.size, size):
            # Texts after photos (or the reverse): inputs per second are not comparable, so
            # the move is neither kept nor undone on this; measure again from here.
            self._reason = (
                f"the workload changed ({trial.size:.0f} -> {size:.0f} bytes per input): "
                f"measuring again at {self.batch_size} per request, {self.concurrency} in flight"
            )
            log.debug("tuning: %s", self._reason)
            self._epoch = _Epoch(now)
            return
        if trial is not None:
            moved = (
                f"{trial.what} {trial.before} -> {trial.after}: throughput "
                f"{trial.tput:.1f} -> {tput:.1f} inputs/s, latency {trial.lat:.3f} -> {lat:.3f} s"
            )
            if tput >= trial.tput * (1 + GAIN):
                self._reason = f"kept {moved}"
                log.debug("tuning: %s", self._reason)
            elif full and self._past_plateau(trial, tput, size):
                self._epoch = _Epoch(now)
                after = min(trial.after * 2, self._cap[_BATCH])
                self._trial = dataclasses.replace(trial, after=after, further=True)
                self._steady = 0
                self._set(_BATCH, after, f"{moved}: less than +{GAIN:.0%}, trying {after}")
                return
            else:
                base_tput, base_lat = trial.tput, trial.lat
                self._open[trial.what] = False
                self._set(trial.what, trial.before, f"undid {moved} (< +{GAIN:.0%})")
        self._epoch = _Epoch(now)
        self._next_move(base_tput, base_lat, size, waited=epoch.waited, full=full)

    def _past_plateau(self, trial: _Trial, tput: float, size: float) -> bool:
        """Whether a batch trial that gained too little earns one more doubling: small media
        only, not already one, not a loss of :data:`GAIN` or more, and room to double (the
        caller checks that the trial's requests carried its batch)."""
        return (
            trial.what == _BATCH
            and not trial.further
            and self._small_media()
            and tput >= trial.tput * (1 - GAIN)
            and trial.after < self._cap[_BATCH]
            and trial.after * 2 * size <= self._max_batch_bytes
        )

    def _size_batch(self, mean: float, *, text: bool) -> None:
        """A chunk's bytes per input say how many inputs fill a worthwhile request (and how
        many requests of them start in flight)."""
        self._sized_for = mean
        target = C.AUTO_MIN_REQUEST_BYTES if text else C.AUTO_MEDIA_REQUEST_BYTES
        batch, fit = C.AUTO_START_BATCH_SIZE, target / max(mean, 1.0)
        while batch * 2 <= min(fit, self._cap[_BATCH]) and batch * 2 * mean <= (
            self._max_batch_bytes
        ):
            batch *= 2
        moved = self._size_start_concurrency(batch * mean)
        if batch != self._value[_BATCH]:
            moved = True
            self._set(
                _BATCH,
                batch,
                f"sized to the inputs: {mean:.0f} bytes each, {batch} per request carry "
                f"~{batch * mean / 1024:.0f} KiB",
            )
        if moved:
            # A move on probation was measured on other inputs, and requests of the old
            # batch or depth measure nothing now.
            self._trial = None
            self._epoch = _Epoch(self._clock())

    def _size_start_concurrency(self, request_bytes: float) -> bool:
        """Requests start :data:`~.._constants.AUTO_START_CONCURRENCY` in flight unless that
        many would carry more than :data:`~.._constants.AUTO_LARGE_REQUEST_BYTES` (videos,
        huge scans): :data:`~.._constants.AUTO_LARGE_START_CONCURRENCY` then. Only while no
        trial or overload moved it. Whether it changed."""
        if not self._conc_at_start:
            return False
        small = C.AUTO_START_CONCURRENCY * request_bytes <= C.AUTO_LARGE_REQUEST_BYTES
        conc = min(
            C.AUTO_START_CONCURRENCY if small else C.AUTO_LARGE_START_CONCURRENCY,
            self._cap[_CONC],
        )
        if conc == self._value[_CONC]:
            return False
        reason = f"started at {conc} in flight: requests of {request_bytes / 1024:.0f} KiB"
        self._set(_CONC, conc, reason, start=True)
        return True

    def _next_move(self, tput: float, lat: float, size: float, *, waited: bool, full: bool) -> None:
        """``full``: the epoch's requests carried (nearly) the whole batch."""
        conc, batch = self._value[_CONC], self._value[_BATCH]
        if self._near_timeout(lat, conc):
            return
        mean = self._mean_bytes or 0.0
        fits = (batch * 2) * mean <= self._max_batch_bytes
        grow_batch = full and self._open[_BATCH] and batch < self._cap[_BATCH] and fits
        if grow_batch and self._small_media():
            self._try(_BATCH, min(batch * 2, self._cap[_BATCH]), tput, lat, size)
            return
        if self._open[_CONC] and waited and conc < self._cap[_CONC]:
            self._try(_CONC, min(conc * 2, self._cap[_CONC]), tput, lat, size)
            return
        if grow_batch:
            self._try(_BATCH, min(batch * 2, self._cap[_BATCH]), tput, lat, size)
            return
        if self._open[_CONC] and conc < self._cap[_CONC]:
            # Nobody waited for a slot, and the batch can grow no more: the window (two
            # chunks beyond the requests in flight) may be what holds preparation back, and it
            # deepens with the concurrency. Measured on an H100: 224 px JPEGs stayed at 16 x 4,
            # 0.63x a hand-written 128 x 16. One trial; undone if it gains nothing.
            self._try(_CONC, min(conc * 2, self._cap[_CONC]), tput, lat, size)
            return
        self._steady += 1
        if self._steady >= REOPEN_EPOCHS:
            self._steady = 0
            self._open = dict(self._auto)

    def _near_timeout(self, lat: float, conc: int) -> bool:
        """Whether a mean latency of ``lat`` leaves no room for a move (see rule 7 of the
        module docstring); past half the timeout, the concurrency is halved as well."""
        timeout = self._timeout
        if timeout is None or 2 * lat <= LATENCY_SHARE * timeout:
            return False
        if lat > timeout / 2 and self._auto[_CONC] and conc > 1:
            self._halve(_CONC, f"mean latency {lat:.1f} s is over half the {timeout:.0f} s timeout")
        else:
            self._reason = (
                f"held at {self.batch_size} per request, {conc} in flight: mean latency "
                f"{lat:.1f} s, and a move could double it past {LATENCY_SHARE:.0%} of the "
                f"{timeout:.0f} s timeout"
            )
            log.debug("tuning: %s", self._reason)
        return True

    def _try(self, name: str, after: int, tput: float, lat: float, size: float) -> None:
        self._steady = 0
        before = self._value[name]
        self._trial = _Trial(name, before, after, tput, lat, size)
        self._set(
            name,
            after,
            f"trying {name} {before} -> {after} from {tput:.1f} inputs/s, latency {lat:.3f} s",
        )

    def _set(self, name: str, value: int, reason: str, *, start: bool = False) -> None:
        """``start``: a starting concurrency the inputs chose, which later inputs may change
        (a trial's or an overload's value is the epochs' to judge)."""
        self._value[name] = value
        if name == _CONC:
            self._conc_at_start = start
        self._changes += 1
        self._reason = reason
        log.debug(
            "tuning: %s (now %d per request, %d in flight)",
            self._reason,
            self.batch_size,
            self.concurrency,
        )
