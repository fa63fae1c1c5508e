"""Every cookbook recipe runs end to end against the live server, as a user would run it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

COOKBOOK = Path(__file__).resolve().parents[2] / "cookbook"
RECIPES = sorted(p.name for p in COOKBOOK.glob("*.py"))


def recipe_env(
    base_url: str,
    model: str | None,
    reranker_url: str | None = None,
    reranker_model: str | None = None,
) -> dict[str, str]:
    """The environment a user would set: the server, the model, no GUI for plots."""
    env = {**os.environ, "VLLM_BASE_URL": base_url, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    if reranker_url is not None:
        env["VLLM_RERANKER_BASE_URL"] = reranker_url
    if reranker_model is not None:
        env["VLLM_RERANKER_MODEL"] = reranker_model
    if model is not None:
        env["VLLM_EMBEDDING_MODEL"] = model
    return env


def run_recipe(
    name: str,
    *args: str,
    base_url: str,
    model: str | None,
    cwd: Path,
    reranker_url: str | None = None,
    reranker_model: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``cookbook/<name>`` in a fresh interpreter with the server in its environment."""
    return subprocess.run(
        [sys.executable, str(COOKBOOK / name), *args],
        env=recipe_env(base_url, model, reranker_url, reranker_model),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def run(vllm_server, tmp_path):
    def _run(name: str, *args: str) -> str:
        proc = run_recipe(
            name, *args, base_url=vllm_server.base_url, model=vllm_server.model, cwd=tmp_path
        )
        assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        return proc.stdout

    return _run


def test_every_recipe_is_tested_and_documented():
    readme = (COOKBOOK / "README.md").read_text()
    tested = {
        "compact_vectors.py",
        "haystack_multimodal_rag.py",
        "langchain_multimodal_rag.py",
        "llama_index_multimodal.py",
        "matryoshka.py",
        "one_image_many_instructions.py",
        "progress_bar.py",
        "index_at_scale.py",
        "int8_recall.py",
        "quickstart.py",
        "two_stage_rag.py",
        "visual_document_rag.py",
    }
    assert set(RECIPES) == tested
    for name in RECIPES:
        assert f"cookbook/{name}" in readme, f"{name} missing from cookbook/README.md"
        header = (COOKBOOK / name).read_text().split('"""')[1]
        for var in ("VLLM_BASE_URL", "VLLM_API_KEY", "VLLM_EMBEDDING_MODEL", "Run:"):
            assert var in header, f"{name}: header docstring lacks {var}"


def test_quickstart(run, vllm_server):
    out = run("quickstart.py")
    assert "embedded 5 documents and 3 queries" in out
    assert "vector norms: [1.0, 1.0, 1.0, 1.0, 1.0]" in out
    # One table row per query, one similarity per document.
    rows = [line for line in out.splitlines() if re.match(r"^(a red circle|a blue square) ", line)]
    assert len(rows) == 2
    assert all(len(re.findall(r"-?\d\.\d{3}", row)) == 5 for row in rows)
    assert "path vs file:// URI of one image: cosine 1.0000" in out
    assert ("random-weight test checkpoint" in out) == ("tiny" in vllm_server.model.lower())


def test_matryoshka_writes_a_readable_png(run, vllm_server, tmp_path):
    png = tmp_path / "plots" / "m.png"
    out = run("matryoshka.py", "--out", str(png), "--texts", "30", "--images", "6", "--k", "5")
    rows = re.findall(r"^\s+(\d+)\s+([\d,]+)\s+([\d.]+)\s+(-?[\d.]+)$", out, flags=re.M)
    dims = [int(r[0]) for r in rows]
    assert len(dims) >= 3 and dims == sorted(dims)
    assert [int(r[1].replace(",", "")) for r in rows] == [4 * d for d in dims]
    # Full size agrees with itself exactly; every smaller size is a subset of it.
    assert rows[-1][2:] == ("1.000", "1.000")
    assert all(0.0 <= float(r[2]) <= 1.0 for r in rows)
    diff = float(re.search(r"max \|diff\| (\S+)", out).group(1))
    assert diff < 1e-4, "server-side dimensions should equal local truncate + re-normalize"
    assert f"wrote {png}" in out
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert 10_000 < len(data) < 2_000_000
    with Image.open(png) as im:
        im.verify()
    with Image.open(png) as im:
        assert im.width >= 600 and im.height >= 400
        # Not a blank canvas: a plot has many distinct colours.
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50


def test_compact_vectors(run, vllm_server):
    out = run("compact_vectors.py", "--docs", "120", "--images", "6", "--candidates", "30")
    assert "ubinary bits equal float signs: 100.00%" in out
    assert re.search(r"ratio\s+32x", out)
    dim = int(re.search(r"storage for 120 vectors of (\d+) dims", out).group(1))
    assert f"({dim * 4} B/vector)" in out and f"({dim // 8} B/vector)" in out
    section = out.split("agreement with float-only", 1)[1]
    scores = {
        label: float(value)
        for label, value in re.findall(r"^  (\S.*?)\s+([01]\.\d{3})$", section, re.M)
    }
    assert len(scores) == 3, out
    assert all(0.0 <= s <= 1.0 for s in scores.values())
    # Re-scoring can only keep what the shortlist found.
    shortlist = next(v for k, v in scores.items() if "shortlist" in k and "float top" in k)
    rescored = next(v for k, v in scores.items() if "re-score" in k)
    assert rescored <= shortlist + 1e-9


def test_int8_recall(run):
    out = run("int8_recall.py", "--docs", "150", "--images", "6")
    # The test model is neither 2B nor 8B: the client names the missing step, the recipe
    # calibrates one and says so.
    assert "is neither: pass int8_scale=" in out
    assert re.search(r"int8 step \d\.\d{4} \(calibrated", out), out
    dim = int(re.search(r"storage for 150 vectors of (\d+) dims", out).group(1))
    assert f"({dim * 4} B/vector)" in out and f"({dim} B/vector)" in out
    rows = re.findall(r"^  (\d\.\d{4})\s+([01]\.\d{3})\s+([\d.]+)%\s+([\d.]+)%", out, re.M)
    assert len(rows) == 5, out
    steps = [float(r[0]) for r in rows]
    assert steps == sorted(steps)
    # A step below the calibrated one saturates more, a larger one rounds more values to 0.
    saturated = [float(r[2]) for r in rows]
    zero = [float(r[3]) for r in rows]
    assert saturated[0] >= saturated[2] >= saturated[4]
    assert zero[0] <= zero[2] <= zero[4]
    assert min(float(r[1]) for r in rows) >= 0.0 and float(rows[2][1]) > 0.5


def test_progress_bar(vllm_server, tmp_path):
    proc = run_recipe(
        "progress_bar.py",
        "--count",
        "300",
        "--images",
        "20",
        base_url=vllm_server.base_url,
        model=vllm_server.model,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"embedded 320 items in [\d.]+ s: \d+ items/s", proc.stdout)
    assert re.search(r"shape \(320, \d+\), norms 1\.0000\.\.1\.0000", proc.stdout)
    # tqdm draws on stderr and reaches the total only if on_progress covered every input.
    assert "320/320" in proc.stderr


def test_one_image_many_instructions(run):
    out = run("one_image_many_instructions.py", "--rounds", "1", "--size", "320")
    for label in ("first time (cold cache)", "same bytes, another instruction", "re-saved JPEG"):
        assert re.search(rf"{re.escape(label)}.*\s\d+\.\d{{3}}$", out, re.M), label
    assert "re-saved copy has different bytes: True" in out
    assert "same bytes, same instruction, twice:  cosine 1.0000" in out
    across = float(re.search(r"different instruction:\s+cosine (\S+)", out).group(1))
    assert across < 0.99995, "another instruction must change the vector"
    assert re.search(r"async, all at once\s+\d+\.\d{3} s", out)
    assert re.search(r"async, one first, then the rest\s+\d+\.\d{3} s", out)


def test_langchain_multimodal_rag(run):
    out = run("langchain_multimodal_rag.py", "--question", "a blue square", "--k", "4")
    assert "indexed 6 images" in out
    query, hit = re.search(r"image query (\S+) -> top hit (\S+)", out).groups()
    assert query == hit
    assert "retrieved 4 images:" in out
    assert len(re.findall(r"^  \d\. \w+\.png: .+$", out, re.M)) == 4
    assert "the last carries 4 images" in out


def test_llama_index_multimodal(run):
    out = run("llama_index_multimodal.py", "--k", "4")
    assert "indexed 6 images and 6 captions" in out
    assert "text-to-image: 4 images" in out
    assert len(re.findall(r"^  \d\. \w+\.png  score -?[\d.]+$", out, re.M)) == 4
    assert "retrieve(): 2 captions + 4 images" in out
    query, hit = re.search(r"image query (\S+) -> top hit (\S+)", out).groups()
    assert query == hit


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_fails_clearly_without_a_server(name, tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    # The two-stage recipe needs a reranker too: give it the same dead address.
    proc = run_recipe(name, base_url=url, model=None, cwd=tmp_path, reranker_url=url)
    assert proc.returncode != 0
    assert f"error: cannot reach {url}" in proc.stderr
    assert "Traceback" not in proc.stderr


def run_two_stage(name: str, *args: str, embedder: Any, reranker: Any, cwd: Path) -> str:
    """A two-stage recipe's output against both live servers, once it exited 0."""
    proc = run_recipe(
        name,
        *args,
        base_url=embedder.base_url,
        model=embedder.model,
        reranker_url=reranker.base_url,
        reranker_model=reranker.model,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def assert_reranks_recall(recall: list[str], reranked: list[tuple[str, str]]) -> None:
    """Stage 2 (``(score, item)`` lines) keeps only candidates stage 1 recalled, best first."""
    assert {item for _, item in reranked} <= set(recall)
    scores = [float(score) for score, _ in reranked]
    assert scores == sorted(scores, reverse=True)


def test_two_stage_rag(vllm_server, vllm_reranker_server, tmp_path):
    out = run_two_stage(
        "two_stage_rag.py",
        *("--k", "6", "--top-n", "3"),
        embedder=vllm_server,
        reranker=vllm_reranker_server,
        cwd=tmp_path,
    )
    assert "indexed 6 captions and 6 images" in out
    recall = re.findall(r"^  \d\. (\[(?:image|text)\].*)$", out.split("stage 2")[0], re.M)
    reranked = re.findall(r"^  \d\. (\d\.\d{4})  (\[(?:image|text)\].*)$", out, re.M)
    assert len(recall) == 6 and len(reranked) == 3
    assert_reranks_recall(recall, reranked)


def test_haystack_multimodal_rag(vllm_server, vllm_reranker_server, tmp_path):
    pytest.importorskip("reportlab")
    out = run_two_stage(
        "haystack_multimodal_rag.py",
        *("--k", "6", "--top-k", "3"),
        embedder=vllm_server,
        reranker=vllm_reranker_server,
        cwd=tmp_path,
    )
    # Six images and their six captions (cookbook/assets), two pages of the generated PDF.
    assert "indexed 14 documents: 6 images, 6 captions, 2 PDF pages" in out
    item = r"(\[(?:image|page|text)\] .*)"
    recall = re.findall(rf"^  \d\. {item}$", out.split("stage 2")[0], re.M)
    reranked = re.findall(rf"^  \d\. (\d\.\d{{4}})  {item}$", out.split("stage 2")[1], re.M)
    assert len(recall) == 6 and len(reranked) == 3
    assert_reranks_recall(recall, reranked)
    assert "query pipeline loaded back from YAML: same results" in out


def test_visual_document_rag(vllm_server, vllm_reranker_server, tmp_path):
    pytest.importorskip("pypdfium2")
    pytest.importorskip("reportlab")
    out = run_two_stage(
        "visual_document_rag.py",
        *("--k", "4", "--top-n", "2"),
        embedder=vllm_server,
        reranker=vllm_reranker_server,
        cwd=tmp_path,
    )
    # 3 report pages (prose, table, chart) + 1 menu page + 2 field-guide pages.
    assert "indexed 6 pages of 3 PDFs" in out
    page = r"(\w+\.pdf p\.\d)"
    recall = re.findall(rf"^  \d\. -?\d\.\d{{4}}  {page}$", out.split("stage 2")[0], re.M)
    reranked = re.findall(rf"^  \d\. (\d\.\d{{4}})  {page}$", out.split("stage 2")[1], re.M)
    assert len(recall) == len(set(recall)) == 4 and len(reranked) == 2
    assert_reranks_recall(recall, reranked)


# -- index_at_scale.py: incremental indexing that survives a kill ----------------------------


def _kill_at(args: list[str], prefix: str, env: dict[str, str], cwd: Path) -> list[str]:
    """Start the recipe, SIGKILL it once it prints a line starting with ``prefix``."""
    seen: list[str] = []
    with subprocess.Popen(
        [sys.executable, str(COOKBOOK / "index_at_scale.py"), *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            for out in proc.stdout:
                seen.append(out.rstrip("\n"))
                if out.startswith(prefix):
                    proc.send_signal(signal.SIGKILL)
                    break
        finally:
            proc.kill()
            proc.wait(timeout=60)
    assert seen and seen[-1].startswith(prefix), f"ended before {prefix!r}:\n" + "\n".join(seen)
    assert proc.returncode == -signal.SIGKILL
    return seen


def _index(args: list[str], server: Any, cwd: Path) -> str:
    proc = run_recipe(
        "index_at_scale.py",
        *args,
        base_url=server.base_url,
        model=server.model,
        cwd=cwd,
        timeout=600,
    )
    assert proc.returncode == 0, f"exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc.stdout


def _number(pattern: str, out: str) -> int:
    match = re.search(pattern, out)
    assert match, f"{pattern!r} not in:\n{out}"
    return int(match.group(1))


def test_index_at_scale_langchain_resumes_after_a_kill(vllm_server, tmp_path):
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    env = recipe_env(vllm_server.base_url, vllm_server.model)
    work = tmp_path / "lc"
    args = ["langchain", "--workdir", str(work), "--docs", "240", "--batch", "100"]
    # "batch 4" is printed when index() reads on: batches 1-3 are embedded and recorded.
    _kill_at(args, "batch 4", env, tmp_path)

    out = _index(args, vllm_server, tmp_path)
    splitter = RecursiveCharacterTextSplitter(chunk_size=600, chunk_overlap=0)
    chunks = sum(len(splitter.split_text(p.read_text())) for p in (work / "articles").glob("*.txt"))
    assert chunks > 240
    assert _number(r"skipped (\d+)", out) >= 300, "the killed run's batches were embedded again"
    added = _number(r"added (\d+)", out)
    assert 0 < added <= chunks - 300
    # One vector and one record per chunk: nothing lost, nothing twice.
    assert _number(r"collection holds (\d+) chunks", out) == chunks
    assert _number(r"records hold (\d+) keys", out) == chunks
    assert re.search(r"query '.+' -> \S+, \S+, \S+$", out, re.M)

    again = _index(args, vllm_server, tmp_path)
    assert f"indexed: added 0, updated 0, skipped {chunks}, deleted 0" in again
    assert _number(r"(\d+) requests to the server", again) == 0

    edited = _index([*args, "--edit", "3"], vllm_server, tmp_path)
    added, deleted = _number(r"added (\d+)", edited), _number(r"deleted (\d+)", edited)
    # Each edit appends a paragraph: it changes an article's last chunk or adds one after it,
    # so only 3..6 chunks are embedded and the rest are skipped.
    assert 3 <= added <= 6 and deleted <= 3
    assert _number(r"skipped (\d+)", edited) == chunks - deleted
    total = _number(r"collection holds (\d+) chunks", edited)
    assert total == _number(r"records hold (\d+) keys", edited) == chunks + added - deleted
    assert total == sum(
        len(splitter.split_text(p.read_text())) for p in (work / "articles").glob("*.txt")
    )


def test_index_at_scale_llama_index_workers_resume_after_a_kill(vllm_server, tmp_path):
    from llama_index.core import Document
    from llama_index.core.node_parser import SentenceSplitter

    env = recipe_env(vllm_server.base_url, vllm_server.model)
    work = tmp_path / "li"
    args = [
        "llama-index",
        "--workdir",
        str(work),
        "--docs",
        "150",
        "--images",
        "24",
        "--slice",
        "60",
        "--workers",
        "2",
    ]
    # "slice 2/3: ..." is printed once slice 2 is embedded, stored and its docstore saved.
    printed = _kill_at(args, "slice 2/3:", env, tmp_path)
    first = _number(r"slice 1/3: 60 documents, (\d+) nodes embedded", "\n".join(printed))
    assert first > 60

    out = _index(args, vllm_server, tmp_path)
    # The slices done before the kill are skipped whole; the rest is embedded.
    assert "slice 1/3: 60 documents, 0 nodes embedded" in out
    assert "slice 2/3: 60 documents, 0 nodes embedded" in out
    third = _number(r"slice 3/3: 54 documents, (\d+) nodes embedded", out)
    assert _number(r", (\d+) images\)", out) == 24, "image documents are embedded as images"

    def expected_nodes() -> int:
        # As the recipe builds them: the metadata counts against the chunk size.
        texts = [
            Document(text=p.read_text(), metadata={"source": p.name})
            for p in (work / "articles").glob("*.txt")
        ]
        split = SentenceSplitter(chunk_size=256, chunk_overlap=0)
        return len(split.get_nodes_from_documents(texts)) + 24

    nodes = expected_nodes()
    assert nodes > first + third
    assert _number(r"collection holds (\d+) nodes", out) == nodes
    assert _number(r"docstore holds (\d+) documents", out) == 174

    again = _index(args, vllm_server, tmp_path)
    assert re.search(r"embedded 0 nodes \(0 text chunks, 0 images\) with num_workers=2", again)

    edited = _index([*args, "--edit", "2"], vllm_server, tmp_path)
    assert 2 <= _number(r"slice 1/3: 60 documents, (\d+) nodes embedded", edited) <= 40
    assert "slice 2/3: 60 documents, 0 nodes embedded" in edited
    # An edited article's old nodes are replaced, not kept beside the new ones.
    assert _number(r"collection holds (\d+) nodes", edited) == expected_nodes()
    assert _number(r"docstore holds (\d+) documents", edited) == 174
