"""Scrub secrets out of URLs before they reach a message, a repr or a log."""

from __future__ import annotations

import re

__all__ = ["redact_text", "redact_url"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# scheme://userinfo@ -- greedy up to the last "@" before the path, as RFC 3986 reads it.
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#]*@")
REDACTED = "<redacted>"
# A URL anywhere in a text, and a path's query string as servers quote it ("url: /a.png?sig=").
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>()]+")
_PATH_QUERY = re.compile(r"(/[^\s?\"'<>()]*)\?[^\s\"'<>()]+")


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


def redact_text(text: str) -> str:
    """``text`` (a server's error message, say) with every URL in it redacted, and the query
    string of every path it quotes: servers repeat the URLs they failed to fetch."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    return _PATH_QUERY.sub(lambda m: f"{m.group(1)}?{REDACTED}", text)
