"""RerankClient / AsyncRerankClient against the CPU reranker server.

The client's scores are compared with hand-written ``/rerank`` requests (which
test_reranker_server.py compares with the reference reranker); weights are random.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import data_uri, image_png, post
from vllm_multimodal_embeddings import Content, RerankPreset
from vllm_multimodal_embeddings._exceptions import (
    BadRequestError,
    ImageLoadError,
    InputError,
    InternalServerError,
    NotFoundError,
)
from vllm_multimodal_embeddings.reranking import AsyncRerankClient, RerankClient

SAME = 1e-6


@pytest.fixture(scope="module")
def pngs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("rerank-client")
    out = {}
    for name, seed, size in (("a", 1, (64, 96)), ("b", 2, (128, 64))):
        out[name] = folder / f"{name}.png"
        out[name].write_bytes(image_png(seed, size))
    return out


@pytest.fixture
def client(vllm_reranker_server):
    with RerankClient(
        base_url=vllm_reranker_server.base_url, model=vllm_reranker_server.model
    ) as c:
        yield c


def raw_scores(server, query, documents, **extra) -> list[float]:
    body = {"model": server.model, "query": query, "documents": documents, **extra}
    resp = post(server.base_url, "/rerank", body)
    assert resp.status_code == 200, resp.text
    return [r["relevance_score"] for r in sorted(resp.json()["results"], key=lambda r: r["index"])]


def image_part(path: Path) -> dict:
    return {"type": "image_url", "image_url": {"url": data_uri(path.read_bytes())}}


def test_every_input_form_scores_like_a_hand_written_request(vllm_reranker_server, client, pngs):
    a, b = pngs["a"], pngs["b"]
    with Image.open(b) as im:
        pil = im.copy()
    documents = [
        "a red circle",
        a,  # pathlib.Path: an image
        Content(text="a dog", image=str(b)),
        pil,
        a.read_bytes(),
        io.BytesIO(b.read_bytes()),
        Content(image=a.as_uri()),
    ]
    got = client.score(Content(text="which one?", image=a), documents)
    want = raw_scores(
        vllm_reranker_server,
        {"content": [image_part(a), {"type": "text", "text": "which one?"}]},
        [
            "a red circle",
            {"content": [image_part(a)]},
            {"content": [image_part(b), {"type": "text", "text": "a dog"}]},
            {"content": [image_part(b)]},
            {"content": [image_part(a)]},
            {"content": [image_part(b)]},
            {"content": [image_part(a)]},
        ],
    )
    assert got == pytest.approx(want, abs=SAME)
    assert len(set(round(s, 4) for s in got)) >= 3  # not one score repeated


def test_batches_keep_input_order(vllm_reranker_server, pngs):
    docs = ["one", pngs["a"], "two red", Content(text="x", image=pngs["b"]), "three", "a circle"]
    with (
        RerankClient(
            base_url=vllm_reranker_server.base_url, model=vllm_reranker_server.model
        ) as whole,
        RerankClient(whole.settings, model=whole.model, batch_size=2) as split,
    ):
        assert split.score("a red circle", docs) == pytest.approx(
            whole.score("a red circle", docs), abs=SAME
        )


def test_rerank_orders_and_cuts_to_top_n(client):
    docs = ["one", "two red", "a circle", "three", "four square", "a red circle"]
    scores = client.score("a red circle", docs)
    ranked = client.rerank("a red circle", docs, top_n=3)
    best = sorted(range(len(docs)), key=lambda i: -scores[i])[:3]
    assert [r.index for r in ranked] == best
    assert [r.score for r in ranked] == pytest.approx([scores[i] for i in best], abs=SAME)
    assert len(client.rerank("a red circle", docs)) == len(docs)


def test_instruction_per_client_and_per_call(vllm_reranker_server, client):
    docs = ["one", "two red", "a circle"]
    default = client.score("q", docs)
    custom = client.score("q", docs, instruction="Find numbers.")
    assert max(abs(x - y) for x, y in zip(custom, default, strict=True)) > 1e-3
    assert custom == pytest.approx(
        raw_scores(vllm_reranker_server, "q", docs, instruction="Find numbers."), abs=SAME
    )
    with RerankClient(client.settings, model=client.model, instruction="Find numbers.") as c:
        assert c.score("q", docs) == pytest.approx(custom, abs=SAME)
        # A per-call instruction wins over the client's.
        assert c.score("q", docs, instruction="Other.") != pytest.approx(custom, abs=SAME)


def test_presets_per_client_and_per_call(vllm_reranker_server, client):
    docs = ["one", "two red", "a circle"]
    passages = raw_scores(vllm_reranker_server, "q", docs, instruction=RerankPreset.PASSAGES.value)
    assert client.score("q", docs, instruction=RerankPreset.PASSAGES) == pytest.approx(
        passages, abs=SAME
    )
    assert client.score("q", docs, instruction="passages") == pytest.approx(passages, abs=SAME)
    # The default preset is what the server's template sends when no instruction is given.
    assert client.score("q", docs, instruction="default") == pytest.approx(
        client.score("q", docs), abs=SAME
    )
    with RerankClient(client.settings, model=client.model, instruction="passages") as c:
        assert c.instruction == RerankPreset.PASSAGES.value
        assert c.score("q", docs) == pytest.approx(passages, abs=SAME)
    with pytest.raises(InputError, match="'pasages' is no reranker preset"):
        client.score("q", docs, instruction="pasages")


def test_async_client_equals_sync(vllm_reranker_server, client, pngs):
    docs = ["one", pngs["a"], Content(text="x", image=pngs["b"])]

    async def main():
        async with AsyncRerankClient(client.settings, model=client.model, batch_size=1) as ac:
            return await ac.score("q", docs), await ac.rerank("q", docs, top_n=1)

    scores, ranked = asyncio.run(main())
    want = client.score("q", docs)
    assert scores == pytest.approx(want, abs=SAME)
    assert ranked[0].index == max(range(3), key=lambda i: want[i])


def test_model_comes_from_the_server_not_the_embedder_variable(vllm_reranker_server, monkeypatch):
    monkeypatch.setenv("VLLM_EMBEDDING_MODEL", "some-embedder")
    monkeypatch.delenv("VLLM_RERANKER_MODEL", raising=False)
    with RerankClient(base_url=vllm_reranker_server.base_url) as c:
        assert c.model is None
        assert len(c.score("q", ["d"])) == 1
        assert c.model == vllm_reranker_server.model


def test_bad_local_input_is_named_before_anything_is_sent(client, tmp_path):
    with pytest.raises(ImageLoadError) as info:
        client.score("q", ["fine", "also fine", Content(image=tmp_path / "missing.png")])
    assert info.value.index == 2
    with pytest.raises(InputError, match="query: empty text"):
        client.score("   ", ["d"])
    with pytest.raises(InputError, match="documents must be a list"):
        client.score("q", "one document")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_n"):
        client.rerank("q", ["d"], top_n=0)


def test_unfetchable_image_url_is_named_as_its_document(client):
    # The server fetches http(s) images itself. On /rerank vLLM 0.32 answers a failed fetch with
    # a 500 (the embeddings endpoints say 422): as the embedder does, a 500 of a request with
    # server-fetched URLs is narrowed down, so the error names the dead document, not the call.
    docs = ["a", Content(image="http://127.0.0.1:9/missing.png?sig=SECRET"), "b"]
    c = RerankClient(client.settings, model=client.model, max_retries=1)
    with c, pytest.raises(InternalServerError, match=r"127\.0\.0\.1") as info:
        c.score("q", docs)
    assert info.value.status_code == 500 and info.value.index == 1
    assert "SECRET" not in str(info.value)


TOO_LONG = "word " * 3000  # the CPU reranker serves 2,048 tokens


def test_too_long_query_is_the_querys_fault_not_document_0(client):
    with pytest.raises(BadRequestError, match="maximum context length") as info:
        client.score(TOO_LONG, ["a", "b", "c"])
    assert info.value.index is None
    assert str(info.value).startswith("query: HTTP 400")


def test_too_long_document_is_that_documents_fault(client):
    with pytest.raises(BadRequestError, match="maximum context length") as info:
        client.score("q", ["a", "b", TOO_LONG, "d"])
    assert info.value.index == 2
    assert str(info.value).startswith("input 2: HTTP 400")


def test_unknown_model_is_not_found(vllm_reranker_server):
    c = RerankClient(base_url=vllm_reranker_server.base_url, model="no-such-reranker")
    with c, pytest.raises(NotFoundError, match="no-such-reranker"):
        c.score("q", ["d"])


# -- parity with the reference, through the client -----------------------------------------------

REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "reranker.py"


def reference_scores(server, query: dict, documents: list[dict]) -> list[float]:
    """The reference reranker's scores (the recipe, in transformers) on the served weights."""
    if server.checkpoint is None:
        pytest.skip("the reference needs the served checkpoint: only for the local CPU server")
    request = {
        "checkpoint": str(server.checkpoint),
        "cases": [{"instruction": None, "query": query, "documents": documents}],
    }
    proc = subprocess.run(
        [str(server.python), str(REFERENCE)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    scores: list[float] = json.loads(proc.stdout)["cases"][0]["scores"]
    return scores


@pytest.fixture(scope="module")
def awkward_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Images vLLM would resize itself: odd sides, too small, too large, JPEG, transparency."""
    folder = tmp_path_factory.mktemp("rerank-awkward")
    out = {}
    for name, seed, size in (
        ("odd", 4, (100, 75)),
        ("small", 5, (40, 30)),
        ("big", 6, (1600, 1280)),
    ):
        out[name] = folder / f"{name}.png"
        out[name].write_bytes(image_png(seed, size))
    with Image.open(out["odd"]) as im:
        im.resize((333, 257)).save(folder / "photo.jpg", quality=90)
    out["jpeg"] = folder / "photo.jpg"
    rgba = Image.new("RGBA", (90, 70), (200, 30, 30, 255))
    rgba.paste((0, 0, 0, 0), (20, 20, 60, 50))  # a transparent hole
    rgba.save(folder / "rgba.png")
    out["rgba"] = folder / "rgba.png"
    return out


def test_client_scores_awkward_images_like_the_reference(vllm_reranker_server, awkward_images):
    names = ["odd", "small", "big", "jpeg", "rgba"]
    documents = [awkward_images[n] for n in names] + [
        Content(text="a red photo", image=awkward_images["jpeg"])
    ]
    reference_docs = [{"image": str(awkward_images[n])} for n in names] + [
        {"text": "a red photo", "image": str(awkward_images["jpeg"])}
    ]
    want = reference_scores(vllm_reranker_server, {"text": "a picture"}, reference_docs)
    with RerankClient(
        base_url=vllm_reranker_server.base_url, model=vllm_reranker_server.model
    ) as client:
        got = client.score("a picture", documents)
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert abs(g - w) <= 1e-4, f"document {i} ({documents[i]}): {g:.6f} vs {w:.6f}"
    with RerankClient(
        base_url=vllm_reranker_server.base_url,
        model=vllm_reranker_server.model,
        recipe_images=False,
    ) as vllm_sized:
        # Leaving the resizing to vLLM is what drifts: the reason recipe_images is the default.
        unsized = vllm_sized.score("a picture", documents)
        drift = max(abs(g - w) for g, w in zip(unsized, want, strict=True))
        assert drift > 1e-4


def test_image_query_through_the_client_matches_the_reference(vllm_reranker_server, awkward_images):
    want = reference_scores(
        vllm_reranker_server,
        {"text": "which one?", "image": str(awkward_images["odd"])},
        [{"text": "a red circle"}, {"image": str(awkward_images["small"])}],
    )
    with RerankClient(
        base_url=vllm_reranker_server.base_url, model=vllm_reranker_server.model
    ) as client:
        got = client.score(
            Content(text="which one?", image=awkward_images["odd"]),
            ["a red circle", awkward_images["small"]],
        )
    assert got == pytest.approx(want, abs=1e-4)
