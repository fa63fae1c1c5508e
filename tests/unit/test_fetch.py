"""RemoteFetcher against a real loopback HTTP server (which is why tests pass an allow-list)."""

from __future__ import annotations

import contextlib
import gzip
import http.server
import io
import shutil
import socket
import ssl
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from vllm_multimodal_embeddings._exceptions import ImageLoadError, RemoteUnavailableError
from vllm_multimodal_embeddings.inputs._fetch import RemoteFetcher, RemoteFetchError
from vllm_multimodal_embeddings.inputs._read import prepare_image
from vllm_multimodal_embeddings.inputs._settings import ImageSettings

LOOPBACK = ["127.0.0.1"]


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png()
Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    routes: dict[str, Handler]
    seen: list[dict[str, str]]


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.seen.append({k.lower(): v for k, v in self.headers.items()})
        route = self.server.routes.get(self.path.split("?")[0])
        if route is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        # The client may hang up on purpose (cap or deadline hit).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            route(self)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _send(h: http.server.BaseHTTPRequestHandler, status: int, body: bytes, **headers: str) -> None:
    h.send_response(status)
    headers.setdefault("Content-Length", str(len(body)))
    for k, v in headers.items():
        h.send_header(k.replace("_", "-"), v)
    h.end_headers()
    h.wfile.write(body)


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _RequestHandler)
    srv.routes = {}
    srv.seen = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(srv: _Server, path: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"


def test_fetches_an_image_with_a_clean_request(server: _Server) -> None:
    server.routes["/a.png"] = lambda h: _send(h, 200, PNG, Content_Type="image/png")
    with RemoteFetcher(allowed_hosts=LOOPBACK) as fetch:
        assert fetch(_url(server, "/a.png?sig=secret")) == PNG
    seen = server.seen[0]
    assert seen["accept-encoding"] == "identity"
    assert "authorization" not in seen and "cookie" not in seen
    assert seen["host"] == f"127.0.0.1:{server.server_address[1]}"


def test_plugs_in_as_the_fetcher_of_prepare_image(server: _Server) -> None:
    server.routes["/a.png"] = lambda h: _send(h, 200, PNG)
    options = ImageSettings(fetch_remote_images=True)
    with RemoteFetcher(allowed_hosts=LOOPBACK) as fetch:
        uri = prepare_image(_url(server, "/a.png"), index=0, options=options, fetch=fetch)
    assert uri.startswith("data:image/png;base64,")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x.png",
        "http://localhost:9/x.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/x.png",
        "http://192.168.0.1/x.png",
        "http://100.64.0.1/x.png",
        "http://0.0.0.0:9/x.png",
        "http://224.0.0.1/x.png",
        "http://[::1]:9/x.png",
        "http://[::ffff:127.0.0.1]:9/x.png",
        "http://[::ffff:169.254.169.254]/x.png",
        "http://[fe80::1]/x.png",
        "http://[fd00::1]/x.png",
        "http://[64:ff9b::a9fe:a9fe]/x.png",
        "http://[::a9fe:a9fe]/x.png",
        "http://[64:ff9b:1::a9fe:a9fe]/x.png",
        "http://[fec0::1]/x.png",
    ],
)
def test_non_public_addresses_are_refused_before_connecting(url: str) -> None:
    started = time.monotonic()
    with RemoteFetcher() as fetch, pytest.raises(RemoteFetchError, match="non-public address"):
        fetch(url)
    assert time.monotonic() - started < 1.0


def test_host_resolving_to_private_address_is_refused() -> None:
    fetch = RemoteFetcher(resolver=lambda host, port: ["93.184.216.34", "10.0.0.7"])
    with pytest.raises(RemoteFetchError, match=r"'images\.example' resolves to non-public"):
        fetch("https://images.example/a.png")


def test_idna_host_is_resolved_in_ascii() -> None:
    asked: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["10.0.0.1"]

    with RemoteFetcher(resolver=resolver) as fetch, pytest.raises(RemoteFetchError):
        fetch("http://bücher.example/a.png")
    assert asked == ["xn--bcher-kva.example"]


def test_allow_list_by_network_and_switch(server: _Server) -> None:
    server.routes["/a.png"] = lambda h: _send(h, 200, PNG)
    with RemoteFetcher(allowed_hosts=["127.0.0.0/8"]) as fetch:
        assert fetch(_url(server, "/a.png")) == PNG
    with RemoteFetcher(allow_private_networks=True) as fetch:
        assert fetch(_url(server, "/a.png")) == PNG


def test_redirects_are_followed_and_rechecked(server: _Server) -> None:
    port = server.server_address[1]
    server.routes["/a.png"] = lambda h: _send(h, 200, PNG)
    server.routes["/rel"] = lambda h: _send(h, 302, b"", Location="/a.png")
    server.routes["/meta"] = lambda h: _send(
        h, 302, b"", Location="http://169.254.169.254/latest/meta-data/"
    )
    server.routes["/ftp"] = lambda h: _send(h, 301, b"", Location="ftp://127.0.0.1/a.png")
    server.routes["/loop"] = lambda h: _send(h, 307, b"", Location=f"http://127.0.0.1:{port}/loop")
    with RemoteFetcher(allowed_hosts=LOOPBACK, max_redirects=3) as fetch:
        assert fetch(_url(server, "/rel")) == PNG
        with pytest.raises(RemoteFetchError, match=r"non-public address 169\.254\.169\.254"):
            fetch(_url(server, "/meta"))
        with pytest.raises(RemoteFetchError, match="'ftp' URL"):
            fetch(_url(server, "/ftp"))
        with pytest.raises(RemoteFetchError, match="more than 3 redirects"):
            fetch(_url(server, "/loop"))
    assert len(server.seen) == 2 + 1 + 1 + 4


def test_dripping_server_hits_the_total_deadline(server: _Server) -> None:
    def drip(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(PNG)))
        h.end_headers()
        for byte in PNG:
            h.wfile.write(bytes([byte]))
            h.wfile.flush()
            time.sleep(0.25)

    server.routes["/drip"] = drip
    started = time.monotonic()
    with (
        RemoteFetcher(allowed_hosts=LOOPBACK, timeout=1.0) as fetch,
        pytest.raises(RemoteFetchError, match="within 1 s"),
    ):
        fetch(_url(server, "/drip"))
    assert time.monotonic() - started < 2.0


def test_content_length_over_cap_is_refused_before_reading(server: _Server) -> None:
    def huge(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(10**12))
        h.end_headers()
        h.wfile.write(b"x" * 1000)
        h.wfile.flush()
        time.sleep(3)  # a reader that waits for the body would hang here

    server.routes["/huge"] = huge
    started = time.monotonic()
    with (
        RemoteFetcher(allowed_hosts=LOOPBACK, max_bytes=1024) as fetch,
        pytest.raises(RemoteFetchError, match="1000000000000 bytes, over the limit of 1024"),
    ):
        fetch(_url(server, "/huge"))
    assert time.monotonic() - started < 1.0


def test_malformed_content_length_is_refused(server: _Server) -> None:
    def float_length(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "1e12")
        h.end_headers()
        h.wfile.flush()
        time.sleep(3)

    server.routes["/len"] = float_length
    started = time.monotonic()
    with RemoteFetcher(allowed_hosts=LOOPBACK) as fetch, pytest.raises(RemoteFetchError):
        fetch(_url(server, "/len"))
    assert time.monotonic() - started < 1.0


def test_body_over_cap_without_length_is_cut(server: _Server) -> None:
    def endless(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        for _ in range(1000):
            h.wfile.write(b"x" * 65536)

    server.routes["/endless"] = endless
    with (
        RemoteFetcher(allowed_hosts=LOOPBACK, max_bytes=100_000) as fetch,
        pytest.raises(RemoteFetchError, match="larger than 100000 bytes"),
    ):
        fetch(_url(server, "/endless"))


def test_gzip_bomb_is_cut_at_the_cap(server: _Server) -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 200_000
    server.routes["/bomb"] = lambda h: _send(h, 200, bomb, Content_Encoding="gzip")
    tracemalloc.start()
    try:
        with (
            RemoteFetcher(allowed_hosts=LOOPBACK, max_bytes=1_000_000) as fetch,
            pytest.raises(RemoteFetchError, match="larger than 1000000 bytes"),
        ):
            fetch(_url(server, "/bomb"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Bounded: a few MB of buffers around the 1 MB cap (inflating it all would take 64 MiB).
    assert peak < 8_000_000


def test_small_gzip_body_is_inflated(server: _Server) -> None:
    server.routes["/gz"] = lambda h: _send(h, 200, gzip.compress(PNG), Content_Encoding="gzip")
    with RemoteFetcher(allowed_hosts=LOOPBACK) as fetch:
        assert fetch(_url(server, "/gz")) == PNG


@pytest.mark.parametrize("status", [403, 404, 500])
def test_error_status_names_status_not_url(server: _Server, status: int) -> None:
    server.routes["/x"] = lambda h: _send(h, status, b"nope")
    options = ImageSettings(fetch_remote_images=True)
    url = _url(server, "/x?X-Amz-Signature=deadbeef")
    with RemoteFetcher(allowed_hosts=LOOPBACK) as fetch, pytest.raises(ImageLoadError) as info:
        prepare_image(url, index=3, options=options, fetch=fetch)
    text = str(info.value)
    assert f"HTTP {status}" in text and text.startswith("input 3:")
    assert "deadbeef" not in text
    assert text.count("127.0.0.1") == 1


def _failing(statuses: list[int], then: Handler, **headers: str) -> Handler:
    """A route that answers ``statuses`` in turn (0: hangs up), then as ``then``."""

    def route(h: http.server.BaseHTTPRequestHandler) -> None:
        if not statuses:
            then(h)
            return
        status = statuses.pop(0)
        if status == 0:
            h.close_connection = True
            return
        _send(h, status, b"busy", **headers)

    return route


def _png_route(h: http.server.BaseHTTPRequestHandler) -> None:
    _send(h, 200, PNG)


@pytest.mark.parametrize("failures", [[503, 502], [429, 0], [0, 0]], ids=str)
def test_a_host_failing_for_a_moment_is_tried_again(server: _Server, failures: list[int]) -> None:
    server.routes["/a.png"] = _failing(failures, _png_route)
    with RemoteFetcher(allowed_hosts=LOOPBACK) as fetch:
        assert fetch(_url(server, "/a.png")) == PNG
    assert len(server.seen) == 3


def test_a_host_that_keeps_failing_is_unavailable_naming_the_input(server: _Server) -> None:
    server.routes["/a.png"] = _failing([503] * 10, _png_route)
    url = _url(server, "/a.png?sig=secret")
    with RemoteFetcher(allowed_hosts=LOOPBACK) as fetch:
        with pytest.raises(RemoteFetchError, match=r"HTTP 503 \(3 tries\)") as info:
            fetch(url)
        assert info.value.transient
        options = ImageSettings(fetch_remote_images=True)
        with pytest.raises(RemoteUnavailableError) as unavailable:
            prepare_image(url, index=3, options=options, fetch=fetch)
    text = str(unavailable.value)
    assert text.startswith("input 3: cannot fetch image now: HTTP 503 (3 tries)")
    assert "may serve it later" in text and "secret" not in text
    assert len(server.seen) == 6


@pytest.mark.parametrize("status", [400, 403, 404, 410])
def test_a_status_that_will_not_change_is_not_tried_again(server: _Server, status: int) -> None:
    server.routes["/a.png"] = _failing([status], _png_route)
    options = ImageSettings(fetch_remote_images=True)
    with RemoteFetcher(allowed_hosts=LOOPBACK) as fetch, pytest.raises(ImageLoadError) as info:
        prepare_image(_url(server, "/a.png"), index=0, options=options, fetch=fetch)
    assert not isinstance(info.value, RemoteUnavailableError)
    assert len(server.seen) == 1


def test_retry_after_is_waited_for_within_the_deadline(server: _Server) -> None:
    server.routes["/a.png"] = _failing([503], _png_route, Retry_After="1")
    started = time.monotonic()
    with RemoteFetcher(allowed_hosts=LOOPBACK, timeout=5.0) as fetch:
        assert fetch(_url(server, "/a.png")) == PNG
    assert time.monotonic() - started >= 1.0
    # A wait past the deadline is not waited for: the error comes at once.
    server.routes["/b.png"] = _failing([503], _png_route, Retry_After="60")
    started = time.monotonic()
    with (
        RemoteFetcher(allowed_hosts=LOOPBACK, timeout=5.0) as fetch,
        pytest.raises(RemoteFetchError, match=r"HTTP 503$") as info,
    ):
        fetch(_url(server, "/b.png"))
    assert info.value.transient and info.value.retry_after == 60.0
    assert time.monotonic() - started < 1.0


def test_a_refused_connection_is_transient_and_attempts_are_bounded() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        RemoteFetcher(allowed_hosts=LOOPBACK, attempts=1) as fetch,
        pytest.raises(RemoteFetchError, match="ConnectError") as info,
    ):
        fetch(f"http://127.0.0.1:{port}/a.png")
    assert info.value.transient and "tries" not in str(info.value)
    with pytest.raises(ValueError, match="attempts"):
        RemoteFetcher(attempts=0)


@pytest.mark.parametrize("url", ["http://[::1", "ftp://example.com/a.png", "/relative.png"])
def test_bad_urls_are_refused_cleanly(url: str) -> None:
    with RemoteFetcher() as fetch, pytest.raises(RemoteFetchError):
        fetch(url)


def test_from_options_carries_limits_and_allow_list(server: _Server) -> None:
    server.routes["/a.png"] = lambda h: _send(h, 200, PNG)
    options = ImageSettings(
        fetch_remote_images=True, remote_image_max_bytes=10, remote_allowed_hosts=("127.0.0.1",)
    )
    with RemoteFetcher.from_options(options) as fetch:
        assert fetch.max_bytes == 10
        with pytest.raises(RemoteFetchError, match="over the limit of 10"):
            fetch(_url(server, "/a.png"))
    with (
        RemoteFetcher.from_options(ImageSettings()) as fetch,
        pytest.raises(RemoteFetchError, match="non-public"),
    ):
        fetch(_url(server, "/a.png"))


def test_repr_and_settings_validation() -> None:
    with RemoteFetcher(allowed_hosts=["10.0.0.0/8"]) as fetch:
        assert "max_bytes=" in repr(fetch)
    with pytest.raises(ValueError, match="timeout"):
        RemoteFetcher(timeout=0)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
def test_https_connects_to_the_checked_address_with_the_host_name(tmp_path: Path) -> None:
    # A certificate for "images.test" only: the fetch must verify it against that name
    # (SNI + Host) while connecting to the address the resolver gave and the check passed.
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    command = (
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=images.test "
        "-addext subjectAltName=DNS:images.test"
    )
    subprocess.run(
        [*command.split(), "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    srv = _Server(("127.0.0.1", 0), _RequestHandler)
    srv.routes = {"/a.png": lambda h: _send(h, 200, PNG)}
    srv.seen = []
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    srv.socket = server_ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    client_ctx = ssl.create_default_context(cafile=str(cert))
    resolved: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        resolved.append(host)
        return ["127.0.0.1"]

    try:
        with RemoteFetcher(allowed_hosts=LOOPBACK, resolver=resolver, verify=client_ctx) as fetch:
            assert fetch(f"https://images.test:{port}/a.png") == PNG
            assert resolved == ["images.test"]
            assert srv.seen[0]["host"] == f"images.test:{port}"
            # The same certificate does not cover another name on the same address.
            with pytest.raises(RemoteFetchError, match="request failed: ConnectError"):
                fetch(f"https://other.test:{port}/a.png")
    finally:
        srv.shutdown()
        srv.server_close()
