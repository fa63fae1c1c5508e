"""Defects of the reliability review (issue 34) that need no server: each test failed before
its fix."""

from __future__ import annotations

import base64
import copy
import logging
import pickle

import httpx
import pytest

from vllm_multimodal_embeddings import (
    ClientSettings,
    ConfigurationError,
    EmbeddingClient,
    InputError,
)
from vllm_multimodal_embeddings.reranking import RerankerSettings


def _answering(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": [{"id": "m", "max_model_len": 512}]})

    return httpx.MockTransport(handler)


def test_settings_with_headers_pickle_and_copy() -> None:  # item 9
    s = ClientSettings(base_url="http://vllm.test", headers={"X-Tenant": "t-secret"})
    for other in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s), copy.copy(s)):
        assert other == s and dict(other.headers or {}) == {"X-Tenant": "t-secret"}
    with pytest.raises(TypeError):
        s.headers["X-Other"] = "no"  # type: ignore[index]
    assert "t-secret" not in repr(s.headers) and "t-secret" not in repr(s)
    reranker = RerankerSettings(base_url="http://vllm.test", headers={"X": "1"})
    assert copy.deepcopy(reranker) == reranker


def test_credentials_in_base_url_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    # item 10: httpx's INFO line printed the URL it was given, password included.
    caplog.set_level(logging.DEBUG)
    seen: list[httpx.Request] = []
    http = httpx.Client(transport=_answering(seen))
    with EmbeddingClient(base_url="http://user:pw-secret@vllm.test:8000", http_client=http) as c:
        c._transport.send(_models_call())
    assert seen and seen[0].url == "http://vllm.test:8000/v1/models"
    sent = seen[0].headers["Authorization"]
    assert sent == "Basic " + base64.b64encode(b"user:pw-secret").decode()
    assert "pw-secret" not in caplog.text and "HTTP Request" in caplog.text
    http.close()


def _models_call():  # type: ignore[no-untyped-def]
    from vllm_multimodal_embeddings.transport._http import Call

    return Call("GET", "/v1/models")


@pytest.mark.parametrize(
    "url", ["http://vllm.test?tok=x", "http://vllm.test/v1?tok=x", "http://h#f"]
)
def test_a_base_url_with_a_query_string_is_refused(url: str) -> None:  # item 11
    with pytest.raises(ConfigurationError, match="no query string") as info:
        ClientSettings(base_url=url)
    assert "tok=x" not in str(info.value)


@pytest.mark.parametrize("bad", [5, 1.5, ["Find it."]])
def test_a_non_string_instruction_is_a_typed_error(bad: object) -> None:  # item 14
    c = EmbeddingClient(base_url="http://vllm.test")
    with pytest.raises(InputError, match="instruction must be a string or a TaskPreset"):
        c.embed(["a"], instruction=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="query_instruction"):
        ClientSettings(base_url="http://vllm.test", query_instruction=bad)  # type: ignore[arg-type]
    c.close()


# -- PDF pages --------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["bad\0name.pdf#page=1", "~no-such-user-vmme/x.pdf#page=2"])
def test_a_bad_pdf_page_reference_is_an_image_load_error(ref: str) -> None:  # item 3
    pytest.importorskip("pypdfium2")
    from vllm_multimodal_embeddings import ImageLoadError
    from vllm_multimodal_embeddings.inputs._read import prepare_input
    from vllm_multimodal_embeddings.inputs._settings import ImageSettings

    with pytest.raises(ImageLoadError) as info:
        prepare_input(ref, index=4, options=ImageSettings(), str_as="image")
    assert info.value.index == 4


def test_a_page_past_the_models_aspect_limit_is_refused_here(tmp_path) -> None:  # item 12
    pytest.importorskip("pypdfium2")
    pytest.importorskip("reportlab")
    from tests.pdfs import write_pdf
    from vllm_multimodal_embeddings import ImageLoadError, PdfPage
    from vllm_multimodal_embeddings.inputs._read import prepare_input
    from vllm_multimodal_embeddings.inputs._settings import ImageSettings

    strip = write_pdf(tmp_path / "strip.pdf", ["a receipt"], size=(20.0, 4100.0))
    with pytest.raises(ImageLoadError, match="at most 200:1") as info:
        prepare_input(PdfPage(strip, 1), index=0, options=ImageSettings())
    assert "strip.pdf" in str(info.value)
    fine = write_pdf(tmp_path / "tall.pdf", ["a long page"], size=(40.0, 7900.0))
    assert prepare_input(PdfPage(fine, 1), index=0, options=ImageSettings()).image_url


# -- manifests ----------------------------------------------------------------------------------


def test_manifests_in_other_encodings_or_corrupt_are_source_errors(tmp_path) -> None:  # item 6
    from vllm_multimodal_embeddings.bulk.sources import SourceError, manifest_source

    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,text\nr1,caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(SourceError, match=r"latin\.csv: not UTF-8 text .*save the manifest"):
        list(manifest_source(latin))
    bom = tmp_path / "bom.csv"
    bom.write_bytes("id,text\nr1,spreadsheet row\n".encode("utf-8-sig"))
    assert [(i.id, i.text) for i in manifest_source(bom)] == [("r1", "spreadsheet row")]
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet PAR1")
    with pytest.raises(SourceError, match=r"broken\.parquet: not a readable Parquet file"):
        list(manifest_source(broken))


def test_a_cell_holding_a_list_or_object_fails_its_row_alone(tmp_path) -> None:  # item 8
    from vllm_multimodal_embeddings.bulk.sources import manifest_source

    path = tmp_path / "m.jsonl"
    path.write_text(
        '{"id": "r1", "text": ["a", "b"]}\n{"id": "r2", "text": "fine"}\n'
        '{"id": "r3", "text": {"k": 1}}\n{"id": 4, "text": 12}\n',
        encoding="utf-8",
    )
    items = list(manifest_source(path))
    assert [(i.id, i.text) for i in items] == [
        ("r1", None),
        ("r2", "fine"),
        ("r3", None),
        ("4", "12"),
    ]
    assert items[0].problem == "row 1: column 'text' holds a list, not a string"
    assert items[2].problem == "row 3: column 'text' holds a dict, not a string"


def test_a_timed_out_request_is_retried_under_the_defaults() -> None:  # item 7
    # The default budget was the default timeout: the first timed-out attempt spent it all.
    from vllm_multimodal_embeddings.transport._http import _attempt_timeout

    s = ClientSettings(base_url="http://vllm.test")
    now = [0.0]
    state = s.retry_policy().start(clock=lambda: now[0])
    assert _attempt_timeout(s.timeout, state) == s.timeout
    now[0] = s.timeout  # the first attempt timed out
    assert state.next_delay(httpx.ReadTimeout("slow")) is not None
    # The retry gets what is left of the budget, never more: the request stays within it.
    now[0] = s.max_retry_time - 10.0
    assert _attempt_timeout(s.timeout, state) == pytest.approx(10.0)


def test_flush_rows_bounds_the_failures_held_too(tmp_path) -> None:  # item 13
    # 30 failures in a row, --flush-rows 5: six committed groups as the run goes, not 30
    # failures held in memory until the end.
    import json

    from tests.unit.test_client_transport import FakeVLLM, probed
    from vllm_multimodal_embeddings.bulk import JobOptions, manifest_source, read_failures, run_job
    from vllm_multimodal_embeddings.bulk.sink import read_vectors

    rows = [{"id": f"bad{i}", "text": ""} for i in range(30)] + [{"id": "ok", "text": "fine"}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out"
    with probed(FakeVLLM()) as client:
        opts = JobOptions(on_error="skip", flush_rows=5)
        summary = run_job(client, manifest_source(manifest), out, opts)
    assert summary.failed == 30 and summary.embedded == 1
    assert len(list(out.glob("failures-*.jsonl"))) == 6
    assert len(read_failures(out)) == 30 and read_vectors(out)[0] == ["ok"]


@pytest.mark.parametrize("name", ["report_download", "weird.pdf.v2"])
def test_page_uris_of_a_pdf_not_named_pdf_resolve(tmp_path, name: str) -> None:  # item 5
    pytest.importorskip("pypdfium2")
    pytest.importorskip("reportlab")
    from tests.pdfs import write_pdf
    from vllm_multimodal_embeddings import ImageLoadError, PdfPage
    from vllm_multimodal_embeddings.inputs._read import prepare_input
    from vllm_multimodal_embeddings.inputs._settings import ImageSettings
    from vllm_multimodal_embeddings.langchain.pdf import PdfPageImageLoader

    path = write_pdf(tmp_path / name, ["One", "Two"])
    uris = [doc.page_content for doc in PdfPageImageLoader(path).load()]
    assert uris == [f"{path}#page=1", f"{path}#page=2"]
    options = ImageSettings()
    want = prepare_input(PdfPage(path, 2), index=0, options=options).image_url
    assert prepare_input(uris[1], index=0, options=options, str_as="image").image_url == want
    file_uri = path.as_uri() + "#page=2"
    assert prepare_input(file_uri, index=0, options=options, str_as="image").image_url == want
    # A file that is no PDF keeps its "#page=" as part of an image path, as before.
    (tmp_path / "x.png#page=1").write_bytes(b"not an image")
    with pytest.raises(ImageLoadError, match=r"x\.png#page=1"):
        prepare_input(str(tmp_path / "x.png#page=1"), index=0, options=options, str_as="image")
