"""Haystack components over the shared adapter core: no HTTP, no settings of their own.

Haystack's ``@component`` gives a class a metaclass that pydantic's cannot share, so each
component is a plain class holding one pydantic model of the core (:class:`EmbedderCore`,
:class:`RankerCore`): fields, checks, clients and closing come from ``adapters/``. What is left
here is Haystack's side: ``Secret`` keys, init parameters kept as given for ``to_dict`` (what is
left ``None`` is read from the environment when a loaded pipeline runs), and Documents whose
``meta`` names an image or a PDF page.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.utils import Secret, deserialize_secrets_inplace
from pydantic import ConfigDict, PrivateAttr, SecretStr, model_validator
from tqdm import tqdm  # type: ignore[import-untyped]
from typing_extensions import Self

from .. import _constants as C
from .._exceptions import APIError, InputError
from .._redact import redact_url
from .._types import Content, EmbedInput, ImageInput, PdfPage, ProtocolName
from ..adapters._base import AdapterBase
from ..adapters._clients import (
    RERANKER_FIELDS,
    AdapterClients,
    RerankerClients,
    reranker_setup,
    settings_from,
)
from ..adapters._fields import EmbeddingFields, InputFields, RerankerFields, declared
from ..embeddings._client import AsyncEmbeddingClient, EmbeddingClient
from ..embeddings._settings import ClientSettings
from ..inputs._pdf import is_pdf_path
from ..profiles import ModelProfile
from ..reranking import AsyncRerankClient, RerankClient, RerankResult
from ..reranking._settings import RerankerSettings

__all__ = [
    "EmbedderCore",
    "RankerCore",
    "VLLMMultimodalDocumentEmbedder",
    "VLLMMultimodalRanker",
    "VLLMMultimodalTextEmbedder",
]

# Settings a repr hides (declared secret=True): never written by to_dict.
_SECRET_SETTINGS = frozenset(
    f.name for f in dataclasses.fields(ClientSettings) if not f.repr and f.name != "api_key"
)

# Read when the component is made; an unset variable means no key (a server without --api-key).
_API_KEY = Secret.from_env_var(C.ENV_API_KEY, strict=False)


class EmbedderCore(AdapterBase, EmbeddingFields):
    """The embedding settings and clients behind the embedder components."""

    model_config = ConfigDict(extra="forbid")

    # None: VLLM_BASE_URL / VLLM_EMBEDDING_MODEL, read by ClientSettings.
    model: str | None = declared(ClientSettings, "model", default=None)
    base_url: str | None = declared(ClientSettings, "base_url", default=None)
    api_key: SecretStr | None = declared(ClientSettings, "api_key", exclude=True, repr=False)
    # Not offered by the components (to_dict would write them out): left to their defaults.
    headers: dict[str, str] | None = declared(ClientSettings, "headers", exclude=True, repr=False)
    profile: ModelProfile | None = declared(ClientSettings, "profile", exclude=True)

    _clients: AdapterClients = PrivateAttr(default_factory=AdapterClients)

    @model_validator(mode="after")
    def _check_settings(self) -> EmbedderCore:
        self.settings()  # a bad setting fails when the component is made, not mid-pipeline
        return self

    def settings(self) -> ClientSettings:
        """The client settings these fields stand for."""
        return self._once(lambda: settings_from(self, {}))

    def sync(self) -> EmbeddingClient:
        return self._clients.sync(self.settings(), None)

    def async_(self) -> AsyncEmbeddingClient:
        return self._clients.async_(self.settings(), None)


class RankerCore(AdapterBase, RerankerFields, InputFields):
    """The reranking settings and clients behind :class:`VLLMMultimodalRanker`; its image and
    PDF settings are fields too, where the other reranker adapters take a ``settings`` object
    (a Haystack component is written out as its plain init arguments)."""

    model_config = ConfigDict(extra="forbid")

    # None: VLLM_RERANKER_BASE_URL, then VLLM_BASE_URL; VLLM_RERANKER_MODEL (RerankerSettings).
    model: str | None = declared(RerankerSettings, "model", default=None)
    base_url: str | None = declared(RerankerSettings, "base_url", default=None)
    api_key: SecretStr | None = declared(RerankerSettings, "api_key", exclude=True, repr=False)
    recipe_images: bool = declared(RerankerSettings, "recipe_images")

    _clients: RerankerClients = PrivateAttr(default_factory=RerankerClients)

    @model_validator(mode="after")
    def _check_settings(self) -> RankerCore:
        self.setup()
        return self

    def setup(self) -> RerankerSettings:
        """What the reranking clients are built from."""
        return self._once(lambda: reranker_setup(self, None, _RANKER_SETTINGS))

    def sync(self) -> RerankClient:
        return self._clients.sync(self.setup(), None)

    def async_(self) -> AsyncRerankClient:
        return self._clients.async_(self.setup(), None)


#: The settings :class:`RankerCore` holds as fields, read into its clients' settings.
_RANKER_SETTINGS = (*RERANKER_FIELDS, *InputFields.model_fields, "recipe_images")

K = TypeVar("K", EmbedderCore, RankerCore)


class _Component(Generic[K]):
    """Serialization and lifecycle: the init arguments as given, the clients in ``_core``."""

    #: Init arguments the component reads itself; every other one is a client setting.
    own: ClassVar[tuple[str, ...]] = ()
    api_key: Secret
    _params: dict[str, Any]
    _core: K

    def _setup(self, core: type[K], args: dict[str, Any]) -> None:
        """Keep ``__init__``'s arguments (its ``locals()``) for ``to_dict``; build the core."""
        self.api_key = args.pop("api_key")
        if not isinstance(self.api_key, Secret):  # a plain string would land in to_dict
            raise TypeError("api_key must be a Secret: Secret.from_env_var(...) or from_token")
        args.pop("self")
        extra = args.pop("settings")
        self._params = {**args, **extra}
        for name in self.own:
            setattr(self, name, self._params[name])
        client = {k: v for k, v in self._params.items() if k not in self.own}
        unknown = sorted(set(client) - set(core.model_fields))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown setting(s) {', '.join(unknown)}")
        key = self.api_key.resolve_value()
        self._core = core(api_key=SecretStr(key) if key else None, **client)

    def to_dict(self) -> dict[str, Any]:
        """Serialize; a key made with ``Secret.from_token`` refuses, as Haystack's own do, and
        so does a ``base_url`` that carries credentials or a query token."""
        url = self._params.get("base_url")
        if url and redact_url(url) != url:
            raise ValueError(
                "cannot serialize a base_url that carries credentials; pass the key as "
                f"api_key=Secret.from_env_var(...) and the URL as {redact_url(url)!r}"
            )
        # Secret settings (PDF passwords, headers that may carry credentials) would be written
        # out as they are: refuse, as for a token key.
        secret = sorted(n for n in _SECRET_SETTINGS if self._params.get(n) is not None)
        if secret:
            raise ValueError(
                f"cannot serialize {', '.join(secret)}: a secret setting would be written out; "
                "leave it out of the serialized component and give it where it runs"
            )
        return default_to_dict(self, api_key=self.api_key, **self._params)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        params = dict(data.get("init_parameters", {}))
        deserialize_secrets_inplace(params, keys=["api_key"])
        return default_from_dict(cls, {**data, "init_parameters": params})

    def warm_up(self) -> None:
        """Build the sync client (no request is made)."""
        self._core.sync()

    def close(self) -> None:
        self._core.close()

    async def close_async(self) -> None:
        await self._core.aclose()


@contextmanager
def _naming(documents: Sequence[Document]) -> Iterator[None]:
    """Put the id of the document an error is about (``exc.index``) in its message."""
    try:
        yield
    except (InputError, APIError) as exc:
        if exc.index is not None and 0 <= exc.index < len(documents):
            exc.message = f"document {documents[exc.index].id!r}: {exc.message}"
        raise


class _DocumentInputs(_Component[K]):
    """What a Document is sent as: its text (with ``meta_fields_to_embed``), and the image or
    PDF page that ``meta[file_path_meta_field]`` names under ``root_path``."""

    own: ClassVar[tuple[str, ...]] = (
        "file_path_meta_field",
        "root_path",
        "meta_fields_to_embed",
        "embedding_separator",
        "text_with_image",
    )
    file_path_meta_field: str
    root_path: str | None
    meta_fields_to_embed: list[str] | None
    embedding_separator: str
    text_with_image: bool

    def _text(self, doc: Document) -> str:
        meta: dict[str, Any] = doc.meta
        fields = self.meta_fields_to_embed or []
        values: list[str] = [str(meta[k]) for k in fields if meta.get(k) is not None]
        return self.embedding_separator.join([*values, doc.content or ""])

    def _image(self, doc: Document) -> ImageInput | None:
        name = doc.meta.get(self.file_path_meta_field)
        if name is None:
            return None
        if not isinstance(name, (str, os.PathLike)):
            raise InputError(f"{self.file_path_meta_field} must be a path, got {name!r}")
        path = Path(self.root_path or "", name)
        # Metadata may come from untrusted files: a root confines it (as Haystack's own do).
        if self.root_path and not path.resolve().is_relative_to(Path(self.root_path).resolve()):
            raise InputError(f"{self.file_path_meta_field} {name!r} escapes root_path")
        if not (is_pdf_path(path) or doc.meta.get("mime_type") == "application/pdf"):
            return path
        page = doc.meta.get("page_number")
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            raise InputError(f"PDF {name!r} needs an integer page_number >= 1, got {page!r}")
        return PdfPage(path, page)

    def _input(self, doc: Document) -> tuple[EmbedInput, dict[str, Any]]:
        """The input for one document and its ``embedding_source``."""
        text, image = self._text(doc), self._image(doc)
        if image is None:
            if not text.strip():
                raise InputError(f"no text and no {self.file_path_meta_field!r} in meta")
            return text, {"type": "text"}
        source = {"file_path_meta_field": self.file_path_meta_field}
        if self.text_with_image and text.strip():
            return Content(text=text, image=image), {"type": "image_and_text", **source}
        return Content(image=image), {"type": "image", **source}

    def _inputs(self, documents: list[Document]) -> tuple[list[EmbedInput], list[dict[str, Any]]]:
        if not isinstance(documents, list) or not all(isinstance(d, Document) for d in documents):
            raise TypeError(f"{type(self).__name__} takes a list of Documents")
        inputs, sources = [], []
        with _naming(documents):
            for i, doc in enumerate(documents):
                try:
                    item, source = self._input(doc)
                except InputError as exc:
                    exc.index = i
                    raise
                inputs.append(item)
                sources.append(source)
        return inputs, sources


@component
class VLLMMultimodalTextEmbedder(_Component[EmbedderCore]):
    """Embeds a query string under the query instruction, for an embedding retriever.

    Usage:
        .. code-block:: python

            embedder = VLLMMultimodalTextEmbedder(query_instruction="visdoc")
            embedder.run("a red bicycle")["embedding"]

    Settings left ``None`` come from ``VLLM_BASE_URL``, ``VLLM_EMBEDDING_MODEL`` (else the
    server's first model); the key from ``VLLM_API_KEY``. ``**settings``: any other client
    setting (``max_concurrency``, ``truncate``, ``int8_scale``, ...).
    """

    def __init__(
        self,
        *,
        api_key: Secret = _API_KEY,
        base_url: str | None = None,
        model: str | None = None,
        dimensions: int | None = None,
        query_instruction: str | None = None,
        protocol: ProtocolName = "chat",
        **settings: Any,
    ) -> None:
        """Args:
        query_instruction: text, or a preset's name (``"visdoc"``); ``None``: the model's.
        protocol: ``chat`` (``/v1/embeddings``) or ``cohere`` (``/v2/embed``, no instruction).
        """
        self._setup(EmbedderCore, dict(locals()))

    @staticmethod
    def _check(text: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(
                "VLLMMultimodalTextEmbedder takes a string; Documents go to the "
                "VLLMMultimodalDocumentEmbedder"
            )
        return [text]

    @component.output_types(embedding=list[float])
    def run(self, text: str) -> dict[str, list[float]]:
        """The query's vector."""
        return {"embedding": self._core.sync().embed(self._check(text), input_type="query")[0]}

    @component.output_types(embedding=list[float])
    async def run_async(self, text: str) -> dict[str, list[float]]:
        """Async :meth:`run`."""
        vectors = await self._core.async_().embed(self._check(text), input_type="query")
        return {"embedding": vectors[0]}


@component
class VLLMMultimodalDocumentEmbedder(_DocumentInputs[EmbedderCore]):
    """Embeds Documents: their text, or the image or PDF page their meta names.

    A document whose ``meta[file_path_meta_field]`` is set is embedded as that file under
    ``root_path``: an image, or with a ``.pdf`` name (or ``meta["mime_type"]``
    ``application/pdf``) the page ``meta["page_number"]`` (from 1). With
    ``text_with_image`` its text goes with the image as one vector. Every other document is
    embedded as its text. ``meta["embedding_source"]`` records which:
    ``{"type": "text" | "image" | "image_and_text", "file_path_meta_field": ...}``.
    Documents come back in order, as copies; an error names the document's id.

    Usage:
        .. code-block:: python

            pipe.add_component("images", ImageFileToDocument())
            pipe.add_component("embedder", VLLMMultimodalDocumentEmbedder(root_path="photos"))
            pipe.add_component("writer", DocumentWriter(document_store=store))
    """

    own = (*_DocumentInputs.own, "progress_bar")
    progress_bar: bool

    def __init__(
        self,
        *,
        api_key: Secret = _API_KEY,
        base_url: str | None = None,
        model: str | None = None,
        dimensions: int | None = None,
        document_instruction: str | None = None,
        protocol: ProtocolName = "chat",
        batch_size: int | None = None,
        file_path_meta_field: str = "file_path",
        root_path: str | None = None,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        text_with_image: bool = False,
        progress_bar: bool = True,
        **settings: Any,
    ) -> None:
        """Args:
        batch_size: documents per request; ``None``: tuned to the server.
        text_with_image: embed a document's text together with its image.
        """
        self._setup(EmbedderCore, dict(locals()))

    def _bar(self, total: int) -> Any:
        return tqdm(total=total, disable=not self.progress_bar, desc="Calculating embeddings")

    def _done(
        self, documents: list[Document], vectors: list[list[float]], sources: list[dict[str, Any]]
    ) -> dict[str, list[Document]]:
        return {
            "documents": [
                replace(doc, embedding=vector, meta={**doc.meta, "embedding_source": source})
                for doc, vector, source in zip(documents, vectors, sources, strict=True)
            ]
        }

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """The documents, in order, with ``embedding`` set."""
        inputs, sources = self._inputs(documents)
        if not inputs:
            return {"documents": []}
        with self._bar(len(inputs)) as bar, _naming(documents):
            vectors = self._core.sync().embed(inputs, on_progress=bar.update)
        return self._done(documents, vectors, sources)

    @component.output_types(documents=list[Document])
    async def run_async(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Async :meth:`run`."""
        inputs, sources = self._inputs(documents)
        if not inputs:
            return {"documents": []}
        with self._bar(len(inputs)) as bar, _naming(documents):
            vectors = await self._core.async_().embed(inputs, on_progress=bar.update)
        return self._done(documents, vectors, sources)


@component
class VLLMMultimodalRanker(_DocumentInputs[RankerCore]):
    """Reranks Documents for a query with Qwen3-VL-Reranker; best first, ``score`` set.

    Documents are read as :class:`VLLMMultimodalDocumentEmbedder` reads them: their text, or
    the image or PDF page ``meta[file_path_meta_field]`` names (with the text, by default).
    Settings left ``None`` come from ``VLLM_RERANKER_BASE_URL`` (then ``VLLM_BASE_URL``) and
    ``VLLM_RERANKER_MODEL``; ``**settings``: ``batch_size``, ``max_concurrency``, ``timeout``,
    ``max_retries``, and the image, PDF and remote-fetch settings of the reranking client
    (``max_image_pixels``, ``recipe_images``, ``fetch_remote_images``, ``remote_allowed_hosts``,
    ``page_max_pixels``, ``pdf_passwords``: not written by ``to_dict``, ...).
    """

    own = (*_DocumentInputs.own, "top_k", "score_threshold")
    top_k: int
    score_threshold: float | None

    def __init__(
        self,
        *,
        api_key: Secret = _API_KEY,
        base_url: str | None = None,
        model: str | None = None,
        instruction: str | None = None,
        top_k: int = 10,
        score_threshold: float | None = None,
        file_path_meta_field: str = "file_path",
        root_path: str | None = None,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        text_with_image: bool = True,
        **settings: Any,
    ) -> None:
        _check_top_k(top_k)
        self._setup(RankerCore, dict(locals()))

    def _plan(
        self, documents: list[Document], top_k: int | None, score_threshold: float | None
    ) -> tuple[list[EmbedInput], int, float]:
        """The documents' inputs, and the call's ``top_k`` and threshold (else the init's)."""
        top_k = self.top_k if top_k is None else top_k
        _check_top_k(top_k)
        threshold = self.score_threshold if score_threshold is None else score_threshold
        inputs, _ = self._inputs(documents)
        return inputs, top_k, -math.inf if threshold is None else threshold

    @component.output_types(documents=list[Document])
    def run(
        self,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        score_threshold: float | None = None,
    ) -> dict[str, list[Document]]:
        """The best ``top_k`` documents scoring at least ``score_threshold``, best first."""
        inputs, top_k, threshold = self._plan(documents, top_k, score_threshold)
        if not inputs:
            return {"documents": []}
        with _naming(documents):
            results = self._core.sync().rerank(query, inputs, top_n=top_k)
        return _scored(documents, results, threshold)

    @component.output_types(documents=list[Document])
    async def run_async(
        self,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        score_threshold: float | None = None,
    ) -> dict[str, list[Document]]:
        """Async :meth:`run`."""
        inputs, top_k, threshold = self._plan(documents, top_k, score_threshold)
        if not inputs:
            return {"documents": []}
        with _naming(documents):
            results = await self._core.async_().rerank(query, inputs, top_n=top_k)
        return _scored(documents, results, threshold)


def _scored(
    documents: list[Document], results: list[RerankResult], threshold: float
) -> dict[str, list[Document]]:
    ranked = [replace(documents[r.index], score=r.score) for r in results if r.score >= threshold]
    return {"documents": ranked}


def _check_top_k(top_k: int) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be an integer > 0, got {top_k!r}")
