"""CLI entry handling: keys never on argv, and one clean line (exit 2) for broken servers."""

from __future__ import annotations

import argparse
import getpass
import http.server
import threading
from collections.abc import Iterator

import pytest

from vllm_multimodal_embeddings.__main__ import main
from vllm_multimodal_embeddings.server.flags import server_env, vllm_args
from vllm_multimodal_embeddings.testing import _cli as serve_cli
from vllm_multimodal_embeddings.transport._keys import CLIKeyError, resolve_api_key


class _Broken(http.server.BaseHTTPRequestHandler):
    """/health says 200; every other path answers with ``server.body``."""

    server: _Server

    def do_GET(self) -> None:
        body = b"ok" if self.path == "/health" else self.server.body
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    body: bytes


@pytest.fixture
def broken() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Broken)
    srv.body = b""
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize(
    "body",
    [
        b"<!doctype html><html><body>Welcome to nginx</body></html>",
        b'{"data": [{"id": "m"',
        b'{"data": "not a list"}',
    ],
)
def test_doctor_prints_one_line_for_a_broken_body(
    broken: _Server, body: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    broken.body = body
    url = f"http://127.0.0.1:{broken.server_address[1]}"
    # The client's probe turns a body that is no model list into an APIError: the doctor
    # fails its "model" check with the reason in one line, and exits 1, no traceback.
    assert main(["doctor", "--base-url", url, "--timeout", "5"]) == 1
    captured = capsys.readouterr()
    failed = [line for line in captured.out.splitlines() if line.lstrip().startswith("FAIL")]
    assert len(failed) == 1 and "model" in failed[0] and "no model list" in failed[0]
    assert "Traceback" not in captured.out + captured.err


@pytest.mark.parametrize("url", ["http://[::1", "http://host:99999999", "http://exa mple.com"])
def test_doctor_bad_url_is_one_line(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "--base-url", url, "--timeout", "1"])
    out = capsys.readouterr().out
    assert code in (1, 2) and "Traceback" not in out
    if code == 2:
        assert len(out.strip().splitlines()) == 1 and out.startswith("error: ")


def test_doctor_never_shows_url_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    main(["doctor", "--base-url", "http://me:hunter2@127.0.0.1:9", "--timeout", "1"])
    out = capsys.readouterr().out
    assert "hunter2" not in out and "127.0.0.1:9" in out


@pytest.mark.parametrize("command", [["doctor", "--base-url", "http://127.0.0.1:9"], ["serve-cpu"]])
def test_api_key_flag_is_refused_with_the_alternatives(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--api-key", "sk-on-argv"]) == 2
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "--api-key was removed" in text and "VLLM_API_KEY" in text and "--ask-api-key" in text
    assert "sk-on-argv" not in text


def _args(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**{"removed_api_key": None, "ask_api_key": False, **kw})


def test_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "sk-env")
    assert resolve_api_key(_args()) == "sk-env"
    monkeypatch.delenv("VLLM_API_KEY")
    assert resolve_api_key(_args()) is None


def test_key_comes_from_a_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "sk-env")
    monkeypatch.setattr(getpass, "getpass", lambda prompt: " sk-typed \n")
    assert resolve_api_key(_args(ask_api_key=True)) == "sk-typed"
    monkeypatch.setattr(getpass, "getpass", lambda prompt: "")
    with pytest.raises(CLIKeyError, match="no API key"):
        resolve_api_key(_args(ask_api_key=True))


def test_serve_cpu_hands_the_env_key_to_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    class _Stop(Exception):
        pass

    def fake_server(config: object, **kw: object) -> None:
        seen["config"] = config
        raise _Stop

    monkeypatch.setenv("VLLM_API_KEY", "sk-env")
    monkeypatch.setattr(serve_cli, "server_python", lambda venv: "python")
    monkeypatch.setattr(serve_cli, "ensure_tiny_checkpoint", lambda python: "/tmp/ckpt")
    monkeypatch.setattr(serve_cli, "LocalServer", fake_server)
    with pytest.raises(_Stop):
        serve_cli.main_serve([])
    config = seen["config"]
    assert config.api_key == "sk-env"  # type: ignore[attr-defined]
    # The key reaches vLLM through its environment, never its argv.
    assert "sk-env" not in " ".join(vllm_args(config))  # type: ignore[arg-type]
    assert server_env(config) == {"VLLM_API_KEY": "sk-env"}  # type: ignore[arg-type]
