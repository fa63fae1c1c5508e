"""Bulk jobs: embed a folder, a glob or a manifest into resumable Parquet or NumPy parts.

The command is ``vllm-mm-embed embed``; the same from Python::

    from vllm_multimodal_embeddings import EmbeddingClient
    from vllm_multimodal_embeddings.bulk import JobOptions, directory_source, run_job

    with EmbeddingClient(base_url="http://localhost:8000") as client:
        summary = run_job(client, directory_source("photos"), "vectors/", resume=True)

Parquet output needs the ``bulk`` extra (pyarrow).
"""

from .job import BulkJobError, JobOptions, Summary, SyncCounts, run_job
from .sink import Failure, read_failures, read_vectors
from .sources import (
    Item,
    Source,
    SourceError,
    directory_source,
    glob_source,
    manifest_source,
)

__all__ = [
    "BulkJobError",
    "Failure",
    "Item",
    "JobOptions",
    "Source",
    "SourceError",
    "Summary",
    "SyncCounts",
    "directory_source",
    "glob_source",
    "manifest_source",
    "read_failures",
    "read_vectors",
    "run_job",
]
