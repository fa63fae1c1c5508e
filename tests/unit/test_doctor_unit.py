"""doctor's pieces that need no server: results, exit code, table, CLI wiring."""

from __future__ import annotations

import io
import json
import shlex

import numpy as np
import pytest
from PIL import Image

from vllm_multimodal_embeddings.__main__ import build_parser, main
from vllm_multimodal_embeddings.doctor import (
    FIX_MATRYOSHKA,
    FIX_PROCESSOR,
    FIX_TASK_INSTRUCTIONS,
    PREPROCESSING_PROBES,
    CheckResult,
    exit_code,
    gradient_png,
    official_image_tokens,
    probe_image_png,
    render_table,
)
from vllm_multimodal_embeddings.server.flags import (
    DEFAULT_TASK_INSTRUCTIONS,
    cpu_test_config,
    production_config,
    vllm_args,
)

OK = CheckResult("reachable", "ok", "error", "GET /health -> 200")
WARN = CheckResult("batched conversations", "warn", "warning", "one per request", "upgrade")
FAIL = CheckResult("matryoshka", "fail", "error", "dimensions refused (400)", FIX_MATRYOSHKA)


def test_only_failed_error_checks_make_the_exit_code_non_zero():
    assert exit_code([OK]) == 0
    assert exit_code([OK, WARN]) == 0
    assert exit_code([OK, WARN, FAIL]) == 1
    assert not WARN.is_error
    assert FAIL.is_error


def test_table_shows_fixes_for_failures_and_warnings_only():
    ok_with_fix = CheckResult("version", "ok", "warning", "vLLM 0.32.0", "never shown")
    table = render_table([OK, ok_with_fix, WARN, FAIL], "http://h:8000")
    assert "never shown" not in table
    assert f"fix: {FIX_MATRYOSHKA}" in table
    assert "fix: upgrade" in table
    assert "FAIL  matryoshka" in table
    assert "WARN  batched conversations" in table
    assert table.endswith("1 error(s), 1 warning(s): this server gives wrong or failing results")


def test_task_instruction_fix_carries_the_packaged_instructions():
    # The fix is pasted into a shell: it must split into the flag and one valid JSON word.
    words = shlex.split(FIX_TASK_INSTRUCTIONS)
    assert words[0] == "--hf-overrides"
    assert json.loads(words[1]) == {"task_instructions": dict(DEFAULT_TASK_INSTRUCTIONS)}


def test_probe_image_is_a_deterministic_rgb_png():
    import io

    png = probe_image_png()
    assert png == probe_image_png()
    with Image.open(io.BytesIO(png)) as im:
        assert (im.format, im.mode) == ("PNG", "RGB")
        # Not a flat colour: a blank image would hide a wrong rendering less well.
        assert len(np.unique(np.asarray(im).reshape(-1, 3), axis=0)) > 100


def test_doctor_without_a_base_url_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.delenv("VLLM_BASE_URL", raising=False)
    assert main(["doctor"]) == 2
    assert "--base-url" in capsys.readouterr().out


def test_server_args_shell_and_json_match_flags_py(capsys):
    assert main(["server-args"]) == 0
    assert shlex.split(capsys.readouterr().out) == vllm_args(production_config())
    assert main(["server-args", "--profile", "cpu", "--format", "json"]) == 0
    cpu = json.loads(capsys.readouterr().out)
    test_cfg = cpu_test_config("m")
    assert cpu[cpu.index("--dtype") + 1] == test_cfg.dtype
    assert ("--enforce-eager" in cpu) == test_cfg.enforce_eager
    assert cpu[cpu.index("--model") + 1] == production_config().model


def test_cli_has_the_three_subcommands():
    parser = build_parser()
    for command in ("doctor", "server-args", "serve-cpu"):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([command, "--help"])
        assert exc.value.code == 0


def test_preprocessing_probes_straddle_the_official_budget():
    # One probe under 4,096 px and one over 1,843,200 px: a checkpoint whose limits differ on
    # either side changes a token count. Official counts: one token per 32x32 after resizing.
    (small_w, small_h), (big_w, big_h) = PREPROCESSING_PROBES
    assert small_w * small_h < 4_096 < 1_843_200 < big_w * big_h
    assert official_image_tokens(small_w, small_h) == 6  # 96x64
    assert official_image_tokens(big_w, big_h) == 56 * 31  # 1792x992
    assert official_image_tokens(640, 480) == 20 * 15
    with Image.open(io.BytesIO(gradient_png(big_w, big_h))) as im:
        assert (im.size, im.mode) == ((big_w, big_h), "RGB")


def test_processor_fix_is_the_flag_flags_py_emits():
    args = vllm_args(production_config())
    flag = args[args.index("--mm-processor-kwargs") + 1]
    assert FIX_PROCESSOR.startswith("--mm-processor-kwargs '")
    assert json.loads(FIX_PROCESSOR.split("'")[1]) == json.loads(flag)
