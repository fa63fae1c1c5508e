"""Vectors equal the official Qwen3-VL-Embedding recipe (``tests/reference``), input by input.

The tiny checkpoint's image processor carries limits (65,536..262,144 pixels) unlike the official
embedder's (4,096..1,843,200): only the server's ``--mm-processor-kwargs`` and the client's own
smart resize can make these pass. Every case runs on both protocols and both input types through
the public client API.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.helpers import cosine
from tests.media_host import media_host
from tests.reference.embedder import Part, Reference, ReferenceEmbedder
from tests.reference.videos import VideoSpec, make_video
from vllm_multimodal_embeddings import Content, EmbeddingClient, InputError
from vllm_multimodal_embeddings._constants import QWEN_DEFAULT_INSTRUCTION, QWEN_QUERY_INSTRUCTION
from vllm_multimodal_embeddings.doctor import official_image_tokens
from vllm_multimodal_embeddings.inputs._prepared import PreparedInput
from vllm_multimodal_embeddings.inputs._read import prepare_input
from vllm_multimodal_embeddings.inputs._settings import ImageSettings
from vllm_multimodal_embeddings.testing import (
    ServerStartError,
    ensure_tiny_checkpoint,
    server_python,
)

MIN_COSINE = 0.9999
INSTRUCTIONS = {"query": QWEN_QUERY_INSTRUCTION, "document": QWEN_DEFAULT_INSTRUCTION}
TEXT = "A red bicycle leaning on a stone wall."


def photo(width: int, height: int, seed: int) -> Image.Image:
    """A smooth, photo-like RGB image (gradients, soft blobs, a little grain)."""
    rng = np.random.default_rng(seed)
    # Built small and upscaled: cheap at 12 MP, and smooth like a photo (JPEG then behaves).
    small = rng.random((max(2, height // 50), max(2, width // 50), 3)) * 255
    base = Image.fromarray(small.astype(np.uint8), "RGB").resize((width, height), Image.BICUBIC)
    grain = rng.normal(0, 6, (height, width, 3))
    arr = np.clip(np.asarray(base, dtype=np.float32) + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


@dataclass(frozen=True)
class Case:
    """One input: what the client gets, and what the reference is given for the same pixels."""

    client_item: object
    reference_parts: list[Part]


def _image_case(
    tmp: Path, name: str, data: bytes, upright: Image.Image | None = None, text: str | None = None
) -> Case:
    path = tmp / name
    path.write_bytes(data)
    ref_path = path
    if upright is not None:
        # The client applies EXIF orientation (as every viewer does); the reference is given
        # the same upright pixels.
        ref_path = tmp / f"upright-{name}.png"
        upright.save(ref_path)
    parts = [Part.image(ref_path)] + ([Part.text(text)] if text else [])
    return Case(Content(image=path, text=text), parts)


def _build_cases(tmp: Path) -> dict[str, Case]:
    cases: dict[str, Case] = {"text": Case(TEXT, [Part.text(TEXT)])}
    png = lambda w, h, seed: encode(photo(w, h, seed), "PNG")  # noqa: E731
    # Under the official minimum: upscaled to 96x64 by both.
    cases["small 40x30"] = _image_case(tmp, "small.png", png(40, 30, 1))
    # Within both budgets but not multiples of 32.
    cases["odd 333x177"] = _image_case(tmp, "odd.png", png(333, 177, 2))
    # Over the checkpoint's max (262,144 px), within the official one: the server flag matters.
    cases["640x480"] = _image_case(tmp, "vga.png", png(640, 480, 3))
    cases["odd 1001x757"] = _image_case(tmp, "odd-large.jpg", encode(photo(1001, 757, 4), "JPEG"))
    # Over the official max: the client resizes it, the server must not resize again.
    cases["2400x1600"] = _image_case(tmp, "large.png", png(2400, 1600, 5))
    # EXIF orientation 6: stored landscape, shown portrait.
    stored = photo(320, 240, 6)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(rotated)))
    cases["exif rotated"] = _image_case(tmp, "rotated.jpg", rotated, upright=upright)
    # RGBA: transparent pixels become white in both.
    rgba = photo(300, 200, 7).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, 300, dtype=np.uint8), (200, 1))
    rgba.putalpha(Image.fromarray(alpha, "L"))
    cases["png alpha"] = _image_case(tmp, "alpha.png", encode(rgba, "PNG"))
    cases["text+image"] = _image_case(tmp, "pair.png", png(256, 192, 8), text=TEXT)
    # A 12 MP camera photo: the client's downscale (JPEG draft decoding, one bicubic resize).
    cases["12 MP photo"] = _image_case(
        tmp, "camera.jpg", encode(photo(4000, 3000, 9), "JPEG", quality=90)
    )
    return cases


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    return _build_cases(tmp_path_factory.mktemp("parity"))


@pytest.fixture(scope="module")
def reference(
    reference_embedder: ReferenceEmbedder, cases: dict[str, Case]
) -> Callable[[str, str], Reference]:
    """The reference's answer for (case, input type), computed once."""
    memo: dict[tuple[str, str], Reference] = {}

    def get(case: str, input_type: str) -> Reference:
        key = (case, input_type)
        if key not in memo:
            parts = cases[case].reference_parts
            memo[key] = reference_embedder.embed([(INSTRUCTIONS[input_type], parts)])[0]
        return memo[key]

    return get


CASES = [
    "text",
    "small 40x30",
    "odd 333x177",
    "640x480",
    "odd 1001x757",
    "2400x1600",
    "exif rotated",
    "png alpha",
    "text+image",
    "12 MP photo",
]


@pytest.mark.parametrize("input_type", ["document", "query"])
@pytest.mark.parametrize("protocol", ["chat", "cohere"])
@pytest.mark.parametrize("case", CASES)
def test_vector_equals_the_official_recipe(
    vllm_server, cases, reference, case: str, protocol: str, input_type: str
) -> None:
    ref = reference(case, input_type)
    with EmbeddingClient(
        base_url=vllm_server.base_url, model=vllm_server.model, protocol=protocol
    ) as client:
        got = np.asarray(client.embed([cases[case].client_item], input_type=input_type)[0])
    assert cosine(got, ref.vector) >= MIN_COSINE, (case, protocol, input_type)


def test_reference_uses_the_official_image_budget(reference) -> None:
    # Guards the reference itself: it must not fall back to the checkpoint's limits.
    assert reference("640x480", "document").sizes == [(640, 480)]
    assert reference("small 40x30", "document").sizes == [(96, 64)]
    assert reference("2400x1600", "document").sizes == [(1632, 1088)]
    assert reference("640x480", "document").image_tokens == official_image_tokens(640, 480)


def _image_path(case: Case) -> Path:
    return Path(case.reference_parts[0].value)


def _prompt_tokens_and_vector(server: Any, image: Path) -> tuple[int, np.ndarray]:
    """The chat recipe, hand-written: how many tokens the server made, and the vector."""
    uri = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode("ascii")
    body = {
        "model": server.model,
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": QWEN_DEFAULT_INSTRUCTION}]},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": uri}}]},
        ],
        "add_generation_prompt": True,
        "encoding_format": "float",
    }
    resp = httpx.post(f"{server.base_url}/v1/embeddings", json=body, timeout=120.0)
    resp.raise_for_status()
    data = resp.json()
    return data["usage"]["prompt_tokens"], np.asarray(data["data"][0]["embedding"])


def test_our_flags_give_the_official_image_tokens(vllm_server, cases, reference) -> None:
    ref = reference("640x480", "document")
    tokens, vector = _prompt_tokens_and_vector(vllm_server, _image_path(cases["640x480"]))
    assert tokens == ref.prompt_tokens
    assert cosine(vector, ref.vector) >= MIN_COSINE


def test_without_the_processor_flag_the_checkpoint_limits_win(
    bare_vllm_server, cases, reference
) -> None:
    # Same checkpoint, same prompt, no --mm-processor-kwargs: vLLM resizes 640x480 to the
    # checkpoint's 262,144-pixel limit, so fewer image tokens and another vector.
    ref = reference("640x480", "document")
    tokens, vector = _prompt_tokens_and_vector(bare_vllm_server, _image_path(cases["640x480"]))
    assert tokens < ref.prompt_tokens
    assert cosine(vector, ref.vector) < 0.999


# --- a stock Cohere client, unmodified, pointed at /v2/embed ---

COHERE_TYPES = {
    "search_query": "query",
    "search_document": "document",
    "classification": "document",
    "clustering": "document",
}


@pytest.fixture(scope="module")
def cohere_client(vllm_server) -> Iterator[Any]:
    cohere = pytest.importorskip("cohere")
    # The SDK posts to {base_url}/v2/embed; vLLM ignores the bearer token unless it has a key.
    # Our own httpx client, so the test closes its sockets.
    with httpx.Client(timeout=120.0) as http:
        yield cohere.ClientV2(api_key="unused", base_url=vllm_server.base_url, httpx_client=http)


@pytest.mark.parametrize("cohere_type", sorted(COHERE_TYPES))
def test_cohere_sdk_text_input_types_give_the_recipe_vectors(
    vllm_server, cohere_client, cases, reference, cohere_type: str
) -> None:
    resp = cohere_client.embed(
        model=vllm_server.model,
        texts=[TEXT],
        input_type=cohere_type,
        embedding_types=["float"],
    )
    got = np.asarray(resp.embeddings.float_[0])
    assert cosine(got, reference("text", COHERE_TYPES[cohere_type]).vector) >= MIN_COSINE


def test_cohere_sdk_image_input_type_gives_the_recipe_vector(
    vllm_server, cohere_client, cases, reference
) -> None:
    path = _image_path(cases["640x480"])
    uri = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    resp = cohere_client.embed(
        model=vllm_server.model, images=[uri], input_type="image", embedding_types=["float"]
    )
    got = np.asarray(resp.embeddings.float_[0])
    assert cosine(got, reference("640x480", "document").vector) >= MIN_COSINE


# --- several images and texts in one input (Content.of) ---


def _interleaved(cases: dict[str, Case], *order: str) -> tuple[Content, list[Part]]:
    """``order`` names cases (their image) or, prefixed ``text:``, a text part."""
    client_parts: list[object] = []
    ref_parts: list[Part] = []
    for name in order:
        if name.startswith("text:"):
            client_parts.append(name[5:])
            ref_parts.append(Part.text(name[5:]))
        else:
            path = _image_path(cases[name])
            client_parts.append(path)
            ref_parts.append(Part.image(path))
    return Content.of(*client_parts), ref_parts


# The official embedder's own multi-image layout (images, then text), and one of our own order.
INTERLEAVED = {
    "images then text": ("640x480", "odd 333x177", f"text:{TEXT}"),
    "text between images": ("odd 333x177", f"text:{TEXT}", "640x480", "text:And this one."),
}


@pytest.mark.parametrize("protocol", ["chat", "cohere"])
@pytest.mark.parametrize("layout", sorted(INTERLEAVED))
def test_interleaved_parts_equal_the_recipe_in_their_order(
    vllm_server, cases, reference_embedder, protocol: str, layout: str
) -> None:
    item, parts = _interleaved(cases, *INTERLEAVED[layout])
    ref = reference_embedder.embed([(QWEN_DEFAULT_INSTRUCTION, parts)])[0]
    with EmbeddingClient(
        base_url=vllm_server.base_url, model=vllm_server.model, protocol=protocol
    ) as client:
        got = np.asarray(client.embed([item], input_type="document")[0])
    assert ref.image_tokens == official_image_tokens(640, 480) + official_image_tokens(333, 177)
    assert cosine(got, ref.vector) >= MIN_COSINE, (layout, protocol)


def test_interleaved_order_changes_the_vector(vllm_server, cases) -> None:
    one, _ = _interleaved(cases, "640x480", "odd 333x177")
    other, _ = _interleaved(cases, "odd 333x177", "640x480")
    with EmbeddingClient(base_url=vllm_server.base_url, model=vllm_server.model) as client:
        a, b = (np.asarray(v) for v in client.embed([one, other]))
    assert cosine(a, b) < 0.999


def test_several_images_without_text_on_cohere(vllm_server, cases, reference_embedder) -> None:
    item, parts = _interleaved(cases, "640x480", "odd 333x177")
    ref = reference_embedder.embed([(QWEN_DEFAULT_INSTRUCTION, parts)])[0]
    with EmbeddingClient(
        base_url=vllm_server.base_url, model=vllm_server.model, protocol="cohere"
    ) as client:
        got = np.asarray(client.embed([item], input_type="document")[0])
    assert cosine(got, ref.vector) >= MIN_COSINE


def test_tiny_checkpoint_builds_byte_identical(tmp_path: Path) -> None:
    # The parity numbers are only reproducible if the checkpoint is: same seed, same bytes.
    try:
        python = server_python()
    except ServerStartError as exc:
        pytest.skip(str(exc))
    first = ensure_tiny_checkpoint(python, tmp_path / "a")
    second = ensure_tiny_checkpoint(python, tmp_path / "b")
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    config = json.loads((first / "preprocessor_config.json").read_text())
    assert config["size"] == {"shortest_edge": 65_536, "longest_edge": 262_144}


VIDEO = Path(__file__).parent.parent / "assets" / "moving_square.mp4"


def test_interleaved_video_goes_on_chat_and_is_refused_by_name_on_cohere(
    vllm_server, cases
) -> None:
    uri = "data:video/mp4;base64," + base64.b64encode(VIDEO.read_bytes()).decode("ascii")
    image = _image_path(cases["odd 333x177"])
    items = [Content.of(image, "a red square", Content(video=uri))]
    with EmbeddingClient(base_url=vllm_server.base_url, model=vllm_server.model) as client:
        mixed, video_first = client.embed_array(
            [*items, Content.of(Content(video=uri), "a red square", image)]
        )
    # Both parts arrive, in the caller's order: the two orders give two vectors.
    assert cosine(mixed, video_first) < 0.999
    with (
        EmbeddingClient(
            base_url=vllm_server.base_url, model=vllm_server.model, protocol="cohere"
        ) as client,
        pytest.raises(InputError, match="video needs protocol='chat'") as info,
    ):
        client.embed(["fine", *items])
    assert info.value.index == 1


# --- videos -----------------------------------------------------------------------------------
# Made here (tests/reference/videos.py), each a few seconds. The tiny server's 2,048 tokens bound
# the sizes: the official recipe spends 128..768 tokens per pair of frames.

VIDEO_SPECS = {
    # 4 official frames: the server's flags alone match (no request fields).
    "4 frames, small": VideoSpec(4, 10, 320, 240),
    "4 frames, large": VideoSpec(4, 5, 1280, 720),
    "12 frames": VideoSpec(12, 12, 640, 360),
    # The loader keeps 7 frames (the processor then repeats one); the official embedder takes 6.
    "odd, small frames": VideoSpec(7, 15, 480, 270),
    "odd, large frames": VideoSpec(7, 4, 800, 600),
    # Frames under 131,072 pixels: the official embedder upscales each frame to that.
    "tiny frames": VideoSpec(6, 8, 64, 48),
    "long, tiny frames": VideoSpec(22, 2, 96, 64),
}
VIDEO_TEXT = "A red block crosses the frame."
# (case, with text): every video alone, and three with text.
VIDEO_CASES = [(name, False) for name in VIDEO_SPECS] + [
    ("4 frames, large", True),
    ("odd, small frames", True),
    ("long, tiny frames", True),
]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("av")
    folder = tmp_path_factory.mktemp("videos")
    return {
        name: make_video(folder / f"{i}.mp4", spec)
        for i, (name, spec) in enumerate(VIDEO_SPECS.items())
    }


@pytest.fixture(scope="module")
def video_reference(
    reference_embedder: ReferenceEmbedder, videos: dict[str, Path]
) -> Callable[[str, bool], Reference]:
    memo: dict[tuple[str, bool], Reference] = {}

    def get(case: str, with_text: bool) -> Reference:
        if (case, with_text) not in memo:
            parts = [Part.video(videos[case])] + ([Part.text(VIDEO_TEXT)] if with_text else [])
            memo[case, with_text] = reference_embedder.embed([(QWEN_DEFAULT_INSTRUCTION, parts)])[0]
        return memo[case, with_text]

    return get


def _prepared_video(path: Path, with_text: bool) -> PreparedInput:
    item = Content(video=path, text=VIDEO_TEXT if with_text else None)
    return prepare_input(item, index=0, options=ImageSettings())


def _post_prepared(server: Any, items: list[PreparedInput]) -> tuple[int, list[np.ndarray]]:
    """The chat recipe for prepared items, hand-written, with their per-request video fields.

    Stands in for the client's request building until it sends ``media_io_kwargs`` /
    ``mm_processor_kwargs``: vLLM takes them at the top level of the request and applies them
    to every conversation in it, so the items must agree on them.
    """
    conversations = []
    for item in items:
        content: list[dict[str, Any]] = []
        if item.video_url is not None:
            content.append({"type": "video_url", "video_url": {"url": item.video_url}})
        if item.image_url is not None:
            content.append({"type": "image_url", "image_url": {"url": item.image_url}})
        if item.text is not None:
            content.append({"type": "text", "text": item.text})
        system = {"role": "system", "content": [{"type": "text", "text": QWEN_DEFAULT_INSTRUCTION}]}
        conversations.append([system, {"role": "user", "content": content}])
    body: dict[str, Any] = {
        "model": server.model,
        "messages": conversations if len(items) > 1 else conversations[0],
        "add_generation_prompt": True,
        "encoding_format": "float",
    }
    fields = [i.video_kwargs for i in items if i.video_kwargs is not None]
    if fields:
        body["media_io_kwargs"] = fields[0].media_io_kwargs
        body["mm_processor_kwargs"] = fields[0].mm_processor_kwargs
    resp = httpx.post(f"{server.base_url}/v1/embeddings", json=body, timeout=300.0)
    resp.raise_for_status()
    data = resp.json()
    return data["usage"]["prompt_tokens"], [np.asarray(d["embedding"]) for d in data["data"]]


@pytest.mark.parametrize(("case", "with_text"), VIDEO_CASES)
def test_video_vector_and_tokens_equal_the_official_recipe(
    vllm_server, videos, video_reference, case: str, with_text: bool
) -> None:
    ref = video_reference(case, with_text)
    tokens, (vector,) = _post_prepared(vllm_server, [_prepared_video(videos[case], with_text)])
    assert tokens == ref.prompt_tokens, case
    assert cosine(vector, ref.vector) >= MIN_COSINE, case


@pytest.mark.parametrize("case", ["4 frames, small", "4 frames, large", "12 frames"])
def test_videos_the_flags_match_go_through_the_client(
    vllm_server, videos, video_reference, case: str
) -> None:
    assert _prepared_video(videos[case], False).video_kwargs is None
    with EmbeddingClient(base_url=vllm_server.base_url, model=vllm_server.model) as client:
        (got,) = client.embed_array([Content(video=videos[case])], input_type="document")
    assert cosine(got, video_reference(case, False).vector) >= MIN_COSINE


def test_every_video_through_the_client_in_one_call(vllm_server, videos, video_reference) -> None:
    # Videos whose fields differ (and those that need none), with text, in one call: the
    # client splits requests by fields and sends them, so each vector is the recipe's.
    items = [Content(video=videos[case], text=VIDEO_TEXT if t else None) for case, t in VIDEO_CASES]
    with EmbeddingClient(base_url=vllm_server.base_url, model=vllm_server.model) as client:
        got = client.embed_array(items, input_type="document")
    for (case, with_text), vector in zip(VIDEO_CASES, got, strict=True):
        assert cosine(vector, video_reference(case, with_text).vector) >= MIN_COSINE, case


@pytest.mark.parametrize("ranges", [True, False], ids=["ranged host", "host without ranges"])
def test_http_videos_through_the_client_equal_the_official_recipe(
    vllm_server, videos, video_reference, ranges: bool
) -> None:
    # The server fetches each URL; the client reads the header from the same host (in ranges
    # where it can) so the request carries the fields of the local file: odd frame counts and
    # small frames included. Loopback is refused unless allowed, as for client-side fetching.
    folder = next(iter(videos.values())).parent
    cases = VIDEO_CASES if ranges else [("odd, small frames", False), ("long, tiny frames", True)]
    with (
        media_host(folder, ranges=ranges) as host,
        EmbeddingClient(
            base_url=vllm_server.base_url,
            model=vllm_server.model,
            remote_allowed_hosts=("127.0.0.1",),
        ) as client,
    ):
        items = [
            Content(video=host.of(videos[case].name), text=VIDEO_TEXT if t else None)
            for case, t in cases
        ]
        got = client.embed_array(items, input_type="document")
    for (case, with_text), vector in zip(cases, got, strict=True):
        assert cosine(vector, video_reference(case, with_text).vector) >= MIN_COSINE, case


# --- videos given as frames (the official embedder's other video form) ---

FRAME_LISTS = {
    # An odd count (the official embedder repeats the last frame), frames upscaled.
    "5 frames, small": (5, 320, 240),
    "6 frames, large": (6, 800, 600),
    # Upscaled twice: as images (to 4,096 pixels), then as frames (to 131,072).
    "24 frames, tiny": (24, 64, 48),
}


@pytest.fixture(scope="module")
def frame_lists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    folder = tmp_path_factory.mktemp("frames")
    lists: dict[str, list[Path]] = {}
    for k, (name, (count, width, height)) in enumerate(FRAME_LISTS.items()):
        paths = []
        for i in range(count):
            path = folder / f"{k}-{i}.png"
            path.write_bytes(encode(photo(width, height, seed=100 * k + i), "PNG"))
            paths.append(path)
        lists[name] = paths
    return lists


@pytest.mark.parametrize("with_text", [False, True])
@pytest.mark.parametrize("case", sorted(FRAME_LISTS))
def test_frame_list_video_equals_the_official_recipe(
    vllm_server, reference_embedder, frame_lists, case: str, with_text: bool
) -> None:
    frames = frame_lists[case]
    text = [Part.text(VIDEO_TEXT)] if with_text else []
    ref = reference_embedder.embed([(QWEN_DEFAULT_INSTRUCTION, [Part.frames(frames), *text])])[0]
    item = Content(video=frames, text=VIDEO_TEXT if with_text else None)
    prepared = prepare_input(item, index=0, options=ImageSettings())
    tokens, (vector,) = _post_prepared(vllm_server, [prepared])
    assert ref.frames == (FRAME_LISTS[case][0] + FRAME_LISTS[case][0] % 2,)
    assert tokens == ref.prompt_tokens, case
    assert cosine(vector, ref.vector) >= MIN_COSINE, case


def test_reference_samples_and_sizes_videos_officially(video_reference) -> None:
    # Guards the reference: 1 frame/s rounded down to even, each frame 131,072..786,432 px.
    assert video_reference("odd, small frames", False).frames == (6,)
    assert video_reference("12 frames", False).frames == (12,)
    assert video_reference("long, tiny frames", False).frames == (22,)
    assert video_reference("tiny frames", False).frame_sizes == ((448, 320),)
    assert video_reference("4 frames, large", False).frame_sizes == ((1152, 640),)
    assert video_reference("4 frames, small", False).video_tokens == 2 * 14 * 10


def test_reference_fails_on_a_video_it_cannot_read(reference_embedder, tmp_path: Path) -> None:
    # The official embedder embeds the text "NULL" when it cannot read a video; ours must not.
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"no video here" * 100)
    with pytest.raises(RuntimeError, match=r"cannot open video|ended at frame|too short"):
        reference_embedder.embed([(QWEN_DEFAULT_INSTRUCTION, [Part.video(fake)])])


def test_batched_videos_share_the_request_fields(
    vllm_server, videos, video_reference, cases, reference
) -> None:
    # Two videos with equal fields and an image in one request: all three are the recipe's.
    odd, tiny = (_prepared_video(videos[c], False) for c in ("odd, small frames", "tiny frames"))
    assert odd.video_kwargs == tiny.video_kwargs is not None
    image = prepare_input(
        Content(image=_image_path(cases["640x480"])), index=0, options=ImageSettings()
    )
    _, vectors = _post_prepared(vllm_server, [odd, tiny, image])
    expected = [
        video_reference("odd, small frames", False).vector,
        video_reference("tiny frames", False).vector,
        reference("640x480", "document").vector,
    ]
    for got, want in zip(vectors, expected, strict=True):
        assert cosine(got, want) >= MIN_COSINE


def test_request_fields_reach_every_video_in_the_request(
    vllm_server, videos, video_reference
) -> None:
    # Why a video with other fields (or none) must go in another request: a 4-frame video
    # given the 6-frame video's fields is embedded differently.
    plain = _prepared_video(videos["4 frames, small"], False)
    odd = _prepared_video(videos["odd, small frames"], False)
    _, (got, _) = _post_prepared(vllm_server, [plain, odd])
    assert cosine(got, video_reference("4 frames, small", False).vector) < 0.999


def test_without_the_video_flags_videos_differ(bare_vllm_server, videos, video_reference) -> None:
    ref = video_reference("12 frames", False)
    item = _prepared_video(videos["12 frames"], False)
    tokens, (vector,) = _post_prepared(bare_vllm_server, [item])
    assert tokens != ref.prompt_tokens
    assert cosine(vector, ref.vector) < 0.999
