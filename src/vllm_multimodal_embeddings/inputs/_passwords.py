"""Passwords of encrypted PDFs, given apart from the page references that name the files.

A page reference (``"board.pdf#page=3"``) is a string that ends up in LangChain documents,
LlamaIndex nodes, vector stores, bulk output rows and logs: a password must never ride in it.
:class:`PdfPasswords` carries them beside it instead: the client looks a file's password up
when it renders one of its pages, and the loaders when they count its pages.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._exceptions import ConfigurationError

__all__ = ["PdfPasswords", "PdfPasswordsLike"]

_ALL = "*"


class PdfPasswords:
    """Which password opens which encrypted PDF; never shown (not in ``repr`` or errors).

    Args:
        passwords: one password for every file, or a mapping from file to password. A key
            is a path or a glob pattern: an absolute one matches the whole path, a relative
            one its end (``"board.pdf"`` is every ``board.pdf``, ``"hr/*.pdf"`` every PDF in
            an ``hr`` folder), ``"*"`` any file. The first key that matches wins, ``"*"``
            last.

    Example:
        .. code-block:: python

            PdfPasswords(os.environ["PDF_PASSWORD"])  # every encrypted PDF
            PdfPasswords({"board.pdf": pw1, "hr/*.pdf": pw2})
            PdfPasswords.from_file("passwords.json")
    """

    __slots__ = ("_entries",)

    def __init__(self, passwords: str | Mapping[str, str]) -> None:
        items = {_ALL: passwords} if isinstance(passwords, str) else passwords
        if not isinstance(items, Mapping):
            raise ConfigurationError(
                "pdf_passwords must be a password, a mapping from file to password or "
                f"PdfPasswords, got {type(passwords).__name__}"
            )
        entries: list[tuple[str, str]] = []
        for key, password in items.items():
            if not isinstance(key, str) or not key.strip():
                raise ConfigurationError(f"pdf_passwords: a key must be a path, got {key!r}")
            if not isinstance(password, str):
                # The key is safe to show; the value never is.
                raise ConfigurationError(f"pdf_passwords: the password of {key!r} is not a str")
            entries.append((key.replace(os.sep, "/"), password))
        # "*" is the fallback wherever it was given.
        entries.sort(key=lambda e: e[0] == _ALL)
        self._entries = tuple(entries)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> PdfPasswords:
        """Passwords from a file: a JSON object (file or pattern -> password), or one line
        holding the password of every file."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read the PDF password file {path}: {exc}") from None
        if text.lstrip().startswith("{"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                # The position only: the message would quote the file, passwords included.
                raise ConfigurationError(
                    f"PDF password file {path} is not valid JSON (line {exc.lineno})"
                ) from None
            return cls(data)
        line = text.splitlines()[0] if text.strip() else ""
        if not line:
            raise ConfigurationError(f"PDF password file {path} is empty")
        return cls(line)

    @classmethod
    def of(cls, value: PdfPasswordsLike | None) -> PdfPasswords | None:
        """``value`` as :class:`PdfPasswords` (``None`` stays ``None``)."""
        return value if value is None or isinstance(value, PdfPasswords) else cls(value)

    def entries(self) -> dict[str, str]:
        """Key -> password, in the order they are tried (to combine sources of passwords)."""
        return dict(self._entries)

    def for_path(self, path: str | os.PathLike[str]) -> str | None:
        """The password for the PDF at ``path``, or ``None`` when no key matches it."""
        full = Path(os.path.abspath(os.fspath(path))).as_posix()
        for key, password in self._entries:
            if key == _ALL:
                return password
            pattern = key if key.startswith("/") else "*/" + key
            if fnmatch.fnmatchcase(full, pattern):
                return password
        return None

    def __repr__(self) -> str:
        keys = ", ".join(repr(k) for k, _ in self._entries)
        return f"PdfPasswords(for {keys})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PdfPasswords) and self._entries == other._entries

    def __hash__(self) -> int:
        return hash(self._entries)

    def __reduce__(self) -> tuple[Any, ...]:
        # For worker processes that render pages; the entries travel as they are.
        return (PdfPasswords, (self.entries(),))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """Adapter fields take a password, a mapping or :class:`PdfPasswords`."""
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            _validated,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda v: None),
        )


def _validated(value: Any) -> PdfPasswords | None:
    try:
        return PdfPasswords.of(value)
    except ConfigurationError as exc:
        raise ValueError(str(exc)) from None


#: What a ``pdf_passwords`` setting takes.
PdfPasswordsLike = PdfPasswords | str | Mapping[str, str]
