"""The core client replayed from cassettes recorded on the real CPU vLLM test server.

A fast path beside the live suite, never a replacement: CI replays (pytest-recording's default
record mode is ``none``). To re-record against a running server::

    export VLLM_BASE_URL=http://127.0.0.1:8000
    pytest tests/unit/test_client_cassettes.py --record-mode=rewrite

Recorded requests are rewritten to ``http://vllm.test`` and lose their ``Authorization`` header.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pytest

from tests.helpers import image_png
from vllm_multimodal_embeddings import BadRequestError, Content, EmbeddingClient

REPLAY_URL = "http://vllm.test"


@pytest.fixture(scope="module")
def vcr_cassette_dir() -> str:
    return str(Path(__file__).parent.parent / "cassettes" / Path(__file__).stem)


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    live = os.environ.get("VLLM_BASE_URL", "").rstrip("/")

    def to_replay_host(request: Any) -> Any:
        if live and request.uri.startswith(live):
            parts = urlsplit(request.uri)
            request.uri = urlunsplit(("http", "vllm.test", parts.path, parts.query, ""))
        return request

    return {
        "filter_headers": ["authorization"],
        "before_record_request": to_replay_host,
        "match_on": ["method", "path", "body"],
        "decode_compressed_response": True,
    }


@pytest.fixture
def client(record_mode: str) -> Iterator[EmbeddingClient]:
    base_url = REPLAY_URL
    if record_mode != "none":
        base_url = os.environ.get("VLLM_BASE_URL", "")
        if not base_url:
            pytest.fail("recording needs a live server: set VLLM_BASE_URL")
    # One request at a time, so recordings replay in a fixed order.
    with EmbeddingClient(base_url=base_url, max_concurrency=1, max_retries=0) as c:
        yield c


@pytest.mark.vcr
def test_probe_reads_the_server(client: EmbeddingClient) -> None:
    info = client.server_info()
    assert info.model == "tiny-qwen3-vl-embedding"
    assert info.version == "0.32.0"
    assert info.batched_conversations and info.matryoshka
    assert info.input_types == ("document", "query")
    assert info.embedding_size == 128


@pytest.mark.vcr
def test_mixed_inputs_decode_to_unit_vectors_in_order(client: EmbeddingClient) -> None:
    items: list[Any] = ["a red bicycle", Content(image=image_png(1, (16, 16)))]
    items.append(Content(text="a red bicycle", image=image_png(1, (16, 16))))
    forward = client.embed_array(items)
    backward = client.embed_array(items[::-1])
    assert forward.shape == (3, 128)
    np.testing.assert_allclose(np.linalg.norm(forward, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(forward, backward[::-1], atol=1e-5)
    assert np.max(np.abs(forward @ forward.T - np.eye(3))) < 0.999


@pytest.mark.vcr
def test_queries_and_dimensions(client: EmbeddingClient) -> None:
    document = np.array(client.embed(["snow"])[0])
    query = np.array(client.embed_query("snow"))
    short = np.array(client.embed(["snow"], dimensions=16)[0])
    assert float(document @ query) < 0.999
    assert short.shape == (16,)
    np.testing.assert_allclose(short, document[:16] / np.linalg.norm(document[:16]), atol=1e-4)


@pytest.mark.vcr
def test_refused_input_is_named(client: EmbeddingClient) -> None:
    with pytest.raises(BadRequestError, match="2048") as info:
        client.embed(["fine", "word " * 5000, "fine too"])
    assert info.value.index == 1
