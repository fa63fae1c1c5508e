"""Public input types: what a caller may hand to the client."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Union

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "Content",
    "EmbedInput",
    "ImageInput",
    "InputType",
    "OutputDType",
    "ProtocolName",
]

#: Anything that names or holds one image: a filesystem path (``str`` or ``PathLike``),
#: a ``file://``, ``http(s)://`` or ``data:`` URI, raw encoded bytes, a binary stream
#: such as ``io.BytesIO``, or a ``PIL.Image.Image``.
ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, io.IOBase, "PILImage.Image"]

#: Which instruction a vector is made under: retrieval queries or indexed documents.
InputType = Literal["query", "document"]

#: ``chat``: ``/v1/embeddings`` with chat messages (matches the official embedder);
#: ``cohere``: ``/v2/embed`` (Cohere Embed v2 schema).
ProtocolName = Literal["chat", "cohere"]

#: Vector element types the server can return on ``/v2/embed``; the chat path is always float.
OutputDType = Literal["float", "binary", "ubinary"]


@dataclass(frozen=True, slots=True)
class Content:
    """One item to embed as a single vector: text, an image, a video, or several together.

    ``Content(text="A cat", image="cat.jpg")`` embeds the pair as one vector, the way
    Qwen3-VL-Embedding embeds multimodal documents.

    Attributes:
        text: the text part.
        image: the image part, in any :data:`ImageInput` form.
        video: a video URL (``http(s)://``, ``data:`` or ``file://``), sent as is.
    """

    text: str | None = None
    image: ImageInput | None = None
    video: str | None = None

    def __post_init__(self) -> None:
        if self.text is None and self.image is None and self.video is None:
            raise ValueError("Content needs at least one of text, image or video")


#: One item for :meth:`EmbeddingClient.embed`. A ``str`` is text; wrap an image reference
#: given as ``str`` in ``Content(image=...)`` (or use ``embed_images``). ``pathlib.Path``,
#: bytes, streams and PIL images are taken as images.
EmbedInput = Union[str, Content, "os.PathLike[str]", bytes, bytearray, io.IOBase, "PILImage.Image"]
