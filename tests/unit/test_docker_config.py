"""docker/compose.yaml stays in step with server/flags.py, checked statically (no Docker here)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path, PurePosixPath

import pytest
import yaml

from vllm_multimodal_embeddings.__main__ import CONTAINER_TEMPLATE, docker_config, main
from vllm_multimodal_embeddings.server.flags import (
    CHAT_TEMPLATE_PATH,
    CPU_PRODUCTION_ENV,
    DEFAULT_RERANKER_MODEL,
    RERANKER_CHAT_TEMPLATE_PATH,
    reranker_config,
    vllm_args,
)

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
SERVICES = {"gpu": "vllm", "cpu": "vllm-cpu"}
RERANKER_SERVICE = "vllm-reranker"
_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def substitute(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ``${VAR:-default}`` interpolation, with ``env`` standing for the shell."""
    env = env or {}
    return _VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)


def expected_args(profile: str, model: str | None = None) -> list[str]:
    cfg = docker_config(profile, model).with_(chat_template=CONTAINER_TEMPLATE)
    return vllm_args(cfg)


def test_services(compose):
    assert set(compose["services"]) == set(SERVICES.values()) | {RERANKER_SERVICE}
    assert compose["services"]["vllm-cpu"]["profiles"] == ["cpu"]
    # The GPU service runs on a plain `docker compose up`.
    assert "profiles" not in compose["services"]["vllm"]


@pytest.mark.parametrize("profile", sorted(SERVICES))
def test_command_equals_flags_py(compose, profile):
    command = compose["services"][SERVICES[profile]]["command"]
    assert [substitute(a) for a in command] == expected_args(profile)


@pytest.mark.parametrize("profile", sorted(SERVICES))
def test_model_variable_switches_to_8b(compose, profile):
    command = compose["services"][SERVICES[profile]]["command"]
    env = {"MODEL": "Qwen/Qwen3-VL-Embedding-8B"}
    assert [substitute(a, env) for a in command] == expected_args(profile, env["MODEL"])


def test_hf_overrides_turn_on_matryoshka_and_both_task_instructions(compose):
    command = compose["services"]["vllm"]["command"]
    overrides = json.loads(command[command.index("--hf-overrides") + 1])
    assert overrides["is_matryoshka"] is True
    assert {"query", "document", "search_query", "search_document"} <= set(
        overrides["task_instructions"]
    )


OFFICIAL_VIDEOS_KWARGS = {
    "min_pixels": 524288,
    "max_pixels": 50331648,
    "cap_pixels_per_frame": True,
}


@pytest.mark.parametrize("profile", sorted(SERVICES))
def test_every_service_pins_the_official_image_and_video_budget(compose, profile):
    command = compose["services"][SERVICES[profile]]["command"]
    kwargs = json.loads(command[command.index("--mm-processor-kwargs") + 1])
    assert kwargs == {
        "min_pixels": 4096,
        "max_pixels": 1843200,
        "videos_kwargs": OFFICIAL_VIDEOS_KWARGS,
    }
    media = json.loads(command[command.index("--media-io-kwargs") + 1])
    assert media == {"video": {"fps": 1, "max_frames": 64}}
    # The client sends per-video fields for what the flags cannot match.
    assert "--trust-request-mm-kwargs" in command


def test_server_args_cpu_prints_the_processor_and_video_flags(capsys):
    assert main(["server-args", "--profile", "cpu"]) == 0
    line = capsys.readouterr().out
    assert (
        """--mm-processor-kwargs '{"min_pixels":4096,"max_pixels":1843200,"videos_kwargs":"""
        """{"min_pixels":524288,"max_pixels":50331648,"cap_pixels_per_frame":true}}'"""
    ) in line
    assert """--media-io-kwargs '{"video":{"fps":1,"max_frames":64}}'""" in line
    assert "--trust-request-mm-kwargs" in line


def test_server_args_gpu_says_the_host_ram_it_needs_on_stderr(capsys):
    assert main(["server-args", "--profile", "gpu", "--format", "json"]) == 0
    captured = capsys.readouterr()
    flags = json.loads(captured.out)  # stdout stays the flags alone
    assert flags[flags.index("--mm-processor-cache-gb") + 1] == "1"
    assert "host RAM: ~24 GB" in captured.err and "32 GB" in captured.err
    assert main(["server-args", "--profile", "cpu"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("profile", sorted(SERVICES))
def test_server_args_compose_format_prints_the_compose_command(compose, profile, capsys):
    assert main(["server-args", "--profile", profile, "--format", "compose"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)["command"]
    assert printed == compose["services"][SERVICES[profile]]["command"]


def test_gpu_image_is_pinned_to_the_test_servers_vllm(compose):
    script = (ROOT / "scripts" / "server-venv.sh").read_text()
    match = re.search(r"^VLLM_CPU_VERSION=(\S+)$", script, re.M)
    assert match, "scripts/server-venv.sh no longer pins VLLM_CPU_VERSION"
    assert compose["services"]["vllm"]["image"] == f"vllm/vllm-openai:v{match.group(1)}"
    assert compose["services"]["vllm-cpu"]["image"].endswith(f":{match.group(1)}")


def test_gpu_reservation(compose):
    devices = compose["services"]["vllm"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]


@pytest.mark.source_tree
@pytest.mark.parametrize("service", sorted(SERVICES.values()))
def test_template_mount_is_the_packaged_one_read_only(compose, service):
    mounts = [v.split(":") for v in compose["services"][service]["volumes"]]
    template = [m for m in mounts if m[1] == str(CONTAINER_TEMPLATE)]
    assert len(template) == 1
    source, _, mode = template[0]
    assert (DOCKER / source).resolve() == CHAT_TEMPLATE_PATH.resolve()
    assert mode == "ro"
    assert ["hf-cache", "/root/.cache/huggingface"] in mounts
    assert "hf-cache" in compose["volumes"]


@pytest.mark.parametrize("service", sorted(SERVICES.values()))
def test_healthcheck_api_key_and_port(compose, service):
    svc = compose["services"][service]
    assert "/health" in " ".join(svc["healthcheck"]["test"])
    assert svc["environment"]["VLLM_API_KEY"] == "${VLLM_API_KEY:-}"
    assert svc["ports"] == ["${PORT:-8000}:8000"]
    # The key travels in the environment, never on the command line.
    assert "--api-key" not in svc["command"]


def test_cpu_service_kv_cache_matches_flags_py(compose):
    want = CPU_PRODUCTION_ENV["VLLM_CPU_KVCACHE_SPACE"]
    env = compose["services"]["vllm-cpu"]["environment"]
    assert env["VLLM_CPU_KVCACHE_SPACE"] == f"${{VLLM_CPU_KVCACHE_SPACE:-{want}}}"


def test_cpu_image_installs_with_the_test_suites_script(compose):
    build = compose["services"]["vllm-cpu"]["build"]
    assert (DOCKER / build["context"]).resolve() == ROOT
    dockerfile = (ROOT / build["dockerfile"]).read_text()
    assert "COPY scripts/server-venv.sh" in dockerfile
    assert re.search(r"^RUN .*bash /tmp/server-venv\.sh", dockerfile, re.M)
    assert "vllm.entrypoints.openai.api_server" in dockerfile


def test_env_example_lists_every_variable(compose):
    used = set(_VAR.findall(COMPOSE.read_text()))
    example = {
        line.split("=", 1)[0]
        for line in (DOCKER / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert {name for name, _ in used} == example


def test_docker_readme_shows_the_same_flags(capsys):
    assert (
        main(["server-args", "--profile", "gpu", "--chat-template", str(CONTAINER_TEMPLATE)]) == 0
    )
    line = capsys.readouterr().out.strip()
    readme = (DOCKER / "README.md").read_text()
    assert line in readme, "docker/README.md: paste `vllm-mm-embed server-args` output"
    assert shlex.split(line) == expected_args("gpu")


# --- the reranker service (profile reranker) ---------------------------------------------------

RERANKER_CONTAINER_TEMPLATE = PurePosixPath("/templates") / RERANKER_CHAT_TEMPLATE_PATH.name


def expected_reranker_args(model: str = DEFAULT_RERANKER_MODEL) -> list[str]:
    return vllm_args(reranker_config(model, chat_template=RERANKER_CONTAINER_TEMPLATE))


def test_server_args_reranker_profile_prints_the_reranker_command(compose, capsys):
    assert main(["server-args", "--profile", "reranker", "--format", "compose"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)["command"]
    assert printed == compose["services"][RERANKER_SERVICE]["command"]
    template = str(RERANKER_CONTAINER_TEMPLATE)
    assert main(["server-args", "--profile", "reranker", "--chat-template", template]) == 0
    assert shlex.split(capsys.readouterr().out) == expected_reranker_args()
    assert main(["server-args", "--profile", "reranker", "--format", "json"]) == 0
    args = json.loads(capsys.readouterr().out)
    assert args[args.index("--chat-template") + 1] == str(RERANKER_CHAT_TEMPLATE_PATH)


@pytest.mark.parametrize(
    "env", [{}, {"RERANKER_MODEL": "Qwen/Qwen3-VL-Reranker-8B"}], ids=["default", "8b"]
)
def test_reranker_command_equals_flags_py(compose, env):
    command = compose["services"][RERANKER_SERVICE]["command"]
    model = env.get("RERANKER_MODEL", DEFAULT_RERANKER_MODEL)
    assert [substitute(a, env) for a in command] == expected_reranker_args(model)


def test_reranker_hf_overrides_make_a_yes_no_classifier(compose):
    command = compose["services"][RERANKER_SERVICE]["command"]
    overrides = json.loads(command[command.index("--hf-overrides") + 1])
    assert overrides == {
        "architectures": ["Qwen3VLForSequenceClassification"],
        "classifier_from_token": ["no", "yes"],
        "is_original_qwen3_reranker": True,
    }


def test_reranker_samples_videos_officially_but_trusts_no_request_kwargs(compose):
    # The official reranker samples videos like the embedder; its client sends no video fields.
    command = compose["services"][RERANKER_SERVICE]["command"]
    assert json.loads(command[command.index("--media-io-kwargs") + 1]) == {
        "video": {"fps": 1, "max_frames": 64}
    }
    assert "--trust-request-mm-kwargs" not in command


@pytest.mark.source_tree
def test_reranker_mounts_the_packaged_score_template_read_only(compose):
    mounts = [v.split(":") for v in compose["services"][RERANKER_SERVICE]["volumes"]]
    template = [m for m in mounts if m[1] == str(RERANKER_CONTAINER_TEMPLATE)]
    assert len(template) == 1
    source, _, mode = template[0]
    assert (DOCKER / source).resolve() == RERANKER_CHAT_TEMPLATE_PATH.resolve()
    assert mode == "ro"
    assert ["hf-cache", "/root/.cache/huggingface"] in mounts


def test_reranker_runs_beside_the_embedder_only_on_request(compose):
    svc = compose["services"][RERANKER_SERVICE]
    # A plain `docker compose up` must not start a second vLLM on the embedder's GPU.
    assert svc["profiles"] == ["reranker"]
    assert svc["ports"] == ["${RERANKER_PORT:-8001}:8000"]
    assert svc["image"] == compose["services"]["vllm"]["image"]
    assert svc["environment"]["VLLM_API_KEY"] == "${VLLM_API_KEY:-}"
    assert "--api-key" not in svc["command"]
    assert "/health" in " ".join(svc["healthcheck"]["test"])
