"""Public input types: what a caller may hand to the client."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Union

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "Content",
    "ContentPart",
    "EmbedInput",
    "ImageInput",
    "InputType",
    "OutputDType",
    "PdfPage",
    "ProtocolName",
    "VideoInput",
]


@dataclass(frozen=True, slots=True)
class PdfPage:
    """One page of a PDF file, embedded as an image of that page.

    The page is rendered (with the ``pdf`` extra) at the size that fills the client's
    ``max_image_pixels`` budget, sides multiples of 32, when the input is prepared: page by
    page, never the whole file at once. The string form ``"doc.pdf#page=3"`` means the same.

    Attributes:
        path: the PDF file.
        page: the page number, counted from 1 as in a ``#page=N`` URI fragment and a viewer.
        password: the password of an encrypted PDF; never shown (not in ``repr``, ``str``
            or errors) and not part of the page's identity (equality, hash).
    """

    path: str | os.PathLike[str]
    page: int
    password: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # bool is an int; True as "page 1" is a bug, not a choice.
        if isinstance(self.page, bool) or not isinstance(self.page, int):
            raise TypeError(f"PdfPage.page must be int, got {type(self.page).__name__!r}")
        if self.page < 1:
            raise ValueError(f"PdfPage.page counts from 1, got {self.page}")
        if not isinstance(self.path, (str, os.PathLike)):
            raise TypeError(f"PdfPage.path must be a path, got {type(self.path).__name__!r}")
        if self.password is not None and not isinstance(self.password, str):
            raise TypeError("PdfPage.password must be a str")

    def __str__(self) -> str:
        return f"{os.fspath(self.path)}#page={self.page}"


#: Anything that names or holds one image: a filesystem path (``str`` or ``PathLike``),
#: a ``file://``, ``http(s)://`` or ``data:`` URI, raw encoded bytes, a binary stream
#: such as ``io.BytesIO``, a ``PIL.Image.Image``, or a :class:`PdfPage` (also written
#: ``"doc.pdf#page=3"``).
ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, io.IOBase, "PILImage.Image", PdfPage]

#: Anything that names or holds one video: a filesystem path (``str`` or ``PathLike``), a
#: ``file://``, ``http(s)://`` or ``data:`` URI, the file's bytes, or its frames as a list or
#: tuple of images (in any :data:`ImageInput` form), as the official embedder takes them.
VideoInput = Union[str, "os.PathLike[str]", bytes, bytearray, "Sequence[ImageInput]"]

#: Which instruction a vector is made under: retrieval queries or indexed documents.
InputType = Literal["query", "document"]

#: ``chat``: ``/v1/embeddings`` with chat messages (matches the official embedder);
#: ``cohere``: ``/v2/embed`` (Cohere Embed v2 schema).
ProtocolName = Literal["chat", "cohere"]

#: Vector element types: ``float`` (float32); ``int8``, the model's learned int8 code (chat
#: protocol; see :mod:`.protocol._quantize`); ``binary`` / ``ubinary``, sign bits packed eight
#: per byte as int8 / uint8 (``/v2/embed`` only).
OutputDType = Literal["float", "int8", "binary", "ubinary"]


@dataclass(frozen=True, slots=True)
class Content:
    """One item to embed as a single vector: text, an image, a video, or several together.

    ``Content(text="A cat", image="cat.jpg")`` embeds the pair as one vector, the way
    Qwen3-VL-Embedding embeds multimodal documents (video, image, text, in that order).

    For several images, videos and texts in an order of your choosing, use :meth:`of`:
    ``Content.of("Compare", Path("a.png"), Path("b.png"))``.

    Attributes:
        text: the text part.
        image: the image part, in any :data:`ImageInput` form.
        video: a video, in any :data:`VideoInput` form. Local videos are read and sent
            inline, with the request fields the official sampling needs (PyAV, the ``video``
            extra, reads their header); ``http(s)`` URLs go to the server as they are.
        parts: interleaved parts, in order (see :meth:`of`); excludes the three fields above.
    """

    text: str | None = None
    image: ImageInput | None = None
    video: VideoInput | None = None
    parts: tuple[ContentPart, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.video, list):
            # A list of frames is accepted; a tuple keeps the dataclass hashable.
            object.__setattr__(self, "video", tuple(self.video))
        if self.parts:
            if self.text is not None or self.image is not None or self.video is not None:
                raise ValueError("Content takes either parts or text/image/video, not both")
            # A list is accepted for convenience; a tuple keeps the dataclass hashable.
            object.__setattr__(self, "parts", tuple(self.parts))
            for i, part in enumerate(self.parts):
                if isinstance(part, Content) and part.kind is None:
                    raise ValueError(
                        f"Content part {i} must hold exactly one of text, image or video"
                    )
        elif self.text is None and self.image is None and self.video is None:
            raise ValueError("Content needs at least one of text, image or video")

    @classmethod
    def of(cls, *parts: ContentPart) -> Content:
        """Several texts, images and videos embedded together as one vector, in this order.

        A ``str`` is text; ``pathlib.Path``, bytes, streams and PIL images are images; wrap an
        image reference given as ``str`` in ``Content(image=...)`` and a video in
        ``Content(video=...)``. The chat protocol keeps the order; ``/v2/embed`` keeps it for
        images and texts and takes no video.
        """
        if not parts:
            raise ValueError("Content.of needs at least one part")
        return cls(parts=parts)

    @property
    def kind(self) -> Literal["text", "image", "video"] | None:
        """``text``, ``image`` or ``video`` when exactly one single part is set, else ``None``."""
        if self.parts:
            return None
        given: list[Literal["text", "image", "video"]] = [
            k for k in ("text", "image", "video") if getattr(self, k) is not None
        ]
        return given[0] if len(given) == 1 else None


#: One part of :meth:`Content.of`: a ``str`` is text, a single-field :class:`Content` is that
#: part (use it for image paths given as ``str`` and for videos), anything else is an image.
ContentPart = Union[
    str, "Content", "os.PathLike[str]", bytes, bytearray, io.IOBase, "PILImage.Image", PdfPage
]

#: One item for :meth:`EmbeddingClient.embed`. A ``str`` is text; wrap an image reference
#: given as ``str`` in ``Content(image=...)`` (or use ``embed_images``). ``pathlib.Path``,
#: bytes, streams, PIL images and :class:`PdfPage` are taken as images.
EmbedInput = Union[
    str, Content, "os.PathLike[str]", bytes, bytearray, io.IOBase, "PILImage.Image", PdfPage
]
