"""The image group: how inputs are read, bounded and prepared before sending."""

from __future__ import annotations

from dataclasses import dataclass

from .. import _constants as C
from .._exceptions import ConfigurationError
from .._settings import POSITIVE, Group, flag, hosts, optional, seconds, setting
from ._passwords import PdfPasswords

__all__ = ["ImageSettings"]


@dataclass(frozen=True)
class ImageSettings(Group):
    """How inputs are read, bounded and prepared before sending."""

    max_image_pixels: int = setting(C.DEFAULT_MAX_PIXELS, POSITIVE)
    """Images with more pixels are downscaled (aspect ratio kept) before sending."""
    max_source_pixels: int = setting(C.DEFAULT_MAX_SOURCE_PIXELS, POSITIVE)
    """Images whose header declares more pixels are refused before decoding."""
    max_image_bytes: int = setting(C.DEFAULT_MAX_IMAGE_BYTES, POSITIVE)
    """Largest encoded image read from a file, a stream or a ``data:`` URI."""
    fetch_remote_images: bool = setting(False, flag)
    """Fetch ``http(s)`` images here and send the bytes, instead of passing the URL on."""
    remote_image_max_bytes: int = setting(C.DEFAULT_REMOTE_IMAGE_MAX_BYTES, POSITIVE)
    """Largest image fetched client-side, counted on the wire."""
    remote_image_timeout: float = setting(C.DEFAULT_REMOTE_IMAGE_TIMEOUT_S, seconds)
    """Seconds for one whole client-side fetch, redirects included."""
    remote_allowed_hosts: tuple[str, ...] = setting((), hosts)
    """Hosts, addresses or networks client-side fetching may reach although they are
    loopback, private or link-local (refused otherwise)."""
    allow_private_networks: bool = setting(False, flag)
    """Let client-side fetching reach any address (trusted networks only)."""
    remote_video_headers: bool = setting(True, flag)
    """Read an ``http(s)`` video's header here (range requests, under the limits and address
    checks above) so the request samples it like the official embedder; ``False``: the server
    samples it by its flags alone, which misses for odd frame counts and small frames."""
    pdf_passwords: PdfPasswords | None = setting(None, secret=True)
    """Passwords of encrypted PDFs, by file (a password for all, a mapping from path or
    pattern to password, or :class:`PdfPasswords`): page references carry none."""
    page_max_pixels: int | None = setting(None, optional(POSITIVE))
    """The pixel budget PDF pages are rendered to fill; ``None``: ``max_image_pixels``. (The
    reranker lifts ``max_image_pixels`` to keep photos' own pixels for its resize; a page has
    none, so it renders at the recipe's budget instead.)"""

    def __post_init__(self) -> None:
        self._fill_images()
        self._check_fields()
        self._check_images()

    def _fill_images(self) -> None:
        hosts = self.remote_allowed_hosts
        # A bare string would be read as one-letter host names; a list would be unhashable.
        object.__setattr__(
            self, "remote_allowed_hosts", (hosts,) if isinstance(hosts, str) else tuple(hosts)
        )
        object.__setattr__(self, "pdf_passwords", PdfPasswords.of(self.pdf_passwords))

    def _check_images(self) -> None:
        if self.max_source_pixels < self.max_image_pixels:
            raise ConfigurationError(
                f"max_source_pixels ({self.max_source_pixels}) must be >= max_image_pixels "
                f"({self.max_image_pixels})"
            )

    @property
    def images(self) -> ImageSettings:
        """The image group of these settings (of a group that includes it)."""
        return self if type(self) is ImageSettings else self.part(ImageSettings)
