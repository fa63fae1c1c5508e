"""Scrub secrets out of URLs before they reach a message, a repr or a log."""

from __future__ import annotations

import re

__all__ = ["redact_url"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# scheme://userinfo@ -- greedy up to the last "@" before the path, as RFC 3986 reads it.
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#]*@")
REDACTED = "<redacted>"


def redact_url(url: str) -> str:
    """``url`` without credentials (``user:pw@``) and without its query string.

    Signed URLs (S3, GCS, Azure SAS) carry their signature in the query; the path and host
    are enough to tell which image failed. Works on malformed URLs too (``http://[::1``):
    nothing here parses, so nothing here raises. Anything that is not ``scheme://...`` (a
    file path, a ``data:`` URI) comes back unchanged: a ``?`` in a file name is no secret.
    """
    if not _URL.match(url):
        return url
    out = _USERINFO.sub(rf"\g<1>{REDACTED}@", url, count=1)
    head, sep, _ = out.partition("?")
    return f"{head}?{REDACTED}" if sep else out
