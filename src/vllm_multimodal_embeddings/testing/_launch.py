"""Start and stop a local vLLM server (the CPU test server) and build its tiny checkpoint."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx

from .._exceptions import VLLMEmbeddingError
from ..server.flags import CPU_SERVER_ENV, ServerConfig, server_env, vllm_args

__all__ = [
    "CACHE_DIR",
    "SERVER_VENV",
    "LocalServer",
    "ServerStartError",
    "ensure_tiny_checkpoint",
    "server_python",
]

CACHE_DIR = Path(
    os.environ.get("VMME_CACHE_DIR", Path.home() / ".cache" / "vllm-multimodal-embeddings")
)
"""Where the server venv and the tiny checkpoint live (``VMME_CACHE_DIR``)."""
SERVER_VENV = Path(os.environ.get("VMME_SERVER_VENV", CACHE_DIR / "server-venv"))
"""The server's own venv, made by ``scripts/server-venv.sh`` (``VMME_SERVER_VENV``)."""

_BUILDER = Path(__file__).with_name("tiny_checkpoint.py")
_STAMP = ".vmme-builder-sha256"


class ServerStartError(VLLMEmbeddingError, RuntimeError):
    """The vLLM server (or its checkpoint build) failed; the message carries the log tail."""


def server_python(venv: Path | None = None) -> Path:
    """The server venv's interpreter; raises ``ServerStartError`` when the venv is missing."""
    python = (venv or SERVER_VENV) / "bin" / "python"
    if not python.exists():
        raise ServerStartError(
            f"no vLLM server venv at {python.parent.parent}; run scripts/server-venv.sh"
        )
    return python


def ensure_tiny_checkpoint(python: Path, out: Path | None = None) -> Path:
    """Build the tiny Qwen3-VL checkpoint unless one built by this exact builder is there."""
    out = out or CACHE_DIR / "tiny-qwen3-vl"
    digest = hashlib.sha256(_BUILDER.read_bytes()).hexdigest()
    stamp = out / _STAMP
    if stamp.exists() and stamp.read_text() == digest:
        return out
    proc = subprocess.run(
        [str(python), str(_BUILDER), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ServerStartError(
            f"building the tiny checkpoint failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    stamp.write_text(digest)
    return out


def _temp_log() -> Path:
    fd, name = tempfile.mkstemp(prefix="vllm-server-", suffix=".log")
    os.close(fd)
    return Path(name)


def _free_port() -> int:
    # Bind to port 0 and release it: a small race with other processes, fine on a test machine.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalServer:
    """A vLLM OpenAI-compatible server in a child process, as a context manager.

    The port is picked free on loopback when ``config.port`` is ``None``. Output goes to
    ``log_path`` (a temporary file by default).
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        python: Path | None = None,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        startup_timeout_s: float = 180.0,
        stop_grace_s: float = 10.0,
    ) -> None:
        host = config.host or "127.0.0.1"
        port = config.port or _free_port()
        self.config = config.with_(host=host, port=port)
        self.python = python or server_python()
        self.env = {**CPU_SERVER_ENV, **server_env(self.config), **(env or {})}
        self.log_path = log_path or _temp_log()
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self.startup_s: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """Server root, e.g. ``http://127.0.0.1:40123`` (no ``/v1``)."""
        return f"http://{self.config.host}:{self.config.port}"

    @property
    def model(self) -> str:
        """The model name clients send."""
        return self.config.name

    def command(self) -> list[str]:
        """The command line that starts the server."""
        return [
            str(self.python),
            "-m",
            "vllm.entrypoints.openai.api_server",
            *vllm_args(self.config),
        ]

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def start(self) -> None:
        """Start the server and wait until ``GET /health`` answers 200."""
        if self._proc is not None:
            raise ServerStartError("server already started")
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            # A new session makes the server the leader of its own process group, so stop()
            # also ends the engine-core child processes vLLM spawns.
            self._proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        try:
            self._wait_healthy(started)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started

    def _wait_healthy(self, started: float) -> None:
        proc = self._proc
        if proc is None:
            raise ServerStartError("server not started")
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = proc.poll()
                if code is not None:
                    raise ServerStartError(
                        f"vLLM server exited with {code} before becoming healthy; "
                        f"log {self.log_path}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.base_url}/health").status_code == 200:
                        return
                if time.monotonic() - started > self.startup_timeout_s:
                    raise ServerStartError(
                        f"vLLM server not healthy after {self.startup_timeout_s:.0f} s; "
                        f"log {self.log_path}:\n{self.log_tail()}"
                    )
                time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL it after the grace period."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for sig, wait_s in ((signal.SIGTERM, self.stop_grace_s), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
            # The leader is gone; make sure no engine child outlives it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
