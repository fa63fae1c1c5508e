"""Every surface that offers a setting takes it from its one declaration.

A setting is declared once, in its group (name, type, default, environment variable, doc). The
adapters, the reranker adapters, ``vllm-mm-embed embed`` and ``vllm-mm-embed doctor`` offer
settings to users; this test walks each of them and fails when one lacks a setting it should
have or disagrees with the declaration on a default.
"""

from __future__ import annotations

import argparse
import collections.abc
import types
import typing
from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import SecretStr
from pydantic_core import PydanticUndefined

from vllm_multimodal_embeddings import ClientSettings
from vllm_multimodal_embeddings.__main__ import build_parser
from vllm_multimodal_embeddings._settings import declarations
from vllm_multimodal_embeddings.adapters._clients import RERANKER_FIELDS
from vllm_multimodal_embeddings.bulk.cli import FLAGS, SETTINGS
from vllm_multimodal_embeddings.haystack.components import EmbedderCore, RankerCore
from vllm_multimodal_embeddings.langchain import VLLMMultimodalEmbeddings
from vllm_multimodal_embeddings.langchain import VLLMMultimodalReranker as LangChainReranker
from vllm_multimodal_embeddings.langchain.embeddings import RENAMED as LC_RENAMED
from vllm_multimodal_embeddings.llama_index import VLLMMultiModalEmbedding
from vllm_multimodal_embeddings.llama_index import VLLMMultimodalReranker as LlamaReranker
from vllm_multimodal_embeddings.llama_index.embedding import RENAMED as LI_RENAMED
from vllm_multimodal_embeddings.reranking import RerankerSettings
from vllm_multimodal_embeddings.transport._settings import ConnectionSettings

# Where a framework's own convention differs from the declaration, on purpose.
_CONVENTIONS = {
    (VLLMMultiModalEmbedding, "model"): "",  # LlamaIndex's model_name: "" asks the server
    # The reranker adapters' batch size is the reranker's fixed 16, not "adapt" (None).
    (LangChainReranker, "batch_size"): 16,
    (LlamaReranker, "batch_size"): 16,
    (LangChainReranker, "max_concurrency"): 4,
    (LlamaReranker, "max_concurrency"): 4,
    (RankerCore, "batch_size"): 16,
    (RankerCore, "max_concurrency"): 4,
}


def _norm(hint: Any) -> Any:
    """A type as a framework field may spell it: ``X | None`` as ``X``, any mapping as
    ``dict``, a secret as ``str``; a field may be required where the setting takes ``None``
    (the reranker's fixed batch size), so ``None`` is dropped on both sides."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return _norm(rest[0]) if len(rest) == 1 else tuple(_norm(a) for a in rest)
    if hint is SecretStr:
        return str
    origin = typing.get_origin(hint)
    if origin in (dict, Mapping, collections.abc.Mapping):
        return (dict, args)
    if origin is typing.Literal:
        return ("Literal", frozenset(args))
    return hint


def _field_default(cls: type, name: str) -> Any:
    field = cls.model_fields[name]  # type: ignore[attr-defined]
    return "<from the environment>" if field.default is PydanticUndefined else field.default


@pytest.mark.parametrize(
    ("cls", "group", "names", "renamed"),
    [
        (VLLMMultimodalEmbeddings, ClientSettings, None, LC_RENAMED),
        (VLLMMultiModalEmbedding, ClientSettings, None, LI_RENAMED),
        (LangChainReranker, RerankerSettings, RERANKER_FIELDS, {}),
        (LlamaReranker, RerankerSettings, RERANKER_FIELDS, {}),
        # The Haystack components hold these models (see haystack/components.py).
        (EmbedderCore, ClientSettings, None, {}),
        # Its image and PDF settings too: Haystack components take no settings object.
        (
            RankerCore,
            RerankerSettings,
            tuple(n for n in RerankerSettings.names() if n != "headers"),
            {},
        ),
    ],
)
def test_adapters_offer_each_setting_with_its_declared_type_and_default(
    cls: type, group: type, names: tuple[str, ...] | None, renamed: dict[str, str]
) -> None:
    declared = declarations(group)
    missing, differ = [], []
    for name in names or declared:
        field = renamed.get(name, name)
        if field not in cls.model_fields:  # type: ignore[attr-defined]
            missing.append(name)
            continue
        annotation = cls.model_fields[field].annotation  # type: ignore[attr-defined]
        if _norm(annotation) != _norm(declared[name].type):
            differ.append(f"{name}: type {annotation} != {declared[name].type}")
        got, want = _field_default(cls, field), declared[name].default
        if got == "<from the environment>" and declared[name].env:
            continue
        if (cls, name) in _CONVENTIONS:
            want = _CONVENTIONS[cls, name]
        if got != want:
            differ.append(f"{name}: {got!r} != {want!r}")
    assert (missing, differ) == ([], [])


def _options(command: str) -> dict[str, argparse.Action]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices[command]._actions}


def test_the_embed_command_generates_its_setting_options() -> None:
    options = _options("embed")
    declared = declarations(ClientSettings)
    for name in SETTINGS:
        action = options[name]
        assert action.default is None  # left out: the setting's own default applies
        assert FLAGS.get(name, "--" + name.replace("_", "-")) in action.option_strings
        default = declared[name].default
        if default is not None:
            assert f"(default: {default})" in (action.help or "")
        elif declared[name].env:
            assert f"${declared[name].env}" in (action.help or "")


def test_the_doctor_times_out_as_every_client_does() -> None:
    action = _options("doctor")["timeout"]
    declared = declarations(ConnectionSettings)["timeout"]
    assert action.default is None and f"(default: {declared.default})" in (action.help or "")


def test_a_bad_option_value_is_judged_by_the_setting_itself(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    from vllm_multimodal_embeddings.__main__ import main

    code = main(["embed", "--base-url", "http://x.test", "--dir", str(tmp_path), "--out",
                 str(tmp_path / "o"), "--timeout", "0"])  # fmt: skip
    assert code == 2
    assert "timeout must be a finite number of seconds > 0" in capsys.readouterr().err
