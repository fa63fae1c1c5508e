"""Giving freed heap pages back to the system after large requests (glibc's malloc_trim)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import httpx
import pytest

from vllm_multimodal_embeddings import AsyncEmbeddingClient, EmbeddingClient
from vllm_multimodal_embeddings.transport import _memory

from .test_client_transport import FakeVLLM


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def trims(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(_memory, "_trim", lambda pad: calls.append(pad) or 1)
    monkeypatch.setattr(_memory, "_last", -_memory._INTERVAL_S)
    return calls


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_glibc_malloc_trim_is_found_and_runs() -> None:
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert _memory._trim is not None
    assert _memory._trim(0) in (0, 1)  # 1: pages were given back


def test_trims_are_at_most_one_per_interval(trims: list[int]) -> None:
    clock = _Clock()
    assert _memory.give_back_memory(clock)
    assert not _memory.give_back_memory(clock)
    clock.now += _memory._INTERVAL_S - 0.01
    assert not _memory.give_back_memory(clock)
    clock.now += 0.02
    assert _memory.give_back_memory(clock)
    assert trims == [0, 0]


def test_only_requests_of_large_payloads_trim(trims: list[int], monkeypatch: Any) -> None:
    """Texts never pay for a trim; a request of camera photos does, once answered."""
    fake = FakeVLLM()
    http = httpx.Client(transport=httpx.MockTransport(fake))
    with EmbeddingClient(base_url="http://vllm.test", http_client=http, batch_size=4) as client:
        client.embed([f"text {i}" for i in range(40)])
        assert trims == []
        # A threshold the texts' payload reaches stands in for camera photos: one request,
        # one trim after its answer.
        monkeypatch.setattr("vllm_multimodal_embeddings._constants.TRIM_AFTER_BYTES", 16)
        client.embed([f"text {i}" for i in range(40, 44)])
        assert trims == [0]

    async def run_async() -> None:
        monkeypatch.setattr(_memory, "_last", -_memory._INTERVAL_S)
        ahttp = httpx.AsyncClient(transport=httpx.MockTransport(fake))
        async with AsyncEmbeddingClient(
            base_url="http://vllm.test", http_client=ahttp, batch_size=4
        ) as aclient:
            await aclient.embed([f"text {i}" for i in range(40, 44)])

    asyncio.run(run_async())
    assert trims == [0, 0]
