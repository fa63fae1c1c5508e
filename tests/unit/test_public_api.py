"""The package's public surface: what it exports, and what importing it costs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import vllm_multimodal_embeddings as pkg


def test_exported_names() -> None:
    assert pkg.__all__ == sorted(pkg.__all__)
    assert set(pkg.__all__) == {
        "APIConnectionError",
        "APIError",
        "APIStatusError",
        "APITimeoutError",
        "AsyncEmbeddingClient",
        "AsyncEmbeddingStream",
        "AuthenticationError",
        "BadRequestError",
        "ClientSettings",
        "ConfigurationError",
        "Content",
        "EmbedInput",
        "EmbeddingClient",
        "EmbeddingStream",
        "ImageInput",
        "ImageLoadError",
        "InputError",
        "InputType",
        "InternalServerError",
        "ModelProfile",
        "NotFoundError",
        "OutputDType",
        "PdfPage",
        "PdfPasswords",
        "ProtocolName",
        "RateLimitError",
        "RemoteUnavailableError",
        "ServerInfo",
        "RerankPreset",
        "TaskPreset",
        "TuningStats",
        "UnsupportedFeatureError",
        "VLLMEmbeddingError",
        "__version__",
        "int8_scale_for",
        "pdf_page_count",
        "pdf_pages",
        "quantize_int8",
    }
    for name in pkg.__all__:
        assert getattr(pkg, name) is not None


def test_exception_tree() -> None:
    assert issubclass(pkg.APITimeoutError, pkg.APIConnectionError)
    for cls in (
        pkg.BadRequestError,
        pkg.AuthenticationError,
        pkg.NotFoundError,
        pkg.RateLimitError,
        pkg.InternalServerError,
    ):
        assert issubclass(cls, pkg.APIStatusError)
    assert issubclass(pkg.APIStatusError, pkg.APIError)
    assert issubclass(pkg.ImageLoadError, pkg.InputError)
    assert issubclass(pkg.RemoteUnavailableError, pkg.ImageLoadError)
    assert issubclass(pkg.InputError, ValueError)
    assert issubclass(pkg.ConfigurationError, ValueError)
    for cls in (pkg.APIError, pkg.InputError, pkg.ConfigurationError, pkg.UnsupportedFeatureError):
        assert issubclass(cls, pkg.VLLMEmbeddingError)


def test_import_pulls_in_no_framework() -> None:
    code = (
        "import sys, vllm_multimodal_embeddings; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('langchain_core', 'llama_index', 'haystack', 'torch', 'vllm')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_server_is_production_config_and_testing_holds_the_test_tooling() -> None:
    import vllm_multimodal_embeddings.server as server
    import vllm_multimodal_embeddings.testing as testing

    assert set(testing.__all__) == {
        "CACHE_DIR",
        "SERVER_VENV",
        "LocalServer",
        "ServerStartError",
        "ensure_tiny_checkpoint",
        "ensure_tiny_reranker",
        "server_python",
    }
    assert not set(server.__all__) & set(testing.__all__)
    assert {"CHAT_TEMPLATE_PATH", "RERANKER_CHAT_TEMPLATE_PATH", "vllm_args"} <= set(server.__all__)
    # The checkpoint builders run as scripts (in the server venv) from the package's folder.
    for script in ("tiny_checkpoint.py", "tiny_reranker.py"):
        assert Path(testing.__file__).with_name(script).is_file()


def test_every_package_error_is_in_the_tree() -> None:
    # One `except VLLMEmbeddingError` catches whatever the package raises on purpose: the
    # bulk command's, the CLI's and the test launcher's errors included.
    from vllm_multimodal_embeddings.bulk.job import BulkJobError
    from vllm_multimodal_embeddings.bulk.sources import SourceError
    from vllm_multimodal_embeddings.testing import ServerStartError
    from vllm_multimodal_embeddings.transport._keys import CLIKeyError

    for cls in (CLIKeyError, BulkJobError, SourceError, ServerStartError):
        assert issubclass(cls, pkg.VLLMEmbeddingError), cls
    assert issubclass(CLIKeyError, pkg.ConfigurationError)
    assert issubclass(SourceError, ValueError)  # as before: callers catching ValueError still do
