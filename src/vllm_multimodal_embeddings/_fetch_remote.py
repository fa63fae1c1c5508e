"""Client-side fetching of ``http(s)`` images (``fetch_remote_images=True``).

The fetcher has its own HTTP client: the server's credentials and headers never go to an
image host.
"""

from __future__ import annotations

import threading

import httpx

from ._exceptions import ImageLoadError
from ._inputs import ImageOptions
from ._settings import ClientSettings

__all__ = ["RemoteImages"]


class RemoteImages:
    """Fetch remote images with a clean client, bounded in size and time."""

    def __init__(self, settings: ClientSettings) -> None:
        self._options = ImageOptions(max_pixels=settings.max_image_pixels, fetch_remote=True)
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(
                    timeout=self._options.remote_timeout, follow_redirects=True
                )
            return self._http

    def fetch(self, url: str) -> bytes:
        """The bytes at ``url``; raises when the image is too large or the host fails."""
        limit = self._options.remote_max_bytes
        with self._client().stream("GET", url) as response:
            response.raise_for_status()
            chunks: list[bytes] = []
            total = 0
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > limit:
                    raise ImageLoadError(f"image larger than {limit} bytes", source=url)
                chunks.append(chunk)
            return b"".join(chunks)

    def close(self) -> None:
        """Close the fetching client."""
        with self._lock:
            http, self._http = self._http, None
        if http is not None:
            http.close()
