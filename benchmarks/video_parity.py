"""Video vectors against the official recipe: server flags alone, and with per-request fields.

Starts the CPU test server (``cpu_test_config``: the project's flags) on the tiny checkpoint and
the reference embedder (``tests/reference``) beside it, makes the issue's videos (and a few
more), and prints per video: the official frame count, the prompt tokens of both sides, and the
cosine of the server's vector to the official one, first with the flags alone (no request
fields), then with the fields the client computes (``PreparedInput.media_io_kwargs`` /
``mm_processor_kwargs``). Also times what the client pays per video: reading the header, against
sampling the official frames on the client and sending them as a lossless video.

Run (from the repository root, about 3 minutes on 2 cores):
    python benchmarks/video_parity.py
    python benchmarks/video_parity.py --http   # the same videos as http:// URLs

``--http`` serves the videos from a loopback host that answers range requests
(``tests/media_host.py``) and embeds the URLs through ``EmbeddingClient``: with its defaults
(the header read from the host in ranges) and with ``remote_video_headers=False`` (the
server's flags alone), printing both cosines to the official vector and what the header read
cost (bytes fetched of the file, milliseconds), also for a 4.5 MB clip the tiny server is not
asked to embed.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.media_host import media_host
from tests.reference.embedder import Part, ReferenceEmbedder
from tests.reference.videos import VideoSpec, make_video
from vllm_multimodal_embeddings import Content, EmbeddingClient
from vllm_multimodal_embeddings._constants import QWEN_DEFAULT_INSTRUCTION
from vllm_multimodal_embeddings.inputs._fetch import RemoteFetcher
from vllm_multimodal_embeddings.inputs._prepared import PreparedInput
from vllm_multimodal_embeddings.inputs._read import prepare_input
from vllm_multimodal_embeddings.inputs._settings import ImageSettings
from vllm_multimodal_embeddings.inputs._video import (
    encode_frames,
    official_frame_count,
    read_video_header,
)
from vllm_multimodal_embeddings.server import cpu_test_config
from vllm_multimodal_embeddings.testing import LocalServer, ensure_tiny_checkpoint, server_python

SPECS = {
    # The four videos of issue 22, then odd/tiny/long ones (the tiny server holds 2,048 tokens).
    "4 s 10 fps 320x240": VideoSpec(4, 10, 320, 240),
    "12 s 24 fps 640x360": VideoSpec(12, 24, 640, 360),
    "7 s 15 fps 480x270": VideoSpec(7, 15, 480, 270),
    "4 s 5 fps 1280x720": VideoSpec(4, 5, 1280, 720),
    "7 s 4 fps 800x600": VideoSpec(7, 4, 800, 600),
    "6 s 8 fps 64x48": VideoSpec(6, 8, 64, 48),
    "22 s 2 fps 96x64": VideoSpec(22, 2, 96, 64),
}
TEXT = "A red block crosses the frame."
HEADER = (
    "video | text | official frames | tokens official/flags/fields | cosine flags | "
    "cosine fields | header ms | client sampling ms, payload kB vs file kB"
)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _post(server: LocalServer, item: PreparedInput, fields: bool) -> tuple[int, np.ndarray]:
    content: list[dict[str, Any]] = [{"type": "video_url", "video_url": {"url": item.video_url}}]
    if item.text:
        content.append({"type": "text", "text": item.text})
    body: dict[str, Any] = {
        "model": server.model,
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": QWEN_DEFAULT_INSTRUCTION}]},
            {"role": "user", "content": content},
        ],
        "add_generation_prompt": True,
        "encoding_format": "float",
    }
    if fields and item.video_kwargs is not None:
        body["media_io_kwargs"] = item.media_io_kwargs
        body["mm_processor_kwargs"] = item.mm_processor_kwargs
    resp = httpx.post(f"{server.base_url}/v1/embeddings", json=body, timeout=600.0)
    resp.raise_for_status()
    data = resp.json()
    return data["usage"]["prompt_tokens"], np.asarray(data["data"][0]["embedding"])


def _client_sampling_cost(data: bytes) -> tuple[float, float, int]:
    """Seconds to read the header; seconds and bytes to sample the official frames here."""
    import av

    start = time.perf_counter()
    header = read_video_header(data, index=0, source="bench")
    header_s = time.perf_counter() - start
    start = time.perf_counter()
    count = official_frame_count(header.frames, header.fps)
    wanted = set(np.linspace(0, header.frames - 1, count).round().astype(int).tolist())
    with av.open(io.BytesIO(data)) as container:
        frames = [f.to_image() for i, f in enumerate(container.decode(video=0)) if i in wanted]
    payload = encode_frames(frames, index=0)
    return header_s, time.perf_counter() - start, len(payload)


HTTP_HEADER = (
    "video | text | official frames | cosine, URL with flags alone | cosine, URL with header "
    "read | header bytes of file | header ms"
)


def _header_read(url: str, size: int) -> tuple[int, float]:
    """Bytes a remote header read fetched, and its milliseconds."""
    with RemoteFetcher(allowed_hosts=["127.0.0.1"]) as fetcher:
        start = time.perf_counter()
        with fetcher.open(url) as file:
            read_video_header(file, index=0, source=url)
            fetched = getattr(file, "fetched", size)
        return fetched, (time.perf_counter() - start) * 1e3


def http_rows(
    server: LocalServer, reference: ReferenceEmbedder, folder: Path, videos: dict[str, Path]
) -> None:
    """Each video as an http:// URL through the client, header read on and off."""
    large = make_video(folder / "large.mp4", VideoSpec(10, 30, 1280, 720))
    common = {"base_url": server.base_url, "model": server.model}
    with (
        media_host(folder) as host,
        EmbeddingClient(**common, remote_allowed_hosts=("127.0.0.1",)) as read,
        EmbeddingClient(**common, remote_video_headers=False) as flags,
    ):
        print(HTTP_HEADER)
        for name, path in videos.items():
            url = host.of(path.name)
            fetched, ms = _header_read(url, path.stat().st_size)
            for text in (None, TEXT):
                parts = [Part.video(path)] + ([Part.text(text)] if text else [])
                ref = reference.embed([(QWEN_DEFAULT_INSTRUCTION, parts)])[0]
                item = Content(video=url, text=text)
                by_flags = flags.embed_array([item], input_type="document")[0]
                by_header = read.embed_array([item], input_type="document")[0]
                print(
                    f"{name} | {'yes' if text else 'no'} | {ref.frames[0]} | "
                    f"{_cosine(by_flags, ref.vector):.7f} | {_cosine(by_header, ref.vector):.7f} | "
                    f"{fetched} of {path.stat().st_size} | {ms:.1f}",
                    flush=True,
                )
        fetched, ms = _header_read(host.of(large.name), large.stat().st_size)
        print(f"10 s 30 fps 1280x720 (not embedded) | | | | | {fetched} of "
              f"{large.stat().st_size} | {ms:.1f}")  # fmt: skip


def main() -> None:
    python = server_python()
    checkpoint = ensure_tiny_checkpoint(python)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        videos = {
            name: make_video(folder / f"{i}.mp4", s) for i, (name, s) in enumerate(SPECS.items())
        }
        reference = ReferenceEmbedder(python, checkpoint, folder / "reference.log")
        try:
            with LocalServer(cpu_test_config(str(checkpoint)), python=python) as server:
                if "--http" in sys.argv[1:]:
                    http_rows(server, reference, folder, videos)
                    return
                print(HEADER)
                for name, path in videos.items():
                    for text in (None, TEXT):
                        parts = [Part.video(path)] + ([Part.text(text)] if text else [])
                        ref = reference.embed([(QWEN_DEFAULT_INSTRUCTION, parts)])[0]
                        item = prepare_input(
                            Content(video=path, text=text), index=0, options=ImageSettings()
                        )
                        flags_tokens, flags_vec = _post(server, item, fields=False)
                        field_tokens, field_vec = _post(server, item, fields=True)
                        header_s, sample_s, payload = _client_sampling_cost(path.read_bytes())
                        cos_flags = _cosine(flags_vec, ref.vector)
                        cos_fields = _cosine(field_vec, ref.vector)
                        size = path.stat().st_size
                        row = (
                            f"{name} | {'yes' if text else 'no'} | {ref.frames[0]} | "
                            f"{ref.prompt_tokens}/{flags_tokens}/{field_tokens} | "
                            f"{cos_flags:.7f} | {cos_fields:.7f} | {header_s * 1e3:.1f} | "
                            f"{sample_s * 1e3:.0f}, {payload / 1e3:.0f} vs {size / 1e3:.0f}"
                        )
                        print(row, flush=True)
        finally:
            reference.close()


if __name__ == "__main__":
    main()
