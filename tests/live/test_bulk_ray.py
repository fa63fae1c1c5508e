"""Ray Data on a local cluster against the real server: the client's vectors, in order, none
lost."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import image_png
from vllm_multimodal_embeddings import ClientSettings, Content, EmbeddingClient

if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
    import ray  # CI installs the `ray` extra: a missing Ray must fail there, never skip
else:
    ray = pytest.importorskip("ray")
from vllm_multimodal_embeddings.bulk.ray_data import embed_dataset

# Ray 2.60's DataContext warns about its own deprecated fields as it builds itself.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    yield
    ray.shutdown()


def test_dataset_vectors_equal_the_client_in_order(
    vllm_server: Any, tmp_path: Path, local_ray: None
) -> None:
    rows: list[dict[str, Any]] = []
    for i in range(60):
        image = None
        if i % 3 != 0:
            path = tmp_path / f"img{i}.png"
            path.write_bytes(image_png(i, (48, 48)))
            image = str(path)
        rows.append({"id": f"r{i}", "text": None if i % 3 == 1 else f"caption {i}", "image": image})
    ds = ray.data.from_items(rows)
    host = vllm_server.base_url.replace("127.0.0.1", "localhost")
    settings = ClientSettings(base_url=vllm_server.base_url, batch_size=4, prepare_workers=1)
    out = embed_dataset(
        ds,
        settings,
        base_urls=[vllm_server.base_url, host],
        concurrency=2,
        batch_size=8,
        num_cpus=0.5,
    ).take_all()
    assert [r["id"] for r in out] == [r["id"] for r in rows]
    got = np.stack([r["vector"] for r in out])
    inputs: list[Any] = [
        r["text"] if r["image"] is None else Content(text=r["text"], image=r["image"]) for r in rows
    ]
    with EmbeddingClient(base_url=vllm_server.base_url) as client:
        want = client.embed_array(inputs)
    np.testing.assert_allclose(got, want, atol=1e-5)
