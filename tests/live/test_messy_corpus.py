"""A messy corpus through ``vllm-mm-embed embed --on-error skip`` against the real server.

Over-long texts, dead image URLs on loopback, ``/dev/zero`` and a FIFO, bad unicode, NUL bytes
in paths, a group of failures only, two writers on one folder, a SIGKILL at a random moment,
and a flaky link (``tests/fault_proxy.py``). What must hold every time: the job ends with exit
0, every good row is in the output exactly once (with the plain client's vector), and every
bad row is in the failures file exactly once with its reason.
"""

from __future__ import annotations

import fcntl
import functools
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fault_proxy import FaultProxy
from tests.helpers import image_png
from vllm_multimodal_embeddings import ClientSettings, Content, EmbeddingClient, InputError
from vllm_multimodal_embeddings.__main__ import main
from vllm_multimodal_embeddings.bulk import (
    JobOptions,
    manifest_source,
    read_failures,
    read_vectors,
    run_job,
)
from vllm_multimodal_embeddings.bulk.ray_data import EmbedBatches, _plain

LONG = "word " * 5000  # over the test server's 2,048 tokens


def _embed(server: Any, out: Path, *args: str) -> int:
    return main(
        [
            "embed",
            "--base-url",
            server.base_url,
            "--out",
            str(out),
            "--no-progress",
            "--on-error",
            "skip",
            *args,
        ]
    )


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _input(row: dict[str, Any], folder: Path) -> Any:
    if row.get("image") is None:
        return row["text"]
    return Content(text=row.get("text"), image=str(folder / row["image"]))


def _check(server: Any, out: Path, good: list[dict[str, Any]], bad: dict[str, str], folder: Path):
    """Every good row once, in source order, with the client's vector; every bad one failed
    once, with its reason."""
    ids, matrix = read_vectors(out)
    assert ids == [r["id"] for r in good]
    with EmbeddingClient(base_url=server.base_url) as client:
        want = client.embed_array([_input(r, folder) for r in good])
    np.testing.assert_allclose(matrix, want, atol=1e-5)
    failures = read_failures(out)
    assert sorted(f.id for f in failures) == sorted(bad)  # each once
    for f in failures:
        assert f.reason == bad[f.id], (f.id, f.reason, f.message)
        assert f.message


def _messy(folder: Path) -> tuple[Path, list[dict[str, Any]], dict[str, str]]:
    """A manifest of good rows and local bad ones (no URLs), with each bad row's reason."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(6):
        (folder / f"ok{i}.png").write_bytes(image_png(i, (40, 40)))
    (folder / "broken.png").write_bytes(b"not a png")
    os.mkfifo(folder / "pipe.png")
    rows: list[dict[str, Any]] = [
        {"id": "t0", "text": "a red bicycle"},
        {"id": "i0", "image": "ok0.png"},
        {"id": "long", "text": LONG},
        {"id": "p0", "text": "a caption", "image": "ok1.png"},
        # Three bad rows in a row: with --flush-rows 2, a group of failures only.
        {"id": "zero", "image": "/dev/zero"},
        {"id": "fifo", "image": "pipe.png"},
        {"id": "nul", "image": "bad\0name.png"},
        {"id": "i1", "image": "ok2.png"},
        {"id": "surrogate", "text": "bad \ud800 text"},
        {"id": "missing", "image": "nope.png"},
        {"id": "t1", "text": "a blue car"},
        {"id": "broken", "image": "broken.png"},
        {"id": "nothing", "text": ""},
        {"id": "tilde", "image": "~no-such-user-vmme/x.png"},
        {"id": "i2", "image": "ok3.png"},
        {"id": "i3", "image": "ok4.png"},
        {"id": "t2", "text": "the last one"},
    ]
    bad = {
        "long": "BadRequestError",
        "zero": "ImageLoadError",
        "fifo": "ImageLoadError",
        "nul": "ImageLoadError",
        "surrogate": "InputError",
        "missing": "ImageLoadError",
        "broken": "ImageLoadError",
        "nothing": "source",
        "tilde": "ImageLoadError",
    }
    good = [r for r in rows if r["id"] not in bad]
    return _write(folder / "m.jsonl", rows), good, bad


@pytest.mark.parametrize("fmt", ["parquet", "numpy"])
def test_messy_local_corpus_skips_each_bad_row_with_its_reason(
    vllm_server: Any, tmp_path: Path, fmt: str
) -> None:
    manifest, good, bad = _messy(tmp_path / "c")
    out = tmp_path / "out"
    args = ["--manifest", str(manifest), "--format", fmt, "--flush-rows", "2", "--batch-size", "4"]
    assert _embed(vllm_server, out, *args) == 0
    _check(vllm_server, out, good, bad, tmp_path / "c")
    messages = {f.id: f.message for f in read_failures(out)}
    assert "FIFO" in messages["fifo"] and "device" in messages["zero"]
    assert "NUL" in messages["nul"] and "surrogate" in messages["surrogate"]
    assert "2048" in messages["long"] or "2049" in messages["long"]
    # Resuming a folder with a group of failures only (Parquet crashed on it) does nothing twice.
    assert _embed(vllm_server, out, *args, "--resume") == 0
    _check(vllm_server, out, good, bad, tmp_path / "c")


def test_two_over_long_texts_first_and_last_of_a_request_are_skipped(
    vllm_server: Any, tmp_path: Path
) -> None:
    rows = [
        {"id": "long-a", "text": LONG},
        {"id": "t0", "text": "short"},
        {"id": "t1", "text": "also short"},
        {"id": "long-b", "text": "other " * 4000},
    ]
    manifest = _write(tmp_path / "m.jsonl", rows)
    out = tmp_path / "out"
    assert _embed(vllm_server, out, "--manifest", str(manifest), "--batch-size", "4") == 0
    _check(
        vllm_server,
        out,
        rows[1:3],
        {"long-a": "BadRequestError", "long-b": "BadRequestError"},
        tmp_path,
    )


@pytest.fixture
def http_404() -> Iterator[str]:
    """A loopback HTTP server that answers 404 to everything."""

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dead_image_urls_are_skipped_without_their_secrets(
    vllm_server: Any, tmp_path: Path, http_404: str
) -> None:
    (tmp_path / "ok.png").write_bytes(image_png(1, (40, 40)))
    refused = f"http://u:pw@127.0.0.1:{_free_port()}/a.png?sig=SECRET1"
    rows = [
        {"id": "t0", "text": "before"},
        {"id": "refused", "image": refused},
        {"id": "i0", "image": "ok.png"},
        {"id": "gone", "image": f"{http_404}/b.png?token=SECRET2"},
        {"id": "t1", "text": "after"},
    ]
    manifest = _write(tmp_path / "m.jsonl", rows)
    out = tmp_path / "out"
    # Few retries: the job's outcome must not depend on how long a dead URL is retried.
    settings = ClientSettings(base_url=vllm_server.base_url, batch_size=4, max_retries=1)
    with EmbeddingClient(settings) as client:
        summary = run_job(client, manifest_source(manifest), out, JobOptions(on_error="skip"))
    assert summary.failed == 2
    good = [rows[0], {"id": "i0", "image": "ok.png"}, rows[4]]
    _check(
        vllm_server,
        out,
        good,
        {"refused": "InternalServerError", "gone": "BadRequestError"},
        tmp_path,
    )
    text = json.dumps([f.message for f in read_failures(out)])
    assert "SECRET" not in text and "pw" not in text


@pytest.fixture
def image_host(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server for a folder of images: (its base URL, the folder)."""
    folder = tmp_path / "host"
    folder.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "where"), [(503, "url"), (400, "local"), (503, "local")])
def test_a_server_failing_as_a_whole_mid_run_costs_no_row(
    vllm_server: Any, tmp_path: Path, image_host: tuple[str, Path], status: int, where: str
) -> None:
    # The review's outage: every POST after the 7th is refused until the server recovers. The
    # run stops (the server's fault, retried on resume), no row is a failure, and the resumed
    # run ends with every row exactly once.
    host, folder = image_host
    rows = []
    for i in range(24):
        (folder / f"u{i}.png").write_bytes(image_png(100 + i, (40, 40)))
        image = f"{host}/u{i}.png" if where == "url" else str(folder / f"u{i}.png")
        rows.append({"id": f"u{i}", "image": image})
    manifest = _write(tmp_path / "m.jsonl", rows)
    out = tmp_path / "out"
    args = ["--manifest", str(manifest), "--batch-size", "4", "--concurrency", "1"]
    with FaultProxy(vllm_server.base_url, paths=()) as proxy:
        proxy.outage(status, after=7)  # the probe's POSTs count: as a new client sees it
        assert _embed_via(proxy.url, out, *args, "--flush-rows", "1") == 1
        assert proxy.counts[f"outage {status}"] >= 1
        assert read_failures(out) == []  # no good row is blamed for the server's outage
        done = read_vectors(out)[0]
        assert 0 < len(done) < len(rows), done
        proxy.recover()
        assert _embed_via(proxy.url, out, *args, "--flush-rows", "1", "--resume") == 0
    ids, matrix = read_vectors(out)
    assert ids == [r["id"] for r in rows] and read_failures(out) == []
    with EmbeddingClient(base_url=vllm_server.base_url) as client:
        want = client.embed_array([Content(image=r["image"]) for r in rows])
    np.testing.assert_allclose(matrix, want, atol=1e-5)


def _embed_via(base_url: str, out: Path, *args: str) -> int:
    argv = ["embed", "--base-url", base_url, "--out", str(out), "--no-progress"]
    return main([*argv, "--on-error", "skip", *args])


def test_ray_batches_of_url_rows_move_off_a_server_that_fails_as_a_whole(
    vllm_server: Any, image_host: tuple[str, Path]
) -> None:
    # The first server embeds 2 requests, then answers 502 to everything: the batch of URL
    # rows moves to the next server instead of failing with an index on one of its rows.
    host, folder = image_host
    for i in range(8):
        (folder / f"u{i}.png").write_bytes(image_png(200 + i, (40, 40)))
    urls = np.array([f"{host}/u{i}.png" for i in range(8)], dtype=object)
    batch = {"id": np.array([f"u{i}" for i in range(8)], dtype=object), "image": urls}
    with FaultProxy(vllm_server.base_url, paths=()) as doomed:
        settings = ClientSettings(base_url=doomed.url, batch_size=2, max_retry_time=2)
        actor = EmbedBatches(_plain(settings), [doomed.url, vllm_server.base_url])
        actor._turn = itertools.cycle([0, 1])  # the doomed server first (else by process id)
        try:
            actor._width(actor._clients[0])  # probe the first server while it is well
            doomed.outage(502, after=2)
            got = actor(batch)["vector"]
        finally:
            for client in actor._clients:  # now, not whenever the collector gets to them
                client.close()
        assert doomed.counts["outage 502"] >= 1
    with EmbeddingClient(base_url=vllm_server.base_url) as client:
        want = client.embed_array([Content(image=u) for u in urls])
    np.testing.assert_allclose(np.stack(list(got)), want, atol=1e-5)


def _spawn(server: Any, out: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VLLM_BASE_URL": server.base_url}
    cmd = [sys.executable, "-m", "vllm_multimodal_embeddings", "embed", "--out", str(out), *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _big_messy(folder: Path, n: int) -> tuple[Path, list[dict[str, Any]], dict[str, str]]:
    """``n`` good image rows with bad rows sprinkled in, slow enough to stop mid-way."""
    folder.mkdir(parents=True, exist_ok=True)
    os.mkfifo(folder / "pipe.png")
    rows: list[dict[str, Any]] = []
    bad: dict[str, str] = {}
    for i in range(n):
        (folder / f"img{i:04d}.png").write_bytes(image_png(i, (96, 96)))
        rows.append({"id": f"img{i:04d}", "image": f"img{i:04d}.png"})
        if i % 25 == 7:
            kind = ("pipe.png", "/dev/zero", "nul\0.png")[(i // 25) % 3]
            rows.append({"id": f"bad{i:04d}", "image": kind})
            bad[f"bad{i:04d}"] = "ImageLoadError"
    good = [r for r in rows if r["id"] not in bad]
    return _write(folder / "m.jsonl", rows), good, bad


def _lock_is_held(path: Path) -> bool:
    """Whether another process holds ``path``'s ``flock`` (the bulk command's folder lock)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_a_second_writer_is_refused_and_the_first_finishes_alone(
    vllm_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, good, bad = _big_messy(tmp_path / "c", 300)
    out = tmp_path / "out"
    args = ["--manifest", str(manifest), "--on-error", "skip", "--batch-size", "2"]
    first = _spawn(
        vllm_server, out, *args, "--concurrency", "1", "--flush-rows", "4", "--no-progress"
    )
    try:
        deadline = time.monotonic() + 240
        while not list(out.glob("part-*")):
            assert first.poll() is None, first.communicate()[1].decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # Freeze the first run while it holds the folder: however slow this machine is at
        # starting the second run, the first cannot finish (and release the lock) meanwhile.
        first.send_signal(signal.SIGSTOP)
        assert _lock_is_held(out / ".lock"), "the first run ended before the second one was tried"
        code = main(
            [
                "embed",
                "--out",
                str(out),
                "--base-url",
                vllm_server.base_url,
                *args,
                "--resume",
                "--no-progress",
            ]
        )
        err = capsys.readouterr().err
        assert code == 1
        assert "another run is writing to" in err and "Traceback" not in err
        first.send_signal(signal.SIGCONT)
        assert first.wait(timeout=300) == 0
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGCONT)
            first.kill()
            first.wait()
        first.communicate()
    _check(vllm_server, out, good, bad, tmp_path / "c")


def test_sigkill_at_a_random_moment_then_resume(vllm_server: Any, tmp_path: Path) -> None:
    manifest, good, bad = _big_messy(tmp_path / "c", 150)
    out = tmp_path / "out"
    args = ["--manifest", str(manifest), "--on-error", "skip", "--batch-size", "2", "--no-progress"]
    slow = ["--concurrency", "1", "--flush-rows", "3"]
    delay = random.Random().uniform(1.0, 8.0)
    proc = _spawn(vllm_server, out, *args, *slow)
    try:
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (
        main(["embed", "--base-url", vllm_server.base_url, "--out", str(out), *args, "--resume"])
        == 0
    ), f"killed after {delay:.1f} s"
    _check(vllm_server, out, good, bad, tmp_path / "c")


def test_a_flaky_link_costs_no_row(vllm_server: Any, tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    rows: list[dict[str, Any]] = []
    for i in range(40):
        if i % 2:
            (folder / f"i{i}.png").write_bytes(image_png(i, (48, 48)))
            rows.append({"id": f"r{i}", "image": f"i{i}.png"})
        else:
            rows.append({"id": f"r{i}", "text": f"caption number {i}"})
    rows.insert(11, {"id": "bad", "text": "\ud800"})
    manifest = _write(folder / "m.jsonl", rows)
    out = tmp_path / "out"
    with FaultProxy(
        vllm_server.base_url, p503=0.15, p429=0.1, preset=0.1, seed=21, max_in_a_row=2
    ) as proxy:
        settings = ClientSettings(base_url=proxy.url, batch_size=3, max_concurrency=2)
        with EmbeddingClient(settings) as client:
            proxy.active = False  # the first contact is the core's business, not the job's
            client.server_info()
            proxy.active = True
            summary = run_job(
                client, manifest_source(manifest), out, JobOptions(on_error="skip", flush_rows=5)
            )
        injected = proxy.counts["503"] + proxy.counts["429"] + proxy.counts["reset"]
    assert injected >= 3, proxy.counts
    assert summary.failed == 1 and summary.embedded == 40
    _check(vllm_server, out, [r for r in rows if r["id"] != "bad"], {"bad": "InputError"}, folder)


def test_a_413_pinned_on_one_input_is_skipped(vllm_server: Any, tmp_path: Path) -> None:
    # A front end's body limit: the big image alone is over it, every other request is not.
    (tmp_path / "small.png").write_bytes(image_png(1, (32, 32)))
    rng = np.random.default_rng(0)
    from PIL import Image

    Image.fromarray(rng.integers(0, 255, (400, 400, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    rows = [
        {"id": "t0", "text": "before"},
        {"id": "big", "image": "big.png"},
        {"id": "s0", "image": "small.png"},
        {"id": "t1", "text": "after"},
    ]
    manifest = _write(tmp_path / "m.jsonl", rows)
    out = tmp_path / "out"
    with FaultProxy(vllm_server.base_url, max_body=100_000) as proxy:
        proxy.active = False
        settings = ClientSettings(base_url=proxy.url, batch_size=4)
        with EmbeddingClient(settings) as client:
            summary = run_job(client, manifest_source(manifest), out, JobOptions(on_error="skip"))
        assert proxy.counts["413"] >= 1
    assert summary.failed == 1
    _check(
        vllm_server,
        out,
        [rows[0], rows[2], rows[3]],
        {"big": "APIStatusError"},
        tmp_path,
    )


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]"])
def test_a_corrupt_job_file_is_a_clear_error_naming_it(
    vllm_server: Any, tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _write(tmp_path / "m.jsonl", [{"id": "t0", "text": "hello"}])
    out = tmp_path / "out"
    out.mkdir()
    (out / "job.json").write_text(content, encoding="utf-8")
    assert _embed(vllm_server, out, "--manifest", str(manifest), "--resume") == 1
    err = capsys.readouterr().err
    assert f"cannot resume {out}" in err and str(out / "job.json") in err
    assert "Traceback" not in err


def test_a_refused_setting_leaves_the_folder_clean(
    vllm_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The server's model has fewer dimensions: nothing committed, so no job.json either, and
    # the same folder takes the right run afterwards.
    manifest = _write(tmp_path / "m.jsonl", [{"id": "t0", "text": "hello"}])
    out = tmp_path / "out"
    assert _embed(vllm_server, out, "--manifest", str(manifest), "--dimensions", "999999") == 1
    assert "999999" in capsys.readouterr().err
    assert not (out / "job.json").exists()
    assert _embed(vllm_server, out, "--manifest", str(manifest)) == 0
    assert read_vectors(out)[0] == ["t0"]


def test_ray_batches_name_the_failing_row_and_size_empty_ones(vllm_server: Any) -> None:
    actor = EmbedBatches(
        _plain(ClientSettings(base_url=vllm_server.base_url)), [vllm_server.base_url]
    )
    try:
        empty = actor({"id": np.array([], dtype=str), "text": np.array([], dtype=str)})
        with EmbeddingClient(base_url=vllm_server.base_url) as client:
            width = client.server_info().embedding_size
        assert empty["vector"].shape == (0, width)
        batch = {"id": np.array(["r0", "r-bad"]), "text": np.array(["fine", "bad \ud800"])}
        with pytest.raises(InputError) as info:
            actor(batch)
        assert "row id=r-bad (position 1 of its batch)" in str(info.value)
    finally:
        for client in actor._clients:
            client.close()


def test_thirty_fresh_clients_through_a_flaky_link_all_see_the_real_server(
    vllm_server: Any,
) -> None:
    # The mix: 8% 503, 4% 429, 4% resets on every path, the probe's included. Each
    # fresh client probes through it; none may fail, and none may cache what a fault said
    # (input_types=() from a 503 was cached for a client's whole life before).
    with EmbeddingClient(base_url=vllm_server.base_url) as direct:
        truth = direct.server_info()
        expected = direct.embed_array(["a flaky link", "second text"])
    with FaultProxy(
        vllm_server.base_url, p503=0.08, p429=0.04, preset=0.04, seed=30, max_in_a_row=2
    ) as proxy:
        for n in range(30):
            with EmbeddingClient(base_url=proxy.url) as client:
                got = client.embed_array(["a flaky link", "second text"])
                assert client.server_info() == truth, f"client {n}"
                np.testing.assert_allclose(got, expected, atol=1e-5)
        injected = proxy.counts["503"] + proxy.counts["429"] + proxy.counts["reset"]
    assert injected >= 10, proxy.counts  # the mix really hit the clients
