"""The I/O-free core, driven by hand: feed it canned responses, assert the requests it asks for.

No socket, no transport: as h11 tests its connection object, these tests hold the generator
and play the server.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
import json
from collections.abc import Callable, Generator
from typing import Any

import httpx
import numpy as np
import pytest

from vllm_multimodal_embeddings import (
    APIError,
    BadRequestError,
    ClientSettings,
    InputError,
    UnsupportedFeatureError,
)
from vllm_multimodal_embeddings.embeddings._core import CallRun, EmbeddingCore
from vllm_multimodal_embeddings.inputs._prepared import PreparedInput
from vllm_multimodal_embeddings.protocol._job import Chunk, Job
from vllm_multimodal_embeddings.protocol._probe import probe
from vllm_multimodal_embeddings.protocol._server_info import ServerInfo
from vllm_multimodal_embeddings.transport._http import Call, map_status_error

DIM = 4
INFO = ServerInfo(
    model="m",
    max_model_len=512,
    version="0.32.0",
    embedding_size=DIM,
    batched_conversations=True,
    matryoshka=True,
    input_types=("document", "query"),
)


def response(call: Call, status: int = 200, body: Any = None) -> httpx.Response:
    request = httpx.Request(call.method, f"http://vllm.test{call.path}", json=call.json)
    return httpx.Response(status, json=body if body is not None else {}, request=request)


def vectors_body(n: int, dim: int = DIM, value: float = 0.5) -> dict[str, Any]:
    vec = np.full(dim, value, dtype="<f4")
    data = [{"index": i, "embedding": base64.b64encode(vec.tobytes()).decode()} for i in range(n)]
    return {"data": data, "model": "m"}


Server = Callable[[Call], httpx.Response]


def play(step: Generator[Call, httpx.Response, Any], server: Server) -> tuple[Any, list[Call]]:
    """Run a sans-I/O step against ``server``; errors are thrown in as the transports do."""
    calls: list[Call] = []
    try:
        call = next(step)
        while True:
            calls.append(call)
            answer = server(call)
            if answer.is_success or not call.raise_for_status:
                call = step.send(answer)
            else:
                call = step.throw(map_status_error(answer))
    except StopIteration as stop:
        return stop.value, calls


def core(**changes: Any) -> EmbeddingCore:
    c = EmbeddingCore(ClientSettings(base_url="http://vllm.test", **changes))
    c.model = "m"
    return c


def texts(*items: str) -> list[PreparedInput]:
    return [PreparedInput(text=t) for t in items]


def run_for(c: EmbeddingCore, **call: Any) -> CallRun:
    return c.start(
        [],
        str_as="text",
        input_type=call.get("input_type", "document"),
        instruction=None,
        dimensions=call.get("dimensions"),
        embedding_type="float",
    )


def job_for(c: EmbeddingCore, info: ServerInfo = INFO, **call: Any) -> Job:
    return run_for(c, **call).plan(info)


def send(c: EmbeddingCore, start: int, items: list[PreparedInput], **call: Any) -> Any:
    """The chunk step of a fresh call, planned against INFO."""
    run = run_for(c, **call)
    return run.send(run.plan(INFO), start, items)


# -- probe -------------------------------------------------------------------------------------


def a_vllm_server(*, batched: bool = True, matryoshka: bool = True, v2: bool = True) -> Server:
    def server(call: Call) -> httpx.Response:
        body = call.json or {}
        if call.path == "/v1/models":
            return response(call, body={"data": [{"id": "served", "max_model_len": 2048}]})
        if call.path == "/version":
            return response(call, body={"version": "0.32.0"})
        if call.path == "/v2/embed":
            if not v2:
                return response(call, 404, {"detail": "Not Found"})
            msg = "Unsupported input_type '__vmme_probe__'. Supported values: query, document"
            return response(call, 400, {"error": {"message": msg}})
        if "messages" in body and not batched:
            return response(call, 400, {"error": {"message": "bad messages"}})
        if "dimensions" in body and not matryoshka:
            msg = "Model does not support matryoshka representation"
            return response(call, 400, {"error": {"message": msg}})
        return response(call, body={"data": [{"index": 0, "embedding": [0.6, 0.8, 0, 0, 0]}]})

    return server


def test_probe_asks_in_order_and_reads_every_feature() -> None:
    info, calls = play(probe(None), a_vllm_server())
    assert [c.path for c in calls] == [
        "/v1/models",
        "/version",
        "/v1/embeddings",
        "/v1/embeddings",
        "/v1/embeddings",
        "/v2/embed",
    ]
    assert info == ServerInfo(
        model="served",
        max_model_len=2048,
        version="0.32.0",
        embedding_size=5,
        batched_conversations=True,
        matryoshka=True,
        input_types=("document", "query"),
    )


def test_probe_of_an_old_bare_server() -> None:
    info, _ = play(probe("served"), a_vllm_server(batched=False, matryoshka=False, v2=False))
    assert (info.batched_conversations, info.matryoshka, info.input_types) == (False, False, None)


@pytest.mark.parametrize("path", ["/v1/embeddings", "/v2/embed"])
@pytest.mark.parametrize("status", [429, 503])
def test_a_transient_status_is_never_read_as_a_capability(path: str, status: int) -> None:
    # The retries are the transport's; what they could not mend must raise, not be cached as
    # "no batching", "no Matryoshka" or "no input types" for the client's whole life.
    healthy = a_vllm_server()

    def flaky(call: Call) -> httpx.Response:
        if call.path == path and call.json and ("messages" in call.json or "texts" in call.json):
            return response(call, status, {"error": {"message": "try later"}})
        return healthy(call)

    with pytest.raises(APIError, match="try later"):
        play(probe(None), flaky)


def test_every_probe_request_is_retried_like_any_other() -> None:
    _, calls = play(probe(None), a_vllm_server())
    assert all(call.retry for call in calls)


def test_probe_refuses_a_model_list_that_is_not_one() -> None:
    def html(call: Call) -> httpx.Response:
        request = httpx.Request(call.method, f"http://vllm.test{call.path}")
        return httpx.Response(200, text="<html>login</html>", request=request)

    with pytest.raises(APIError, match="no model list"):
        play(probe(None), html)


# -- planning -----------------------------------------------------------------------------------


def test_plan_decides_dimensions_and_batching() -> None:
    c = core(batch_size=8)
    assert job_for(c, dimensions=2).server_dimensions == 2
    assert job_for(c).expected_size == DIM
    old = dataclasses.replace(INFO, batched_conversations=False, matryoshka=False)
    assert job_for(c, old).batch_size == 1
    with pytest.raises(UnsupportedFeatureError, match="is_matryoshka"):
        job_for(c, old, dimensions=2)
    local = job_for(core(client_side_dimensions=True), old, dimensions=2)
    assert (local.server_dimensions, local.local_dimensions) == (None, 2)
    with pytest.raises(InputError, match="exceeds"):
        job_for(c, dimensions=DIM + 1)
    no_types = dataclasses.replace(INFO, input_types=())
    with pytest.raises(UnsupportedFeatureError, match="task_instructions"):
        job_for(core(protocol="cohere"), no_types)


def test_chunks_read_lazily() -> None:
    pulled = []

    def source() -> Any:
        for i in itertools.count():
            pulled.append(i)
            yield f"t{i}"

    chunks = EmbeddingCore.chunks(source(), 3)
    first = next(chunks)
    assert (first.start, list(first.items), len(pulled)) == (0, ["t0", "t1", "t2"], 3)
    assert next(chunks).start == 3
    with pytest.raises(InputError, match="single str"):
        core().start(
            "abc",
            str_as="text",
            input_type="document",
            instruction=None,
            dimensions=None,
            embedding_type="float",
        )


# -- sending: splitting, bisection, validation ------------------------------------------------


def texts_in(call: Call) -> list[str]:
    messages = (call.json or {})["messages"]
    conversations = messages if isinstance(messages[0], list) else [messages]  # unbatched: one
    return [m[1]["content"][0]["text"] for m in conversations]


def refusing(poison: Callable[[str], bool], message: str = "too long") -> Server:
    def server(call: Call) -> httpx.Response:
        items = texts_in(call)
        if any(poison(t) for t in items):
            return response(call, 400, {"error": {"message": message}})
        return response(call, body=vectors_body(len(items)))

    return server


def test_send_chunk_splits_by_count_and_bytes() -> None:
    c = core(batch_size=3, max_batch_bytes=200)
    items = texts("a", "b", "c", "d", "x" * 150, "e")
    result, calls = play(send(c, 10, items), refusing(lambda t: False))
    # "d" fits no more beside the long text, nor "e" after it (about 48 bytes of framing each).
    assert [texts_in(call) for call in calls] == [["a", "b", "c"], ["d"], ["x" * 150], ["e"]]
    assert len(result.vectors) == 6 and result.error is None


def test_a_refused_input_is_narrowed_down_and_the_halves_that_pass_are_kept() -> None:
    c = core(batch_size=8)
    items = texts("a", "b", "c", "poison", "e", "f")
    result, calls = play(send(c, 20, items), refusing(lambda t: t == "poison"))
    # 6 refused; a-c pass; poison-f refused; poison alone refused, the control passes, poison
    # refused again: stop there (e, f are after the first bad input, where the stream ends).
    assert [texts_in(call) for call in calls][3:] == [["poison"], ["."], ["poison"]]
    assert [len(texts_in(call)) for call in calls] == [6, 3, 3, 1, 1, 1]
    assert len(result.vectors) == 3  # a, b, c came back before the culprit
    assert isinstance(result.error, BadRequestError)
    assert result.error.index == 23 and str(result.error).startswith("input 23:")


def test_a_request_refused_as_a_whole_blames_no_input() -> None:
    c = core(batch_size=8)
    items = texts("a", "b", "c", "d")
    server = refusing(lambda t: True, "dimensions must be positive")
    result, calls = play(send(c, 0, items), server)
    assert result.error.index is None
    assert "as a whole" in str(result.error) and "dimensions must be positive" in str(result.error)
    # 4 -> 2 -> 1, then the control request (the shortest text alone) is refused too.
    assert [texts_in(call) for call in calls] == [["a", "b", "c", "d"], ["a", "b"], ["a"], ["."]]


def test_two_inputs_refused_alike_are_each_an_inputs_fault() -> None:
    # vLLM words every over-long input's 400 the same: the first and last of a request look
    # alike, yet the control request passes, so the first is named, not the request.
    c = core(batch_size=8)
    items = texts("long1", "b", "c", "long2")
    server = refusing(lambda t: t.startswith("long"), "at least 2049 input tokens")
    result, calls = play(send(c, 0, items), server)
    assert result.error is not None and result.error.index == 0
    assert "as a whole" not in str(result.error)
    assert [texts_in(call) for call in calls[-2:]] == [["."], ["long1"]]


def test_one_input_per_request_still_names_the_input() -> None:
    # Servers without batched conversations send 1-input requests: a refusal of one of them
    # is that input's (once the control passes), not a refusal of every request.
    c = core(batch_size=8)
    run = run_for(c)
    job = run.plan(dataclasses.replace(INFO, batched_conversations=False))
    assert job.batch_size == 1
    server = refusing(lambda t: t == "bad")
    result, calls = play(run.send(job, 5, texts("bad", "ok")), server)
    assert result.error is not None and result.error.index == 5
    # "bad", the control, "bad" again; "ok" is after the first bad input.
    assert [texts_in(call) for call in calls] == [["bad"], ["."], ["bad"]]


def test_a_dead_server_fetched_url_is_narrowed_down_without_retrying_the_batch() -> None:
    c = core(batch_size=8)
    items = [
        PreparedInput(image_url="http://img.test/ok1.png"),
        PreparedInput(image_url="http://img.test/dead.png?sig=SECRET"),
        PreparedInput(text="after"),
    ]

    def server(call: Call) -> httpx.Response:
        urls = json.dumps(call.json)
        if "dead.png" in urls:
            return response(call, 500, {"error": {"message": "Cannot connect to host"}})
        n = len((call.json or {})["messages"])
        return response(call, body=vectors_body(n))

    result, calls = play(send(c, 0, items), server)
    # Batches with URLs get no 5xx retry (the transport honours server_error_retries): [all 3]
    # is refused, [ok1] passes, [dead, after] is refused, [dead] alone is retried twice at
    # most, the control passes (the policy's retries), [dead] is refused once more and named.
    assert [c.server_error_retries for c in calls] == [0, 2, 0, 2, None, 0]
    assert len(result.vectors) == 1 and result.error is not None and result.error.index == 1
    assert "SECRET" not in str(result.error)


def failing_after(n: int, status: int, *, until: int | None = None) -> tuple[Server, list[int]]:
    """A server that embeds its first ``n`` requests, then answers ``status`` to every one
    (up to request ``until``, when it recovers): a whole server failing mid-run."""
    seen = [0]

    def server(call: Call) -> httpx.Response:
        seen[0] += 1
        if seen[0] > n and (until is None or seen[0] <= until):
            return response(call, status, {"error": {"message": "Service Unavailable"}})
        return response(call, body=vectors_body(len((call.json or {})["messages"])))

    return server, seen


@pytest.mark.parametrize(
    ("status", "items"),
    [
        (400, [PreparedInput(text=f"t{i}") for i in range(8)]),
        (503, [PreparedInput(image_url=f"http://img.test/u{i}.png") for i in range(8)]),
    ],
)
def test_a_server_failing_as_a_whole_mid_call_blames_no_input(
    status: int, items: list[PreparedInput]
) -> None:
    # Requests of 2: the first two pass, then the server refuses everything. Narrowing reaches
    # one input after earlier successes; the control request, refused too, shows it is the
    # server (a bulk run then stops and retries on resume instead of failing a good row).
    c = core(batch_size=2)
    server, _ = failing_after(2, status)
    result, calls = play(send(c, 0, items), server)
    assert len(result.vectors) == 4
    assert result.error is not None and result.error.index is None
    assert result.error.status_code == status and "as a whole" in str(result.error)
    assert texts_in(calls[-1]) == ["."]


def test_a_server_that_recovers_during_the_control_embeds_the_input() -> None:
    # The input's request is refused (the server is down), the control passes once it is back:
    # the input is asked again and embedded, not named.
    c = core(batch_size=4)
    items = [PreparedInput(image_url=f"http://img.test/u{i}.png") for i in range(4)]
    server, _ = failing_after(0, 503, until=3)  # [4] [2] [1] refused, then the server is back
    result, calls = play(send(c, 0, items), server)
    assert result.error is None and len(result.vectors) == 4
    assert texts_in(calls[3]) == ["."]


def test_a_prepared_error_is_reported_after_the_inputs_before_it() -> None:
    c = core()
    error = InputError("empty text", index=7)
    run = run_for(c)
    chunk = Chunk(5, ["a", "b", "", "c"])
    good, found = run.triage(chunk, [*texts("a", "b"), error, *texts("c")])
    assert [g.text for g in good] == ["a", "b"] and found is error


@pytest.mark.parametrize(
    ("vector", "match"),
    [
        (np.array([np.nan, 0, 0, 1], dtype="<f4"), "NaN or infinity"),
        (np.array([np.inf, 0, 0, 1], dtype="<f4"), "NaN or infinity"),
        (np.array([1, 0, 0], dtype="<f4"), "expected 4"),
    ],
)
def test_vectors_no_caller_should_get_are_refused(vector: np.ndarray, match: str) -> None:
    c = core()
    body = {"data": [{"index": 0, "embedding": base64.b64encode(vector.tobytes()).decode()}]}

    def server(call: Call) -> httpx.Response:
        return response(call, body=body)

    result, _ = play(send(c, 0, texts("a")), server)
    assert isinstance(result.error, APIError) and match in str(result.error)


def test_the_request_is_the_official_recipe() -> None:
    c = core()
    result, calls = play(
        send(c, 0, texts("hello"), input_type="query"),
        lambda call: response(call, body=vectors_body(1)),
    )
    body = calls[0].json or {}
    assert body["messages"][0][0] == {
        "role": "system",
        "content": [
            {"type": "text", "text": "Retrieve images or text relevant to the user's query."}
        ],
    }
    assert body["continue_final_message"] is True and body["encoding_format"] == "base64"
    assert json.loads(json.dumps(body)) == body  # plain JSON, nothing exotic
    assert len(result.vectors) == 1


def test_videos_with_other_request_fields_go_in_other_requests() -> None:
    from vllm_multimodal_embeddings.inputs._video import VideoKwargs

    odd = VideoKwargs({"video": {"fps": 1, "max_frames": 5}}, {"videos_kwargs": {"a": 1}})
    six = VideoKwargs({"video": {"fps": 1, "max_frames": 6}}, {"videos_kwargs": {"a": 1}})
    items = [
        PreparedInput(video_url="data:video/mp4;base64,AA", video_kwargs=odd),
        PreparedInput(text="joins any request"),
        PreparedInput(video_url="data:video/mp4;base64,AB", video_kwargs=odd),
        PreparedInput(video_url="data:video/mp4;base64,AC", video_kwargs=six),
        PreparedInput(video_url="data:video/mp4;base64,AD"),  # the flags suffice: no fields
    ]
    c = core(batch_size=8)

    def server(call: Call) -> httpx.Response:
        return response(call, body=vectors_body(len((call.json or {})["messages"])))

    result, calls = play(send(c, 0, items), server)
    assert [len((call.json or {})["messages"]) for call in calls] == [3, 1, 1]
    bodies = [call.json or {} for call in calls]
    assert bodies[0]["media_io_kwargs"] == odd.media_io_kwargs
    assert bodies[0]["mm_processor_kwargs"] == odd.mm_processor_kwargs
    assert bodies[1]["media_io_kwargs"] == six.media_io_kwargs
    assert "media_io_kwargs" not in bodies[2] and len(result.vectors) == 5


def test_the_chunker_asks_the_size_for_each_chunks_first_input() -> None:
    asked: list[str] = []

    def size(first: str) -> int:
        asked.append(first)
        return 3 if first.startswith("t") else 1

    items = ["t0", "t1", "t2", "i0", "i1", "t3", "t4"]
    chunks = list(EmbeddingCore.chunks(items, size))
    assert [list(c.items) for c in chunks] == [["t0", "t1", "t2"], ["i0"], ["i1"], ["t3", "t4"]]
    assert [c.start for c in chunks] == [0, 3, 4, 5]
    assert asked == ["t0", "i0", "i1", "t3"]

    async def collect() -> list[list[str]]:
        async def source() -> Any:
            for item in items:
                yield item

        return [list(c.items) async for c in EmbeddingCore.achunks(source(), size)]

    assert asyncio.run(collect()) == [list(c.items) for c in chunks]
