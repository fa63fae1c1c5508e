"""LangChain's standard integration suite for VLLMMultimodalEmbeddings, against the real server."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from langchain_tests.integration_tests import EmbeddingsIntegrationTests

from vllm_multimodal_embeddings.langchain import VLLMMultimodalEmbeddings

# The suite's async tests carry no asyncio mark and the project runs pytest-asyncio in strict
# mode. Marking the suite's own functions in place (rather than overriding them) keeps its
# test_no_overrides_DO_NOT_OVERRIDE check meaningful.
for _name in dir(EmbeddingsIntegrationTests):
    _test = getattr(EmbeddingsIntegrationTests, _name)
    if _name.startswith("test_") and inspect.iscoroutinefunction(_test):
        pytest.mark.asyncio(_test)


class TestVLLMMultimodalEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @pytest.fixture(autouse=True)
    def _server(self, vllm_server: Any) -> None:
        self._live = vllm_server

    @property
    def embeddings_class(self) -> type[VLLMMultimodalEmbeddings]:
        return VLLMMultimodalEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"base_url": self._live.base_url, "model": self._live.model}

    # Replaces the suite's fixture only to close the connections it opens (a leaked socket is
    # a ResourceWarning, an error here); async so that it closes on the test's own loop.
    @pytest_asyncio.fixture
    async def model(self) -> AsyncIterator[VLLMMultimodalEmbeddings]:  # type: ignore[override]
        emb = self.embeddings_class(**self.embedding_model_params)
        yield emb
        await emb.aclose()
