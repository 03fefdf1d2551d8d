"""The server over raw HTTP: errors in OpenAI's shape with the right status, the API key,
the body limit, CORS, tokenize/detokenize, metrics, and a client that disconnects mid-stream."""

from __future__ import annotations

import json
import socket
import time

import pytest

httpx = pytest.importorskip("httpx")

from live_server import is_busy, wait_idle

pytestmark = pytest.mark.timeout(600)

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=300) as client:
        yield client


def chat_body(server, **fields):
    return {
        "model": server.model_id,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 2,
        **fields,
    }


def assert_error(response, status, param=None, code=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    return error


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"temperature": 3}, "temperature"),
        ({"top_p": -1}, "top_p"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"n": 3}, "n"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"stop": [""]}, "stop"),
        ({"logit_bias": {"hello": 1}}, "logit_bias"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"tool_choice": "sometimes"}, None),
    ],
)
def test_bad_fields_are_400_naming_the_field(server, http, fields, param):
    error = assert_error(http.post(CHAT, json=chat_body(server, **fields)), 400)
    if param is not None:
        assert error["param"] == param, error
    assert error["type"] == "invalid_request_error"


def test_body_that_is_not_json(http):
    response = http.post(CHAT, content=b"{not json", headers={"content-type": "application/json"})
    assert_error(response, 400)


def test_unknown_model_is_404(server, http):
    assert_error(
        http.post(CHAT, json=chat_body(server, model="../../etc/passwd")),
        404,
        "model",
        "model_not_found",
    )
    assert_error(http.get("/v1/models/nope"), 404)
    assert_error(http.post("/v1/embeddings", json={"model": "/tmp/x.gguf", "input": "a"}), 404)


def test_unknown_route_is_404_in_openai_shape(http):
    assert_error(http.get("/v1/nothing-here"), 404)


def test_context_overflow_is_400(server, http):
    long_text = "word " * 3000  # more tokens than the test server's 2048-token context
    body = chat_body(server, messages=[{"role": "user", "content": long_text}])
    assert_error(http.post(CHAT, json=body), 400, "messages", "context_length_exceeded")


def test_lone_surrogate_in_content_is_400(server, http):
    # a JSON escape of half a surrogate pair decodes to a str that has no UTF-8 form
    body = json.dumps(chat_body(server, messages=[{"role": "user", "content": "hi \ud800"}]))
    response = http.post(CHAT, content=body.encode(), headers={"content-type": "application/json"})
    error = assert_error(response, 400)
    assert "surrogate" in error["message"], error
    body = json.dumps({"model": server.model_id, "prompt": "a \udcff b", "max_tokens": 2})
    response = http.post("/v1/completions", content=body.encode(),
                         headers={"content-type": "application/json"})
    assert "surrogate" in assert_error(response, 400)["message"]


def test_image_content_is_400(server, http):
    content = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    body = chat_body(server, messages=[{"role": "user", "content": content}])
    assert_error(http.post(CHAT, json=body), 400)


def test_api_key_required_except_health(server):
    with httpx.Client(base_url=server.url, timeout=60) as bare:
        assert bare.get("/health").json() == {"status": "ok"}
        missing = bare.get("/v1/models")
        assert_error(missing, 401, code="invalid_api_key")
        assert missing.headers["www-authenticate"] == "Bearer"
        assert_error(bare.get("/v1/models", headers={"Authorization": "Bearer nope"}), 401)
        assert_error(bare.get("/metrics"), 401)
        assert_error(bare.post(CHAT, json=chat_body(server)), 401)
        almost = "Bearer " + server.api_key[:-1]
        assert_error(bare.get("/v1/models", headers={"Authorization": almost}), 401)


def test_body_limit_is_413(server, http):
    big = "x" * (100 * 1024)  # the test server allows 64 KiB
    body = chat_body(server, messages=[{"role": "user", "content": big}])
    assert_error(http.post(CHAT, json=body), 413)

    def chunks():  # no Content-Length: the limit is enforced while reading
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}]}'

    response = http.post(CHAT, content=chunks(), headers={"content-type": "application/json"})
    assert_error(response, 413)


def test_cors_is_off_by_default(server, http):
    preflight = http.options(
        CHAT, headers={"Origin": "https://example.com", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    plain = http.get("/v1/models", headers={"Origin": "https://example.com"})
    assert "access-control-allow-origin" not in plain.headers


def test_tokenize_and_detokenize(server, http):
    engine = server.registry.get(server.model_id).engine.engine
    text = "Hello world, how are you?"
    tokens = http.post("/tokenize", json={"content": text}).json()["tokens"]
    assert tokens == engine.tokenize(text, False, True)
    assert http.post("/detokenize", json={"tokens": tokens}).json()["content"] == text
    pieces = http.post("/tokenize", json={"content": text, "with_pieces": True}).json()["tokens"]
    assert [p["id"] for p in pieces] == tokens
    assert "".join(p["piece"] for p in pieces) == text
    n_vocab = engine.model.n_vocab
    assert_error(http.post("/detokenize", json={"tokens": [n_vocab]}), 400, "tokens")
    assert_error(
        http.post("/v1/completions", json={"prompt": [1, -2], "max_tokens": 1}), 400, "prompt"
    )


def test_embeddings_errors(server, http):
    assert_error(http.post("/v1/embeddings", json={"input": []}), 400, "input")
    assert_error(http.post("/v1/embeddings", json={"input": [[1, 2]]}), 400, "input")
    assert_error(
        http.post("/v1/embeddings", json={"input": "a", "dimensions": 3}), 400, "dimensions"
    )


def test_completions_unsupported_fields(server, http):
    body = {"model": server.model_id, "prompt": "Hi", "max_tokens": 1}
    assert_error(http.post("/v1/completions", json={**body, "suffix": "x"}), 400, "suffix")
    assert_error(http.post("/v1/completions", json={**body, "prompt": ["a", "b"]}), 400, "prompt")
    assert_error(http.post("/v1/completions", json={**body, "prompt": ""}), 400, "prompt")


def metric(http, name):
    """The value of an unlabelled metric, or the sum of a labelled one."""
    total = 0.0
    for line in http.get("/metrics").text.splitlines():
        if line.startswith((name + " ", name + "{")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_and_tokens(server, http):
    before_tokens = metric(http, "llamabind_completion_tokens_total")
    before_requests = metric(http, "llamabind_requests_total")
    reply = http.post(CHAT, json=chat_body(server, max_tokens=3, temperature=0)).json()
    text = http.get("/metrics").text
    assert "# TYPE llamabind_time_to_first_token_seconds histogram" in text
    assert 'llamabind_active_sequences{model="smollm2"}' in text
    assert "llamabind_queue_depth" in text
    assert 'llamabind_decode_steps_total{model="smollm2"}' in text
    assert 'llamabind_prompt_cache_bytes{model="smollm2"}' in text
    assert "# TYPE llamabind_prompt_cache_restored_total counter" in text
    after_tokens = metric(http, "llamabind_completion_tokens_total")
    assert after_tokens - before_tokens == reply["usage"]["completion_tokens"]
    assert metric(http, "llamabind_requests_total") >= before_requests + 2
    assert 'route="/v1/chat/completions",status="200"' in text


def test_client_disconnect_cancels_the_generation(server, http):
    """A client that drops the connection mid-stream frees the engine within moments."""
    engine = server.registry.get(server.model_id).engine.engine
    before = metric(http, "llamabind_requests_cancelled_total")
    body = json.dumps(
        chat_body(
            server,
            max_tokens=1500,
            temperature=0.8,
            stream=True,
            messages=[{"role": "user", "content": "Write a long story."}],
        )
    )
    request = (
        f"POST {CHAT} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
        f"Authorization: Bearer {server.api_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()
    with socket.create_connection((server.host, server.port), timeout=300) as sock:
        sock.sendall(request)
        received = b""
        while received.count(b"data: ") < 3:  # a few tokens have streamed
            data = sock.recv(4096)
            assert data, "the server closed the stream early"
            received += data
        assert received.startswith(b"HTTP/1.1 200")
        assert is_busy(engine)
    assert wait_idle(engine), "the generation went on after the client left"
    assert metric(http, "llamabind_requests_cancelled_total") == before + 1
    # the engine serves the next request at once
    assert http.post(CHAT, json=chat_body(server, max_tokens=2)).status_code == 200


def test_client_gone_before_the_first_token_cancels_too(server, http):
    """A client that leaves during a long prompt evaluation (no byte answered yet) cancels it."""
    engine = server.registry.get(server.model_id).engine.engine
    before = metric(http, "llamabind_requests_cancelled_total")
    long_prompt = "Summarise this. " + "The river flows past the old mill. " * 220
    body = json.dumps(
        chat_body(
            server, max_tokens=50, stream=True, messages=[{"role": "user", "content": long_prompt}]
        )
    )
    request = (
        f"POST {CHAT} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
        f"Authorization: Bearer {server.api_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()
    with socket.create_connection((server.host, server.port), timeout=300) as sock:
        sock.sendall(request)
        deadline = time.monotonic() + 60
        while not is_busy(engine) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert is_busy(engine), "the request never reached the engine"
    assert wait_idle(engine), "the generation went on after the client left"
    assert metric(http, "llamabind_requests_cancelled_total") == before + 1


def test_event_loop_answers_while_a_generation_runs(server, http):
    """Health, models, metrics and tokenize are answered while a stream is generating."""
    engine = server.registry.get(server.model_id).engine.engine
    body = chat_body(
        server,
        max_tokens=1500,
        temperature=0.8,
        stream=True,
        messages=[{"role": "user", "content": "Write a long story."}],
    )
    streaming = httpx.Client(base_url=server.url, headers=server.headers, timeout=300)
    with streaming, streaming.stream("POST", CHAT, json=body) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))
        assert http.get("/health").status_code == 200
        assert http.get("/v1/models").status_code == 200
        assert http.post("/tokenize", json={"content": "hello"}).status_code == 200
        assert "llamabind_active_sequences" in http.get("/metrics").text
        assert is_busy(engine), "the stream ended before the other requests were answered"
    assert wait_idle(engine)


@pytest.fixture(scope="module")
def cors_server(smollm2_path):
    """A second server with CORS for one origin and a key."""
    from live_server import start_server
    from llamabind.params import ModelParams
    from llamabind.server import ModelRegistry, ModelSpec, ServerConfig

    config = ServerConfig(
        models=(ModelSpec(smollm2_path, "m", ModelParams(n_ctx=512)),),
        port=0,
        api_key="cors-key",
        cors_origins=("https://app.example",),
    )
    registry = ModelRegistry(config.models)
    registry.load()
    uv, thread, port = start_server(config, registry)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(30)


def test_cors_when_asked_for(cors_server):
    with httpx.Client(base_url=cors_server, timeout=60) as client:
        preflight = client.options(
            CHAT,
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200  # no key needed for a preflight
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        listed = client.get(
            "/v1/models",
            headers={"Origin": "https://app.example", "Authorization": "Bearer cors-key"},
        )
        assert listed.status_code == 200
        assert listed.headers["access-control-allow-origin"] == "https://app.example"
        other = client.get(
            "/v1/models",
            headers={"Origin": "https://evil.example", "Authorization": "Bearer cors-key"},
        )
        assert "access-control-allow-origin" not in other.headers
        assert (
            client.get("/v1/models", headers={"Origin": "https://app.example"}).status_code == 401
        )
