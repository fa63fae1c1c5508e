"""Ray Data on a local cluster against the real server: the client's vectors, in order, none
lost."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fault_proxy import FaultProxy
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


def _text_rows(n: int) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "text": f"line {i} of a long job", "image": None} for i in range(n)]


def _check_exactly_once(out: list[dict[str, Any]], rows: list[dict[str, Any]], base_url: str):
    assert [r["id"] for r in out] == [r["id"] for r in rows]  # each row once, in order
    with EmbeddingClient(base_url=base_url) as client:
        want = client.embed_array([r["text"] for r in rows])
    np.testing.assert_allclose(np.stack([r["vector"] for r in out]), want, atol=1e-5)


def _when(condition: Callable[[], bool], then: Callable[[], None]) -> threading.Thread:
    def watch() -> None:
        deadline = time.monotonic() + 120
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.02)
        then()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_server_that_goes_away_mid_job_costs_no_row(vllm_server: Any, local_ray: None) -> None:
    """Two servers; one goes away after a few requests: its batches move to the other, every
    row is embedded exactly once, with the single server's vectors."""
    rows = _text_rows(320)
    with FaultProxy(vllm_server.base_url, paths=()) as doomed:
        watcher = _when(lambda: doomed.counts["requests"] >= 8, doomed.kill)
        settings = ClientSettings(base_url=vllm_server.base_url, batch_size=4, max_retry_time=2)
        out = embed_dataset(
            ray.data.from_items(rows),
            settings,
            base_urls=[doomed.url, vllm_server.base_url],
            concurrency=2,
            batch_size=8,
            num_cpus=0.5,
        ).take_all()
        watcher.join(5)
        assert doomed.dead and doomed.counts["after kill"] >= 1  # it died mid-job, and was tried
    _check_exactly_once(out, rows, vllm_server.base_url)


def _embed_actor_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"MapBatches(EmbedBatches)" in cmdline:
            pids.append(int(proc.name))
    return pids


def test_an_actor_killed_mid_job_costs_no_row(vllm_server: Any, local_ray: None) -> None:
    """SIGKILL one worker actor mid-job: Ray Data restarts it and retries its batch; every row
    once, the same vectors."""
    rows = _text_rows(320)
    killed: list[int] = []

    def kill_one() -> None:
        pids = _embed_actor_pids()
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    with FaultProxy(vllm_server.base_url, paths=()) as counter:  # counts requests, no faults
        watcher = _when(lambda: counter.counts["requests"] >= 12, kill_one)
        settings = ClientSettings(base_url=counter.url, batch_size=4)
        out = embed_dataset(
            ray.data.from_items(rows), settings, concurrency=2, batch_size=8, num_cpus=0.5
        ).take_all()
        watcher.join(5)
    assert killed, "no EmbedBatches actor process was found to kill"
    _check_exactly_once(out, rows, vllm_server.base_url)
