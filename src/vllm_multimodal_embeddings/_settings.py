"""Settings are declared once, as fields of frozen dataclass groups, each with its default, its
check and a docstring; this module holds what every group shares.

The groups live with the layer they configure:

* :class:`~.transport._settings.ConnectionSettings` - where the server is and how requests are
  made, bounded and retried; every client of the package has one, the reranker's too.
* :class:`~.inputs._settings.ImageSettings` - how inputs are read, bounded and prepared.
* :class:`~.embeddings._settings.ClientSettings` - an embedding client's settings: both groups
  (by inheritance, so ``ClientSettings(base_url=..., dimensions=...)`` keeps working) plus the
  embedding-only ones.

Here: :func:`setting` (a declared field), the checks it takes (each names the setting in its
error), the base every group shares (:class:`Group`), and :func:`default_workers`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import field
from typing import Any, TypeVar

from ._exceptions import ConfigurationError

__all__ = [
    "POSITIVE",
    "Check",
    "Group",
    "default_workers",
    "flag",
    "hosts",
    "instruction",
    "integer",
    "one_of",
    "optional",
    "seconds",
    "setting",
]

S = TypeVar("S", bound="Group")
Check = Callable[[str, Any], None]


# -- field checks: each says what is wrong, naming the setting -------------------------------


def integer(minimum: int) -> Check:
    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")

    return check


def seconds(name: str, value: Any) -> None:
    # nan and inf pass a plain "> 0" test and fail much later, inside a sleep or a timer.
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"{name} must be a finite number of seconds > 0, got {value!r}")


def flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, got {value!r}")


def optional(check: Check) -> Check:
    def optional(name: str, value: Any) -> None:
        if value is not None:
            check(name, value)

    return optional


def instruction(name: str, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigurationError(f"{name} must be a non-empty string, got {value!r}")


def hosts(name: str, value: Any) -> None:
    if not all(isinstance(host, str) and host.strip() for host in value):
        raise ConfigurationError(f"{name} must hold host names, addresses or networks as strings")


def one_of(*allowed: object) -> Check:
    def check(name: str, value: Any) -> None:
        if value not in allowed:
            raise ConfigurationError(
                f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}"
            )

    return check


POSITIVE = integer(1)


def setting(default: Any = None, check: Check | None = None, *, secret: bool = False) -> Any:
    """One declared setting: its default and its check (run at construction).

    ``secret`` keeps it out of reprs (API keys, headers that may carry credentials).
    """
    return field(default=default, repr=not secret, metadata={"check": check})


class Group:
    """What every settings group does: run the declared checks, say its names, copy itself."""

    def _check_fields(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            check = f.metadata.get("check")
            if check is not None:
                check(f.name, getattr(self, f.name))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every setting's name, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    @classmethod
    def create(cls: type[S], base: S | None = None, /, **changes: Any) -> S:
        """``base`` (or the defaults) with ``changes``; unknown names raise ConfigurationError."""
        unknown = sorted(set(changes) - set(cls.names()))
        if unknown:
            raise ConfigurationError(
                f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(cls.names())}"
            )
        if base is None:
            return cls(**changes)
        return dataclasses.replace(base, **changes)  # type: ignore[type-var]

    def part(self, group: type[S]) -> S:
        """The values of ``group``'s settings (a group this one includes) as that group."""
        return group(**{name: getattr(self, name) for name in group.names()})


def default_workers() -> int:
    """The CPU cores this process may use: image preparation scales with them."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        return max(1, os.cpu_count() or 1)
