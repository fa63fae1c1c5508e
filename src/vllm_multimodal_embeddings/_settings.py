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
error), the base every group shares (:class:`Group`), :func:`default_workers`, and what reads
the declarations back for the other surfaces: :func:`declarations` (name, type, default, doc)
and the command-line options generated from them (:func:`add_options`).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import itertools
import math
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._exceptions import ConfigurationError

__all__ = [
    "POSITIVE",
    "Check",
    "Declared",
    "Group",
    "add_options",
    "bounds_of",
    "declarations",
    "default_workers",
    "flag",
    "hosts",
    "instruction",
    "integer",
    "one_of",
    "option_values",
    "optional",
    "register_bounds",
    "seconds",
    "setting",
]

S = TypeVar("S", bound="Group")
Check = Callable[[str, Any], None]


# -- field checks: each says what is wrong, naming the setting -------------------------------


#: What each check allows, as pydantic field constraints: the framework adapters' fields show
#: and enforce the same bounds (:func:`bounds_of`).
_BOUNDS: dict[Check, dict[str, Any]] = {}


def register_bounds(check: Check, **bounds: Any) -> None:
    """Say which pydantic constraints a check defined elsewhere stands for."""
    _BOUNDS[check] = bounds


def bounds_of(check: Check | None) -> dict[str, Any]:
    """The pydantic constraints (``ge``, ``gt``, ``allow_inf_nan``) a check stands for."""
    return dict(_BOUNDS.get(check, {})) if check is not None else {}


def integer(minimum: int) -> Check:
    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")

    _BOUNDS[check] = {"ge": minimum}
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

    _BOUNDS[optional] = bounds_of(check)
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
_BOUNDS[seconds] = {"gt": 0, "allow_inf_nan": False}


def setting(
    default: Any = None, check: Check | None = None, *, secret: bool = False, env: str | None = None
) -> Any:
    """One declared setting: its default, its check (run at construction) and the environment
    variable read when it is left ``None`` (:meth:`Group._fill_env`).

    ``secret`` keeps it out of reprs (API keys, headers that may carry credentials).
    """
    return field(default=default, repr=not secret, metadata={"check": check, "env": env})


class Group:
    """What every settings group does: run the declared checks, say its names, copy itself."""

    def _fill_env(self) -> None:
        """Each setting left ``None`` that names an environment variable takes its value."""
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            env = f.metadata.get("env")
            if env and getattr(self, f.name) is None:
                object.__setattr__(self, f.name, os.environ.get(env) or None)

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


# -- reading the declarations: what every surface (the adapters, the CLI) takes from them ------


@dataclass(frozen=True)
class Declared:
    """One setting as declared: its name, type, default and one-line doc."""

    name: str
    type: Any
    default: Any
    doc: str
    env: str | None = None
    bounds: dict[str, Any] = field(default_factory=dict)


def declarations(group: type[Group]) -> dict[str, Declared]:
    """Every setting of ``group`` (and of the groups it includes), as declared, in order."""
    found = _DECLARED.get(group)
    if found is None:
        found = _DECLARED[group] = _declarations(group)
    return dict(found)


_DECLARED: dict[type[Group], tuple[tuple[str, Declared], ...]] = {}


def _declarations(group: type[Group]) -> tuple[tuple[str, Declared], ...]:
    hints = typing.get_type_hints(group)
    docs: dict[str, str] = {}
    for cls in reversed(group.__mro__):
        if dataclasses.is_dataclass(cls):
            docs.update(_attribute_docs(cls))
    out = []
    for f in dataclasses.fields(group):  # type: ignore[arg-type]
        default = None if f.default is dataclasses.MISSING else f.default
        env, bounds = f.metadata.get("env"), bounds_of(f.metadata.get("check"))
        doc = docs.get(f.name, "")
        out.append((f.name, Declared(f.name, hints[f.name], default, doc, env, bounds)))
    return tuple(out)


def _attribute_docs(cls: type) -> dict[str, str]:
    """The docstrings written under each field of ``cls`` (their first sentence)."""
    return _module_docs(cls.__module__).get(cls.__qualname__, {})


@functools.cache
def _module_docs(module: str) -> dict[str, dict[str, str]]:
    """Every class of ``module``: its fields' docstrings. The module is parsed once, whatever
    the number of its classes and of the groups that include them."""
    tree = ast.parse(inspect.getsource(sys.modules[module]))
    out: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        docs = out[node.name] = {}
        for field_, doc in itertools.pairwise(node.body):
            if (
                isinstance(field_, ast.AnnAssign)
                and isinstance(field_.target, ast.Name)
                and isinstance(doc, ast.Expr)
                and isinstance(doc.value, ast.Constant)
                and isinstance(doc.value.value, str)
            ):
                text = " ".join(doc.value.value.split())
                docs[field_.target.id] = _FIRST_SENTENCE.split(text, maxsplit=1)[0].rstrip(".")
    return out


# A sentence ends at ". " unless that full stop closes "e.g.".
_FIRST_SENTENCE = re.compile(r"(?<!\be\.g)\.\s")


def _scalar(hint: Any) -> Any:
    """``int`` of ``int | None``; the hint itself otherwise."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return (
        args[0]
        if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1
        else hint
    )


def add_options(
    parser: argparse.ArgumentParser,
    group: type[Group],
    names: Sequence[str],
    *,
    flags: Mapping[str, str] | None = None,
) -> None:
    """Command-line options for settings of ``group``, generated from their declarations:
    ``--name-with-dashes`` (or ``flags[name]``), the declared type, the doc and the default
    as help. Left out, an option is ``None``: the setting's own default (or environment
    variable) applies, and the group's checks judge every value given."""
    declared = declarations(group)
    for name in names:
        d = declared[name]
        flag = (flags or {}).get(name, "--" + name.replace("_", "-"))
        doc = d.doc.replace("``None``:", "left out:").replace("``", "")
        kind = _scalar(d.type)
        shown = f" (default: ${d.env})" if d.env else ""
        shown = shown if d.default is None else f" (default: {d.default})"
        if kind is bool:
            parser.add_argument(
                flag,
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{doc}{shown}",
            )
            continue
        choices = typing.get_args(kind) if typing.get_origin(kind) is typing.Literal else None
        convert = kind if kind in (int, float, str) else str
        parser.add_argument(
            flag, dest=name, type=convert, choices=choices, default=None, help=f"{doc}{shown}"
        )


def option_values(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The settings among ``names`` given on the command line (see :func:`add_options`)."""
    return {n: v for n in names if (v := getattr(args, n, None)) is not None}
