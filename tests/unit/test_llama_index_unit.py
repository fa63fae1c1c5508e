"""VLLMMultiModalEmbedding without a server: settings, secrets, node sources, errors."""

from __future__ import annotations

import base64
import io
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("llama_index.core")

from llama_index.core.bridge.pydantic import ValidationError
from llama_index.core.schema import ImageDocument, ImageNode, TextNode

from vllm_multimodal_embeddings import Content, ImageLoadError, InputError
from vllm_multimodal_embeddings.llama_index import VLLMMultiModalEmbedding

# Nothing listens here: every test below must fail (or finish) before any request.
UNREACHABLE = "http://127.0.0.1:9"
SECRET = "sk-unit-secret-123"


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (1, 2, 3)).save(buf, "PNG")
    return buf.getvalue()


def test_package_import_does_not_import_llama_index() -> None:
    code = (
        "import sys, vllm_multimodal_embeddings; "
        "print(any(m.startswith('llama_index') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_class_name_and_defaults() -> None:
    emb = VLLMMultiModalEmbedding(base_url=UNREACHABLE)
    assert VLLMMultiModalEmbedding.class_name() == "VLLMMultiModalEmbedding"
    assert emb.embed_batch_size == 256 and emb.batch_size is None  # None: tuned
    assert emb.to_dict()["class_name"] == "VLLMMultiModalEmbedding"


@pytest.mark.parametrize(
    "bad",
    [
        {"embed_batch_size": 0},
        {"dimensions": 0},
        {"max_concurrency": 0},
        {"max_retries": -1},
        {"timeout": 0},
        {"max_image_pixels": 0},
        {"protocol": "grpc"},
        {"truncate": "MIDDLE"},
    ],
)
def test_settings_are_bounded(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        VLLMMultiModalEmbedding(base_url=UNREACHABLE, **bad)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"base_url": "localhost:8000"}, "http"),
        ({"protocol": "cohere", "query_instruction": "Find it."}, "task_instructions"),
        ({"query_instruction": "visdok"}, "visdoc"),
    ],
)
def test_what_only_client_settings_know_fails_at_construction(
    bad: dict[str, object], message: str
) -> None:
    # These used to pass construction and fail at the first embed call.
    with pytest.raises(ValidationError, match=message):
        VLLMMultiModalEmbedding(**{"base_url": UNREACHABLE, **bad})


def test_api_key_and_headers_never_shown_or_serialized() -> None:
    emb = VLLMMultiModalEmbedding(
        base_url=UNREACHABLE, api_key=SECRET, headers={"X-Token": "hdr-secret"}
    )
    assert emb.api_key is not None and emb.api_key.get_secret_value() == SECRET
    shown = [
        repr(emb),
        str(emb),
        emb.to_json(),
        json.dumps(emb.to_dict()),
        emb.model_dump_json(),
        repr(emb.to_payload()),
    ]
    for text in shown:
        assert SECRET not in text
        assert "hdr-secret" not in text
    assert "api_key" not in emb.to_dict()
    # A round trip through the serialized form drops the key (it comes back from the env).
    again = VLLMMultiModalEmbedding.from_dict(emb.to_dict())
    assert again.api_key is None
    assert again.base_url == UNREACHABLE
    # Pickling (multiprocessing pipelines) keeps the key but does not leak it into repr.
    clone = pickle.loads(pickle.dumps(emb))
    assert SECRET not in repr(clone)


def test_node_input_source_priority(tmp_path: Path) -> None:
    emb = VLLMMultiModalEmbedding(base_url=UNREACHABLE)
    b64 = base64.b64encode(_png()).decode()
    path = str(tmp_path / "x.png")
    url = "https://example.com/x.png"
    # base64 > image_path > image_url
    # (ImageNode guesses image_mimetype from the path's extension.)
    both = emb.node_input(ImageNode(image=b64, image_path=path, image_url=url))
    assert both == Content(image=f"data:image/png;base64,{b64}")
    assert emb.node_input(ImageNode(image_path=path, image_url=url)) == Content(image=path)
    assert emb.node_input(ImageNode(image_url=url)) == Content(image=url)
    # A non-image mimetype is dropped: the bytes say what they are.
    odd = emb.node_input(ImageNode(image=b64, image_mimetype="application/octet-stream"))
    assert odd == Content(image=f"data:;base64,{b64}")


def test_image_document_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "d.png"
    path.write_bytes(_png())
    emb = VLLMMultiModalEmbedding(base_url=UNREACHABLE)
    # ImageDocument is a Document wrapping a MediaResource, not an ImageNode.
    doc = ImageDocument(image_path=str(path))
    assert emb.node_input(doc) == Content(image=str(path))


def test_node_text_with_image_option() -> None:
    b64 = base64.b64encode(_png()).decode()
    node = ImageNode(image=b64, text="caption", image_mimetype="image/png")
    emb = VLLMMultiModalEmbedding(base_url=UNREACHABLE, embed_node_text_with_image=True)
    item = emb.node_input(node)
    assert isinstance(item, Content)
    assert item.text == "caption"
    assert item.image == f"data:image/png;base64,{b64}"
    plain = VLLMMultiModalEmbedding(base_url=UNREACHABLE).node_input(node)
    assert isinstance(plain, Content) and plain.text is None


def test_node_without_image_names_position_and_id() -> None:
    emb = VLLMMultiModalEmbedding(base_url=UNREACHABLE)
    good = ImageNode(image=base64.b64encode(_png()).decode())
    with pytest.raises(InputError) as info:
        emb.embed_image_nodes([good, ImageNode(id_="empty-node")])
    assert info.value.index == 1
    assert "empty-node" in str(info.value)


def test_bad_nodes_fail_before_any_request(tmp_path: Path) -> None:
    # The unreachable server proves the check runs before sending.
    emb = VLLMMultiModalEmbedding(base_url=UNREACHABLE, max_retries=0)
    with pytest.raises(ImageLoadError) as info:
        emb.embed_image_nodes([ImageNode(image_path=str(tmp_path / "nope.png"), id_="n1")])
    assert info.value.index == 0 and "n1" in str(info.value)
    with pytest.raises(ImageLoadError) as info:
        emb.get_image_embedding_batch([io.BytesIO(b"not an image")])
    assert info.value.index == 0


def test_pipeline_call_routes_nodes(tmp_path: Path) -> None:
    """Text nodes go the text way; image nodes the image way (both fail here, but distinctly)."""
    emb = VLLMMultiModalEmbedding(base_url=UNREACHABLE, max_retries=0)
    missing = str(tmp_path / "missing.png")
    # The image node is checked first and names its id, although it has text too.
    with pytest.raises(ImageLoadError) as info:
        emb([TextNode(text="hello"), ImageNode(image_path=missing, text="cap", id_="img-1")])
    assert "img-1" in str(info.value)
    # An ImageNode without any image source is embedded by its text: the empty text is refused.
    with pytest.raises(InputError, match="empty text"):
        emb([ImageNode(text="")])


def test_instrumentation_events_carry_the_vectors_and_their_own_defaults() -> None:
    """The end events are built without re-validating their floats: they must still carry the
    slice's texts and vectors, and each its own id, timestamp and tags (a shared tags dict
    would leak one event's tags into the next: the dispatcher updates it in place)."""
    import httpx
    import numpy as np
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.events import BaseEvent
    from llama_index.core.instrumentation.events.embedding import (
        EmbeddingEndEvent,
        EmbeddingStartEvent,
    )

    from .test_client_transport import FakeVLLM, vector_for

    seen: list[BaseEvent] = []

    class Keep(BaseEventHandler):
        def handle(self, event: BaseEvent, **kwargs: object) -> None:
            if isinstance(event, (EmbeddingStartEvent, EmbeddingEndEvent)):
                seen.append(event)

    http = httpx.Client(transport=httpx.MockTransport(FakeVLLM()))
    emb = VLLMMultiModalEmbedding(
        base_url="http://fake:8000", model_name="m", embed_batch_size=2, http_client=http
    )
    texts = ["a b", "c d e", "f"]
    handler, dispatcher = Keep(), get_dispatcher()
    dispatcher.add_event_handler(handler)
    try:
        got = emb.get_text_embedding_batch(texts)
    finally:
        dispatcher.event_handlers.remove(handler)
    ends = [e for e in seen if isinstance(e, EmbeddingEndEvent)]
    assert len(ends) == 2 and len(seen) == 4
    assert [c for e in ends for c in e.chunks] == texts
    assert [v for e in ends for v in e.embeddings] == got
    np.testing.assert_allclose(got, np.stack([vector_for(t) for t in texts]), atol=1e-6)
    assert all(isinstance(x, float) for e in ends for v in e.embeddings for x in v)
    assert len({e.id_ for e in ends}) == 2 and all(e.timestamp for e in ends)
    ends[0].tags["mine"] = 1
    assert "mine" not in ends[1].tags
    assert ends[1].model_dump()["class_name"] == "EmbeddingEndEvent"
    emb.close()
