"""Secrets stay out of messages: URL credentials, signed query strings, fetcher errors."""

from __future__ import annotations

import httpx
import pytest

from vllm_multimodal_embeddings._exceptions import ImageLoadError
from vllm_multimodal_embeddings._redact import redact_url
from vllm_multimodal_embeddings.inputs._images import describe_source
from vllm_multimodal_embeddings.inputs._read import prepare_image
from vllm_multimodal_embeddings.inputs._settings import ImageSettings

SIGNED = (
    "https://bucket.s3.amazonaws.com/cat.png?X-Amz-Credential=AKIAEXAMPLE"
    "&X-Amz-Signature=0123456789abcdef"
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://user:pw@host:8000/v1", "http://<redacted>@host:8000/v1"),
        ("https://tok@host/", "https://<redacted>@host/"),
        ("http://a:p@ss@host/x", "http://<redacted>@host/x"),
        (SIGNED, "https://bucket.s3.amazonaws.com/cat.png?<redacted>"),
        ("https://u:p@h/x?sig=1#frag", "https://<redacted>@h/x?<redacted>"),
        ("http://host:8000", "http://host:8000"),
        ("http://[::1", "http://[::1"),
        ("/tmp/what?.png", "/tmp/what?.png"),
        ("data:image/png;base64,AAAA", "data:image/png;base64,AAAA"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_describe_source_redacts_urls() -> None:
    assert describe_source(SIGNED) == "https://bucket.s3.amazonaws.com/cat.png?<redacted>"
    assert "pw" not in describe_source("http://me:pw@h/" + "x" * 500)


def test_image_load_error_redacts_and_names_the_source_once() -> None:
    err = ImageLoadError("cannot fetch image: HTTP 403", index=1, source=SIGNED)
    text = str(err)
    assert "0123456789abcdef" not in text and "AKIAEXAMPLE" not in text
    assert text.count("bucket.s3.amazonaws.com") == 1
    assert err.source == "https://bucket.s3.amazonaws.com/cat.png?<redacted>"
    quoted = ImageLoadError("cannot open /tmp/x.png", source="/tmp/x.png")
    assert str(quoted).count("/tmp/x.png") == 1


def test_failing_fetcher_does_not_leak_the_signed_url() -> None:
    def fetch(url: str) -> bytes:
        # httpx's own message quotes the full URL, signature included.
        request = httpx.Request("GET", url)
        response = httpx.Response(403, request=request)
        response.raise_for_status()
        return b""

    options = ImageSettings(fetch_remote_images=True)
    with pytest.raises(ImageLoadError) as info:
        prepare_image(SIGNED, index=4, options=options, fetch=fetch)
    text = str(info.value)
    assert text.startswith("input 4: cannot fetch image:") and "403" in text
    assert "0123456789abcdef" not in text and "AKIAEXAMPLE" not in text
    assert text.count("bucket.s3.amazonaws.com") == 1
