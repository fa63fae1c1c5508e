"""Framework adapter fields made from the settings' declarations.

The adapters are pydantic models: each offers the client settings as fields, because that is
how LangChain and LlamaIndex users configure components (constructor keywords, ``model_dump``,
serialization). :func:`declared` makes such a field from a setting's one declaration: its
default (or its environment variable), its bounds and its doc. The adapter writes only the
field's name and type annotation, which static type checkers and editors read from the class
body; ``tests/unit/test_settings_surfaces.py`` checks that annotation against the declared type.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field

from .._settings import Group, declarations

__all__ = ["declared"]


def declared(group: type[Group], name: str, **extra: Any) -> Any:
    """A pydantic field for setting ``name`` of ``group``, from its declaration.

    ``extra`` adds to it or overrides it (``exclude=True`` for a secret, a ``default_factory``
    that wraps the environment's value in ``SecretStr``, a framework's own default).
    """
    d = declarations(group)[name]
    spec: dict[str, Any] = {"description": d.doc, **d.bounds}
    if d.env is not None:
        env = d.env
        spec["default_factory"] = lambda: os.environ.get(env) or d.default
    else:
        spec["default"] = d.default
    if "default" in extra or "default_factory" in extra:
        spec.pop("default", None)
        spec.pop("default_factory", None)
    spec.update(extra)
    return Field(**spec)
