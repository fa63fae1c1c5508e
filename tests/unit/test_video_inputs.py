"""Videos as inputs: every form, and the per-request fields for the official sampling."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest

from tests.reference.videos import VideoSpec, make_video
from vllm_multimodal_embeddings import Content, InputError
from vllm_multimodal_embeddings._exceptions import ImageLoadError
from vllm_multimodal_embeddings.inputs._read import prepare_input
from vllm_multimodal_embeddings.inputs._settings import ImageSettings
from vllm_multimodal_embeddings.inputs._video import (
    VideoHeader,
    official_frame_count,
    official_video_kwargs,
    read_video_header,
)

pytest.importorskip("av")

OPTIONS = ImageSettings()


@pytest.mark.parametrize(
    ("frames", "fps", "official"),
    [
        (40, 10.0, 4),  # 4 s
        (288, 24.0, 12),  # 12 s
        (105, 15.0, 6),  # 7 s: rounded down to even
        (30, 10.0, 4),  # 3 s: at least 4
        (3000, 30.0, 64),  # 100 s: at most 64
        (3, 30.0, 2),  # fewer frames than 4: all, rounded down to even
    ],
)
def test_official_frame_count(frames: int, fps: float, official: int) -> None:
    assert official_frame_count(frames, fps) == official


def _header(seconds: float, fps: int, width: int, height: int) -> VideoHeader:
    return VideoHeader(frames=round(seconds * fps), fps=fps, width=width, height=height)


@pytest.mark.parametrize(
    "header",
    [_header(4, 10, 320, 240), _header(12, 24, 640, 360), _header(4, 5, 1280, 720)],
    ids=["4 frames, small", "12 frames", "4 frames, large"],
)
def test_videos_the_flags_match_need_no_request_fields(header: VideoHeader) -> None:
    assert official_video_kwargs(header) is None


def test_odd_count_with_small_frames_gets_frame_count_and_per_frame_minimum() -> None:
    kwargs = official_video_kwargs(_header(7, 15, 480, 270))
    assert kwargs is not None
    assert kwargs.media_io_kwargs == {"video": {"fps": 1, "max_frames": 6}}
    assert kwargs.mm_processor_kwargs == {
        "videos_kwargs": {
            "min_pixels": 6 * 131072,
            "max_pixels": 64 * 786432,
            "cap_pixels_per_frame": True,
        }
    }


def test_odd_count_with_large_frames_keeps_the_flags_minimum() -> None:
    # 6 x 131,072 would lift transformers' per-frame maximum over the official 786,432.
    kwargs = official_video_kwargs(_header(7, 15, 1280, 720))
    assert kwargs is not None
    assert kwargs.media_io_kwargs["video"]["max_frames"] == 6
    assert kwargs.mm_processor_kwargs["videos_kwargs"]["min_pixels"] == 4 * 131072


def test_even_count_with_tiny_frames_gets_the_per_frame_minimum() -> None:
    kwargs = official_video_kwargs(_header(6, 8, 64, 48))
    assert kwargs is not None
    assert kwargs.mm_processor_kwargs["videos_kwargs"]["min_pixels"] == 6 * 131072


@pytest.fixture(scope="module")
def odd_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("video") / "odd.mp4", VideoSpec(7, 15, 160, 90))


@pytest.fixture(scope="module")
def plain_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("video") / "plain.mp4", VideoSpec(4, 5, 320, 240))


def test_header_is_read_from_the_file(odd_video: Path) -> None:
    header = read_video_header(odd_video.read_bytes(), index=0, source=str(odd_video))
    assert header == VideoHeader(frames=105, fps=15.0, width=160, height=90)


def _forms(path: Path) -> dict[str, object]:
    data = path.read_bytes()
    return {
        "path str": str(path),
        "Path": path,
        "file://": path.as_uri(),
        "data:": "data:video/mp4;base64," + base64.b64encode(data).decode("ascii"),
        "bytes": data,
    }


@pytest.mark.parametrize("form", ["path str", "Path", "file://", "data:", "bytes"])
def test_every_local_form_is_sent_inline_with_its_fields(odd_video: Path, form: str) -> None:
    item = prepare_input(Content(video=_forms(odd_video)[form]), index=0, options=OPTIONS)  # type: ignore[arg-type]
    assert item.video_url is not None and item.video_url.startswith("data:video/mp4;base64,")
    assert base64.b64decode(item.video_url.split(",", 1)[1]) == odd_video.read_bytes()
    assert item.media_io_kwargs == {"video": {"fps": 1, "max_frames": 6}}
    assert item.mm_processor_kwargs is not None and item.has_video


def test_a_video_the_flags_match_carries_no_fields(plain_video: Path) -> None:
    item = prepare_input(Content(video=plain_video, text="a clip"), index=0, options=OPTIONS)
    assert item.video_url is not None and item.text == "a clip"
    assert item.media_io_kwargs is None and item.mm_processor_kwargs is None


def test_http_video_goes_to_the_server_unread_without_header_reads() -> None:
    # Read in ranges by default: tests/unit/test_remote_video.py.
    url = "https://example.com/clip.mp4"
    options = ImageSettings(remote_video_headers=False)
    item = prepare_input(Content(video=url), index=0, options=options)
    assert item.video_url == url and item.video_kwargs is None


def test_http_video_fetched_here_with_fetch_remote(odd_video: Path) -> None:
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return odd_video.read_bytes()

    options = ImageSettings(fetch_remote_images=True)
    item = prepare_input(
        Content(video="https://example.com/a.mp4"), index=0, options=options, fetch=fetch
    )
    assert fetched == ["https://example.com/a.mp4"]
    assert item.video_url is not None and item.video_url.startswith("data:video/mp4;base64,")
    assert item.media_io_kwargs == {"video": {"fps": 1, "max_frames": 6}}


def test_interleaved_video_part_carries_its_fields(odd_video: Path) -> None:
    item = prepare_input(Content.of("before", Content(video=odd_video)), index=2, options=OPTIONS)
    assert [p.kind for p in item.parts] == ["text", "video"]
    assert item.media_io_kwargs == {"video": {"fps": 1, "max_frames": 6}}


def test_two_videos_needing_different_fields_in_one_input_are_refused(
    odd_video: Path, plain_video: Path
) -> None:
    item = Content.of(Content(video=odd_video), Content(video=plain_video))
    with pytest.raises(InputError, match="separate inputs") as info:
        prepare_input(item, index=3, options=OPTIONS)
    assert info.value.index == 3


def test_missing_file_names_the_video(tmp_path: Path) -> None:
    missing = tmp_path / "gone.mp4"
    with pytest.raises(ImageLoadError, match="video file not found") as info:
        prepare_input(Content(video=missing), index=1, options=OPTIONS)
    assert info.value.index == 1 and str(missing) in str(info.value)


def test_bytes_that_are_no_video_are_a_load_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ImageLoadError, match="cannot read video") as info:
        prepare_input(Content(video=bad), index=4, options=OPTIONS)
    assert str(bad) in str(info.value)


def test_data_uri_of_another_type_is_refused() -> None:
    with pytest.raises(ImageLoadError, match="not a video"):
        prepare_input(Content(video="data:image/png;base64,AAAA"), index=0, options=OPTIONS)


def test_unsupported_scheme_and_type() -> None:
    with pytest.raises(InputError, match="unsupported URL scheme 'ftp'"):
        prepare_input(Content(video="ftp://host/a.mp4"), index=0, options=OPTIONS)
    with pytest.raises(InputError, match=r"Content\.video must be"):
        prepare_input(Content(video=42), index=0, options=OPTIONS)  # type: ignore[arg-type]


def test_without_pyav_a_local_video_names_the_extra_and_the_input(
    odd_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # import av -> ImportError
    with pytest.raises(InputError, match=r"vllm-multimodal-embeddings\[video\]") as info:
        prepare_input(Content(video=odd_video), index=5, options=OPTIONS)
    assert info.value.index == 5 and str(odd_video) in str(info.value)


def test_doctor_probe_videos_and_their_official_tokens() -> None:
    from vllm_multimodal_embeddings.doctor import (
        VIDEO_PROBES,
        official_video_tokens,
        probe_video,
    )

    (seconds, fps, width, height), odd = VIDEO_PROBES
    data = probe_video(seconds, fps, width, height)
    assert data == probe_video(seconds, fps, width, height)  # deterministic
    header = read_video_header(data, index=0, source="probe")
    assert header == VideoHeader(frames=seconds * fps, fps=fps, width=width, height=height)
    # 8 frames of 480x352 (15 x 11 blocks), two frames per token grid.
    assert official_video_tokens(*VIDEO_PROBES[0]) == 4 * 15 * 11
    assert official_video_tokens(*odd) == 2 * 15 * 11
    # The first probe needs no request fields (the flags alone must pass it); the second does.
    assert official_video_kwargs(header) is None
    odd_header = VideoHeader(frames=odd[0] * odd[1], fps=odd[1], width=odd[2], height=odd[3])
    assert official_video_kwargs(odd_header) is not None


# --- videos given as frames ---


def _png(width: int, height: int, shade: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (shade, 80, 160)).save(buf, format="PNG")
    return buf.getvalue()


def test_frames_are_thinned_like_the_official_embedder() -> None:
    import numpy as np

    from vllm_multimodal_embeddings.inputs._video import frames_to_keep

    assert frames_to_keep(5) == [0, 1, 2, 3, 4]
    kept = frames_to_keep(100)
    assert len(kept) == 64 and kept[0] == 0 and kept[-1] == 99
    assert kept == np.linspace(0, 99, 64, dtype=int).tolist()


def test_frames_become_a_lossless_video_with_their_fields() -> None:
    import av
    import numpy as np

    frames = [_png(320, 240, shade) for shade in (10, 120, 230)]
    item = prepare_input(Content(video=frames), index=0, options=OPTIONS)
    assert item.video_url is not None and item.video_url.startswith("data:video/quicktime;")
    data = base64.b64decode(item.video_url.split(",", 1)[1])
    header = read_video_header(data, index=0, source="frames")
    # 3 frames padded to 4 with the last; 2 frames per second, as the official metadata says;
    # each frame first resized as an image (sides to multiples of 32).
    assert header == VideoHeader(frames=4, fps=2.0, width=320, height=256)
    assert item.media_io_kwargs == {"video": {"fps": 2, "max_frames": 4}}
    with av.open(io_bytes(data)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert [int(f[0, 0, 0]) for f in decoded] == [10, 120, 230, 230]
    assert all(np.array_equal(f[..., 1], np.full((256, 320), 80)) for f in decoded)


def io_bytes(data: bytes):  # type: ignore[no-untyped-def]
    import io

    return io.BytesIO(data)


def test_frames_of_different_sizes_are_refused() -> None:
    with pytest.raises(InputError, match="differ in size") as info:
        prepare_input(
            Content(video=[_png(320, 240, 1), _png(640, 480, 2)]), index=7, options=OPTIONS
        )
    assert info.value.index == 7


def test_a_bad_frame_is_named_by_its_position(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="video frame 1:") as info:
        prepare_input(
            Content(video=[_png(32, 32, 1), tmp_path / "missing.png"]), index=2, options=OPTIONS
        )
    assert info.value.index == 2


def test_http_frames_need_fetch_remote() -> None:
    with pytest.raises(InputError, match="fetch_remote_images=True"):
        prepare_input(Content(video=["https://example.com/f.png"]), index=0, options=OPTIONS)


def test_empty_frame_list_is_refused() -> None:
    with pytest.raises(InputError, match="empty list of frames"):
        prepare_input(Content(video=[]), index=0, options=OPTIONS)


def test_content_keeps_a_frame_list_hashable() -> None:
    content = Content(video=[b"a", b"b"])
    assert content.video == (b"a", b"b")
    hash(content)


def test_doctor_video_fix_names_the_flags_flags_py_emits() -> None:
    import json

    from vllm_multimodal_embeddings.doctor import FIX_VIDEO, FIX_VIDEO_TRUST
    from vllm_multimodal_embeddings.server.flags import production_config, vllm_args

    args = vllm_args(production_config())
    media, processor = FIX_VIDEO.split("'")[1], FIX_VIDEO.split("'")[3]
    assert json.loads(media) == json.loads(args[args.index("--media-io-kwargs") + 1])
    assert json.loads(processor) == json.loads(args[args.index("--mm-processor-kwargs") + 1])
    assert FIX_VIDEO_TRUST.split()[0] in args
