"""The package version: the one place it is written.

The build backend reads it from here (``[tool.hatch.version]`` in pyproject.toml), so the
distribution's metadata, ``vllm_multimodal_embeddings.__version__`` and ``vllm-mm-embed --version``
always agree. Between releases it carries a ``.devN`` suffix; CONTRIBUTING.md says how to release.
"""

__version__ = "0.1.0.dev0"
