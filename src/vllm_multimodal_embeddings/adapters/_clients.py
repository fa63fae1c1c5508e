"""The core clients behind a framework adapter, kept in step with the adapter's settings.

Adapters are pydantic models whose fields users may change at any time, and an async client
belongs to the event loop that first used it (its httpx pool and semaphores do). So an adapter
holds one sync client, and one async client for the running loop, each rebuilt when the
settings (the *key*) or injected httpx client it was built from no longer match.
:class:`LoopBoundClients` is that mechanism; :class:`AdapterClients` holds embedding clients
(the server is probed once per settings, whatever the number of clients and event loops) and
:class:`RerankerClients` reranking clients.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import weakref
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Generic, Protocol, TypeVar

import httpx

from ..embeddings._client import AsyncEmbeddingClient, EmbeddingClient
from ..embeddings._settings import ClientSettings
from ..protocol._server_info import ServerInfo
from ..reranking import AsyncRerankClient, RerankClient
from ..reranking._settings import RerankerSettings

__all__ = [
    "AdapterClients",
    "LoopBoundClients",
    "RerankerClients",
    "reranker_setup",
    "settings_from",
]


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


class _Closable(Protocol):
    def close(self) -> None: ...


class _AsyncClosable(Protocol):
    async def aclose(self) -> None: ...


async def _closing(client: _AsyncClosable) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await client.aclose()


def _close_with_loop(client: _AsyncClosable) -> AsyncGenerator[None, None]:
    """Have the running event loop close ``client`` when it shuts down.

    An async generator's first step registers it with the running loop, and ``asyncio.run``
    closes every registered generator before it closes the loop: the client's pool is then
    closed in its own loop, instead of leaking its sockets into the next ``asyncio.run``. The
    caller keeps the generator (the loop holds it weakly); dropped while its loop runs (the
    client was replaced), it is closed then.
    """
    agen = _closing(client)

    async def first_step() -> None:
        await agen.__anext__()

    asyncio.get_running_loop().create_task(first_step())
    return agen


def _close_all(clients: list[_Closable]) -> None:
    for client in clients:
        client.close()


K = TypeVar("K")
S = TypeVar("S", bound=_Closable)
A = TypeVar("A", bound=_AsyncClosable)


class LoopBoundClients(Generic[K, S, A]):
    """One sync client and one async client per event loop, rebuilt when their key changes.

    Subclasses say how a client is built from a key (:meth:`_build_sync`, :meth:`_build_async`)
    and, if plain equality is too strict, when a built client still fits a key (:meth:`_fits`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sync: tuple[S, K, httpx.Client | None] | None = None
        # Framework adapters have no ``with``, and many users never close them: the sync
        # client still held when the holder is collected is closed then, so its sockets do
        # not outlive it (an unclosed-socket ResourceWarning each). The box, not ``self``,
        # is what the finalizer holds.
        self._held_sync: list[_Closable] = []
        weakref.finalize(self, _close_all, self._held_sync)
        self._async: (
            tuple[
                A,
                K,
                httpx.AsyncClient | None,
                weakref.ref[asyncio.AbstractEventLoop],
                AsyncGenerator[None, None],
            ]
            | None
        ) = None

    # Adapters must pickle: a holder travels empty and is rebuilt on first use.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]

    def _build_sync(self, key: K, http_client: httpx.Client | None) -> S:
        raise NotImplementedError

    def _build_async(self, key: K, http_client: httpx.AsyncClient | None) -> A:
        raise NotImplementedError

    def _fits(self, built: K, client: S | A, wanted: K) -> bool:
        """Whether ``client``, built from ``built``, serves ``wanted``."""
        return built == wanted

    def _before_build(self) -> None:
        """Called under the lock before a lookup (a hook to harvest what clients learnt)."""

    def sync(self, key: K, http_client: httpx.Client | None) -> S:
        """The sync client for ``key``; a stale one is closed."""
        with self._lock:
            held = self._sync
            self._before_build()
            if held is not None and held[2] is http_client and self._fits(held[1], held[0], key):
                return held[0]
            client = self._build_sync(key, http_client)
            self._sync = (client, key, http_client)
            self._held_sync[:] = [client]
        if held is not None:
            held[0].close()
        return client

    def async_(self, key: K, http_client: httpx.AsyncClient | None) -> A:
        """The async client for ``key`` and the running event loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            held = self._async
            self._before_build()
            if (
                held is not None
                and held[3]() is loop
                and held[2] is http_client
                and self._fits(held[1], held[0], key)
            ):
                return held[0]
            # A replaced client may belong to a closed loop: its pool cannot be awaited here,
            # its loop closes it (see _close_with_loop).
            client = self._build_async(key, http_client)
            self._async = (client, key, http_client, weakref.ref(loop), _close_with_loop(client))
            return client

    def close(self) -> None:
        """Close the sync client's pool (an injected httpx client stays open)."""
        with self._lock:
            self._before_build()
            held, self._sync = self._sync, None
            self._held_sync.clear()
        if held is not None:
            held[0].close()

    async def aclose(self) -> None:
        """Close both clients' pools (injected httpx clients stay open)."""
        self.close()
        with self._lock:
            self._before_build()
            held, self._async = self._async, None
        if held is not None:
            await held[0].aclose()


def _same(built: ClientSettings, model: str | None, wanted: ClientSettings) -> bool:
    """Whether a client built from ``built`` (whose model is now ``model``) fits ``wanted``.

    A client built without a model has asked the server for one; naming that model now asks
    for the same client, so filling in the model (LlamaIndex does) rebuilds nothing.
    """
    if built == wanted:
        return True
    return built.model is None and dataclasses.replace(built, model=model) == wanted


class AdapterClients(LoopBoundClients[ClientSettings, EmbeddingClient, AsyncEmbeddingClient]):
    """The embedding adapters' clients; the server is probed once per settings."""

    def __init__(self) -> None:
        super().__init__()
        # The last probe result and the settings it was found with.
        self._probed: tuple[ClientSettings, ServerInfo] | None = None

    def _before_build(self) -> None:
        """Keep the probe result of either client, for the clients built next."""
        for held in (self._sync, self._async):
            if held is not None and held[0]._info is not None:
                self._probed = (held[0].settings, held[0]._info)

    def _adopt(self, client: EmbeddingClient | AsyncEmbeddingClient) -> None:
        probed = self._probed
        if probed is not None and _same(probed[0], probed[1].model, client.settings):
            client._adopt(probed[1])

    def _fits(
        self,
        built: ClientSettings,
        client: EmbeddingClient | AsyncEmbeddingClient,
        wanted: ClientSettings,
    ) -> bool:
        return _same(built, client.model, wanted)

    def _build_sync(self, key: ClientSettings, http_client: httpx.Client | None) -> EmbeddingClient:
        client = EmbeddingClient(key, http_client=http_client)
        self._adopt(client)
        return client

    def _build_async(
        self, key: ClientSettings, http_client: httpx.AsyncClient | None
    ) -> AsyncEmbeddingClient:
        client = AsyncEmbeddingClient(key, http_client=http_client)
        self._adopt(client)
        return client


#: The connection settings the reranker adapters offer as their own fields, with the
#: reranker's model and instruction.
RERANKER_FIELDS = (
    "base_url",
    "api_key",
    "batch_size",
    "max_concurrency",
    "timeout",
    "max_retries",
    "model",
    "instruction",
)


def reranker_setup(
    adapter: Any,
    settings: RerankerSettings | ClientSettings | None,
    fields: tuple[str, ...] = RERANKER_FIELDS,
) -> RerankerSettings:
    """A reranker adapter's settings: ``settings`` (every other client setting: headers, image
    bounds, retry time...) under the adapter's own fields.

    A field wins where the user set it, or where ``settings`` leaves it unset (a ``base_url``
    or key from the environment); otherwise the field's default yields to ``settings``. An
    embedding client's ``ClientSettings`` lends only what the reranker shares with it: its
    ``model`` names the embedding model, never the reranker. ``fields``: the setting names the
    adapter has as fields (more than :data:`RERANKER_FIELDS` where it offers the image ones).
    """
    explicit: set[str] = adapter.model_fields_set
    options: dict[str, Any] = {}
    for name in fields:
        value = getattr(adapter, name)
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if (
            settings is None
            or name in explicit
            or (not isinstance(settings, RerankerSettings) and name in ("model", "instruction"))
            or getattr(settings, name) is None
        ):
            options[name] = value
    return RerankerSettings.of(settings, **options)


class RerankerClients(LoopBoundClients[RerankerSettings, RerankClient, AsyncRerankClient]):
    """The reranker adapters' clients."""

    def _build_sync(self, key: RerankerSettings, http_client: httpx.Client | None) -> RerankClient:
        return RerankClient(key, http_client=http_client)

    def _build_async(
        self, key: RerankerSettings, http_client: httpx.AsyncClient | None
    ) -> AsyncRerankClient:
        return AsyncRerankClient(key, http_client=http_client)
