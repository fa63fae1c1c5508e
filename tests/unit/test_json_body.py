"""Request bodies: the spliced encoding is byte for byte what httpx's ``json=`` sends."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from vllm_multimodal_embeddings.transport import _json_body
from vllm_multimodal_embeddings.transport._json_body import encode_json

from .test_client_transport import DIM, FakeVLLM

URI = "data:image/jpeg;base64," + base64.b64encode(bytes(range(256)) * 40).decode()


def httpx_bytes(body: Any) -> bytes:
    return httpx.Request("POST", "http://x/", json=body).content


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


BODIES: dict[str, Any] = {
    "texts": {"model": "m", "messages": [[{"role": "user", "content": 'héllo "q" \\ \n'}]]},
    "images": {
        "model": "m",
        "messages": [[{"role": "user", "content": [image(URI), {"type": "text", "text": "é"}]}]]
        * 3,
        "encoding_format": "base64",
        "dimensions": 64,
        "flag": None,
        "ratio": 0.5,
    },
    "tuples and keys": {"inputs": (URI, {"k\u00e9y": [URI, 1, True]})},
    "a short data URI stays in the JSON": {"u": "data:image/png;base64,AAAA"},
    "a data URI JSON must escape": {"u": "data:text/plain," + '"quoted" \\ \n' * 200 + URI},
    "a non-ASCII data URI": {"u": "data:text/plain," + "é" * 2000},
    "an http URL": {"u": "https://example.com/" + "a" * 2000},
}


@pytest.mark.parametrize("name", sorted(BODIES))
@pytest.mark.parametrize("splice", [True, False])
def test_same_bytes_as_httpx(name: str, splice: bool) -> None:
    body = BODIES[name]
    assert encode_json(body, splice=splice) == httpx_bytes(body)


def test_the_placeholder_in_the_callers_text_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_json_body.secrets, "token_hex", lambda n: "fixed")
    body = {"text": "vmme-splice-fixed", "messages": [image(URI)]}
    assert encode_json(body, splice=True) == httpx_bytes(body)
    assert json.loads(encode_json(body, splice=True))["text"] == "vmme-splice-fixed"


def test_nan_is_refused_as_httpx_refuses_it() -> None:
    with pytest.raises(ValueError):
        encode_json({"x": float("nan")}, splice=True)


def test_the_encoder_never_sees_the_uris(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    dumps = _json_body._dumps

    def spy(body: Any) -> str:
        seen.append(dumps(body))
        return seen[-1]

    monkeypatch.setattr(_json_body, "_dumps", spy)
    assert encode_json(BODIES["images"], splice=True) == httpx_bytes(BODIES["images"])
    assert len(seen) == 1 and URI not in seen[0] and len(seen[0]) < 1000


def test_a_spliced_body_streams_the_callers_uris_without_copying_them() -> None:
    body = BODIES["images"]
    encoded = _json_body.json_body(body, splice=True)
    assert isinstance(encoded, _json_body.JsonBody)
    expected = httpx_bytes(body)
    assert bytes(encoded) == expected and len(encoded) == len(expected)
    assert b"".join(encoded) == expected  # again: one iteration per attempt
    held = [piece for piece in encoded._pieces if isinstance(piece, str)]
    assert len(held) == 3 and all(piece is URI for piece in held)


def test_small_pieces_go_out_in_blocks_and_a_large_uri_alone() -> None:
    """128 small images a request: a few writes of at least 64 KiB, not 3 per image; a
    photo-sized URI between them is written as it is, never joined into a block."""
    small = "data:image/jpeg;base64," + base64.b64encode(bytes(range(256)) * 32).decode()
    large = "data:image/jpeg;base64," + base64.b64encode(bytes(range(256)) * 1024).decode()
    uris = [small] * 64 + [large] + [small] * 64
    body = {"model": "m", "messages": [[{"role": "user", "content": [image(u)]}] for u in uris]}
    encoded = _json_body.json_body(body, splice=True)
    assert isinstance(encoded, _json_body.JsonBody)
    writes = list(encoded)
    assert b"".join(writes) == httpx_bytes(body)
    assert len(encoded._pieces) > 3 * 128 and len(writes) < 40
    at = writes.index(large.encode())
    # Short only where a block ends early: before the large URI, and at the end.
    short = [i for i, w in enumerate(writes) if len(w) < _json_body.WRITE_BLOCK]
    assert set(short) <= {at - 1, len(writes) - 1}


@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_an_image_request_goes_with_its_length_not_chunked(client_kind: str) -> None:
    import asyncio

    from tests.helpers import image_png
    from vllm_multimodal_embeddings import AsyncEmbeddingClient, EmbeddingClient

    fake = FakeVLLM()
    images = [image_png(i, (64, 64)) for i in range(3)]
    if client_kind == "sync":
        http = httpx.Client(transport=httpx.MockTransport(fake))
        with EmbeddingClient(base_url="http://vllm.test", http_client=http) as client:
            got = client.embed_array(images)
    else:

        async def run() -> Any:
            ahttp = httpx.AsyncClient(transport=httpx.MockTransport(fake))
            async with AsyncEmbeddingClient(base_url="http://vllm.test", http_client=ahttp) as c:
                return await c.embed_array(images)

        got = asyncio.run(run())
    assert got.shape == (3, DIM)
    (request,) = [r for r in fake.requests if b"data:image/" in r.content]
    assert "transfer-encoding" not in request.headers
    assert int(request.headers["content-length"]) == len(request.content) > 3 * 1024
    body = json.loads(request.content)
    assert request.content == httpx_bytes(body)
