"""The core clients behind a framework adapter, kept in step with the adapter's settings.

Adapters are pydantic models whose fields users may change at any time, and an
``AsyncEmbeddingClient`` belongs to the event loop that first used it (its httpx pool, lock and
semaphore do). So an adapter holds one sync client, and one async client for the running loop,
each rebuilt when the options or injected httpx client it was built from no longer match.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import weakref
from typing import Any

import httpx

from ._client import AsyncEmbeddingClient, ClientOptions, EmbeddingClient


def _built_from(
    client: EmbeddingClient | AsyncEmbeddingClient, options: ClientOptions, wanted: ClientOptions
) -> bool:
    """Whether ``client``, built from ``options``, is what ``wanted`` asks for.

    A client built without a model has asked the server for one; naming that model now asks
    for the same client, so filling in the model (LlamaIndex does) rebuilds nothing.
    """
    if options == wanted:
        return True
    return options.get("model") is None and {**options, "model": client.model} == wanted


class AdapterClients:
    """One sync client and one async client per event loop, rebuilt when settings change.

    Options are stored as deep copies, so that a headers dict changed in place counts as a change.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sync: tuple[EmbeddingClient, ClientOptions, httpx.Client | None] | None = None
        self._async: (
            tuple[AsyncEmbeddingClient, ClientOptions, Any, weakref.ref[asyncio.AbstractEventLoop]]
            | None
        ) = None

    def sync(self, options: ClientOptions, http_client: httpx.Client | None) -> EmbeddingClient:
        """The sync client for ``options``; a stale one is closed."""
        with self._lock:
            held = self._sync
            if (
                held is not None
                and held[2] is http_client
                and _built_from(held[0], held[1], options)
            ):
                return held[0]
            client = EmbeddingClient(http_client=http_client, **options)
            self._sync = (client, copy.deepcopy(options), http_client)
        if held is not None:
            held[0].close()
        return client

    def async_(
        self, options: ClientOptions, http_client: httpx.AsyncClient | None
    ) -> AsyncEmbeddingClient:
        """The async client for ``options`` and the running event loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            held = self._async
            if (
                held is not None
                and held[3]() is loop
                and held[2] is http_client
                and _built_from(held[0], held[1], options)
            ):
                return held[0]
            # A replaced client may belong to a closed loop: its pool cannot be awaited here.
            client = AsyncEmbeddingClient(http_client=http_client, **options)
            self._async = (client, copy.deepcopy(options), http_client, weakref.ref(loop))
            return client

    def close(self) -> None:
        """Close the sync client's pool (an injected httpx client stays open)."""
        with self._lock:
            held, self._sync = self._sync, None
        if held is not None:
            held[0].close()

    async def aclose(self) -> None:
        """Close both clients' pools (injected httpx clients stay open)."""
        self.close()
        with self._lock:
            held, self._async = self._async, None
        if held is not None:
            await held[0].aclose()
