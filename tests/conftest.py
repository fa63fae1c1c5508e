"""Shared fixtures: a real vLLM server for the live tests.

``VLLM_BASE_URL`` set: the tests use that server (``VLLM_EMBEDDING_MODEL`` names the model, else
the first one ``/v1/models`` lists). Otherwise the suite builds the tiny Qwen3-VL checkpoint and
starts the CPU vLLM server from the server venv (``scripts/server-venv.sh``). Without a server venv
the live tests are skipped, except under ``CI`` where that is an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

# Haystack sends usage reports unless told not to: none from the tests (set before its import).
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

from tests.reference.embedder import ReferenceEmbedder
from vllm_multimodal_embeddings._constants import ENV_BASE_URL, ENV_MODEL
from vllm_multimodal_embeddings.server import cpu_reranker_test_config, cpu_test_config
from vllm_multimodal_embeddings.testing import (
    LocalServer,
    ServerStartError,
    ensure_tiny_checkpoint,
    ensure_tiny_reranker,
    server_python,
)

_LIVE_DIR = Path(__file__).parent / "live"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/live/ talks to a real server: mark it ``live``."""
    for item in items:
        if _LIVE_DIR in Path(item.fspath).parents:
            item.add_marker(pytest.mark.live)


@dataclass(frozen=True)
class LiveServer:
    """What a live test needs to reach a server."""

    base_url: str
    model: str


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> None:
    """Skip locally; fail under CI, where a missing server must not pass silently."""
    if _in_ci():
        pytest.fail(f"CI is set but no vLLM server can be had: {reason}", pytrace=False)
    pytest.skip(f"no vLLM server: {reason} (or set {ENV_BASE_URL})")


def _server_python() -> Path:
    try:
        return server_python()
    except ServerStartError as exc:
        _unavailable(str(exc))
        raise  # unreachable: _unavailable raises


@contextmanager
def _local_server(
    tmp_path_factory: pytest.TempPathFactory, name: str, **changes: object
) -> Iterator[LiveServer]:
    python = _server_python()
    checkpoint = ensure_tiny_checkpoint(python)
    log = tmp_path_factory.mktemp("vllm") / f"{name}.log"
    config = cpu_test_config(str(checkpoint), **changes)
    # 40-60 s alone on 2 cores, but up to ~120 s beside other vLLM servers: leave headroom.
    server = LocalServer(config, python=python, log_path=log, startup_timeout_s=300.0)
    with server as srv:
        yield LiveServer(base_url=srv.base_url, model=srv.model)


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The server the live tests talk to (``VLLM_BASE_URL``, or a CPU one started here)."""
    base_url = os.environ.get(ENV_BASE_URL, "").rstrip("/").removesuffix("/v1")
    if base_url:
        model = os.environ.get(ENV_MODEL)
        if not model:
            resp = httpx.get(f"{base_url}/v1/models", timeout=30.0)
            resp.raise_for_status()
            model = resp.json()["data"][0]["id"]
        yield LiveServer(base_url=base_url, model=model)
        return
    with _local_server(tmp_path_factory, "default") as server:
        yield server


ServerFactory = Callable[..., AbstractContextManager[LiveServer]]


@pytest.fixture(scope="session")
def vllm_server_factory(tmp_path_factory: pytest.TempPathFactory) -> ServerFactory:
    """Start an extra CPU server with changed ``cpu_test_config`` fields (about 40 s each).

    Use as ``with vllm_server_factory(matryoshka=False) as server: ...``; it stops on exit.
    """

    def factory(**changes: object) -> AbstractContextManager[LiveServer]:
        # The log file is named after the changes: never after a secret.
        shown = {k: ("set" if k == "api_key" else v) for k, v in changes.items()}
        name = "-".join(f"{k}={v}" for k, v in sorted(shown.items())) or "extra"
        return _local_server(tmp_path_factory, name, **changes)

    return factory


@pytest.fixture(scope="session")
def bare_vllm_server(vllm_server_factory: ServerFactory) -> Iterator[LiveServer]:
    """One CPU server with none of our flags: no Matryoshka, no chat template, no task
    instructions. Shared by every test that proves a flag matters (a start costs ~60 s)."""
    with vllm_server_factory(
        matryoshka=False,
        chat_template=None,
        task_instructions={},
        mm_processor_kwargs={},
        media_io_kwargs={},
        trust_request_mm_kwargs=False,
    ) as server:
        yield server


ENV_RERANKER_BASE_URL = "VLLM_RERANKER_BASE_URL"
ENV_RERANKER_MODEL = "VLLM_RERANKER_MODEL"
ENV_RERANKER_CHECKPOINT = "VLLM_RERANKER_CHECKPOINT"


@dataclass(frozen=True)
class RerankerServer(LiveServer):
    """A reranker server; ``checkpoint`` and ``python`` are set when it was started here (the
    reference reranker needs both: it runs the same weights in the server venv)."""

    checkpoint: Path | None = None
    python: Path | None = None


@pytest.fixture(scope="session")
def vllm_reranker_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RerankerServer]:
    """The Qwen3-VL-Reranker server (``VLLM_RERANKER_BASE_URL``, named by
    ``VLLM_RERANKER_MODEL`` or else ``/v1/models``; otherwise a CPU one on the tiny reranker)."""
    base_url = os.environ.get(ENV_RERANKER_BASE_URL, "").rstrip("/").removesuffix("/v1")
    if base_url:
        model = os.environ.get(ENV_RERANKER_MODEL)
        if not model:
            resp = httpx.get(f"{base_url}/v1/models", timeout=30.0)
            resp.raise_for_status()
            model = resp.json()["data"][0]["id"]
        # With the served checkpoint's folder (VLLM_RERANKER_CHECKPOINT) the parity tests run too.
        checkpoint = os.environ.get(ENV_RERANKER_CHECKPOINT)
        yield RerankerServer(
            base_url=base_url,
            model=model,
            checkpoint=Path(checkpoint) if checkpoint else None,
            python=_server_python() if checkpoint else None,
        )
        return
    python = _server_python()
    try:
        checkpoint = ensure_tiny_reranker(python)
    except ServerStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    log = tmp_path_factory.mktemp("vllm") / "reranker.log"
    config = cpu_reranker_test_config(str(checkpoint))
    server = LocalServer(config, python=python, log_path=log, startup_timeout_s=300.0)
    with server as srv:
        yield RerankerServer(
            base_url=srv.base_url, model=srv.model, checkpoint=checkpoint, python=python
        )


@pytest.fixture(scope="session")
def reference_embedder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceEmbedder]:
    """The official recipe on transformers (``tests/reference``), on the tiny checkpoint.

    It needs the checkpoint the local CPU servers run: with ``VLLM_BASE_URL`` set the server
    may run another model, so the parity tests are skipped then.
    """
    if os.environ.get(ENV_BASE_URL):
        pytest.skip(f"reference parity needs the local tiny checkpoint ({ENV_BASE_URL} is set)")
    python = _server_python()
    checkpoint = ensure_tiny_checkpoint(python)
    log = tmp_path_factory.mktemp("reference") / "reference.log"
    embedder = ReferenceEmbedder(python, checkpoint, log)
    try:
        yield embedder
    finally:
        embedder.close()
