"""The base every framework adapter shares: clients, copies, closing, and no secret shown.

The adapters are pydantic models (LangChain's and LlamaIndex's components are); each holds its
clients in a :class:`~._clients.LoopBoundClients` (``_clients``) and the caller's injected httpx
clients in two fields. What follows from that is written here once: closing the clients, copies
that build their own (sharing them would let two adapters rebuild, and close, each other's
clients in turn), and a ``base_url`` that reprs and dumps show without credentials or query
tokens. A new framework's adapter inherits this and maps its fields; it copies nothing (one
whose components cannot be pydantic models, as Haystack's cannot, holds such a model).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, PrivateAttr, field_serializer
from typing_extensions import Self

from .._closing import AsyncClosing, Closing
from .._redact import redact_url
from ._clients import LoopBoundClients

__all__ = ["AdapterBase"]

S = TypeVar("S")


class AdapterBase(BaseModel, Closing, AsyncClosing):
    """Clients bound to an adapter's fields and event loops; settings built once per field
    values; copies; closing; redaction."""

    #: The fields holding the caller's injected httpx clients (named as the framework names
    #: them): shared by copies, never closed here.
    http_fields: ClassVar[tuple[str, ...]] = ("http_client", "http_async_client")

    # Rebuilt when a field changes; one async client per event loop (set by each adapter).
    _clients: LoopBoundClients[Any, Any, Any] = PrivateAttr()
    # The settings the fields stand for, built once per field values (:meth:`_once`).
    _built: Any = PrivateAttr(default=None)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in type(self).model_fields:
            super().__setattr__("_built", None)

    def _once(self, build: Callable[[], S]) -> S:
        """``build()`` once for the current field values: every call of an adapter used to
        rebuild and re-check its whole settings (30 checks, environment reads, a CPU count)."""
        if self._built is None:
            self._built = build()
        built: S = self._built
        return built

    @field_serializer("base_url", check_fields=False)
    def _dump_base_url(self, base_url: str | None) -> str | None:
        # Dumps and serialized forms never carry URL credentials or query tokens.
        return redact_url(base_url) if base_url else base_url

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name == "base_url" and value else value

    def __copy__(self) -> Self:
        new = super().__copy__()
        private = dict(self.__pydantic_private__ or {})
        # model_copy(update=...) changes fields behind __setattr__: build the settings anew.
        private["_clients"], private["_built"] = type(self._clients)(), None
        object.__setattr__(new, "__pydantic_private__", private)
        return new

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        new = self.__copy__()
        for name, value in self.__dict__.items():
            if name not in self.http_fields:  # the caller's httpx clients stay shared
                new.__dict__[name] = copy.deepcopy(value, memo)
        return new

    def close(self) -> None:
        """Close the sync client's connections (an injected httpx client stays open)."""
        self._clients.close()

    async def aclose(self) -> None:
        """Close both clients' connections (injected httpx clients stay open)."""
        await self._clients.aclose()
