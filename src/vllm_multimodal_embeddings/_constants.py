"""Defaults and environment variables, in one place.

Environment variables read by the package:

``VLLM_BASE_URL``
    Server root (``http://host:8000``; a trailing ``/v1`` is accepted and stripped).
``VLLM_API_KEY``
    Bearer token, when the server runs with ``--api-key``.
``VLLM_EMBEDDING_MODEL``
    Served model name; when unset the client asks ``/v1/models``.
"""

from __future__ import annotations

from typing import Final

ENV_BASE_URL: Final = "VLLM_BASE_URL"
ENV_API_KEY: Final = "VLLM_API_KEY"
ENV_MODEL: Final = "VLLM_EMBEDDING_MODEL"

DEFAULT_MODEL: Final = "Qwen/Qwen3-VL-Embedding-2B"

# Qwen3-VL-Embedding's own defaults (model card / official embedder).
QWEN_DEFAULT_INSTRUCTION: Final = "Represent the user's input."
QWEN_QUERY_INSTRUCTION: Final = "Retrieve images or text relevant to the user's query."

# Qwen2/3-VL image processor budget: max_pixels of the official processor config.
DEFAULT_MAX_PIXELS: Final = 1_843_200
# Qwen-VL smart_resize works on 32-pixel blocks (patch 16 x merge 2); smaller images are upscaled.
DEFAULT_MIN_PIXELS: Final = 4_096

# The official embedder's video recipe (qwen_vl_utils with the embedder's settings): 1 frame per
# second, at least 4 and at most 64, an even count; each frame 128..768 blocks of 32x32 pixels.
VIDEO_FPS: Final = 1
VIDEO_MIN_FRAMES: Final = 4
VIDEO_MAX_FRAMES: Final = 64
VIDEO_FRAME_MIN_PIXELS: Final = 128 * 32 * 32
VIDEO_FRAME_MAX_PIXELS: Final = 768 * 32 * 32

DEFAULT_TIMEOUT_S: Final = 120.0
# Enough for a 3000-item job through a link failing 16% of attempts to lose nothing (_retry.py).
DEFAULT_MAX_RETRIES: Final = 8
DEFAULT_BATCH_SIZE: Final = 16
DEFAULT_MAX_BATCH_BYTES: Final = 16 * 1024 * 1024
DEFAULT_MAX_CONCURRENCY: Final = 4
# Prepared payload bytes the streaming pipeline may hold unanswered, per client. A laptop spares
# 256 MiB; it holds ~300 camera photos prepared for the wire (~0.8 MB each as a base64 JPEG at
# the 1.84 MP budget), more than a GPU server needs queued to stay busy (16 requests x 8
# photos), and hundreds of thousands of texts. Request bodies with images stream the prepared
# data: URIs (_json_body.py): no second copy while in flight.
DEFAULT_MAX_INFLIGHT_BYTES: Final = 256 * 1024 * 1024
# What the window reckons an input not yet prepared will take, before any was measured: a
# camera photo prepared for the wire, rounded up.
UNMEASURED_INPUT_BYTES: Final = 1024 * 1024
# The range self-tuning explores when batch_size / max_concurrency are left None (_tuning.py).
AUTO_MAX_BATCH_SIZE: Final = 256
# Where tuned batch size and concurrency start, before anything was prepared: 8 inputs per
# request, 16 in flight. vLLM's GPU profile runs 8 API processes and one request is handled by
# one, so two each overlap their preprocessing with the engine's work. Camera photos at 16 per
# request x 8 in flight reached 0.86 / 0.91x a process-pool hand-written client on an H100
# (issue #36); 16 in flight reached 0.95 / 1.00x. 8 per request keeps the photos in flight at
# 128, as before: each image of a request is one engine request, so a slow server (the 2-core
# CPU one, ~1.8 photos/s) queues the same work and latency as at 16 x 8.
AUTO_START_BATCH_SIZE: Final = 8
AUTO_START_CONCURRENCY: Final = 16
AUTO_MAX_CONCURRENCY: Final = 64
# Payload a request of texts should carry at the least once their size is known: below it the
# request's fixed cost (HTTP, JSON, scheduling) dominates. Measured on an H100: ~30-token texts
# ran 2698/s at 128 per request (16 KiB) and 1345/s starting from 16 (2 KiB); 512-token texts
# (~2 KiB each) peaked at 16 per request, which this keeps.
AUTO_MIN_REQUEST_BYTES: Final = 32 * 1024
# The same for media: a request of images fills this much once their size is known. On an H100
# with 8 API processes, 224 px JPEGs (~10-20 KB each as data: URIs) ran 380 / 427 per second at
# 128 per request x 16 in flight against 309 / 342 at 64 and 296 / 259 where a tuner starting at
# 16 per request got to in a 2,048-image job. Camera photos (~590 KB) stay at the start's 8.
AUTO_MEDIA_REQUEST_BYTES: Final = 2 * 1024 * 1024
# Requests that large go fewer in flight: once the first chunk is prepared, if 16 requests of
# it would carry more than AUTO_LARGE_REQUEST_BYTES (videos, huge scans), the depth drops to
# AUTO_LARGE_START_CONCURRENCY. 16 requests of 8 camera photos carry ~75 MB; a detailed photo
# prepares to up to ~1 MB, which still gets 16.
AUTO_LARGE_START_CONCURRENCY: Final = 8
AUTO_LARGE_REQUEST_BYTES: Final = 128 * 1024 * 1024
# Media inputs of at most this many prepared bytes each have their batch explored first
# (_tuning.py, rule 4): a 224 px JPEG is ~10-20 KB as a data: URI, a camera photo at the
# 1.84 MP budget ~590 KB.
AUTO_SMALL_INPUT_BYTES: Final = 128 * 1024
# Inputs of at least this many bytes (files, bytes, data: URIs) are prepared on processes when
# the client has some: below it, the round trip to a process costs more than the pixel work.
PROCESS_MIN_BYTES: Final = 1024 * 1024
# Encoded images of at most this many bytes are prepared in the chunk's own thread, like texts:
# a header check costs less than the hand-off to a worker (~50 us, with its future and locks).
INLINE_IMAGE_BYTES: Final = 64 * 1024
# A request whose payload carried at least this many bytes (a few camera photos) gives the
# process's free heap pages back to the system once answered (_memory.py); texts and small
# images never pay for it.
TRIM_AFTER_BYTES: Final = 4 * 1024 * 1024

# Default cap on an image's pixel count, read from its header before any decoding: twice
# Pillow's ``MAX_IMAGE_PIXELS`` (2 x 89,478,485), the point where Pillow itself refuses to
# open a file. It admits 108 MP phone photos and 150 MP medium-format scans; an 88 MP 16-bit
# PNG costs ~50 MiB since modes are converted after downscaling (benchmarks/image_prep.py).
DEFAULT_MAX_SOURCE_PIXELS: Final = 178_956_970

# Largest encoded image read from a file, stream or data: URI. A 200 MP phone JPEG is
# 20-60 MB; anything bigger is a mistake (a video, a disk image) or hostile input.
DEFAULT_MAX_IMAGE_BYTES: Final = 100 * 1024 * 1024

# Remote images fetched client-side (opt-in).
DEFAULT_REMOTE_IMAGE_MAX_BYTES: Final = 20 * 1024 * 1024
DEFAULT_REMOTE_IMAGE_TIMEOUT_S: Final = 30.0

RETRY_BASE_DELAY_S: Final = 0.5
RETRY_MAX_DELAY_S: Final = 8.0
# Wall time one request may spend on all its attempts and waits (see _retry.py for why): two
# request timeouts and the backoff, so that a timed-out attempt is retried (at 120 s, the
# timeout itself, a timeout spent the whole budget and was never retried).
DEFAULT_MAX_RETRY_TIME_S: Final = 2 * DEFAULT_TIMEOUT_S + 60.0

# Statuses that say "this request's content is wrong" rather than "the server failed": the
# clients narrow a refused batch down to the input at fault, the probe reads them as answers.
CONTENT_STATUS: Final = frozenset({400, 413, 422})
