"""``http(s)`` videos: the header read here in ranges gives the request the official fields.

A real loopback host (``tests/media_host.py``) serves the videos, with and without ranges; the
header read remotely must equal the one read from the local file, and cost a small part of a
large file.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import av
import httpx
import pytest

from tests.media_host import media_host
from tests.reference.videos import VideoSpec, make_video
from vllm_multimodal_embeddings import Content
from vllm_multimodal_embeddings._exceptions import ImageLoadError, RemoteUnavailableError
from vllm_multimodal_embeddings.inputs._fetch import RemoteFetcher, RemoteFetchError
from vllm_multimodal_embeddings.inputs._read import prepare_input
from vllm_multimodal_embeddings.inputs._settings import ImageSettings
from vllm_multimodal_embeddings.inputs._video import official_video_kwargs, read_video_header

LOOPBACK = ImageSettings(remote_allowed_hosts=("127.0.0.1",))

SPECS = {
    "4 frames": VideoSpec(4, 10, 320, 240),
    "odd, small frames": VideoSpec(7, 15, 480, 270),
    "tiny frames": VideoSpec(6, 8, 64, 48),
    "long, tiny frames": VideoSpec(22, 2, 96, 64),
}


def _faststart(src: Path, dst: Path) -> Path:
    """``src`` remuxed with its ``moov`` first, as web encoders write for streaming."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        stream = inp.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for packet in inp.demux(stream):
            if packet.dts is not None:
                packet.stream = copy
                out.mux(packet)
    return dst


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    for i, spec in enumerate(SPECS.values()):
        make_video(root / f"{i}.mp4", spec)
        _faststart(root / f"{i}.mp4", root / f"{i}-faststart.mp4")
    # A large clip (a few MB, moov at the end): the header read must not download it.
    make_video(root / "large.mp4", VideoSpec(10, 30, 1280, 720))
    return root


@pytest.mark.parametrize("layout", ["", "-faststart"])
@pytest.mark.parametrize("ranges", [True, False], ids=["ranges", "no ranges"])
def test_remote_fields_equal_the_local_files(folder: Path, layout: str, ranges: bool) -> None:
    with media_host(folder, ranges=ranges) as host:
        for i, case in enumerate(SPECS):
            name = f"{i}{layout}.mp4"
            local = prepare_input(Content(video=folder / name), index=0, options=LOOPBACK)
            remote = prepare_input(Content(video=host.of(name)), index=0, options=LOOPBACK)
            # The server fetches the URL; the fields are those of the local file.
            assert remote.video_url == host.of(name), case
            assert remote.video_kwargs == local.video_kwargs, case
    if case == "odd, small frames":
        assert remote.media_io_kwargs == {"video": {"fps": 1, "max_frames": 6}}


def test_a_large_video_is_read_in_a_few_ranges(folder: Path) -> None:
    size = (folder / "large.mp4").stat().st_size
    assert size > 2_000_000  # the test means something only for a file worth not downloading
    with media_host(folder) as host, RemoteFetcher.from_options(LOOPBACK) as fetcher:
        with fetcher.open(host.of("large.mp4")) as file:
            header = read_video_header(file, index=0, source="large.mp4")
        assert header == read_video_header((folder / "large.mp4").read_bytes(), index=0, source="")
        assert header.frames == 300 and header.width == 1280
        # The first block and the moov at the end (measured: 67,733 of 4,476,128 bytes).
        assert host.sent["large.mp4"] < 150_000
        assert all(asked is not None for _, asked in host.requests)  # every request ranged


def test_a_host_without_ranges_is_read_whole_within_the_limit(folder: Path) -> None:
    size = (folder / "large.mp4").stat().st_size
    small = ImageSettings(remote_allowed_hosts=("127.0.0.1",), remote_image_max_bytes=size // 2)
    with media_host(folder, ranges=False) as host:
        with pytest.raises(ImageLoadError, match="over the limit") as info:
            prepare_input(Content(video=host.of("large.mp4")), index=4, options=small)
        assert info.value.index == 4
        item = prepare_input(Content(video=host.of("large.mp4")), index=0, options=LOOPBACK)
        assert host.sent["large.mp4"] == size  # the one full read of the second call
    assert item.video_url == host.of("large.mp4")


def test_range_reads_stay_under_the_byte_limit(folder: Path) -> None:
    # 66,000 bytes cover the first block (65,536), not the moov at the end of the file too.
    tight = ImageSettings(remote_allowed_hosts=("127.0.0.1",), remote_image_max_bytes=66_000)
    with media_host(folder) as host, pytest.raises(ImageLoadError, match="more than 66000"):
        prepare_input(Content(video=host.of("large.mp4")), index=0, options=tight)


def test_a_loopback_host_is_refused_unless_allowed(folder: Path) -> None:
    with media_host(folder) as host:
        with pytest.raises(ImageLoadError, match="non-public address") as info:
            prepare_input(Content(video=host.of("1.mp4")), index=2, options=ImageSettings())
        assert info.value.index == 2
        assert "remote_allowed_hosts" in str(info.value)
        assert "remote_video_headers=False" in str(info.value)
        assert host.requests == []  # refused before connecting
        # Opting out: the server samples it by its flags alone, nothing is read here.
        off = ImageSettings(remote_video_headers=False)
        item = prepare_input(Content(video=host.of("1.mp4")), index=0, options=off)
        assert item.video_kwargs is None and host.requests == []


def test_missing_and_broken_remote_videos_name_the_item(folder: Path, tmp_path: Path) -> None:
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 5000)
    with media_host(folder) as host:
        with pytest.raises(ImageLoadError, match="HTTP 404") as gone:
            prepare_input(Content(video=host.of("nope.mp4")), index=3, options=LOOPBACK)
        assert gone.value.index == 3 and "nope.mp4" in str(gone.value)
        with pytest.raises(ImageLoadError, match="cannot read video") as broken:
            prepare_input(Content(video=host.of("broken.mp4")), index=5, options=LOOPBACK)
        assert broken.value.index == 5


def test_a_video_host_failing_for_a_moment_is_read_again(folder: Path) -> None:
    """A 503 or a hang-up on the first block or on a later range costs a try, not the row."""
    local = prepare_input(Content(video=folder / "large.mp4"), index=0, options=LOOPBACK)
    with media_host(folder) as host:
        host.failing["large.mp4"] = [503, 0]  # the first block twice
        first = prepare_input(Content(video=host.of("large.mp4")), index=0, options=LOOPBACK)
        # Then the moov's range: the first block is served, the next request fails once.
        served = len(host.requests)
        host.failing["large.mp4"] = []
        with (
            RemoteFetcher.from_options(LOOPBACK) as fetcher,
            fetcher.open(host.of("large.mp4")) as file,
        ):
            host.failing["large.mp4"] = [502]
            header = read_video_header(file, index=0, source="large.mp4")
    assert first.video_kwargs == local.video_kwargs
    assert official_video_kwargs(header) == local.video_kwargs
    assert [asked for _, asked in host.requests[:3]] == ["bytes=0-65535"] * 3
    assert len(host.requests) > served + 2  # the retried range came after the failed one


def test_a_video_host_that_keeps_failing_is_unavailable(folder: Path) -> None:
    with media_host(folder) as host:
        host.failing["1.mp4"] = [503] * 10
        with pytest.raises(RemoteUnavailableError) as info:
            prepare_input(Content(video=host.of("1.mp4")), index=7, options=LOOPBACK)
    text = str(info.value)
    assert text.startswith("input 7: cannot read the video's header now (HTTP 503 (3 tries))")
    assert "may serve it later" in text and "remote_allowed_hosts" not in text
    assert len(host.requests) == 3


def test_a_signed_url_stays_out_of_the_error(folder: Path) -> None:
    with media_host(folder) as host:
        url = host.of("nope.mp4") + "?X-Amz-Signature=SECRET"
        with pytest.raises(ImageLoadError) as info:
            prepare_input(Content(video=url), index=0, options=LOOPBACK)
    assert "SECRET" not in str(info.value)


def test_a_host_that_sends_a_short_range_is_refused(folder: Path) -> None:
    # A reader past the first block asks for exact ranges; an answer that stops short would
    # make the container reader see holes as data.
    with media_host(folder) as host, RemoteFetcher.from_options(LOOPBACK) as fetcher:
        with fetcher.open(host.of("large.mp4")) as file:
            assert file.seek(0, io.SEEK_END) == (folder / "large.mp4").stat().st_size
            end = file.tell()
            file.seek(end - 10)
            assert len(file.read(100)) == 10  # the end of the file is a short read, not an error
        with pytest.raises(RemoteFetchError, match="asked for"):
            fetcher.read_range(httpx.URL(host.of("0.mp4")), 0, 10**7, time.monotonic() + 30)


def test_official_fields_for_the_remote_odd_case(folder: Path) -> None:
    with (
        media_host(folder) as host,
        RemoteFetcher.from_options(LOOPBACK) as fetcher,
        fetcher.open(host.of("1.mp4")) as file,
    ):
        header = read_video_header(file, index=0, source="1.mp4")
    kwargs = official_video_kwargs(header)
    assert kwargs is not None
    assert kwargs.media_io_kwargs == {"video": {"fps": 1, "max_frames": 6}}
