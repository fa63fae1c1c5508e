"""The reranker doctor against real servers: the reranker passes, the embedder is told the fix."""

from __future__ import annotations

import json

from vllm_multimodal_embeddings.reranking.doctor import FIX_TEMPLATE, main, run_reranker_checks


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
    code = main(["--base-url", vllm_reranker_server.base_url, "--json", "--timeout", "120"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["exit_code"] == 0


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
