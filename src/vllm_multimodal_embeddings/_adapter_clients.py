"""The core clients behind a framework adapter, kept in step with the adapter's settings.

Adapters are pydantic models whose fields users may change at any time, and an
``AsyncEmbeddingClient`` belongs to the event loop that first used it (its httpx pool and
semaphores do). So an adapter holds one sync client, and one async client for the running loop,
each rebuilt when the settings or injected httpx client it was built from no longer match. The
server is probed once per settings, whatever the number of clients and event loops.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import weakref
from collections.abc import Mapping
from typing import Any

import httpx

from ._client import AsyncEmbeddingClient, EmbeddingClient
from ._server_info import ServerInfo
from ._settings import ClientSettings

__all__ = ["AdapterClients", "settings_from"]


def settings_from(adapter: Any, renamed: Mapping[str, str]) -> ClientSettings:
    """A :class:`ClientSettings` from an adapter's fields.

    Every setting is read from the adapter attribute of the same name, or of the name
    ``renamed`` maps it to (``{"headers": "default_headers"}``); secrets may be ``SecretStr``.
    """
    values: dict[str, Any] = {}
    for name in ClientSettings.names():
        value = getattr(adapter, renamed.get(name, name))
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        values[name] = value
    if values.get("model") == "":  # LlamaIndex's empty model_name: ask the server
        values["model"] = None
    return ClientSettings(**values)


def _same(built: ClientSettings, model: str | None, wanted: ClientSettings) -> bool:
    """Whether a client built from ``built`` (whose model is now ``model``) fits ``wanted``.

    A client built without a model has asked the server for one; naming that model now asks
    for the same client, so filling in the model (LlamaIndex does) rebuilds nothing.
    """
    if built == wanted:
        return True
    return built.model is None and dataclasses.replace(built, model=model) == wanted


class AdapterClients:
    """One sync client and one async client per event loop, rebuilt when settings change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sync: tuple[EmbeddingClient, ClientSettings, httpx.Client | None] | None = None
        self._async: (
            tuple[
                AsyncEmbeddingClient,
                ClientSettings,
                httpx.AsyncClient | None,
                weakref.ref[asyncio.AbstractEventLoop],
            ]
            | None
        ) = None
        # The last probe result and the settings it was found with.
        self._probed: tuple[ClientSettings, ServerInfo] | None = None

    # Adapters must pickle: a holder travels empty and is rebuilt on first use.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]

    def _remember(self) -> None:
        """Keep the probe result of either client, for the clients built next."""
        for held in (self._sync, self._async):
            if held is not None and held[0]._info is not None:
                self._probed = (held[0].settings, held[0]._info)

    def _adopt(self, client: EmbeddingClient | AsyncEmbeddingClient) -> None:
        probed = self._probed
        if probed is not None and _same(probed[0], probed[1].model, client.settings):
            client._adopt(probed[1])

    def sync(self, settings: ClientSettings, http_client: httpx.Client | None) -> EmbeddingClient:
        """The sync client for ``settings``; a stale one is closed."""
        with self._lock:
            held = self._sync
            self._remember()
            if (
                held is not None
                and held[2] is http_client
                and _same(held[1], held[0].model, settings)
            ):
                return held[0]
            client = EmbeddingClient(settings, http_client=http_client)
            self._adopt(client)
            self._sync = (client, settings, http_client)
        if held is not None:
            held[0].close()
        return client

    def async_(
        self, settings: ClientSettings, http_client: httpx.AsyncClient | None
    ) -> AsyncEmbeddingClient:
        """The async client for ``settings`` and the running event loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            held = self._async
            self._remember()
            if (
                held is not None
                and held[3]() is loop
                and held[2] is http_client
                and _same(held[1], held[0].model, settings)
            ):
                return held[0]
            # A replaced client may belong to a closed loop: its pool cannot be awaited here.
            client = AsyncEmbeddingClient(settings, http_client=http_client)
            self._adopt(client)
            self._async = (client, settings, http_client, weakref.ref(loop))
            return client

    def close(self) -> None:
        """Close the sync client's pool (an injected httpx client stays open)."""
        with self._lock:
            self._remember()
            held, self._sync = self._sync, None
        if held is not None:
            held[0].close()

    async def aclose(self) -> None:
        """Close both clients' pools (injected httpx clients stay open)."""
        self.close()
        with self._lock:
            self._remember()
            held, self._async = self._async, None
        if held is not None:
            await held[0].aclose()
