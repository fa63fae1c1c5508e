"""API keys for the command-line tools: from the environment or a prompt, never from argv.

A key on the command line is visible to every user of the machine (``ps``, ``/proc``) and
lands in shell history, so ``--api-key`` is refused with a message naming the alternatives.
"""

from __future__ import annotations

import argparse
import getpass
import os

from .._constants import ENV_API_KEY
from .._exceptions import ConfigurationError

__all__ = ["CLIKeyError", "add_api_key_arguments", "resolve_api_key"]


class CLIKeyError(ConfigurationError):
    """The key arguments cannot be honored; the message says what to do instead."""


REMOVED_MESSAGE = (
    "--api-key was removed: a key on the command line is visible in the process list and "
    f"shell history. Set {ENV_API_KEY} in the environment, or pass --ask-api-key to type it."
)


def add_api_key_arguments(
    parser: argparse.ArgumentParser, *, purpose: str = "the server's API key"
) -> None:
    """``--ask-api-key``, plus a hidden ``--api-key`` that is refused with a clear message.

    ``purpose`` completes "prompt for ...": whose key it is.
    """
    parser.add_argument(
        "--ask-api-key",
        action="store_true",
        help=f"prompt for {purpose} (default: ${ENV_API_KEY}, else none)",
    )
    # Kept so that old scripts get an explanation rather than "unrecognized arguments".
    parser.add_argument("--api-key", dest="removed_api_key", default=None, help=argparse.SUPPRESS)


def resolve_api_key(args: argparse.Namespace, *, prompt: str = "API key: ") -> str | None:
    """The key: prompted for with ``--ask-api-key``, else ``$VLLM_API_KEY``, else ``None``."""
    if getattr(args, "removed_api_key", None) is not None:
        raise CLIKeyError(REMOVED_MESSAGE)
    if getattr(args, "ask_api_key", False):
        try:
            key = getpass.getpass(prompt)
        except (EOFError, KeyboardInterrupt) as exc:
            raise CLIKeyError("no API key entered") from exc
        if not key.strip():
            raise CLIKeyError("no API key entered")
        return key.strip()
    return os.environ.get(ENV_API_KEY) or None
