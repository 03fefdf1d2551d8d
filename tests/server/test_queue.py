"""A server whose model takes one request at a time and queues none: a second concurrent
request is refused at once with 429 (queue full) and ``Retry-After``."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest

httpx = pytest.importorskip("httpx")

from conftest import start_server, wait_idle
from llamabind.params import ModelParams
from llamabind.server import ModelRegistry, ModelSpec, ServerConfig

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def single_slot_server(smollm2_path):
    fields = {f.name for f in dataclasses.fields(ModelParams)}
    if not {"n_parallel", "n_queue"} <= fields:
        # Without the engine's request queue a refused stream's clean-up cancels the engine's
        # running generation (AsyncLlamaEngine cancels engine-wide), so the check is not sound.
        pytest.skip("needs ModelParams.n_parallel / n_queue (the engine's request queue)")
    queue = {"n_parallel": 1, "n_queue": 0}
    params = ModelParams(n_ctx=1024, n_threads=2, **queue)
    config = ServerConfig(
        models=(ModelSpec(smollm2_path, alias="one", params=params),),
        port=0,
        api_key="",
        retry_after_s=3,
    )
    registry = ModelRegistry(config.models)
    registry.load()
    server, thread, port = start_server(config, registry)
    yield f"http://127.0.0.1:{port}", registry.get("one").engine.engine
    server.should_exit = True
    thread.join(30)


def test_second_request_is_refused_with_retry_after(single_slot_server):
    base_url, engine = single_slot_server
    url = base_url + "/v1/chat/completions"
    long_body = {
        "model": "one",
        "stream": True,
        "max_tokens": 400,
        "temperature": 0.8,
        "messages": [{"role": "user", "content": "Write a long story."}],
    }
    short_body = {"model": "one", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]}
    started = threading.Event()
    with httpx.Client(timeout=300) as client:
        with client.stream("POST", url, json=long_body) as first:
            for line in first.iter_lines():
                if line.startswith("data: "):
                    started.set()
                    break
            assert started.is_set()
            second = client.post(url, json=short_body)
            assert second.status_code == 429, second.text
            assert second.headers["retry-after"] == "3"
            error = second.json()["error"]
            assert error["code"] == "queue_full" and error["message"]
        # the first stream closed early: the model is free again for the next request
        assert wait_idle(engine), "the abandoned stream kept generating"
        third = client.post(url, json=short_body)
        assert third.status_code == 200, third.text
        assert json.loads(third.text)["choices"][0]["message"]["role"] == "assistant"
