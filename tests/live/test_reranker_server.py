"""vLLM's /rerank on Qwen3-VL-Reranker, pinned with hand-written httpx requests.

The scores must equal the reference reranker (``tests/reference/reranker.py``, written from the
published recipe, run with transformers on the same weights) within 1e-4, for text, image and
text+image queries and documents. The weights are random: nothing here asserts meaning.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.helpers import data_uri, error_message, image_png, post
from tests.reference.reranker import fit_to_budget
from vllm_multimodal_embeddings.server import RERANKER_DEFAULT_INSTRUCTION

REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "reranker.py"
TOLERANCE = 1e-4

# Image sizes: multiples of 32 within the pixel budget go through both pipelines unresized;
# the others are rounded to multiples of 32, 1600x1280 also scaled down (2.05 MP > 1.84 MP).
IMAGES = {"a": (1, (64, 96)), "b": (2, (128, 64)), "c": (3, (96, 96))}
RESIZED_IMAGES = {"small": (4, (100, 75)), "odd": (6, (333, 257)), "large": (5, (1600, 1280))}

Side = dict[str, str]  # {"text": ..., "image": <name in IMAGES>}

# (instruction, query, documents): every combination of text, image and text+image.
CASES: dict[str, tuple[str | None, Side, list[Side]]] = {
    "text-query-text-docs": (
        None,
        {"text": "a red circle"},
        [
            {"text": "a red circle on white"},
            {"text": "blue square"},
            {"text": "The quick brown fox jumps over the lazy dog."},
        ],
    ),
    "text-query-image-docs": (
        None,
        {"text": "a red circle"},
        [{"image": "a"}, {"image": "b"}, {"image": "c"}],
    ),
    "text-query-text-image-docs": (
        "Retrieve images or text relevant to the user's query.",
        {"text": "A dog on the beach."},
        [{"text": "a dog", "image": "a"}, {"text": "a cat", "image": "b"}, {"text": "sand"}],
    ),
    "image-query-mixed-docs": (
        None,
        {"image": "c"},
        [{"text": "a square"}, {"image": "a"}, {"image": "c"}, {"text": "noise", "image": "b"}],
    ),
    "text-image-query-mixed-docs": (
        "Find the matching picture.",
        {"text": "which one is this?", "image": "a"},
        [{"image": "a"}, {"text": "a cat in the snow"}, {"text": "this one", "image": "b"}],
    ),
    "empty-document-is-null": (None, {"text": "anything"}, [{"text": ""}, {"text": "NULL"}]),
}
RESIZED_CASE = (
    None,
    {"text": "a picture"},
    [{"image": "small"}, {"image": "odd"}, {"image": "large"}],
)


def _write_images(folder: Path) -> dict[str, Path]:
    paths = {}
    for name, (seed, size) in {**IMAGES, **RESIZED_IMAGES}.items():
        paths[name] = folder / f"{name}.png"
        paths[name].write_bytes(image_png(seed, size))
    return paths


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _write_images(tmp_path_factory.mktemp("rerank-images"))


def wire_item(side: Side, images: dict[str, Path]) -> str | dict[str, Any]:
    """A query/document as /rerank takes it: a string, or content parts (image, then text)."""
    if "image" not in side:
        return side["text"]
    parts: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": data_uri(images[side["image"]].read_bytes())}}
    ]
    if "text" in side:
        parts.append({"type": "text", "text": side["text"]})
    return {"content": parts}


def rerank_body(
    model: str,
    case: tuple[str | None, Side, list[Side]],
    images: dict[str, Path],
    **extra: Any,
) -> dict[str, Any]:
    instruction, query, documents = case
    body: dict[str, Any] = {
        "model": model,
        "query": wire_item(query, images),
        "documents": [wire_item(d, images) for d in documents],
        **extra,
    }
    if instruction is not None:
        body["instruction"] = instruction
    return body


def rerank(server: Any, body: dict[str, Any]) -> dict[str, Any]:
    resp = post(server.base_url, "/rerank", body)
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result


def scores_by_index(response: dict[str, Any]) -> list[float]:
    results = sorted(response["results"], key=lambda r: r["index"])
    assert [r["index"] for r in results] == list(range(len(results)))
    return [r["relevance_score"] for r in results]


@pytest.fixture(scope="module")
def reference(vllm_reranker_server: Any, images: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """The reference's scores, prompts and token counts for every case (one subprocess)."""
    if vllm_reranker_server.checkpoint is None:
        pytest.skip("the reference needs the served checkpoint: only for the local CPU server")

    def side(s: Side) -> dict[str, str]:
        return {**s, "image": str(images[s["image"]])} if "image" in s else dict(s)

    cases = {**CASES, "resized": RESIZED_CASE}
    request = {
        "checkpoint": str(vllm_reranker_server.checkpoint),
        "cases": [
            {"instruction": i, "query": side(q), "documents": [side(d) for d in docs]}
            for i, q, docs in cases.values()
        ],
    }
    proc = subprocess.run(
        [str(vllm_reranker_server.python), str(REFERENCE)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return dict(zip(cases, json.loads(proc.stdout)["cases"], strict=True))


@pytest.mark.parametrize("name", sorted(CASES))
def test_rerank_scores_equal_the_reference(vllm_reranker_server, images, reference, name):
    response = rerank(
        vllm_reranker_server, rerank_body(vllm_reranker_server.model, CASES[name], images)
    )
    got = scores_by_index(response)
    want = reference[name]["scores"]
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert abs(g - w) <= TOLERANCE, f"document {i}: vLLM {g:.6f} vs reference {w:.6f}"
    # Same prompts, token for token (image tokens included): the score template renders the
    # recipe's judge prompt and vLLM's image processing makes the recipe's number of tokens.
    assert response["usage"]["prompt_tokens"] == sum(reference[name]["tokens"])


def test_scores_spread_enough_to_mean_something(reference):
    # Parity within 1e-4 says little if every score were ~0 or ~1 (flat sigmoid there).
    scores = [s for case in CASES for s in reference[case]["scores"]]
    assert min(scores) < 0.35 and max(scores) > 0.65
    assert len({round(s, 3) for s in scores}) > len(scores) // 2


def _recipe_resized(path: Path) -> bytes:
    """The image as the recipe feeds it to the processor: RGB, sides multiples of 32 within the
    pixel budget, Pillow bicubic; PNG so nothing else changes."""
    with Image.open(path) as img:
        rgb = img.convert("RGB")
    height, width = fit_to_budget(rgb.height, rgb.width)
    buf = io.BytesIO()
    rgb.resize((width, height), resample=Image.Resampling.BICUBIC).save(buf, format="PNG")
    return buf.getvalue()


def _resized_case_body(model: str, images: dict[str, Path], *, client_side: bool) -> dict:
    _, query, documents = RESIZED_CASE
    parts = []
    for doc in documents:
        path = images[doc["image"]]
        png = _recipe_resized(path) if client_side else path.read_bytes()
        parts.append({"content": [{"type": "image_url", "image_url": {"url": data_uri(png)}}]})
    return {"model": model, "query": query["text"], "documents": parts}


def test_images_resized_client_side_like_the_recipe_match_the_reference(
    vllm_reranker_server, images, reference
):
    body = _resized_case_body(vllm_reranker_server.model, images, client_side=True)
    response = rerank(vllm_reranker_server, body)
    assert response["usage"]["prompt_tokens"] == sum(reference["resized"]["tokens"])
    got = scores_by_index(response)
    for i, (g, w) in enumerate(zip(got, reference["resized"]["scores"], strict=True)):
        assert abs(g - w) <= TOLERANCE, f"document {i}: vLLM {g:.6f} vs reference {w:.6f}"


def test_images_vllm_resizes_itself_drift_from_the_reference(
    vllm_reranker_server, images, reference
):
    # vLLM's processor resamples with its own bicubic, not Pillow's: same token counts, but the
    # scores drift (measured 3e-5..1.4e-3 on noise images). Parity needs the client to resize as
    # the recipe does (previous test). If this starts failing, vLLM resizes like the recipe now.
    body = _resized_case_body(vllm_reranker_server.model, images, client_side=False)
    response = rerank(vllm_reranker_server, body)
    assert response["usage"]["prompt_tokens"] == sum(reference["resized"]["tokens"])
    drift = [
        abs(g - w)
        for g, w in zip(scores_by_index(response), reference["resized"]["scores"], strict=True)
    ]
    assert max(drift) < 1e-2
    assert max(drift) > TOLERANCE


# --- what the endpoint does with top_n, instructions and documents ------------------------------

MANY = (
    None,
    {"text": "a red circle"},
    [{"text": t} for t in ("one", "two red", "a circle", "three", "four square", "a red circle")],
)


def test_results_come_sorted_by_score_and_echo_their_document(vllm_reranker_server, images):
    response = rerank(vllm_reranker_server, rerank_body(vllm_reranker_server.model, MANY, images))
    scores = [r["relevance_score"] for r in response["results"]]
    assert scores == sorted(scores, reverse=True)
    assert len(set(scores)) == len(scores)
    for r in response["results"]:
        assert r["document"] == {"text": MANY[2][r["index"]]["text"], "multi_modal": None}
    image_doc = rerank(
        vllm_reranker_server,
        rerank_body(vllm_reranker_server.model, (None, {"text": "q"}, [{"image": "a"}]), images),
    )["results"][0]["document"]
    # Image documents come back whole: the response carries every data URI a second time.
    assert image_doc["text"] is None
    assert image_doc["multi_modal"][0]["image_url"]["url"].startswith("data:image/png;base64,")


@pytest.mark.parametrize("top_n", [1, 3])
def test_top_n_keeps_the_best_n_with_their_request_indices(vllm_reranker_server, images, top_n):
    model = vllm_reranker_server.model
    full = scores_by_index(rerank(vllm_reranker_server, rerank_body(model, MANY, images)))
    cut = rerank(vllm_reranker_server, rerank_body(model, MANY, images, top_n=top_n))["results"]
    best = sorted(range(len(full)), key=lambda i: -full[i])[:top_n]
    assert [r["index"] for r in cut] == best
    assert [r["relevance_score"] for r in cut] == pytest.approx([full[i] for i in best], abs=1e-6)


@pytest.mark.parametrize("top_n", [0, 6, 50])
def test_top_n_zero_or_at_least_all_returns_everything(vllm_reranker_server, images, top_n):
    body = rerank_body(vllm_reranker_server.model, MANY, images, top_n=top_n)
    assert len(rerank(vllm_reranker_server, body)["results"]) == len(MANY[2])


def test_missing_instruction_is_the_official_default(vllm_reranker_server, images):
    model = vllm_reranker_server.model
    _, query, docs = MANY
    default = scores_by_index(rerank(vllm_reranker_server, rerank_body(model, MANY, images)))
    explicit = scores_by_index(
        rerank(
            vllm_reranker_server,
            rerank_body(model, (RERANKER_DEFAULT_INSTRUCTION, query, docs), images),
        )
    )
    other = scores_by_index(
        rerank(vllm_reranker_server, rerank_body(model, ("Find numbers.", query, docs), images))
    )
    assert explicit == pytest.approx(default, abs=1e-6)
    assert max(abs(a - b) for a, b in zip(other, default, strict=True)) > 1e-3


def test_chat_template_kwargs_instruction_equals_the_instruction_field(
    vllm_reranker_server, images
):
    model = vllm_reranker_server.model
    _, query, docs = MANY
    field = rerank(vllm_reranker_server, rerank_body(model, ("Find numbers.", query, docs), images))
    kwargs = rerank(
        vllm_reranker_server,
        rerank_body(model, MANY, images, chat_template_kwargs={"instruction": "Find numbers."}),
    )
    assert scores_by_index(kwargs) == pytest.approx(scores_by_index(field), abs=1e-6)


def test_score_endpoint_gives_the_same_scores_in_request_order(vllm_reranker_server, images):
    case = CASES["text-query-text-image-docs"]
    body = rerank_body(vllm_reranker_server.model, case, images)
    ranked = scores_by_index(rerank(vllm_reranker_server, body))
    resp = post(
        vllm_reranker_server.base_url,
        "/score",
        {
            "model": body["model"],
            "queries": body["query"],
            "documents": body["documents"],
            "instruction": body["instruction"],
        },
    )
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert [d["index"] for d in data] == list(range(len(data)))
    assert [d["score"] for d in data] == pytest.approx(ranked, abs=1e-6)


def test_several_text_parts_are_joined_with_newlines(vllm_reranker_server, images):
    # Why the package's request builder refuses several text parts: vLLM joins them with "\n",
    # the recipe concatenates them.
    model = vllm_reranker_server.model
    split = {"content": [{"type": "text", "text": "a red"}, {"type": "text", "text": "circle"}]}
    body = {"model": model, "query": "q", "documents": [split, "a red\ncircle", "a redcircle"]}
    got = scores_by_index(rerank(vllm_reranker_server, body))
    assert got[0] == pytest.approx(got[1], abs=1e-6)
    assert abs(got[0] - got[2]) > 1e-4


def test_image_placeholders_go_first_whatever_the_part_order(vllm_reranker_server, images):
    model = vllm_reranker_server.model
    image = {"type": "image_url", "image_url": {"url": data_uri(images["a"].read_bytes())}}
    text = {"type": "text", "text": "a dog"}
    body = {
        "model": model,
        "query": "q",
        "documents": [{"content": [image, text]}, {"content": [text, image]}],
    }
    got = scores_by_index(rerank(vllm_reranker_server, body))
    assert got[0] == pytest.approx(got[1], abs=1e-6)


# --- errors ---------------------------------------------------------------------------------


def test_unknown_model_is_404(vllm_reranker_server):
    resp = post(
        vllm_reranker_server.base_url,
        "/rerank",
        {"model": "no-such-model", "query": "q", "documents": ["d"]},
    )
    assert resp.status_code == 404
    assert "no-such-model" in error_message(resp)


def test_no_documents_is_400(vllm_reranker_server):
    body = {"model": vllm_reranker_server.model, "query": "q", "documents": []}
    resp = post(vllm_reranker_server.base_url, "/rerank", body)
    assert resp.status_code == 400
    assert "at least one" in error_message(resp).lower()


def test_negative_top_n_is_400(vllm_reranker_server):
    body = {"model": vllm_reranker_server.model, "query": "q", "documents": ["d"], "top_n": -1}
    assert post(vllm_reranker_server.base_url, "/rerank", body).status_code == 400


def test_bad_image_is_400(vllm_reranker_server):
    bad = {"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90IGFuIGltYWdl"}}
    body = {
        "model": vllm_reranker_server.model,
        "query": "q",
        "documents": ["d", {"content": [bad]}],
    }
    resp = post(vllm_reranker_server.base_url, "/rerank", body)
    assert resp.status_code == 400
    assert "image" in error_message(resp).lower()


def test_too_long_pair_is_400_naming_the_context_length(vllm_reranker_server):
    body = {
        "model": vllm_reranker_server.model,
        "query": "q",
        "documents": ["short", "the quick brown fox " * 2000],
    }
    resp = post(vllm_reranker_server.base_url, "/rerank", body)
    assert resp.status_code == 400
    assert "2048" in error_message(resp)
