"""Probing a server: which model, how large its vectors, which features it has (sans-I/O).

Every probe request is retried like any other request, and only an answer about the content
(2xx, or 400/404/405/413/422 naming what is missing) is read as a capability: a status that
may be transient (429, 5xx) or anything else unexpected raises, so that a flaky link is never
cached as "the server cannot do this" for the life of a client.
"""

from __future__ import annotations

import logging
import re

import httpx

from .._constants import CONTENT_STATUS
from .._exceptions import APIError, NotFoundError
from ..transport._http import Call, Step, json_or_text, map_status_error
from . import ChatEmbeddingResponse, ModelList, parse_error_message
from ._endpoints import CHAT, COHERE, SERVER
from ._server_info import ServerInfo

__all__ = ["probe", "served_models"]

log = logging.getLogger("vllm_multimodal_embeddings")

# Sent only by probes: no input_type is ever called this, so the 400 lists the real ones.
_PROBE_INPUT_TYPE = "__vmme_probe__"
_SUPPORTED_TYPES_RE = re.compile(r"Supported values:\s*(.+?)\s*$")


def _model_list(response: httpx.Response) -> ModelList:
    try:
        return ModelList.model_validate(response.json())
    except ValueError as exc:  # bad JSON or a body of another shape (an HTML proxy page)
        raise APIError(f"GET {SERVER.models} returned no model list: {exc}") from exc


# Statuses of an endpoint that is not there at all.
_MISSING = frozenset({404, 405})


def _answer(response: httpx.Response) -> bool:
    """Whether a feature probe succeeded; a refusal of the content is a "no", and any other
    failure (a 5xx or 429 the retries did not mend, an auth error) is raised, not cached."""
    if response.is_success:
        return True
    if response.status_code in CONTENT_STATUS:
        return False
    raise map_status_error(response)


def served_models() -> Step[ModelList]:
    """The server's models (at least one: a server that serves none is a ``NotFoundError``)."""
    models = _model_list((yield Call("GET", SERVER.models)))
    if not models.data:
        raise NotFoundError("the server serves no model", response=httpx.Response(404))
    return models


def probe(model: str | None) -> Step[ServerInfo]:
    """Find the model (``model``, else the first served), its vector size and the features."""
    models = yield from served_models()
    card = next((m for m in models.data if m.id == model), None)
    if model is None:
        card = models.data[0]
        model = card.id

    version_resp = yield Call("GET", SERVER.version, raise_for_status=False)
    body = json_or_text(version_resp) if version_resp.is_success else None
    version = str(body["version"]) if isinstance(body, dict) and "version" in body else None

    plain = {"model": model, "input": "probe", "encoding_format": "float"}
    first = yield Call("POST", CHAT.path, plain)
    try:
        embedding_size = int(ChatEmbeddingResponse.model_validate(first.json()).vectors(1)[0].size)
    except ValueError as exc:
        raise APIError(f"POST {CHAT.path} returned no usable vector: {exc}") from exc

    batch_body = {
        "model": model,
        "messages": [[{"role": "user", "content": [{"type": "text", "text": "probe"}]}]],
        "encoding_format": "float",
    }
    batch_resp = yield Call("POST", CHAT.path, batch_body, raise_for_status=False)
    batched = _answer(batch_resp)

    dims_resp = yield Call("POST", CHAT.path, {**plain, "dimensions": 1}, raise_for_status=False)
    # A model with a fixed list of Matryoshka sizes refuses 1 but names the list instead.
    matryoshka = _answer(dims_resp) or (
        dims_resp.status_code == 400
        and "does not support matryoshka"
        not in parse_error_message(json_or_text(dims_resp), "").lower()
    )

    types_resp = yield Call(
        "POST",
        COHERE.path,
        {"model": model, "texts": ["probe"], "input_type": _PROBE_INPUT_TYPE},
        raise_for_status=False,
    )
    input_types: tuple[str, ...] | None
    if types_resp.status_code in _MISSING:
        input_types = None
    else:
        _answer(types_resp)
        message = parse_error_message(json_or_text(types_resp), "")
        match = _SUPPORTED_TYPES_RE.search(message)
        input_types = (
            tuple(sorted(t.strip() for t in match.group(1).split(",") if t.strip()))
            if match
            else ()
        )

    info = ServerInfo(
        model=model,
        max_model_len=card.max_model_len if card else None,
        version=version,
        embedding_size=embedding_size,
        batched_conversations=batched,
        matryoshka=matryoshka,
        input_types=input_types,
    )
    log.debug("probed: %s", info)
    return info
