"""``doctor``: check that a running vLLM server gives right results for this package.

Each check has a severity. A failed ``error`` check means the server would give wrong or failing
results (exit code 1); a failed ``warning`` check means slower or fewer features (exit code 0).

==========================  ========  ====================================================
check                       severity  fails when
==========================  ========  ====================================================
reachable                   error     ``GET /health`` does not answer 200
model                       error     ``/v1/models`` or the probe fails (wrong model, key)
version                     warning   ``GET /version`` does not answer
chat protocol               error     ``/v1/embeddings`` with ``messages`` fails
image preprocessing         error     probe images get another number of image tokens than
                                      the official embedder gives them (processor limits)
video preprocessing         error     probe videos get another number of video tokens than
                                      the official embedder gives them (frame sampling,
                                      per-frame pixel bounds, untrusted request fields)
/v2/embed                   warning   the endpoint is missing (vLLM < 0.18)
batched conversations       warning   one conversation per request only (vLLM < 0.24)
matryoshka                  error     ``dimensions`` refused or wrong length
input_type                  error     ``query`` or ``document`` task instruction missing
normalized                  error     a vector's norm is off 1 by more than 1e-3
parity image / parity text  error     ``/v2/embed`` and chat vectors differ (cosine < 0.999)
==========================  ========  ====================================================
"""

from __future__ import annotations

import base64
import io
import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from .._constants import (
    DEFAULT_MAX_PIXELS,
    ENV_API_KEY,
    VIDEO_FRAME_MAX_PIXELS,
    VIDEO_FRAME_MIN_PIXELS,
)
from .._exceptions import AuthenticationError, VLLMEmbeddingError
from .._types import Content
from ..embeddings._client import EmbeddingClient
from ..inputs._images import smart_resize
from ..inputs._video import VideoHeader, official_frame_count, official_video_kwargs
from ..protocol import parse_body
from ..protocol._endpoints import CHAT, COHERE
from ..protocol._server_info import ServerInfo
from ..protocol.cohere import CohereEmbedResponse, build_cohere_request
from ..server.flags import (
    CHAT_TEMPLATE_PATH,
    DEFAULT_TASK_INSTRUCTIONS,
    OFFICIAL_MEDIA_IO_KWARGS,
    OFFICIAL_PROCESSOR_KWARGS,
)
from ..transport._http import Call, SyncTransport
from ._checks import (
    CheckResult,
    client_options,
    gradient_png,
    probe_image_png,
    reachable,
    result,
    skip,
)

__all__ = [
    "FIX_CHAT_TEMPLATE",
    "FIX_MATRYOSHKA",
    "FIX_PROCESSOR",
    "FIX_TASK_INSTRUCTIONS",
    "FIX_VERSION_BATCH",
    "FIX_VERSION_V2",
    "FIX_VIDEO",
    "FIX_VIDEO_TRUST",
    "NORM_TOLERANCE",
    "PARITY_MIN_COSINE",
    "PREPROCESSING_PROBES",
    "VIDEO_PROBES",
    "official_image_tokens",
    "official_video_tokens",
    "probe_video",
    "run_checks",
    "video_preprocessing_check",
]

PARITY_MIN_COSINE = 0.999
"""Cosine above which a ``/v2/embed`` vector and a chat vector count as the same rendering.

Measured on an H100, vLLM 0.26, 2B shape in bf16 (benchmarks/results/2026-11-23-h100-vllm0.26.md):
a correct server gives 0.99977-1.0 (bf16 noise, alone or batched); without our chat template the
doctor's probes give 0.71 (image) and 0.76 (text). float32 servers give 1.000000.
"""
NORM_TOLERANCE = 1e-3

FIX_MATRYOSHKA = "--hf-overrides '{\"is_matryoshka\": true}'"
# The instructions hold apostrophes; \u0027 keeps the JSON valid inside shell single quotes.
_TASK_JSON = json.dumps({"task_instructions": dict(DEFAULT_TASK_INSTRUCTIONS)}).replace(
    "'", "\\u0027"
)
FIX_TASK_INSTRUCTIONS = (
    f"--hf-overrides '{_TASK_JSON}' (one --hf-overrides object together with is_matryoshka)"
)
FIX_CHAT_TEMPLATE = (
    f"--chat-template .../{CHAT_TEMPLATE_PATH.name} (packaged at "
    "vllm_multimodal_embeddings.server.CHAT_TEMPLATE_PATH; docker/compose.yaml mounts it)"
)
FIX_PROCESSOR = (
    f"--mm-processor-kwargs '{json.dumps(dict(OFFICIAL_PROCESSOR_KWARGS))}' (vLLM otherwise "
    "resizes images with the checkpoint's preprocessor_config.json limits)"
)
FIX_VIDEO = (
    f"--media-io-kwargs '{json.dumps({k: dict(v) for k, v in OFFICIAL_MEDIA_IO_KWARGS.items()})}'"
    f" and --mm-processor-kwargs '{json.dumps(dict(OFFICIAL_PROCESSOR_KWARGS))}' (vLLM otherwise"
    " samples 2 frames/s and bounds pixels per video, not per frame)"
)
FIX_VIDEO_TRUST = (
    "--trust-request-mm-kwargs (the client sends a video's own frame count and pixel bounds "
    "where the flags cannot express them)"
)
FIX_VERSION_V2 = "upgrade vLLM to >= 0.18 (docker/compose.yaml pins a tested one)"
FIX_VERSION_BATCH = "upgrade vLLM to >= 0.24; the client falls back to one request per input"

_PROBE_TEXT = "vllm-mm-embed doctor: a short probe text."
# One image under the official minimum (4,096 px) and one over the maximum (1,843,200 px):
# a checkpoint's own limits usually differ on one side (Qwen3-VL-Instruct's start at 65,536).
PREPROCESSING_PROBES: tuple[tuple[int, int], ...] = ((40, 30), (1920, 1080))
_TOKEN_BLOCK = 32  # one image token per 32x32 pixels after resizing
# <|vision_start|> and <|vision_end|> around the image tokens (Qwen-VL chat templates).
_VISION_MARKERS = 2


def official_image_tokens(width: int, height: int) -> int:
    """Image tokens the official embedder makes of a ``width`` x ``height`` image."""
    w, h = smart_resize(width, height, max_pixels=DEFAULT_MAX_PIXELS)
    return (w // _TOKEN_BLOCK) * (h // _TOKEN_BLOCK)


def _cosine(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _v2_raw(transport: SyncTransport, model: str, part: dict[str, Any]) -> npt.NDArray[Any]:
    """``/v2/embed`` ``inputs`` without ``input_type``: rendered by the server's template alone."""
    body = build_cohere_request(model=model, inputs=[[part]], input_type=None)
    resp = transport.send(Call("POST", COHERE.path, body))
    return parse_body(CohereEmbedResponse, resp.content).vectors("base64", 1)[0]


def _prompt_tokens(transport: SyncTransport, model: str, content: list[dict[str, Any]]) -> int:
    """``usage.prompt_tokens`` of one chat embedding request (float-encoded, sent as is)."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "encoding_format": "float",
        "add_special_tokens": True,
    }
    resp = transport.send(Call("POST", CHAT.path, body))
    return int(resp.json()["usage"]["prompt_tokens"])


def _preprocessing_check(transport: SyncTransport, model: str) -> CheckResult:
    """Count the image tokens the server makes of probe images; compare with the official."""
    name = "image preprocessing"
    text = {"type": "text", "text": _PROBE_TEXT}
    # Hand-built bodies through the client's transport, not its input pipeline: the client
    # would resize the large probe itself and hide what the server does to other clients'.
    try:
        base = _prompt_tokens(transport, model, [text])
        found: list[tuple[int, int, int, int]] = []
        for width, height in PREPROCESSING_PROBES:
            uri = "data:image/png;base64," + base64.b64encode(gradient_png(width, height)).decode(
                "ascii"
            )
            image = {"type": "image_url", "image_url": {"url": uri}}
            total = _prompt_tokens(transport, model, [image, text])
            got = total - base - _VISION_MARKERS
            found.append((width, height, got, official_image_tokens(width, height)))
    except (VLLMEmbeddingError, KeyError, TypeError, ValueError) as exc:
        return result(name, False, "error", f"probe failed: {exc}", "see the server log")
    detail = ", ".join(
        f"{w}x{h}: {got} image tokens" + ("" if got == want else f" (official {want})")
        for w, h, got, want in found
    )
    ok = all(got == want for _, _, got, want in found)
    return result(name, ok, "error", detail if not ok else detail + " (official)", FIX_PROCESSOR)


# (seconds, fps, width, height): 8 official frames the server flags alone must reproduce (the
# loader's default takes 16), and 5 s, which the loader samples as 5 frames and the official
# embedder as 4: only the request's own fields fix that one.
VIDEO_PROBES: tuple[tuple[int, int, int, int], ...] = ((8, 4, 480, 352), (5, 4, 480, 352))


def probe_video(seconds: int, fps: int, width: int, height: int) -> bytes:
    """A deterministic MP4 (MPEG-4 part 2) of moving gradients; needs PyAV (``video`` extra)."""
    import av

    out_buf = io.BytesIO()
    x = np.linspace(0, 255, width, dtype=np.float32)
    with av.open(out_buf, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(seconds * fps):
            row = np.roll(x, i * 7)
            rgb = np.empty((height, width, 3), np.uint8)
            rgb[..., 0] = row
            rgb[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
            rgb[..., 2] = 255 - row
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode(None))
    return out_buf.getvalue()


def official_video_tokens(seconds: int, fps: int, width: int, height: int) -> int:
    """Video tokens the official embedder makes of a video (2 frames per token grid)."""
    frames = official_frame_count(seconds * fps, fps)
    w, h = smart_resize(
        width, height, min_pixels=VIDEO_FRAME_MIN_PIXELS, max_pixels=VIDEO_FRAME_MAX_PIXELS
    )
    return frames // 2 * (w // _TOKEN_BLOCK) * (h // _TOKEN_BLOCK)


def video_preprocessing_check(transport: SyncTransport, model: str) -> CheckResult:
    """Count the video tokens the server makes of probe videos; compare with the official.

    ``POST /tokenize`` runs the server's video loader and processor without the model; the
    ``<|video_pad|>`` tokens in its answer are the video tokens. The second probe is sent with
    the per-request fields the client would send for it.
    """
    name = "video preprocessing"
    try:
        import av  # noqa: F401
    except ImportError:
        return skip(name, "error", "needs PyAV: pip install 'vllm-multimodal-embeddings[video]'")
    try:
        pad = transport.send(
            Call("POST", "/tokenize", {"model": model, "prompt": "<|video_pad|>"})
        ).json()["tokens"]
        if len(pad) != 1:
            return skip(name, "error", "the tokenizer has no single <|video_pad|> token")
        found: list[tuple[str, int | None, int]] = []
        for seconds, fps, width, height in VIDEO_PROBES:
            data = probe_video(seconds, fps, width, height)
            uri = "data:video/mp4;base64," + base64.b64encode(data).decode("ascii")
            content = [{"type": "video_url", "video_url": {"url": uri}}]
            body: dict[str, Any] = {
                "model": model,
                "messages": [{"role": "user", "content": content}],
            }
            fields = official_video_kwargs(VideoHeader(seconds * fps, fps, width, height))
            if fields is not None:
                body["media_io_kwargs"] = fields.media_io_kwargs
                body["mm_processor_kwargs"] = fields.mm_processor_kwargs
            label = f"{seconds} s at {fps} fps {width}x{height}"
            want = official_video_tokens(seconds, fps, width, height)
            try:
                tokens = transport.send(Call("POST", "/tokenize", body, retry=False)).json()
            except VLLMEmbeddingError as exc:
                if fields is None or "trust-request-mm-kwargs" not in str(exc):
                    raise
                found.append((label, None, want))  # refused: the server trusts no request fields
                continue
            found.append((label, sum(1 for t in tokens["tokens"] if t == pad[0]), want))
    except (VLLMEmbeddingError, KeyError, TypeError, ValueError) as exc:
        return result(name, False, "error", f"probe failed: {exc}", "see the server log")
    detail = ", ".join(
        f"{label}: "
        + (
            "request video fields refused"
            if got is None
            else f"{got} video tokens" + ("" if got == want else f" (official {want})")
        )
        for label, got, want in found
    )
    wrong = any(got is not None and got != want for _, got, want in found)
    refused = any(got is None for _, got, _ in found)
    if not wrong and not refused:
        return result(name, True, "error", detail + " (official)")
    fix = " ".join(([FIX_VIDEO] if wrong else []) + ([FIX_VIDEO_TRUST] if refused else []))
    return result(name, False, "error", detail, fix)


def run_checks(
    base_url: str,
    *,
    api_key: str | None = None,
    model: str | None = None,
    timeout: float | None = None,
) -> list[CheckResult]:
    """Probe the server at ``base_url`` and return every check, in table order."""
    checks: list[CheckResult] = []
    options = client_options(base_url, api_key, timeout)
    if isinstance(options, CheckResult):
        return [options]
    options["model"] = model
    base_url = options["base_url"]
    # Every request goes through the client's one HTTP layer: its key handling, timeouts,
    # error mapping and redaction apply to the doctor too.
    with EmbeddingClient(**options) as chat:
        reachable_ = reachable(chat._transport, base_url)
        checks.append(reachable_)
        if reachable_.status != "ok":
            return checks
        try:
            info = chat.server_info()
        except AuthenticationError as exc:
            checks.append(
                result(
                    "model",
                    False,
                    "error",
                    str(exc),
                    f"pass the server's key ({ENV_API_KEY} or --ask-api-key)",
                )
            )
            return checks
        except VLLMEmbeddingError as exc:
            checks.append(
                result("model", False, "error", str(exc), "check --model against GET /v1/models")
            )
            return checks
        checks += _info_checks(info)
        checks += _embed_checks(chat, info, options)
    return checks


def _info_checks(info: ServerInfo) -> list[CheckResult]:
    len_note = (
        f"max_model_len {info.max_model_len}" if info.max_model_len else "max_model_len unknown"
    )
    return [
        CheckResult(
            "model", "ok", "error", f"{info.model}: {info.embedding_size} dims, {len_note}"
        ),
        result(
            "version",
            info.version is not None,
            "warning",
            f"vLLM {info.version}" if info.version else "GET /version did not answer",
            "a vLLM with GET /version (>= 0.18)",
        ),
        result(
            COHERE.path,
            info.input_types is not None,
            "warning",
            "served" if info.input_types is not None else "missing (Cohere protocol unavailable)",
            FIX_VERSION_V2,
        ),
        result(
            "batched conversations",
            info.batched_conversations,
            "warning",
            "messages: [[...], ...] accepted"
            if info.batched_conversations
            else "one conversation per request",
            FIX_VERSION_BATCH,
        ),
    ]


def _embed_checks(
    chat: EmbeddingClient, info: ServerInfo, options: dict[str, Any]
) -> list[CheckResult]:
    checks: list[CheckResult] = []
    png = probe_image_png()
    try:
        text_vec, image_vec = chat.embed_array([_PROBE_TEXT, Content(image=png)])
    except VLLMEmbeddingError as exc:
        checks.append(result("chat protocol", False, "error", str(exc), "see the server log"))
        return checks
    checks.append(
        CheckResult("chat protocol", "ok", "error", "/v1/embeddings with messages: text, image")
    )
    checks.append(_preprocessing_check(chat._transport, info.model))
    checks.append(video_preprocessing_check(chat._transport, info.model))

    checks.append(_matryoshka_check(chat, info))

    if info.input_types is None:
        checks.append(skip("input_type", "error", "no /v2/embed"))
    else:
        missing = [t for t in ("query", "document") if t not in info.input_types]
        known = ", ".join(info.input_types) or "none"
        checks.append(
            result(
                "input_type",
                not missing,
                "error",
                f"known: {known}" + (f"; missing: {', '.join(missing)}" if missing else ""),
                FIX_TASK_INSTRUCTIONS,
            )
        )

    norms = {"text": float(np.linalg.norm(text_vec)), "image": float(np.linalg.norm(image_vec))}
    off = {k: v for k, v in norms.items() if abs(v - 1.0) > NORM_TOLERANCE}
    checks.append(
        result(
            "normalized",
            not off,
            "error",
            ", ".join(f"{k} {v:.6f}" for k, v in norms.items()),
            "drop any --pooler-config that turns normalization off",
        )
    )

    if info.input_types is None:
        checks.append(skip("parity image", "error", "no /v2/embed"))
        checks.append(skip("parity text", "error", "no /v2/embed"))
        return checks
    png_uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    pairs: list[tuple[str, npt.NDArray[Any], Any, dict[str, Any]]] = [
        ("parity image", image_vec, png, {"type": "image_url", "image_url": {"url": png_uri}}),
        ("parity text", text_vec, _PROBE_TEXT, {"type": "text", "text": _PROBE_TEXT}),
    ]
    use_client = "document" in info.input_types
    with EmbeddingClient(**{**options, "model": info.model, "protocol": COHERE.name}) as cohere:
        for name, chat_vec, item, part in pairs:
            try:
                if use_client:
                    # What a user gets: the Cohere protocol with the document instruction.
                    v2_vec = cohere.embed_array(
                        [Content(image=item) if name.endswith("image") else item]
                    )[0]
                    how = "input_type=document"
                else:
                    # No task instructions: the template's default instruction is the same one.
                    v2_vec = _v2_raw(chat._transport, info.model, part)
                    how = "no input_type"
            except (VLLMEmbeddingError, ValueError) as exc:
                checks.append(
                    result(name, False, "error", f"/v2/embed failed: {exc}", "see the server log")
                )
                continue
            cos = _cosine(chat_vec, v2_vec)
            checks.append(
                result(
                    name,
                    cos >= PARITY_MIN_COSINE,
                    "error",
                    f"cosine {cos:.6f} ({how}; pass >= {PARITY_MIN_COSINE})",
                    FIX_CHAT_TEMPLATE
                    + "; and task_instructions.document equal to the client's document instruction",
                    value=cos,
                )
            )
    return checks


def _matryoshka_check(chat: EmbeddingClient, info: ServerInfo) -> CheckResult:
    if not info.matryoshka:
        return result("matryoshka", False, "error", "dimensions refused (400)", FIX_MATRYOSHKA)
    dims = max(1, info.embedding_size // 2)
    try:
        vec = chat.embed_array([_PROBE_TEXT], dimensions=dims)[0]
    except VLLMEmbeddingError as exc:
        return result("matryoshka", False, "error", str(exc), FIX_MATRYOSHKA)
    norm = float(np.linalg.norm(vec))
    ok = vec.shape[0] == dims and math.isclose(norm, 1.0, abs_tol=NORM_TOLERANCE)
    return result(
        "matryoshka",
        ok,
        "error",
        f"dimensions={dims} -> {vec.shape[0]} values, norm {norm:.6f}",
        FIX_MATRYOSHKA,
    )
