"""Client-side fetching of ``http(s)`` images (``fetch_remote_images=True``), bounded and fenced.

A URL handed to us is untrusted: it may point at the cloud metadata service, at a service
on the user's own network, or at a server that drips bytes forever or sends a gzip bomb.
:class:`RemoteFetcher` therefore

* uses its own clean ``httpx.Client`` (no user headers, auth, cookies, proxies or ``.netrc``);
* resolves the host itself and refuses loopback, private, link-local, multicast, reserved
  and unspecified addresses (IPv4, IPv6, IPv4-mapped IPv6) unless the allow-list permits them,
  then connects to the address it checked (no second DNS answer can swap it);
* follows at most ``max_redirects`` redirects by hand, checking every hop the same way;
* enforces one deadline for the whole fetch, redirects and slow bodies included;
* asks for ``identity`` encoding, refuses a ``Content-Length`` over the cap before reading,
  and counts bytes as they arrive (a gzip/deflate body the server sends anyway is inflated
  with a bounded decompressor);
* tries again, within that deadline, when the host failed for now (the connection failed or
  broke, 408, 425, 429 or 5xx; a ``Retry-After`` in seconds is honoured), so that one busy
  moment of a media host does not fail an input for good.
"""

from __future__ import annotations

import io
import ipaddress
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from .._closing import Closing
from .._constants import DEFAULT_REMOTE_IMAGE_MAX_BYTES, DEFAULT_REMOTE_IMAGE_TIMEOUT_S
from .._exceptions import ImageLoadError
from .._redact import redact_url

if TYPE_CHECKING:
    from ._settings import ImageSettings

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_MAX_REDIRECTS",
    "RemoteFetchError",
    "RemoteFetcher",
    "Resolver",
]

DEFAULT_MAX_REDIRECTS = 5
#: Tries of one fetch (or one range of it) when the host failed for now.
DEFAULT_ATTEMPTS = 3
#: Seconds before the second try; doubled for each one after.
RETRY_BACKOFF_S = 0.5
#: Statuses of a host that may serve the same URL a moment later.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: ``(host, port) -> IP address strings``; the default asks the system resolver.
Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_REDIRECTS = frozenset({301, 302, 303, 307, 308})

#: Bytes asked for per range request of :meth:`RemoteFetcher.open` (FFmpeg reads 32 KiB at a
#: time; an MP4 header read then takes 3 requests: the start, the ``moov``, the first frames).
RANGE_BLOCK = 64 * 1024
#: Range requests one opened file may make: a container index is read in a few; more means a
#: reader wandering through the body, which a full read serves better.
MAX_RANGE_REQUESTS = 32
# Videos and other media: the client's default ``Accept: image/*`` would misdescribe them.
_ANY = {"Accept": "*/*"}
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+\d+-\d+/(\d+)\s*$", re.IGNORECASE)


class RemoteFetchError(ImageLoadError):
    """A remote image could not be fetched: refused address, too big, too slow, bad status.

    Attributes:
        transient: the host failed for now (see :data:`TRANSIENT_STATUSES`, connection
            failures, timeouts); the same URL may be served later.
        retry_after: seconds the host asked to wait (``Retry-After``), if it said.
    """

    def __init__(
        self, message: str, *, transient: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


T = TypeVar("T")


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host``."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class RemoteFetcher(Closing):
    """Fetch one image URL into bytes; a :data:`~._prepared.Fetcher` (``Callable[[str], bytes]``).

    Args:
        max_bytes: largest body accepted, counted on the wire.
        timeout: seconds for the whole fetch, every redirect and byte included.
        max_redirects: redirects followed before giving up.
        attempts: tries of a fetch (or of one range of a file) while the host fails for now;
            all of them within ``timeout``.
        allowed_hosts: host names, IP addresses or networks (``"10.0.0.0/8"``) that may be
            fetched even when they resolve to a non-public address.
        allow_private_networks: skip the address check entirely (trusted networks only).
        verify: TLS verification as ``httpx`` takes it (``True``, a CA bundle path, an
            ``ssl.SSLContext``); never turn it off for untrusted URLs.
        resolver: name resolution, replaceable for tests.
        transport: an ``httpx`` transport, replaceable for tests.
    """

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_REMOTE_IMAGE_MAX_BYTES,
        timeout: float = DEFAULT_REMOTE_IMAGE_TIMEOUT_S,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        attempts: int = DEFAULT_ATTEMPTS,
        allowed_hosts: Iterable[str] = (),
        allow_private_networks: bool = False,
        verify: ssl.SSLContext | str | bool = True,
        resolver: Resolver = system_resolver,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        if max_redirects < 0:
            raise ValueError(f"max_redirects must be >= 0, got {max_redirects}")
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        self.attempts = attempts
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.allow_private_networks = allow_private_networks
        self._allowed_names, self._allowed_nets = _parse_allow_list(allowed_hosts)
        self._resolve = resolver
        self._verify, self._transport = verify, transport
        # Made on first use: every client holds a fetcher (for remote video headers), and an
        # httpx client with TLS verification costs milliseconds that most never need.
        self._http_client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def _http(self) -> httpx.Client:
        with self._lock:
            if self._http_client is None:
                # trust_env=False: no proxy variables, no .netrc credentials, no default
                # headers. No keep-alive: connections are keyed by the pinned address, and a
                # TLS connection verified for one host name must not be reused for another
                # name on the same address.
                self._http_client = httpx.Client(
                    transport=self._transport,
                    trust_env=False,
                    follow_redirects=False,
                    verify=self._verify,
                    limits=httpx.Limits(max_keepalive_connections=0),
                    headers={"Accept-Encoding": "identity", "Accept": "image/*"},
                )
            return self._http_client

    @classmethod
    def from_options(cls, options: ImageSettings, **overrides: Any) -> RemoteFetcher:
        """A fetcher with the limits and allow-list of the client's image options."""
        settings: dict[str, Any] = {
            "max_bytes": options.remote_image_max_bytes,
            "timeout": options.remote_image_timeout,
            "allowed_hosts": options.remote_allowed_hosts,
            "allow_private_networks": options.allow_private_networks,
        }
        return cls(**{**settings, **overrides})

    @classmethod
    def needed_by(cls, options: ImageSettings) -> RemoteFetcher | None:
        """A fetcher for what ``options`` read from remote hosts (images with
        ``fetch_remote_images``, video headers with ``remote_video_headers``), else ``None``."""
        if options.fetch_remote_images or options.remote_video_headers:
            return cls.from_options(options)
        return None

    def __repr__(self) -> str:
        return (
            f"RemoteFetcher(max_bytes={self.max_bytes}, timeout={self.timeout}, "
            f"max_redirects={self.max_redirects}, "
            f"allow_private_networks={self.allow_private_networks})"
        )

    def close(self) -> None:
        """Close the connection pool."""
        with self._lock:
            if self._http_client is not None:
                self._http_client.close()

    def __call__(self, url: str) -> bytes:
        """The body of ``url``; :class:`RemoteFetchError` on any failure or refusal."""
        deadline = time.monotonic() + self.timeout
        return self._retrying(deadline, lambda: self._get(url, deadline))

    def _get(self, url: str, deadline: float) -> bytes:
        response, _ = self._follow(url, deadline, {})
        try:
            if response.status_code != 200:
                raise _status_error(response)
            return self._read_body(response, deadline, self.max_bytes)
        finally:
            response.close()

    def _retrying(self, deadline: float, attempt: Callable[[], T]) -> T:
        """``attempt()``, tried again while it fails for now and tries and time are left."""
        tries = 1
        while True:
            try:
                return attempt()
            except RemoteFetchError as exc:
                if not exc.transient:
                    raise
                wait = RETRY_BACKOFF_S * 2 ** (tries - 1)
                if exc.retry_after is not None:
                    wait = max(wait, exc.retry_after)
                if tries >= self.attempts or time.monotonic() + wait >= deadline:
                    if tries == 1:
                        raise
                    raise RemoteFetchError(
                        f"{exc.message} ({tries} tries)",
                        transient=True,
                        retry_after=exc.retry_after,
                    ) from exc
            time.sleep(wait)
            tries += 1

    def open(self, url: str) -> io.IOBase:
        """``url`` as a seekable binary file that fetches only the byte ranges read from it.

        For a video's header: a container reader needs its first block and the index (an
        MP4's ``moov``, which may sit at the end), not the frames. A server that ignores
        ``Range`` gets the whole body read, under the same limits. Every request obeys the
        fetcher's guards; the ranges read together stay under ``max_bytes`` and within one
        ``timeout``.
        """
        deadline = time.monotonic() + self.timeout
        return self._retrying(deadline, lambda: self._open(url, deadline))

    def _open(self, url: str, deadline: float) -> io.IOBase:
        first = RANGE_BLOCK - 1
        response, final = self._follow(url, deadline, {"Range": f"bytes=0-{first}", **_ANY})
        try:
            if response.status_code == 200:  # ranges not supported: the whole body
                return io.BytesIO(self._read_body(response, deadline, self.max_bytes))
            if response.status_code != 206:
                raise _status_error(response)
            size = _range_total(response.headers.get("content-range"))
            head = self._read_body(response, deadline, RANGE_BLOCK)
        finally:
            response.close()
        return _RangedFile(self, final, size, head, deadline)

    def read_range(self, url: httpx.URL, start: int, stop: int, deadline: float) -> bytes:
        """Bytes ``start`` to ``stop`` (exclusive) of ``url``, which must answer 206."""
        return self._retrying(deadline, lambda: self._read_range(url, start, stop, deadline))

    def _read_range(self, url: httpx.URL, start: int, stop: int, deadline: float) -> bytes:
        byte_range = {"Range": f"bytes={start}-{stop - 1}", **_ANY}
        response, _ = self._follow(url, deadline, byte_range)
        try:
            if response.status_code != 206:
                raise _status_error(response, " to a range request")
            body = self._read_body(response, deadline, stop - start)
        finally:
            response.close()
        if len(body) != stop - start:
            # A body cut short: the connection, not the file.
            raise RemoteFetchError(
                f"asked for {stop - start} bytes, got {len(body)}", transient=True
            )
        return body

    def _follow(
        self, url: str | httpx.URL, deadline: float, headers: dict[str, str]
    ) -> tuple[httpx.Response, httpx.URL]:
        """The streamed response of ``url`` after redirects, and the URL that gave it."""
        # A URL already parsed (the final one of an open file's first request) is not again.
        current = url if isinstance(url, httpx.URL) else _parse_url(url)
        for _hop in range(self.max_redirects + 1):
            response = self._send(current, deadline, headers)
            if response.status_code not in _REDIRECTS:
                return response, current
            location = response.headers.get("location")
            response.close()
            if not location:
                raise RemoteFetchError(f"HTTP {response.status_code} without a Location")
            current = _parse_url(str(current.join(location)))
        raise RemoteFetchError(f"more than {self.max_redirects} redirects")

    def _send(self, url: httpx.URL, deadline: float, headers: dict[str, str]) -> httpx.Response:
        """One hop's streamed response (the caller closes it)."""
        # The ASCII (IDNA) form: what DNS, the Host header and SNI all expect.
        host = url.raw_host.decode("ascii")
        port = url.port or (443 if url.scheme == "https" else 80)
        address = self._checked_address(host, port)
        # Connect to the address that passed the check; Host and SNI keep the name, so
        # virtual hosting and certificate checks behave as for a normal request.
        target = url.copy_with(host=address)
        host_header = host if url.port is None else f"{host}:{url.port}"
        if ":" in host and url.port is None:
            host_header = f"[{host}]"
        elif ":" in host:
            host_header = f"[{host}]:{url.port}"
        extensions = {"sni_hostname": host} if url.scheme == "https" else {}
        request = self._http.build_request(
            "GET",
            target,
            headers={**headers, "Host": host_header},
            timeout=_remaining(deadline),
            extensions=extensions,
        )
        try:
            return self._http.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise RemoteFetchError(f"no answer within {self.timeout:g} s", transient=True) from exc
        except httpx.HTTPError as exc:
            # Connection refused or reset, TLS failure, or a malformed response head. A
            # refused or broken connection may work a moment later (a host that hangs up
            # before answering is a protocol error to httpx); a certificate or a malformed
            # head will not.
            transient = isinstance(exc, httpx.NetworkError) or (
                isinstance(exc, httpx.RemoteProtocolError) and "disconnected" in str(exc)
            )
            raise RemoteFetchError(
                f"request failed: {type(exc).__name__}: {exc}",
                transient=transient and not _caused_by(exc, ssl.SSLError),
            ) from exc

    def _read_body(self, response: httpx.Response, deadline: float, limit: int) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                raise RemoteFetchError(f"invalid Content-Length {declared[:40]!r}")
            if int(declared) > limit:
                raise RemoteFetchError(f"body is {int(declared)} bytes, over the limit of {limit}")
        inflate = _decompressor(response.headers.get("content-encoding", "identity"))
        chunks: list[bytes] = []
        total = 0
        try:
            for raw in response.iter_raw():  # no chunk_size: it would buffer
                # Checked per chunk: a server dripping bytes never hits a read timeout.
                if time.monotonic() > deadline:
                    raise RemoteFetchError(
                        f"body not received within {self.timeout:g} s", transient=True
                    )
                chunk = raw if inflate is None else inflate(raw, limit - total + 1)
                total += len(chunk)
                if total > limit:
                    raise RemoteFetchError(f"body larger than {limit} bytes")
                chunks.append(chunk)
        except httpx.TimeoutException as exc:
            raise RemoteFetchError(
                f"body not received within {self.timeout:g} s", transient=True
            ) from exc
        except httpx.HTTPError as exc:
            raise RemoteFetchError(
                f"connection broke mid-body: {type(exc).__name__}", transient=True
            ) from exc
        except zlib.error as exc:
            raise RemoteFetchError(f"corrupt compressed body: {exc}") from exc
        return b"".join(chunks)

    def _checked_address(self, host: str, port: int) -> str:
        """The address to connect to, after checking every address ``host`` resolves to."""
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = [
                    ipaddress.ip_address(a.split("%")[0]) for a in self._resolve(host, port)
                ]
            except (OSError, UnicodeError) as exc:
                # "Temporary failure in name resolution" is the resolver's, not the name's.
                again = isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_AGAIN
                raise RemoteFetchError(f"cannot resolve host {host!r}", transient=again) from exc
            if not addresses:
                raise RemoteFetchError(f"cannot resolve host {host!r}")
        if not (self.allow_private_networks or host.lower().rstrip(".") in self._allowed_names):
            for address in addresses:
                if not _is_public(address) and not any(
                    _effective(address) in net or address in net for net in self._allowed_nets
                ):
                    raise RemoteFetchError(
                        f"host {host!r} resolves to non-public address {address}; allow it "
                        "with allowed_hosts or allow_private_networks"
                    )
        return str(addresses[0])


class _RangedFile(io.RawIOBase):
    """A remote file of known size, read through range requests and kept in memory as read.

    What PyAV needs to open a container: ``read``, ``seek`` and ``tell``. The bytes fetched
    stay under the fetcher's ``max_bytes``, the requests under :data:`MAX_RANGE_REQUESTS`, and
    all of them within the deadline of the :meth:`RemoteFetcher.open` that made it.
    """

    def __init__(
        self, fetcher: RemoteFetcher, url: httpx.URL, size: int, head: bytes, deadline: float
    ) -> None:
        super().__init__()
        self._fetcher, self._url, self._size, self._deadline = fetcher, url, size, deadline
        self._blocks: list[tuple[int, bytes]] = [(0, head)] if head else []
        self._fetched, self._requests, self._pos = len(head), 1, 0

    @property
    def fetched(self) -> int:
        """Bytes fetched so far (the first block included)."""
        return self._fetched

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError(f"seek to {base + offset}, before the start")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._pos >= self._size or not len(view):
            return 0
        block = self._block_at(self._pos) or self._fetch(self._pos, len(view))
        start, data = block
        got = data[self._pos - start : self._pos - start + len(view)]
        view[: len(got)] = got
        self._pos += len(got)
        return len(got)

    def _block_at(self, pos: int) -> tuple[int, bytes] | None:
        for start, data in self._blocks:
            if start <= pos < start + len(data):
                return start, data
        return None

    def _fetch(self, pos: int, wanted: int) -> tuple[int, bytes]:
        stop = min(self._size, pos + max(wanted, RANGE_BLOCK))
        # Up to the next block held: no byte is fetched twice.
        stop = min([stop, *(s for s, _ in self._blocks if s > pos)])
        limit = self._fetcher.max_bytes
        if self._fetched + stop - pos > limit:
            raise RemoteFetchError(f"reading the header needs more than {limit} bytes")
        if self._requests >= MAX_RANGE_REQUESTS:
            raise RemoteFetchError(f"reading the header needs over {MAX_RANGE_REQUESTS} requests")
        data = self._fetcher.read_range(self._url, pos, stop, self._deadline)
        self._requests += 1
        self._fetched += len(data)
        self._blocks.append((pos, data))
        return pos, data


def _status_error(response: httpx.Response, what: str = "") -> RemoteFetchError:
    """The error of an answer that is not the one asked for."""
    status = response.status_code
    return RemoteFetchError(
        f"HTTP {status}{what}",
        transient=status in TRANSIENT_STATUSES,
        retry_after=_retry_after(response.headers.get("retry-after")),
    )


def _retry_after(header: str | None) -> float | None:
    """A ``Retry-After`` in seconds (an HTTP date is not worth a clock comparison here)."""
    if header is None or not header.strip().isdigit():
        return None
    return float(header.strip())


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``kind`` is in the chain of causes of ``exc``."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _range_total(header: str | None) -> int:
    """The full size a ``Content-Range: bytes a-b/size`` answer gives."""
    match = _CONTENT_RANGE.match(header or "")
    if match is None:
        raise RemoteFetchError(f"206 with an unreadable Content-Range {str(header)[:60]!r}")
    return int(match.group(1))


def _parse_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise RemoteFetchError(f"invalid URL {redact_url(url)[:200]!r}") from exc
    if parsed.scheme not in ("http", "https"):
        raise RemoteFetchError(f"refusing to fetch a {parsed.scheme or 'relative'!r} URL")
    if not parsed.host:
        raise RemoteFetchError("URL has no host")
    return parsed


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise RemoteFetchError("deadline passed before the request could start", transient=True)
    return left


def _effective(address: IPAddress) -> IPAddress:
    """The IPv4 address hidden in an IPv4-mapped, 6to4 or NAT64 IPv6 address, else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# Ranges Python calls global that still lead inside a network: IPv4-compatible addresses
# (deprecated; ``::a9fe:a9fe`` is 169.254.169.254 on stacks that still map them), local-use
# NAT64 (RFC 8215: a site's own translator, any prefix length) and site-local (deprecated,
# still routed inside some networks).
_INWARD_V6 = tuple(ipaddress.IPv6Network(net) for net in ("::/96", "64:ff9b:1::/48", "fec0::/10"))


def _is_public(address: IPAddress) -> bool:
    # is_global is False for loopback, RFC 1918, link-local (169.254.169.254, fe80::),
    # unique-local (fc00::/7), CGNAT, documentation, reserved and unspecified ranges.
    if isinstance(address, ipaddress.IPv6Address) and any(address in n for n in _INWARD_V6):
        return False
    inner = _effective(address)
    return all(a.is_global and not a.is_multicast for a in (address, inner))


def _parse_allow_list(entries: Iterable[str]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    if isinstance(entries, str):  # a bare string would be split into characters
        entries = [entries]
    names: set[str] = set()
    nets: list[IPNetwork] = []
    for entry in entries:
        text = entry.strip().lower().strip("[]").rstrip(".")
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            names.add(text)
    return frozenset(names), tuple(nets)


def _decompressor(encoding: str) -> Callable[[bytes, int], bytes] | None:
    """A bounded inflater for the encodings a server may send despite ``identity``."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        wbits = 47 if encoding != "deflate" else 15  # 47: gzip or zlib header, auto
        inflater = zlib.decompressobj(wbits)

        def inflate(data: bytes, limit: int) -> bytes:
            # max_length bounds the output of this call; the rest waits in unconsumed_tail,
            # so a 0.3 MiB bomb never expands past the cap in memory.
            out = inflater.decompress(inflater.unconsumed_tail + data, max(limit, 1))
            return out

        return inflate
    raise RemoteFetchError(f"unsupported Content-Encoding {encoding!r}")
