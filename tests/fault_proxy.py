"""A fault-injecting HTTP proxy on loopback, for tests: a flaky link in front of a real server.

::

    with FaultProxy("http://127.0.0.1:8100", p503=0.08, p429=0.04, preset=0.04, seed=7) as proxy:
        client = EmbeddingClient(base_url=proxy.url)

Each request is forwarded to ``target`` (a loopback base URL) unless the seeded RNG picks a
fault for it: a 503, a 429 (``Retry-After: 0``) or a connection reset (RST, no response).
Faults are bounded: at most ``max_faults`` in all and ``max_in_a_row`` one after another, so
a client that retries always gets through. ``paths`` limits faults to requests whose path
starts with one of them; ``active`` turns faults on and off; ``max_body`` answers 413 to a
larger request body (a front end's body limit). ``counts`` says what was injected.
``kill()`` plays a server that goes away: new connections are refused and every request on a
kept-alive one is reset. ``outage(status, after=n)`` plays a server that fails as a whole:
every POST after the next ``n`` is answered ``status`` (no bound) until ``recover()``.
"""

from __future__ import annotations

import http.client
import ipaddress
import random
import socket
import struct
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

__all__ = ["FaultProxy"]

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "trailer"}


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class FaultProxy:
    """A loopback proxy to ``target`` that injects 503s, 429s and connection resets."""

    def __init__(
        self,
        target: str,
        *,
        p503: float = 0.0,
        p429: float = 0.0,
        preset: float = 0.0,
        seed: int = 0,
        max_faults: int = 1000,
        max_in_a_row: int = 2,
        paths: tuple[str, ...] = ("/",),
        max_body: int | None = None,
    ) -> None:
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname or not _loopback(parts.hostname):
            raise ValueError(f"target must be an http:// loopback URL, got {target!r}")
        if p503 + p429 + preset > 1:
            raise ValueError("fault probabilities add up to more than 1")
        self._host, self._port = parts.hostname, parts.port or 80
        self._p = (p503, p429, preset)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._max_faults, self._max_in_a_row = max_faults, max_in_a_row
        self._in_a_row = 0
        self.paths = paths
        self.max_body = max_body
        self.active = True
        self.dead = False
        # An outage: (status, POSTs still forwarded before it starts), or None.
        self._outage: tuple[int, int] | None = None
        self.counts: Counter[str] = Counter()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The proxy's base URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def kill(self) -> None:
        """Go away mid-job: refuse new connections and reset requests on open ones."""
        self.dead = True
        self._server.shutdown()
        self._server.server_close()

    def outage(self, status: int, *, after: int = 0) -> None:
        """Fail as a whole: answer ``status`` to every POST after the next ``after`` ones."""
        with self._lock:
            self._outage = (status, after)

    def recover(self) -> None:
        """End the outage: forward every request again."""
        with self._lock:
            self._outage = None

    def _fault(self, method: str, path: str) -> str | None:
        """The fault to inject for one request, or None to forward it."""
        with self._lock:
            self.counts["requests"] += 1
            if self.dead:
                self.counts["after kill"] += 1
                return "reset"
            if self._outage is not None and method == "POST":
                status, after = self._outage
                if after > 0:
                    self._outage = (status, after - 1)
                else:
                    self.counts[f"outage {status}"] += 1
                    return str(status)
            if not self.active or not path.startswith(self.paths):
                return None
            draw = self._rng.random()
            p503, p429, preset = self._p
            fault = (
                "503"
                if draw < p503
                else "429"
                if draw < p503 + p429
                else "reset"
                if draw < p503 + p429 + preset
                else None
            )
            spent = sum(self.counts[k] for k in ("503", "429", "reset"))
            if fault is None or spent >= self._max_faults or self._in_a_row >= self._max_in_a_row:
                self._in_a_row = 0
                return None
            self._in_a_row += 1
            self.counts[fault] += 1
            return fault

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: tests read counts, not logs

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy.max_body is not None and len(body) > proxy.max_body:
                    with proxy._lock:
                        proxy.counts["413"] += 1
                    self._answer(413, b'{"error": {"message": "Request Entity Too Large"}}')
                    return
                fault = proxy._fault(self.command, self.path)
                if fault == "reset":
                    # SO_LINGER 0: close() sends RST, as a dropped link or a dying LB does.
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault is not None:
                    status = int(fault)
                    self._answer(status, b'{"error": {"message": "injected"}}', retry_after=True)
                    return
                upstream = http.client.HTTPConnection(proxy._host, proxy._port, timeout=300)
                try:
                    headers = {
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() not in _HOP_BY_HOP and k.lower() != "host"
                    }
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    self.send_response(response.status)
                    for k, v in response.getheaders():
                        if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length":
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    upstream.close()

            def _answer(self, status: int, body: bytes, *, retry_after: bool = False) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if retry_after:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _relay

        return Handler
