"""In-budget JPEGs against a real server: sent as they are, a corrupt one named by its index."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.helpers import chat_vectors, cosine, recipe_messages
from vllm_multimodal_embeddings import BadRequestError, EmbeddingClient, ImageLoadError
from vllm_multimodal_embeddings.inputs._images import build_data_uri


def photo_jpeg(seed: int) -> bytes:
    """A 640x480 JPEG with photo-like content (noisy gradients, not a flat colour)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:480, 0:640].astype(np.float32)
    base = np.stack([x / 640 * 200, y / 480 * 200, (x + y) / 1120 * 200], axis=-1)
    pixels = np.clip(base + rng.normal(0, 20, (480, 640, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def corrupt_middle(data: bytes) -> bytes:
    n = len(data)
    return data[: n // 3] + b"\xff" * (n // 3) + data[2 * n // 3 :]


def test_corrupt_in_budget_jpeg_in_a_batch_names_its_index(vllm_server: Any) -> None:
    good = [photo_jpeg(seed) for seed in range(6)]
    bad = corrupt_middle(photo_jpeg(1))
    with pytest.raises(OSError):
        Image.open(io.BytesIO(bad)).load()  # header valid, pixels not
    batch: list[bytes] = [*good[:3], bad, *good[3:]]
    with (
        EmbeddingClient(base_url=vllm_server.base_url, batch_size=4) as client,
        pytest.raises((ImageLoadError, BadRequestError)) as info,
    ):
        client.embed_images(batch)
    assert info.value.index == 3
    # Without it, the same batch embeds, each vector the server's own for the unchanged bytes.
    with EmbeddingClient(base_url=vllm_server.base_url, batch_size=4) as client:
        vectors = client.embed_array(good)
    for data, got in zip(good, vectors, strict=True):
        uri = build_data_uri(data, "jpeg")
        want = chat_vectors(vllm_server.base_url, vllm_server.model, recipe_messages(image=uri))
        assert cosine(got, want[0]) > 0.9999
