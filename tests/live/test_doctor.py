"""``doctor`` against real servers: the shared test server passes, a misconfigured one fails."""

from __future__ import annotations

import json

from vllm_multimodal_embeddings.__main__ import main
from vllm_multimodal_embeddings.doctor import (
    FIX_CHAT_TEMPLATE,
    FIX_MATRYOSHKA,
    FIX_PROCESSOR,
    PARITY_MIN_COSINE,
    exit_code,
    render_table,
    run_checks,
)

ALL_CHECKS = [
    "reachable",
    "model",
    "version",
    "/v2/embed",
    "batched conversations",
    "chat protocol",
    "image preprocessing",
    "video preprocessing",
    "matryoshka",
    "input_type",
    "normalized",
    "parity image",
    "parity text",
]


def test_doctor_passes_every_check_on_the_test_server(vllm_server):
    checks = run_checks(vllm_server.base_url, model=vllm_server.model)
    table = render_table(checks, vllm_server.base_url)
    assert [c.name for c in checks] == ALL_CHECKS, table
    assert all(c.status == "ok" for c in checks), table
    assert exit_code(checks) == 0
    parity = {c.name: c.value for c in checks if c.name.startswith("parity")}
    assert all(v is not None and v >= PARITY_MIN_COSINE for v in parity.values()), parity


def test_doctor_cli_json_exits_0_on_the_test_server(vllm_server, capsys):
    argv = ["doctor", "--base-url", vllm_server.base_url, "--model", vllm_server.model, "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["exit_code"] == 0
    assert [c["name"] for c in out["checks"]] == ALL_CHECKS
    assert not any(c["is_error"] for c in out["checks"])


def test_doctor_reports_an_unreachable_server_as_an_error(capsys):
    # Port 9 (discard) on loopback: nothing listens there on a test machine.
    assert main(["doctor", "--base-url", "http://127.0.0.1:9", "--timeout", "2"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  reachable" in out
    assert "fix: start the server" in out


def test_doctor_names_the_fix_for_each_missing_flag(bare_vllm_server, capsys):
    server = bare_vllm_server
    checks = run_checks(server.base_url, model=server.model)
    code = main(["doctor", "--base-url", server.base_url, "--model", server.model])
    table = capsys.readouterr().out
    by_name = {c.name: c for c in checks}
    assert [c.name for c in checks] == ALL_CHECKS, table
    for name in ("image preprocessing", "matryoshka", "input_type", "parity image", "parity text"):
        assert by_name[name].status == "fail", table
        assert by_name[name].is_error
    assert by_name["matryoshka"].fix == FIX_MATRYOSHKA
    assert "task_instructions" in (by_name["input_type"].fix or "")
    assert by_name["parity image"].fix is not None
    assert FIX_CHAT_TEMPLATE in by_name["parity image"].fix
    # What the misconfiguration does not touch still passes.
    for name in ("reachable", "model", "chat protocol", "normalized", "batched conversations"):
        assert by_name[name].status == "ok", table
    assert exit_code(checks) == 1
    assert code == 1
    assert "--hf-overrides '{\"is_matryoshka\": true}'" in table
    assert "--chat-template" in table
    # The checkpoint's own limits (65,536..262,144 px) resized both probes: the doctor says
    # by how much and names the flag.
    assert by_name["image preprocessing"].fix == FIX_PROCESSOR
    assert "--mm-processor-kwargs" in table
    assert "official 6" in by_name["image preprocessing"].detail, table
    assert "official 1736" in by_name["image preprocessing"].detail, table
    # Recorded for the report: how far /v2/embed drifts from chat without our template.
    for name in ("parity image", "parity text"):
        value = by_name[name].value
        assert value is not None and value < PARITY_MIN_COSINE, (name, value)
    print({n: by_name[n].value for n in ("parity image", "parity text")})
