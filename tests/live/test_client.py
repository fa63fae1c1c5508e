"""The core client against a real vLLM server: every input form, both protocols, order, errors."""

from __future__ import annotations

import asyncio
import base64
import http.server
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.helpers import chat_vectors, cosine, data_uri, image_png, recipe_messages
from vllm_multimodal_embeddings import (
    AsyncEmbeddingClient,
    BadRequestError,
    Content,
    EmbeddingClient,
    ImageLoadError,
    InputError,
    NotFoundError,
    UnsupportedFeatureError,
)
from vllm_multimodal_embeddings._constants import (
    QWEN_DEFAULT_INSTRUCTION,
    QWEN_QUERY_INSTRUCTION,
)


class RequestLog:
    """Counts requests through an httpx event hook: a real client, only observed."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def hook(self, request: httpx.Request) -> None:
        self.paths.append(request.url.path)


@pytest.fixture
def png() -> bytes:
    return image_png(7)


@pytest.fixture
def client(vllm_server: Any) -> Iterator[EmbeddingClient]:
    with EmbeddingClient(base_url=vllm_server.base_url) as c:
        yield c


def reference(server: Any, **kwargs: Any) -> np.ndarray:
    """The vector of DESIGN.md's hand-written chat recipe."""
    return chat_vectors(server.base_url, server.model, recipe_messages(**kwargs))[0]


def test_server_info_reports_the_test_server(client: EmbeddingClient, vllm_server: Any) -> None:
    info = client.server_info()
    assert info.model == vllm_server.model
    assert info.max_model_len == 2048
    assert info.batched_conversations is True
    assert info.matryoshka is True
    assert set(info.input_types or ()) >= {"query", "document"}
    assert info.embedding_size > 8
    assert client.server_info() is info  # cached


def test_every_image_form_equals_the_hand_written_request(
    client: EmbeddingClient, vllm_server: Any, png: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "img.png"
    path.write_bytes(png)
    forms: list[Any] = [
        str(path),
        path,
        path.as_uri(),
        png,
        bytearray(png),
        io.BytesIO(png),
        Image.open(io.BytesIO(png)),
        data_uri(png),
    ]
    expected = reference(vllm_server, image=data_uri(png))
    got = client.embed_images(forms)
    assert len(got) == len(forms)
    for form, vector in zip(forms, got, strict=True):
        assert cosine(vector, expected) > 0.9999, type(form).__name__


def test_text_and_pair_equal_the_hand_written_request(
    client: EmbeddingClient, vllm_server: Any, png: bytes
) -> None:
    text, pair = client.embed(["A cat in the snow.", Content(text="A cat.", image=png)])
    assert cosine(text, reference(vllm_server, text="A cat in the snow.")) > 0.9999
    assert cosine(pair, reference(vllm_server, text="A cat.", image=data_uri(png))) > 0.9999


def test_query_and_document_differ_by_the_instruction(
    client: EmbeddingClient, vllm_server: Any
) -> None:
    document = client.embed(["red bicycle"])[0]
    query = client.embed_query("red bicycle")
    assert cosine(document, query) < 0.999
    assert (
        cosine(
            query, reference(vllm_server, text="red bicycle", instruction=QWEN_QUERY_INSTRUCTION)
        )
        > 0.9999
    )
    assert (
        cosine(
            document,
            reference(vllm_server, text="red bicycle", instruction=QWEN_DEFAULT_INSTRUCTION),
        )
        > 0.9999
    )


def test_instruction_override_and_separate_settings(vllm_server: Any) -> None:
    custom = "Find the product photo"  # no final punctuation: a period is appended
    with EmbeddingClient(base_url=vllm_server.base_url, query_instruction=custom) as c:
        assert c.profile.document_instruction == QWEN_DEFAULT_INSTRUCTION
        q = c.embed_query("shoes")
        d = c.embed(["shoes"])[0]
        per_call = c.embed(["shoes"], instruction=custom)[0]
    want = reference(vllm_server, text="shoes", instruction=custom + ".")
    assert cosine(q, want) > 0.9999
    assert cosine(per_call, want) > 0.9999
    assert cosine(d, reference(vllm_server, text="shoes")) > 0.9999


def test_a_hundred_mixed_items_come_back_in_order(vllm_server: Any) -> None:
    items: list[Any] = []
    for i in range(100):
        if i % 3 == 0:
            items.append(f"text number {i}")
        elif i % 3 == 1:
            items.append(Content(image=image_png(i, (32 + i % 5 * 8, 32))))
        else:
            items.append(Content(text=f"caption {i}", image=image_png(i)))
    log = RequestLog()
    http = httpx.Client(event_hooks={"request": [log.hook]})
    with EmbeddingClient(base_url=vllm_server.base_url, batch_size=8, http_client=http) as c:
        batched = np.array(c.embed(items))
    embed_requests = log.paths.count("/v1/embeddings")
    with EmbeddingClient(base_url=vllm_server.base_url, batch_size=1, max_concurrency=8) as c:
        singles = np.array(c.embed(items))
    http.close()
    assert batched.shape == (100, singles.shape[1])
    # Same vector for every position, whether sent in batches of 8 or one by one.
    sims = np.sum(batched * singles, axis=1)
    assert sims.min() > 0.9999
    # Distinct inputs give distinct vectors: a shuffle would be caught.
    assert np.max(np.abs(batched @ batched.T - np.eye(100))) < 0.9999
    assert embed_requests <= 13 + 3  # 13 batches of 8 plus the probes


def test_bad_item_in_the_middle_names_its_index_and_nothing_after_it_is_sent(
    vllm_server: Any, tmp_path: Path
) -> None:
    bodies: list[bytes] = []
    http = httpx.Client(event_hooks={"request": [lambda r: bodies.append(r.read())]})
    missing = tmp_path / "nope.jpg"
    with EmbeddingClient(base_url=vllm_server.base_url, http_client=http) as c:
        with pytest.raises(ImageLoadError) as info:
            c.embed(["fine", "also fine", missing, "fine again"])
        with pytest.raises(InputError) as empty:
            c.embed(["   ", "never sent"])
    http.close()
    assert info.value.index == 2
    assert str(missing) in str(info.value)
    assert empty.value.index == 0
    # Inputs are streamed: those before a bad one may have gone, none after it.
    assert not any(b"fine again" in body or b"never sent" in body for body in bodies)


@pytest.mark.parametrize("protocol", ["chat", "cohere"])
def test_dimensions_give_unit_vectors_for_text_and_image(
    vllm_server: Any, png: bytes, protocol: str
) -> None:
    with EmbeddingClient(base_url=vllm_server.base_url, protocol=protocol) as c:  # type: ignore[arg-type]
        vectors = c.embed_array(["text", Content(image=png)], dimensions=32)
        full = c.embed_array(["text", Content(image=png)])
    assert vectors.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Matryoshka: the prefix of the full vector, re-normalized.
    prefix = full[:, :32] / np.linalg.norm(full[:, :32], axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, prefix, atol=1e-4)


def test_client_wide_dimensions_and_validation(vllm_server: Any) -> None:
    with EmbeddingClient(base_url=vllm_server.base_url, dimensions=16) as c:
        assert len(c.embed(["a"])[0]) == 16
        assert len(c.embed(["a"], dimensions=24)[0]) == 24
        too_big = c.server_info().embedding_size + 1
        with pytest.raises(InputError, match="exceeds"):
            c.embed(["a"], dimensions=too_big)
        with pytest.raises(InputError, match="positive integer"):
            c.embed(["a"], dimensions=0)


def test_cohere_protocol_matches_the_chat_recipe(vllm_server: Any, png: bytes) -> None:
    with EmbeddingClient(base_url=vllm_server.base_url, protocol="cohere") as c:
        texts = c.embed(["a snowy street", "a dog"])
        images = c.embed_images([png])
        pair = c.embed([Content(text="a dog", image=png)])
        query = c.embed_query("a dog")
    assert cosine(texts[0], reference(vllm_server, text="a snowy street")) > 0.9999
    assert cosine(images[0], reference(vllm_server, image=data_uri(png))) > 0.9999
    assert cosine(pair[0], reference(vllm_server, text="a dog", image=data_uri(png))) > 0.9999
    assert (
        cosine(query, reference(vllm_server, text="a dog", instruction=QWEN_QUERY_INSTRUCTION))
        > 0.9999
    )


def test_cohere_binary_embeddings_are_the_sign_bits(vllm_server: Any, png: bytes) -> None:
    items = ["a snowy street", Content(image=png)]
    with EmbeddingClient(base_url=vllm_server.base_url, protocol="cohere") as c:
        floats = c.embed_array(items)
        ubinary = c.embed_array(items, embedding_type="ubinary")
        binary = c.embed_array(items, embedding_type="binary")
        short = c.embed_array(items, embedding_type="ubinary", dimensions=64)
    assert ubinary.dtype == np.uint8 and ubinary.shape == (2, floats.shape[1] // 8)
    np.testing.assert_array_equal(ubinary, np.packbits(floats >= 0, axis=1))
    np.testing.assert_array_equal(binary.astype(np.int16) + 128, ubinary)
    assert short.shape == (2, 8)


def test_cohere_refuses_what_v2_cannot_do(vllm_server: Any) -> None:
    with EmbeddingClient(base_url=vllm_server.base_url, protocol="cohere") as c:
        with pytest.raises(UnsupportedFeatureError, match="protocol='chat'"):
            c.embed(["x"], instruction="Custom")
        with pytest.raises(InputError, match="video"):
            c.embed([Content(video="http://127.0.0.1:1/v.mp4")])
    with pytest.raises(ValueError, match="chat"):
        EmbeddingClient(base_url=vllm_server.base_url, protocol="cohere", query_instruction="x")
    with (
        EmbeddingClient(base_url=vllm_server.base_url) as c,
        pytest.raises(UnsupportedFeatureError),
    ):
        c.embed_array(["x"], embedding_type="binary")


def test_server_side_rejection_is_pinned_to_its_input(vllm_server: Any) -> None:
    too_long = "word " * 5000  # over the 2048-token context
    with (
        EmbeddingClient(base_url=vllm_server.base_url, batch_size=8) as c,
        pytest.raises(BadRequestError) as info,
    ):
        c.embed(["ok 0", "ok 1", "ok 2", too_long, "ok 4", "ok 5"])
    assert info.value.index == 3
    assert info.value.status_code == 400
    assert "2048" in str(info.value)
    # With truncation the same input embeds.
    with EmbeddingClient(base_url=vllm_server.base_url, truncate="END") as c:
        assert len(c.embed([too_long])) == 1


def test_unknown_model_is_not_found(vllm_server: Any) -> None:
    with (
        EmbeddingClient(base_url=vllm_server.base_url, model="no-such-model") as c,
        pytest.raises(NotFoundError) as info,
    ):
        c.embed(["x"])
    assert info.value.status_code == 404


class _ImageHandler(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def image_url(png: bytes) -> Iterator[str]:
    """A real HTTP server on loopback serving one PNG."""
    handler = type("Handler", (_ImageHandler,), {"body": png})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/cat.png"
    server.shutdown()
    server.server_close()


def test_http_images_by_url_and_fetched_client_side(
    vllm_server: Any, png: bytes, image_url: str
) -> None:
    expected = reference(vllm_server, image=data_uri(png))
    with EmbeddingClient(base_url=vllm_server.base_url) as c:
        by_url = c.embed_images([image_url])[0]
    # The image host is on loopback: client-side fetching refuses it unless allowed.
    with (
        EmbeddingClient(base_url=vllm_server.base_url, fetch_remote_images=True) as c,
        pytest.raises(ImageLoadError, match="non-public address") as refused,
    ):
        c.embed_images([image_url])
    assert refused.value.index == 0
    with EmbeddingClient(
        base_url=vllm_server.base_url, fetch_remote_images=True, remote_allowed_hosts=("127.0.0.1",)
    ) as c:
        fetched = c.embed_images([image_url])[0]
    assert cosine(by_url, expected) > 0.9999
    assert cosine(fetched, expected) > 0.9999


def test_async_client_matches_sync(vllm_server: Any, png: bytes) -> None:
    items: list[Any] = ["a", Content(image=png), Content(text="b", image=png), "c"]
    with EmbeddingClient(base_url=vllm_server.base_url) as c:
        sync = c.embed_array(items)
        sync_query = c.embed_query("a")

    async def run() -> tuple[np.ndarray, list[float]]:
        async with AsyncEmbeddingClient(base_url=vllm_server.base_url, batch_size=2) as a:
            vectors, query = await asyncio.gather(a.embed_array(items), a.embed_query("a"))
            return vectors, query

    vectors, query = asyncio.run(run())
    np.testing.assert_allclose(vectors, sync, atol=1e-5)
    assert cosine(query, sync_query) > 0.9999


def test_async_bad_input_raises_before_sending(vllm_server: Any) -> None:
    async def run() -> None:
        async with AsyncEmbeddingClient(base_url=vllm_server.base_url) as a:
            await a.embed_images(["data:image/png;base64," + base64.b64encode(b"junk").decode()])

    with pytest.raises(ImageLoadError) as info:
        asyncio.run(run())
    assert info.value.index == 0


def test_progress_callback_counts_every_input(vllm_server: Any) -> None:
    done: list[int] = []
    with EmbeddingClient(base_url=vllm_server.base_url, batch_size=4) as c:
        c.embed([f"t{i}" for i in range(10)], on_progress=done.append)
    assert sorted(done) == [2, 4, 4]


def test_video_by_data_uri(vllm_server: Any) -> None:
    video = Path(__file__).parent.parent / "assets" / "moving_square.mp4"
    uri = "data:video/mp4;base64," + base64.b64encode(video.read_bytes()).decode()
    with EmbeddingClient(base_url=vllm_server.base_url) as c:
        alone, with_text, again = c.embed(
            [Content(video=uri), Content(video=uri, text="a red square"), Content(video=uri)]
        )
    assert abs(np.linalg.norm(alone) - 1.0) < 1e-4
    assert cosine(alone, again) > 0.9999
    assert cosine(alone, with_text) < 0.9999


def test_server_without_our_flags_gets_clear_errors_or_opt_in_fallback(
    bare_vllm_server: Any, png: bytes
) -> None:
    base_url = bare_vllm_server.base_url
    log = RequestLog()
    with (
        httpx.Client(event_hooks={"request": [log.hook]}) as http,
        EmbeddingClient(base_url=base_url, http_client=http) as c,
    ):
        info = c.server_info()
        assert info.matryoshka is False
        assert info.input_types == ()
        probe = list(log.paths)
        with pytest.raises(UnsupportedFeatureError, match="is_matryoshka"):
            c.embed(["x"], dimensions=16)
        # Refused before sending: the only traffic is one fresh probe (the server may have
        # been restarted with the flag since), and a second refusal sends nothing at all.
        assert log.paths == probe + probe
        with pytest.raises(UnsupportedFeatureError, match="is_matryoshka"):
            c.embed(["y"], dimensions=16)
        assert log.paths == probe + probe
        full = c.embed_array(["x", Content(image=png)])
    with EmbeddingClient(base_url=base_url, client_side_dimensions=True) as c:
        short = c.embed_array(["x", Content(image=png)], dimensions=16)
    prefix = full[:, :16] / np.linalg.norm(full[:, :16], axis=1, keepdims=True)
    np.testing.assert_allclose(short, prefix, atol=1e-5)
    with (
        EmbeddingClient(base_url=base_url, protocol="cohere") as c,
        pytest.raises(UnsupportedFeatureError, match="task_instructions"),
    ):
        c.embed(["x"])
