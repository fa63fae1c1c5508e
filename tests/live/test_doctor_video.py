"""The doctor's video preprocessing check against real servers: ours, and one without flags."""

from __future__ import annotations

import pytest

from vllm_multimodal_embeddings import EmbeddingClient
from vllm_multimodal_embeddings.doctor import (
    FIX_VIDEO,
    official_video_tokens,
    video_preprocessing_check,
)

pytest.importorskip("av")


def _check(server):
    with EmbeddingClient(base_url=server.base_url, model=server.model, max_retries=0) as client:
        return video_preprocessing_check(client._transport, server.model)


def test_video_check_passes_on_a_server_with_our_flags(vllm_server) -> None:
    result = _check(vllm_server)
    assert result.status == "ok", result
    assert f"{official_video_tokens(8, 4, 480, 352)} video tokens" in result.detail
    assert f"{official_video_tokens(5, 4, 480, 352)} video tokens" in result.detail


def test_video_check_fails_without_the_flags_and_names_them(bare_vllm_server) -> None:
    result = _check(bare_vllm_server)
    assert result.status == "fail" and result.is_error
    # The first probe gets other token counts; the second's request fields are refused.
    assert result.fix is not None and result.fix.startswith(FIX_VIDEO)
    assert "--trust-request-mm-kwargs" in result.fix
    assert "request video fields refused" in result.detail
