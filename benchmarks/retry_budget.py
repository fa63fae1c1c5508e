"""How many retries a bulk job needs on a flaky link, computed and measured.

The fault mix: each attempt fails with 8% HTTP 503, 4% HTTP 429 (with a Retry-After that is
sometimes malformed: ``nan``, ``soon``, ``-1``) and 4% connection resets. Three parts:

1. the exact chance that a job loses at least one request, for 0..10 retries;
2. a Monte Carlo run of many jobs (no I/O) that also counts the retries actually used;
3. one real 3000-item job: batches of 16, 4 threads, against a fault-injecting HTTP server on
   loopback, driven by ``RetryPolicy``/``RetryState`` with real sleeps. Each item's vector
   carries its id, so lost, duplicated or reordered items would be seen.

Run:
    python benchmarks/retry_budget.py                  # all three
    python benchmarks/retry_budget.py --skip-live      # no server
"""

from __future__ import annotations

import argparse
import base64
import collections
import http.server
import json
import random
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

from vllm_multimodal_embeddings.transport._retry import RetryPolicy

P_503, P_429, P_RESET = 0.08, 0.04, 0.04
P_FAIL = P_503 + P_429 + P_RESET
MALFORMED_RETRY_AFTER = ["nan", "soon", "-1", "inf", "1"]


def loss_table(requests: list[int], max_retries: int = 10) -> None:
    print(f"P(a job loses >= 1 request), per-attempt failure p = {P_FAIL:.2f}")
    print(f"{'retries':>7}  " + "  ".join(f"{n:>6} req" for n in requests))
    for r in range(max_retries + 1):
        lost = P_FAIL ** (r + 1)
        cells = "  ".join(f"{1 - (1 - lost) ** n:>10.2e}" for n in requests)
        print(f"{r:>7}  {cells}")


def monte_carlo(jobs: int, requests: int, policy: RetryPolicy, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    # Attempts until the first success: geometric with success 1 - p.
    attempts = rng.geometric(1 - P_FAIL, size=(jobs, requests))
    retries_needed = attempts - 1
    lost_jobs = int((retries_needed > policy.max_retries).any(axis=1).sum())
    worst = int(retries_needed.max())
    print(
        f"Monte Carlo: {jobs} jobs x {requests} requests, max_retries={policy.max_retries}: "
        f"{lost_jobs} jobs lost a request; most retries any request needed: {worst}; "
        f"mean retries per request {retries_needed.mean():.3f}"
    )


class FaultServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, seed: int) -> None:
        super().__init__(("127.0.0.1", 0), FaultHandler)
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.outcomes: collections.Counter[str] = collections.Counter()

    def draw(self) -> str:
        with self.lock:
            x = self.rng.random()
            outcome = (
                "503"
                if x < P_503
                else "429"
                if x < P_503 + P_429
                else "reset"
                if x < P_FAIL
                else "ok"
            )
            self.outcomes[outcome] += 1
            return outcome


class FaultHandler(http.server.BaseHTTPRequestHandler):
    server: FaultServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        outcome = self.server.draw()
        if outcome == "reset":
            # SO_LINGER 0: close() sends RST, as a dropped link or a killed proxy does.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if outcome in ("503", "429"):
            self.send_response(int(outcome))
            if outcome == "429":
                self.send_header("Retry-After", random.choice(MALFORMED_RETRY_AFTER))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = [
            {
                "index": i,
                "embedding": base64.b64encode(np.asarray([item], "<f4").tobytes()).decode(),
            }
            for i, item in enumerate(body["items"])
        ]
        payload = json.dumps({"data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


def post_with_retries(
    http: httpx.Client, policy: RetryPolicy, items: list[int]
) -> tuple[list[float], int]:
    state = policy.start()
    while True:
        outcome: httpx.Response | Exception
        try:
            outcome = http.post("/v1/embeddings", json={"items": items})
            if outcome.is_success:
                data = outcome.json()["data"]
                vectors = [0.0] * len(items)
                for entry in data:
                    raw = base64.b64decode(entry["embedding"])
                    vectors[entry["index"]] = float(np.frombuffer(raw, "<f4")[0])
                return vectors, state.retries
        except httpx.TransportError as exc:
            outcome = exc
        wait = state.next_delay(outcome)
        if wait is None:
            raise RuntimeError(f"request lost after {state.retries} retries: {outcome!r}")
        time.sleep(wait)


def live_job(items: int, batch: int, threads: int, policy: RetryPolicy, seed: int) -> None:
    server = FaultServer(seed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    batches = [list(range(i, min(i + batch, items))) for i in range(0, items, batch)]
    start = time.perf_counter()
    with httpx.Client(base_url=url, timeout=10) as http, ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda b: post_with_retries(http, policy, b), batches))
    elapsed = time.perf_counter() - start
    server.shutdown()
    server.server_close()
    got = [v for vectors, _ in results for v in vectors]
    retries = collections.Counter(r for _, r in results)
    intact = got == [float(i) for i in range(items)]
    print(
        f"live: {items} items, {len(batches)} requests of {batch}, {threads} threads, "
        f"{elapsed:.1f} s; server outcomes {dict(server.outcomes)}; "
        f"retries per request {dict(sorted(retries.items()))}; "
        f"all items back, once, in order: {intact}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    policy = RetryPolicy()
    print(f"policy: {policy}")
    loss_table([190, 3000])
    monte_carlo(10_000, 190, policy, seed=args.seed)
    monte_carlo(1_000, 3000, policy, seed=args.seed)
    monte_carlo(10_000, 190, RetryPolicy(max_retries=2), seed=args.seed)
    if not args.skip_live:
        live_job(3000, 16, 4, policy, seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
