"""The Haystack components without a server: settings, serialization, secrets, bad documents.

Every bad document here fails before a request: the URL points at nothing, so a request would
be an APIConnectionError, not the InputError asserted.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from haystack import Document, Pipeline
from haystack.utils import Secret

from vllm_multimodal_embeddings import Content, InputError, PdfPage
from vllm_multimodal_embeddings.haystack import (
    VLLMMultimodalDocumentEmbedder,
    VLLMMultimodalRanker,
    VLLMMultimodalTextEmbedder,
)

URL = "http://127.0.0.1:9"  # the discard port: nothing answers
ALLOWED = ["vllm_multimodal_embeddings.haystack.*"]
SECRET = "sk-haystack-unit-5a1f"


def test_settings_reach_the_client_and_presets_resolve(monkeypatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", SECRET)
    text = VLLMMultimodalTextEmbedder(base_url=URL, query_instruction="visdoc", max_concurrency=3)
    settings = text._core.settings()
    assert settings.api_key == SECRET and settings.max_concurrency == 3
    assert text._core.sync().instruction_for("query") == (
        "Find a document image that matches the given query."
    )
    docs = VLLMMultimodalDocumentEmbedder(base_url=URL, dimensions=64, protocol="cohere")
    assert (docs._core.settings().dimensions, docs._core.settings().protocol) == (64, "cohere")
    ranker = VLLMMultimodalRanker(base_url=URL, instruction="Find the page.", batch_size=2)
    setup = ranker._core.setup()
    assert (setup.instruction, setup.batch_size, setup.api_key) == ("Find the page.", 2, SECRET)


def test_bad_settings_fail_when_the_component_is_made() -> None:
    with pytest.raises(TypeError, match="bogus"):
        VLLMMultimodalTextEmbedder(base_url=URL, bogus=1)
    with pytest.raises(TypeError, match="api_key must be a Secret") as info:
        VLLMMultimodalDocumentEmbedder(base_url=URL, api_key=SECRET)  # type: ignore[arg-type]
    assert SECRET not in str(info.value)
    with pytest.raises(ValueError, match="instruction"):  # /v2/embed carries none
        VLLMMultimodalTextEmbedder(base_url=URL, protocol="cohere", query_instruction="Find it.")
    with pytest.raises(ValueError, match="no_such_preset"):
        VLLMMultimodalTextEmbedder(base_url=URL, query_instruction="no_such_preset")
    with pytest.raises(ValueError, match="dimensions"):
        VLLMMultimodalDocumentEmbedder(base_url=URL, dimensions=0)
    with pytest.raises(ValueError, match="top_k"):
        VLLMMultimodalRanker(base_url=URL, top_k=0)


def test_to_dict_round_trip_keeps_the_parameters_as_given(monkeypatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", SECRET)
    monkeypatch.setenv("VLLM_EMBEDDING_MODEL", "from-env")
    emb = VLLMMultimodalDocumentEmbedder(
        base_url=URL, root_path="/data", meta_fields_to_embed=["title"], truncate="END"
    )
    data = emb.to_dict()
    params = data["init_parameters"]
    # The environment is read when the component is made, not written into the pipeline file.
    assert params["model"] is None and SECRET not in str(data)
    assert params["api_key"] == {"type": "env_var", "env_vars": ["VLLM_API_KEY"], "strict": False}
    assert (params["root_path"], params["truncate"]) == ("/data", "END")
    again = VLLMMultimodalDocumentEmbedder.from_dict(data)
    assert again.to_dict() == data
    assert again._core.settings() == emb._core.settings()


def test_yaml_round_trip_of_a_pipeline() -> None:
    pipe = Pipeline()
    pipe.add_component("query", VLLMMultimodalTextEmbedder(base_url=URL, dimensions=32))
    pipe.add_component("ranker", VLLMMultimodalRanker(base_url=URL, top_k=2, score_threshold=0.1))
    loaded = Pipeline.loads(pipe.dumps(), allowed_modules=ALLOWED)
    assert loaded.to_dict() == pipe.to_dict()
    ranker = loaded.get_component("ranker")
    assert isinstance(ranker, VLLMMultimodalRanker)
    assert (ranker.top_k, ranker.score_threshold) == (2, 0.1)


def test_secrets_never_serialize_or_show(monkeypatch) -> None:
    emb = VLLMMultimodalTextEmbedder(base_url=URL, api_key=Secret.from_token(SECRET))
    assert emb._core.settings().api_key == SECRET
    assert SECRET not in repr(emb) and SECRET not in repr(emb._core)
    with pytest.raises(ValueError, match="token-based secret"):
        emb.to_dict()
    with_creds = VLLMMultimodalRanker(base_url=f"http://user:{SECRET}@host:8001")
    with pytest.raises(ValueError, match="credentials") as info:
        with_creds.to_dict()
    assert SECRET not in str(info.value)


def test_document_inputs_and_their_embedding_source(tmp_path: Path) -> None:
    emb = VLLMMultimodalDocumentEmbedder(
        base_url=URL, root_path=str(tmp_path), meta_fields_to_embed=["title", "missing"]
    )
    text = Document(content="body", meta={"title": "Title"})
    image = Document(content="caption", meta={"file_path": "a.png"})
    page = Document(meta={"file_path": "r.pdf", "page_number": 2})
    inputs, sources = emb._inputs([text, image, page])
    assert inputs == [
        "Title\nbody",
        Content(image=tmp_path / "a.png"),
        Content(image=PdfPage(tmp_path / "r.pdf", 2)),
    ]
    assert sources == [
        {"type": "text"},
        {"type": "image", "file_path_meta_field": "file_path"},
        {"type": "image", "file_path_meta_field": "file_path"},
    ]
    both = VLLMMultimodalDocumentEmbedder(base_url=URL, text_with_image=True)
    [pair], [source] = both._inputs([image])
    assert pair == Content(text="caption", image=Path("a.png"))
    assert source["type"] == "image_and_text"
    # A PDF named by its MIME type, whatever the file's name.
    typed = Document(meta={"file_path": "blob", "mime_type": "application/pdf", "page_number": 1})
    assert both._inputs([typed])[0] == [Content(image=PdfPage(Path("blob"), 1))]


@pytest.mark.parametrize(
    ("meta", "content", "message"),
    [
        ({"file_path": "r.pdf"}, None, "page_number"),
        ({"file_path": "r.pdf", "page_number": "2"}, None, "page_number"),
        ({"file_path": "r.pdf", "page_number": 0}, None, "page_number"),
        ({"file_path": "../../etc/passwd"}, None, "escapes root_path"),
        ({"file_path": 42}, None, "must be a path"),
        ({}, "   ", "no text"),
    ],
)
def test_bad_documents_name_their_id(tmp_path: Path, meta, content, message) -> None:
    good = Document(content="fine")
    bad = Document(content=content, meta=meta)
    emb = VLLMMultimodalDocumentEmbedder(base_url=URL, root_path=str(tmp_path), progress_bar=False)
    ranker = VLLMMultimodalRanker(base_url=URL, root_path=str(tmp_path))
    for call in (
        lambda: emb.run([good, bad]),
        lambda: asyncio.run(emb.run_async([good, bad])),
        lambda: ranker.run("q", [good, bad]),
        lambda: asyncio.run(ranker.run_async("q", [good, bad])),
    ):
        with pytest.raises(InputError, match=message) as info:
            call()
        assert info.value.index == 1
        assert f"document {bad.id!r}" in str(info.value)


def test_wrong_input_types_are_refused() -> None:
    with pytest.raises(TypeError, match="string"):
        VLLMMultimodalTextEmbedder(base_url=URL).run(["a list"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Documents"):
        VLLMMultimodalDocumentEmbedder(base_url=URL).run(["text"])  # type: ignore[list-item]
    ranker = VLLMMultimodalRanker(base_url=URL)
    with pytest.raises(ValueError, match="top_k"):
        ranker.run("q", [Document(content="x")], top_k=0)
    assert ranker.run("q", []) == {"documents": []}
    assert VLLMMultimodalDocumentEmbedder(base_url=URL).run([]) == {"documents": []}


def test_secret_settings_open_pdfs_but_never_serialize(tmp_path: Path) -> None:
    pytest.importorskip("pypdfium2")
    pytest.importorskip("reportlab")
    from tests.pdfs import write_pdf

    write_pdf(tmp_path / "board.pdf", ["Hidden"], password=SECRET)
    emb = VLLMMultimodalDocumentEmbedder(
        base_url=URL, root_path=str(tmp_path), pdf_passwords={"board.pdf": SECRET}
    )
    assert emb._core.settings().pdf_passwords.for_path(tmp_path / "board.pdf") == SECRET
    assert SECRET not in repr(emb) and SECRET not in repr(emb._core)
    with pytest.raises(ValueError, match="cannot serialize pdf_passwords") as info:
        emb.to_dict()
    assert SECRET not in str(info.value)
    with pytest.raises(ValueError, match="cannot serialize headers"):
        VLLMMultimodalTextEmbedder(base_url=URL, headers={"X-Token": SECRET}).to_dict()


def test_the_ranker_takes_the_image_and_pdf_settings(tmp_path: Path) -> None:
    """The reranker reads images and PDF pages as the embedders do: their bounds, remote
    fetching and passwords are init arguments (a plain-valued pipeline file keeps them)."""
    ranker = VLLMMultimodalRanker(
        base_url=URL,
        max_image_pixels=500_000,
        recipe_images=False,
        fetch_remote_images=True,
        remote_allowed_hosts=["media.internal"],
        page_max_pixels=800_000,
    )
    setup = ranker._core.setup()
    assert (setup.max_image_pixels, setup.recipe_images, setup.page_max_pixels) == (
        500_000,
        False,
        800_000,
    )
    assert setup.fetch_remote_images and setup.remote_allowed_hosts == ("media.internal",)
    data = ranker.to_dict()
    assert data["init_parameters"]["max_image_pixels"] == 500_000
    assert VLLMMultimodalRanker.from_dict(data)._core.setup() == setup
    with pytest.raises(ValueError, match="max_image_pixels"):
        VLLMMultimodalRanker(base_url=URL, max_image_pixels=0)
    locked = VLLMMultimodalRanker(base_url=URL, pdf_passwords={"board.pdf": SECRET})
    assert locked._core.setup().pdf_passwords.for_path(tmp_path / "board.pdf") == SECRET
    assert SECRET not in repr(locked._core)
    with pytest.raises(ValueError, match="cannot serialize pdf_passwords"):
        locked.to_dict()
