"""Hand-written reference requests for the live tests: plain httpx, no package code.

These pin the wire contract the package relies on, independently of its own request builders.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import numpy as np
from PIL import Image

from vllm_multimodal_embeddings._constants import QWEN_DEFAULT_INSTRUCTION

TIMEOUT = httpx.Timeout(120.0)


def image_png(seed: int, size: tuple[int, int] = (64, 64)) -> bytes:
    """A small deterministic noise image, PNG-encoded."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def recipe_messages(
    *,
    image: str | None = None,
    text: str | None = None,
    instruction: str = QWEN_DEFAULT_INSTRUCTION,
) -> list[dict[str, Any]]:
    """DESIGN.md's chat recipe: system, user (image then text), empty assistant turn."""
    content: list[dict[str, Any]] = []
    if image is not None:
        content.append({"type": "image_url", "image_url": {"url": image}})
    if text is not None:
        content.append({"type": "text", "text": text})
    return [
        {"role": "system", "content": [{"type": "text", "text": instruction}]},
        {"role": "user", "content": content},
        {"role": "assistant", "content": [{"type": "text", "text": ""}]},
    ]


def chat_embed_request(model: str, messages: list[Any], **extra: Any) -> dict[str, Any]:
    """A ``/v1/embeddings`` chat request body (one conversation or a batch of them)."""
    return {
        "model": model,
        "messages": messages,
        "continue_final_message": True,
        "add_special_tokens": True,
        "encoding_format": "float",
        **extra,
    }


def post(base_url: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{base_url}{path}", json=body, timeout=TIMEOUT)


def list_models(base_url: str) -> list[dict[str, Any]]:
    """``GET /v1/models``: the served models, each with ``max_model_len``."""
    resp = httpx.get(f"{base_url}/v1/models", timeout=TIMEOUT)
    resp.raise_for_status()
    models: list[dict[str, Any]] = resp.json()["data"]
    return models


def chat_vectors(base_url: str, model: str, messages: list[Any], **extra: Any) -> np.ndarray:
    """POST the chat recipe; the vectors in response order (raises on a non-200)."""
    resp = post(base_url, "/v1/embeddings", chat_embed_request(model, messages, **extra))
    resp.raise_for_status()
    data = resp.json()["data"]
    return np.array([d["embedding"] for d in sorted(data, key=lambda d: d["index"])])


def v2_vectors(base_url: str, model: str, **body: Any) -> np.ndarray:
    """POST ``/v2/embed`` asking for float vectors (raises on a non-200)."""
    resp = post(base_url, "/v2/embed", {"model": model, "embedding_types": ["float"], **body})
    resp.raise_for_status()
    return np.array(resp.json()["embeddings"]["float"])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def error_message(resp: httpx.Response) -> str:
    """The server's error message, from the nested or the old flat error shape."""
    body = resp.json()
    err = body.get("error", body)
    return str(err.get("message", err) if isinstance(err, dict) else err)
