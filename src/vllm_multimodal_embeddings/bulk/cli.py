"""``vllm-mm-embed embed``: embed a folder, a glob or a manifest into Parquet or NumPy parts.

The API key is read from ``VLLM_API_KEY`` (or typed, with ``--ask-api-key``), never from the
command line (where ``ps`` and shell histories would show it). One run writes to an output
folder at a time. With ``--on-error skip`` an input the client pins the error on (unreadable,
too long, refused by the server) is recorded in ``failures-*.jsonl`` with its reason.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

from .._exceptions import ConfigurationError, VLLMEmbeddingError
from .._settings import add_options, option_values
from ..embeddings._settings import ClientSettings
from ..inputs._passwords import PdfPasswords
from ..transport._keys import CLIKeyError, add_api_key_arguments, resolve_api_key
from .job import BulkJobError, JobOptions, run_job, scrub
from .progress import Progress
from .sources import (
    IMAGE_EXTENSIONS,
    Source,
    SourceError,
    directory_source,
    glob_source,
    manifest_source,
)

__all__ = ["add_embed_parser"]

EXIT_INTERRUPTED = 130

#: The client settings ``embed`` takes as options, generated from their declarations.
SETTINGS = (
    "protocol",
    "base_url",
    "model",
    "batch_size",
    "max_concurrency",
    "prepare_workers",
    "prepare_processes",
    "timeout",
    "max_retries",
    "max_retry_time",
)
#: Options named other than their setting (names the command had before it generated them).
FLAGS = {"max_concurrency": "--concurrency", "prepare_workers": "--workers"}


def add_embed_parser(subparsers: Any) -> None:
    """Register ``embed`` on the ``vllm-mm-embed`` sub-command parsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "embed",
        help="embed a folder, glob or manifest into Parquet/NumPy parts (resumable)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dir", help="a folder, read recursively (files with --ext)")
    src.add_argument("--glob", help="a glob pattern, e.g. 'photos/**/*.jpg' (files with --ext)")
    src.add_argument("--manifest", help="a .csv, .jsonl or .parquet with id, text, image columns")
    p.add_argument("--out", required=True, help="output folder (parts, failures, job.json)")
    p.add_argument(
        "--ext",
        default=None,
        help="comma-separated extensions for --dir/--glob (default: the image types "
        f"{','.join(e[1:] for e in IMAGE_EXTENSIONS)}, and pdf (page by page) with the pdf "
        "extra; .txt and .md are read as text; the files left out are listed)",
    )
    p.add_argument("--id-column", default="id")
    p.add_argument("--text-column", default="text")
    p.add_argument(
        "--image-column", default="image", help="image paths (relative to the manifest) or URIs"
    )
    p.add_argument("--format", choices=("parquet", "numpy"), default="parquet")
    p.add_argument("--input-type", choices=("document", "query"), default="document")
    p.add_argument("--instruction", default=None, help="override the instruction (chat)")
    p.add_argument("--dimensions", type=int, default=None, help="Matryoshka size")
    add_options(p, ClientSettings, SETTINGS, flags=FLAGS)
    p.add_argument(
        "--flush-rows",
        type=int,
        default=1024,
        help="rows per committed part file (what a crash can cost at most)",
    )
    again = p.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue an earlier run in --out, skipping the ids it wrote (never reads them)",
    )
    again.add_argument(
        "--sync",
        action="store_true",
        help="bring --out in line with the source as it is now: embed new and changed inputs, "
        "drop the rows of those gone, try failures again (hashes every input)",
    )
    p.add_argument(
        "--on-error",
        choices=("fail", "skip"),
        default="fail",
        help="a bad input stops the run (fail) or is reported and skipped (skip)",
    )
    p.add_argument("--no-progress", action="store_true")
    add_api_key_arguments(p)
    secret = p.add_argument_group(
        "encrypted PDFs",
        "passwords are read from a file or a variable, never from the command line (ps and "
        "shell histories show it), and never written to the output",
    )
    secret.add_argument(
        "--pdf-passwords",
        metavar="FILE",
        help='a JSON object from file or pattern to password ({"hr/*.pdf": "..."}), '
        "or one line: the password of every encrypted PDF",
    )
    secret.add_argument(
        "--pdf-password-env",
        metavar="VAR",
        help="the environment variable holding the password of every encrypted PDF (after "
        "--pdf-passwords' entries)",
    )
    p.set_defaults(func=run_embed)


def _source(args: argparse.Namespace, passwords: PdfPasswords | None) -> Source:
    exts = tuple(e.strip() for e in args.ext.split(",") if e.strip()) if args.ext else None
    if args.dir is not None:
        return directory_source(args.dir, exts, passwords=passwords)
    if args.glob is not None:
        return glob_source(args.glob, exts, passwords=passwords)
    return manifest_source(
        args.manifest,
        id_column=args.id_column,
        text_column=args.text_column or None,
        image_column=args.image_column or None,
    )


def _passwords(args: argparse.Namespace) -> PdfPasswords | None:
    """The PDF passwords of ``--pdf-passwords`` and ``--pdf-password-env``, or ``None``."""
    entries: dict[str, str] = {}
    if args.pdf_passwords:
        entries.update(PdfPasswords.from_file(args.pdf_passwords).entries())
    if args.pdf_password_env:
        value = os.environ.get(args.pdf_password_env)
        if not value:
            raise ConfigurationError(
                f"--pdf-password-env: the variable {args.pdf_password_env} is not set or empty"
            )
        entries.setdefault("*", value)
    return PdfPasswords(entries) if entries else None


def _settings(
    args: argparse.Namespace, api_key: str | None, passwords: PdfPasswords | None = None
) -> ClientSettings:
    given = option_values(args, SETTINGS)
    if api_key is not None:
        given["api_key"] = api_key
    return ClientSettings.create(**given, pdf_passwords=passwords)


def run_embed(args: argparse.Namespace) -> int:
    """Run the ``embed`` command; 0 done, 1 failed, 130 stopped by Ctrl-C (resumable)."""
    from ..embeddings._client import EmbeddingClient

    # Every argument is checked before anything is read, sent or written.
    try:
        api_key = resolve_api_key(args)
        passwords = _passwords(args)
        settings = _settings(args, api_key, passwords)
        options = JobOptions(
            input_type=args.input_type,
            instruction=args.instruction,
            dimensions=args.dimensions,
            format=args.format,
            on_error=args.on_error,
            flush_rows=args.flush_rows,
        )
    except (CLIKeyError, BulkJobError, ConfigurationError) as exc:
        print(f"error: {scrub(str(exc))}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        # First Ctrl-C: commit what is done and stop; a second one stops at once.
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("\nstopping: committing what is done (Ctrl-C again to abort)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        source = _source(args, passwords)
        progress = Progress(source.total, enabled=not args.no_progress)
        try:
            with EmbeddingClient(settings) as client:
                summary = run_job(
                    client,
                    source,
                    args.out,
                    options,
                    resume=args.resume,
                    sync=args.sync,
                    on_progress=progress,
                    stop=stop,
                )
        finally:
            progress.close()
    except (VLLMEmbeddingError, SourceError, OSError) as exc:
        print(f"error: {scrub(str(exc))}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)
    for line in summary.lines():
        print(line, file=sys.stderr)
    if source.skipped:
        print(f"files left out: {source.skipped}", file=sys.stderr)
    return EXIT_INTERRUPTED if summary.interrupted else 0
