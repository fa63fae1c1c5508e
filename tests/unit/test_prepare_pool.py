"""Preparing inputs on worker processes gives what threads give, errors included."""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vllm_multimodal_embeddings._exceptions import ImageLoadError, InputError
from vllm_multimodal_embeddings._types import Content
from vllm_multimodal_embeddings.inputs._pool import (
    ProcessPreparer,
    goes_to_process,
    large_enough,
    prepare_outcome,
    process_pool,
)
from vllm_multimodal_embeddings.inputs._prepared import PreparedInput
from vllm_multimodal_embeddings.inputs._settings import ImageSettings

OPTS = ImageSettings(max_image_pixels=64 * 64)


def jpeg(size: tuple[int, int], seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def preparer() -> Iterator[ProcessPreparer]:
    with ThreadPoolExecutor(2) as threads:
        yield ProcessPreparer(process_pool(2), threads, OPTS)


def test_routing() -> None:
    assert goes_to_process(b"...", "text")
    assert goes_to_process(Path("a.jpg"), "text")
    assert goes_to_process("photo.jpg", "image")
    assert goes_to_process("data:image/png;base64,AAAA", "image")
    assert not goes_to_process("photo.jpg", "text")  # a text
    assert not goes_to_process("HTTPS://example.com/a.jpg", "image")  # I/O, maybe a fetcher
    assert not goes_to_process(Image.new("RGB", (4, 4)), "image")
    assert not goes_to_process(io.BytesIO(b"x"), "image")
    assert not goes_to_process(Content(text="x"), "image")
    # The adapters' form (LlamaIndex wraps every image path): the image decides.
    assert goes_to_process(Content(image="photo.jpg"), "text")
    assert goes_to_process(Content(text="caption", image=Path("a.jpg")), "text")
    assert not goes_to_process(Content(image="https://example.com/a.jpg"), "text")
    assert not goes_to_process(Content.of("a", "photo.jpg"), "text")  # interleaved parts


def test_content_images_go_by_their_image_size(tmp_path: Path) -> None:
    small, big = tmp_path / "small.jpg", tmp_path / "big.jpg"
    small.write_bytes(b"x" * 10)
    big.write_bytes(b"x" * 5000)
    assert large_enough(Content(image=str(big)), 4096)
    assert not large_enough(Content(image=str(small)), 4096)


def test_same_result_as_threads(preparer: ProcessPreparer, tmp_path: Path) -> None:
    big = jpeg((200, 150), seed=1)  # over the 64x64 budget: resized and re-encoded
    path = tmp_path / "big.jpg"
    path.write_bytes(big)
    items: list[object] = [big, path, str(path), "a text", Image.open(io.BytesIO(big))]
    items.append(Content(text="a caption", image=str(path)))
    as_image = [False, False, True, False, False, False]
    for k, (item, image) in enumerate(zip(items, as_image, strict=True)):
        str_as = "image" if image else "text"
        got = preparer.submit(item, k, str_as).result(timeout=60)
        assert isinstance(got, PreparedInput)
        assert got == prepare_outcome(item, k, OPTS, str_as)
    assert preparer.submit(big, 0, "text").result().image_url.startswith("data:image/jpeg")  # type: ignore[union-attr]


def test_errors_come_back_typed_with_their_index(preparer: ProcessPreparer, tmp_path: Path) -> None:
    bad = preparer.submit(b"not an image", 7, "image").result(timeout=60)
    assert isinstance(bad, ImageLoadError)
    assert bad.index == 7
    assert str(bad).startswith("input 7: not a recognized image")
    missing = preparer.submit(tmp_path / "nope.jpg", 3, "image").result(timeout=60)
    assert isinstance(missing, ImageLoadError)
    assert missing.index == 3 and "nope.jpg" in str(missing)
    empty = preparer.submit("   ", 2, "text").result(timeout=60)
    assert isinstance(empty, InputError) and empty.index == 2


def test_one_pool_per_worker_count() -> None:
    assert process_pool(2) is process_pool(2)
    assert process_pool(2) is not process_pool(3)


def test_small_encoded_images_are_prepared_in_place(tmp_path: Path) -> None:
    from vllm_multimodal_embeddings import Content
    from vllm_multimodal_embeddings.embeddings._client import _small_image

    small, large = tmp_path / "small.jpg", tmp_path / "large.jpg"
    small.write_bytes(b"\xff\xd8" + bytes(1000))
    large.write_bytes(b"\xff\xd8" + bytes(100_000))
    assert _small_image(str(small), "image") and _small_image(small, "image")
    assert _small_image(b"x" * 1000, "image") and not _small_image(b"x" * 100_000, "image")
    assert _small_image("data:image/png;base64,AAAA", "image")
    assert _small_image(Content(image=str(small)), "text")
    for other in (
        (str(small), "text"),  # a text
        (str(large), "image"),  # may need decoding and resizing: the pool spreads that
        ("https://example.com/a.jpg", "image"),  # fetched, or passed through
        (f"{small}#page=1", "image"),  # a page reference, no file
        (f"file://{small}", "image"),
        (str(tmp_path), "image"),  # a directory: the pool's preparation names it
        (Content(text="caption", image=str(small)), "text"),
        (12, "image"),
    ):
        assert not _small_image(*other), other
