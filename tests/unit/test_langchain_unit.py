"""VLLMMultimodalEmbeddings without a server: LangChain's standard unit suite, settings, secrets."""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import pytest
from langchain_tests.unit_tests import EmbeddingsUnitTests
from pydantic import ValidationError

from vllm_multimodal_embeddings import InputError
from vllm_multimodal_embeddings.langchain import VLLMMultimodalEmbeddings
from vllm_multimodal_embeddings.langchain.embeddings import _to_inputs

SECRET = "sk-unit-test-secret-4f9a"
URL = "http://vllm.invalid:8000"


class TestVLLMMultimodalEmbeddingsStandard(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[VLLMMultimodalEmbeddings]:
        return VLLMMultimodalEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"base_url": URL, "model": "tiny-qwen3-vl-embedding"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {
                "VLLM_BASE_URL": URL,
                "VLLM_API_KEY": SECRET,
                "VLLM_EMBEDDING_MODEL": "env-model",
            },
            {},
            {"base_url": URL, "api_key": SECRET, "model": "env-model"},
        )


def make(**kwargs: Any) -> VLLMMultimodalEmbeddings:
    return VLLMMultimodalEmbeddings(**{"base_url": URL, "model": "m", **kwargs})


def test_core_package_does_not_import_langchain() -> None:
    code = (
        "import sys, vllm_multimodal_embeddings; "
        "print(any(m.split('.')[0] == 'langchain_core' for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_api_key_never_shown() -> None:
    emb = make(api_key=SECRET, default_headers={"X-Token": "header-secret"})
    for text in (repr(emb), str(emb)):
        assert SECRET not in text
        assert "header-secret" not in text
    assert SECRET not in emb.model_dump_json()
    assert emb.api_key is not None
    assert emb.api_key.get_secret_value() == SECRET
    # The core client built from it does not show it either.
    assert SECRET not in repr(emb._sync_client())
    emb.close()


def test_env_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    monkeypatch.delenv("VLLM_EMBEDDING_MODEL", raising=False)
    monkeypatch.setenv("VLLM_BASE_URL", URL)
    emb = VLLMMultimodalEmbeddings()
    assert (emb.base_url, emb.api_key, emb.model) == (URL, None, None)


def test_missing_base_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="VLLM_BASE_URL"):
        VLLMMultimodalEmbeddings()


def test_model_name_alias_and_extra_forbid() -> None:
    # The pydantic mypy plugin does not see validation_alias choices.
    emb = VLLMMultimodalEmbeddings(base_url=URL, model_name="alias-model")  # type: ignore[call-arg]
    assert emb.model == "alias-model"
    with pytest.raises(ValidationError, match="dimension"):
        make(dimension=64)  # a typo of dimensions must not pass silently


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dimensions": 0}, "greater than or equal to 1"),
        ({"batch_size": 0}, "greater than or equal to 1"),
        ({"timeout": 0}, "greater than 0"),
        ({"protocol": "grpc"}, "chat"),
        ({"base_url": "localhost:8000"}, "http"),
        ({"protocol": "cohere", "query_instruction": "Find it."}, "task_instructions"),
    ],
)
def test_bad_settings_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((ValidationError, ValueError), match=message):
        make(**kwargs)


def test_cache_namespace_tracks_vector_settings() -> None:
    base = make()
    variants = [
        make(model="other"),
        make(dimensions=64),
        make(document_instruction="Represent the product photo."),
        make(query_instruction="Find the product."),
        make(truncate="END"),
        make(protocol="cohere"),
    ]
    spaces = [base.cache_namespace] + [v.cache_namespace for v in variants]
    assert len(set(spaces)) == len(spaces)
    # Settings that do not change vectors share the namespace.
    assert make(batch_size=3, timeout=5.0).cache_namespace == base.cache_namespace
    # Spelling out the model's default instruction is the same namespace as leaving it unset.
    assert (
        make(document_instruction="Represent the user's input.").cache_namespace
        == base.cache_namespace
    )
    assert base.cache_namespace.startswith("vllm-mm:m:chat:full:")
    for emb in [base, *variants]:
        emb.close()


def test_assigning_a_setting_rebuilds_the_client() -> None:
    emb = make()
    first = emb._sync_client()
    assert emb._sync_client() is first
    emb.dimensions = 32
    second = emb._sync_client()
    assert second is not first
    assert second.dimensions == 32
    emb.close()


def test_multimodal_items_from_mappings() -> None:
    items = _to_inputs(["plain", {"text": "cap", "image": "a.png"}])
    assert items[0] == "plain"
    assert getattr(items[1], "text", None) == "cap"
    assert getattr(items[1], "image", None) == "a.png"
    with pytest.raises(InputError) as info:
        _to_inputs(["ok", {"txt": "typo"}])
    assert info.value.index == 1
    assert "txt" in str(info.value)
    with pytest.raises(InputError) as info:
        _to_inputs([{}])
    assert info.value.index == 0


def test_copies_get_their_own_client() -> None:
    emb = make()
    original = emb._sync_client()
    shallow = emb.model_copy(update={"dimensions": 16})
    deep = copy.deepcopy(emb)
    assert shallow._sync_client() is not original
    assert shallow._sync_client().dimensions == 16
    assert deep._sync_client() is not original
    assert deep.model_dump() == emb.model_dump()
    assert emb._sync_client() is original
    for e in (emb, shallow, deep):
        e.close()
