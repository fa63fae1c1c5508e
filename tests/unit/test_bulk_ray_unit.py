"""The Ray Data helper's parts that need no cluster: settings travel, servers take turns."""

from __future__ import annotations

import pickle
import time

import numpy as np

from vllm_multimodal_embeddings import ClientSettings
from vllm_multimodal_embeddings.bulk.ray_data import EmbedBatches, _cell, _plain


def test_settings_with_headers_pickle_and_rebuild() -> None:
    settings = ClientSettings(base_url="http://a:8000", headers={"X-Team": "search"}, batch_size=3)
    again = ClientSettings(**pickle.loads(pickle.dumps(_plain(settings))))
    assert again == settings


def test_each_actor_sends_batches_to_the_servers_in_turn() -> None:
    settings = _plain(ClientSettings(base_url="http://a:8000"))
    actor = EmbedBatches(settings, ["http://a:8000", "http://b:8000", "http://c:8000"])
    try:
        assert [c.base_url for c in actor._clients] == [
            "http://a:8000",
            "http://b:8000",
            "http://c:8000",
        ]
        turns = [next(actor._turn) for _ in range(6)]
        assert sorted(turns[:3]) == [0, 1, 2] and turns[3:] == turns[:3]
    finally:
        for client in actor._clients:
            client.close()


def test_an_empty_batch_gets_a_column_of_the_right_width() -> None:
    # (0, 0) would not concatenate with the other batches' (n, dim) columns.
    actor = EmbedBatches(
        _plain(ClientSettings(base_url="http://a:8000")), ["http://a:8000"], dimensions=16
    )
    try:
        out = actor({"id": np.array([], dtype=str), "text": np.array([], dtype=str)})
        assert out["vector"].shape == (0, 16)
    finally:
        actor._clients[0].close()


def test_a_server_that_failed_lately_is_tried_after_the_others() -> None:
    urls = ["http://a:8000", "http://b:8000", "http://c:8000"]
    actor = EmbedBatches(_plain(ClientSettings(base_url=urls[0])), urls, server_cooldown=60)
    try:
        actor._down_until[1] = time.monotonic() + 60
        for _ in range(6):
            order = actor._order()
            assert sorted(order) == [0, 1, 2] and order[-1] == 1
        actor._down_until[1] = time.monotonic() - 1  # cooled down: back in its turn
        assert sorted(actor._order()[0] for _ in range(3)) == [0, 1, 2]
    finally:
        for client in actor._clients:
            client.close()


def test_a_column_of_nulls_is_no_input() -> None:
    # Ray hands an all-null ``image`` column to numpy as float32 NaN: no image, not "nan".
    assert _cell(np.array([np.nan], dtype=np.float32), 0) is None
    assert _cell(np.array([None, "a.png"], dtype=object), 1) == "a.png"
    assert _cell(np.array(["  "], dtype=object), 0) is None
