"""The reranker doctor against real servers: the reranker passes, the embedder is told the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from vllm_multimodal_embeddings.__main__ import main
from vllm_multimodal_embeddings.reranking.doctor import FIX_TEMPLATE, run_reranker_checks


def test_reranker_server_passes_every_check(vllm_reranker_server, capsys):
    checks = run_reranker_checks(
        vllm_reranker_server.base_url, model=vllm_reranker_server.model, timeout=120
    )
    assert [c.name for c in checks] == [
        "reachable",
        "rerank endpoint",
        "scores are P(yes)",
        "judge-prompt template",
        "image documents",
    ]
    assert all(c.status == "ok" for c in checks), checks
    argv = ["doctor", "--reranker", "--base-url", vllm_reranker_server.base_url, "--json"]
    code = main([*argv, "--model", vllm_reranker_server.model, "--timeout", "120"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["exit_code"] == 0
    assert [c["name"] for c in out["checks"]] == [c.name for c in checks]


def test_doctor_reranker_finds_the_reranker_by_its_variable(
    vllm_server, vllm_reranker_server, monkeypatch, capsys
):
    # Both variables set, as in a two-stage setup: --reranker takes the reranker's.
    monkeypatch.setenv("VLLM_BASE_URL", vllm_server.base_url)
    monkeypatch.setenv("VLLM_RERANKER_BASE_URL", vllm_reranker_server.base_url)
    monkeypatch.setenv("VLLM_RERANKER_MODEL", vllm_reranker_server.model)
    assert main(["doctor", "--reranker", "--json", "--timeout", "120"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["base_url"] == vllm_reranker_server.base_url
    assert {c["name"] for c in out["checks"]} >= {"rerank endpoint", "judge-prompt template"}


def test_old_module_entry_point_is_a_deprecated_alias(vllm_reranker_server):
    proc = subprocess.run(
        [sys.executable, "-m", "vllm_multimodal_embeddings.reranking.doctor", "--json"],
        env={
            **os.environ,
            "VLLM_RERANKER_BASE_URL": vllm_reranker_server.base_url,
            "VLLM_RERANKER_MODEL": vllm_reranker_server.model,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "deprecated" in proc.stderr and "vllm-mm-embed doctor --reranker" in proc.stderr
    assert json.loads(proc.stdout)["exit_code"] == 0


def test_embedding_server_is_not_a_reranker(vllm_server):
    # vLLM answers /rerank on an embedding model too (cosine similarity of the two vectors):
    # the endpoint check passes, and the instruction check is what tells the servers apart.
    checks = run_reranker_checks(vllm_server.base_url, model=vllm_server.model, timeout=120)
    by_name = {c.name: c for c in checks}
    assert by_name["rerank endpoint"].status == "ok"
    assert by_name["judge-prompt template"].status == "fail"
    assert by_name["judge-prompt template"].fix == FIX_TEMPLATE
    assert "embedding server" in FIX_TEMPLATE


def test_unreachable_server_stops_at_the_first_check():
    checks = run_reranker_checks("http://127.0.0.1:9", timeout=5)
    assert [(c.name, c.status) for c in checks] == [("reachable", "fail")]
