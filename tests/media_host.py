"""A loopback HTTP host for a folder of media files, as a video or image CDN serves them.

It answers single ``Range: bytes=a-b`` requests with 206 (or ignores ranges, as some hosts do,
with ``ranges=False``) and counts the bytes it sends, so a test can tell a header read from a
download. ``failing[name]`` lists answers to give for that file before serving it, as a host
failing for a moment does: a status (``503``) or ``0`` to hang up without answering. A real
server on a real socket: the client's fetcher and vLLM both talk to it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class MediaHost:
    """The running host: its base URL and what it has sent."""

    url: str
    folder: Path
    sent: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    failing: dict[str, list[int]] = field(default_factory=dict)

    def of(self, name: str) -> str:
        return f"{self.url}/{name}"


@contextmanager
def media_host(folder: Path, *, ranges: bool = True) -> Iterator[MediaHost]:
    """Serve ``folder`` on 127.0.0.1 until the block ends."""
    lock = threading.Lock()
    host = MediaHost(url="", folder=folder)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.lstrip("/").split("?")[0]
            path = folder / name
            asked = self.headers.get("Range")
            with lock:
                host.requests.append((name, asked))
                pending = host.failing.get(name)
                failure = pending.pop(0) if pending else None
            if failure == 0:
                self.close_connection = True
                return
            if failure is not None:
                self.send_response(failure)
                self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            match = _RANGE.match(asked or "") if ranges else None
            if match:
                start = int(match.group(1))
                stop = min(len(data), int(match.group(2)) + 1 if match.group(2) else len(data))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                body = data[start:stop]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(data)}")
            else:
                body = data
                self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Accept-Ranges", "bytes" if ranges else "none")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # a reader that had enough
                return
            with lock:
                host.sent[name] = host.sent.get(name, 0) + len(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    host.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield host
    finally:
        server.shutdown()
        server.server_close()
