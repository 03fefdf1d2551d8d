"""The server through the real ``openai`` client: sync, async, streaming, tools, JSON schema,
embeddings, text completions, models. Greedy requests are compared with the engine's own
answer to the same request, so the server is checked to add nothing and lose nothing."""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest

openai = pytest.importorskip("openai")
jsonschema = pytest.importorskip("jsonschema")

from llamabind.params import GenerationParams

pytestmark = pytest.mark.timeout(600)

MESSAGES = [{"role": "user", "content": "Name a colour."}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(
        base_url=server.url + "/v1", api_key=server.api_key, timeout=300, max_retries=0
    )


def engine_of(server):
    return server.registry.get(server.model_id).engine.engine


def test_chat_matches_the_engine(server, client):
    reply = client.chat.completions.create(
        model=server.model_id, messages=MESSAGES, max_tokens=12, temperature=0
    )
    expected = engine_of(server).complete(MESSAGES, GenerationParams(max_tokens=12, temperature=0))
    choice = reply.choices[0]
    assert reply.model == server.model_id
    assert reply.object == "chat.completion"
    assert choice.message.role == "assistant"
    assert choice.message.content == expected.text and expected.text
    assert choice.finish_reason == expected.finish_reason
    assert reply.usage.completion_tokens == expected.usage.completion_tokens
    assert reply.usage.prompt_tokens == expected.usage.prompt_tokens


def test_chat_stream_with_usage(server, client):
    whole = client.chat.completions.create(
        model=server.model_id, messages=MESSAGES, max_tokens=12, temperature=0
    )
    chunks = list(
        client.chat.completions.create(
            model=server.model_id,
            messages=MESSAGES,
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


def test_stream_without_include_usage_has_no_usage(server, client):
    chunks = list(
        client.chat.completions.create(
            model=server.model_id, messages=MESSAGES, max_tokens=4, temperature=0, stream=True
        )
    )
    assert chunks and all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_async_client_stream_and_whole(server):
    async def main():
        async with openai.AsyncOpenAI(
            base_url=server.url + "/v1", api_key=server.api_key, timeout=300, max_retries=0
        ) as aclient:
            whole = await aclient.chat.completions.create(
                model=server.model_id, messages=MESSAGES, max_tokens=8, temperature=0
            )
            stream = await aclient.chat.completions.create(
                model=server.model_id, messages=MESSAGES, max_tokens=8, temperature=0, stream=True
            )
            pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            return whole, "".join(pieces)

    whole, streamed = asyncio.run(main())
    assert streamed == whole.choices[0].message.content and streamed


def test_stop_and_max_completion_tokens(server, client):
    free = client.chat.completions.create(
        model=server.model_id, messages=MESSAGES, max_completion_tokens=12, temperature=0
    )
    text = free.choices[0].message.content
    assert free.usage.completion_tokens <= 12
    word = text.split()[1] if len(text.split()) > 1 else text.split()[0]
    stopped = client.chat.completions.create(
        model=server.model_id,
        messages=MESSAGES,
        max_completion_tokens=12,
        temperature=0,
        stop=[word],
    )
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].message.content == text[: text.index(word)]


def test_forced_tool_call(server, client):
    reply = client.chat.completions.create(
        model=server.model_id,
        temperature=0,
        max_tokens=64,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)
    assert call.id


def test_streamed_tool_call_deltas(server, client):
    kwargs = {
        "model": server.model_id,
        "temperature": 0,
        "max_tokens": 64,
        "tools": [WEATHER_TOOL],
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    }
    whole = client.chat.completions.create(**kwargs)
    chunks = list(client.chat.completions.create(stream=True, **kwargs))
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas, "no tool-call deltas were streamed"
    assert deltas[0].function.name == "get_weather"
    arguments = "".join(d.function.arguments or "" for d in deltas if d.index == 0)
    assert json.loads(arguments) == json.loads(
        whole.choices[0].message.tool_calls[0].function.arguments
    )
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_json_schema_response_format(server, client):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model=server.model_id,
        temperature=0,
        max_tokens=64,
        messages=[{"role": "user", "content": "Invent a person."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema},
        },
    )
    jsonschema.validate(json.loads(reply.choices[0].message.content), schema)


def test_json_object_response_format(server, client):
    reply = client.chat.completions.create(
        model=server.model_id,
        temperature=0,
        max_tokens=48,
        messages=[{"role": "user", "content": "Give me a JSON object about a cat."}],
        response_format={"type": "json_object"},
    )
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(reply.choices[0].message.content), dict)
    else:  # cut short by max_tokens: still the start of an object
        assert reply.choices[0].message.content.lstrip().startswith("{")


def test_embeddings_float_and_base64(server, client):
    texts = ["The cat sat on the mat.", "Stock markets fell today."]
    floats = client.embeddings.create(model=server.model_id, input=texts)
    engine = engine_of(server)
    expected = engine.embed_batch(texts)
    assert [d.index for d in floats.data] == [0, 1]
    got = np.array([d.embedding for d in floats.data], dtype=np.float32)
    assert got.shape == (2, engine.model.n_embd)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert floats.usage.prompt_tokens == sum(len(engine.tokenize(t)) for t in texts)
    encoded = client.embeddings.create(
        model=server.model_id, input=texts[0], encoding_format="base64"
    )
    raw = encoded.data[0].embedding
    vector = (
        np.frombuffer(base64.b64decode(raw), dtype="<f4")
        if isinstance(raw, str)
        else np.asarray(raw, dtype=np.float32)
    )  # the client may decode base64 itself
    np.testing.assert_allclose(vector, expected[0], rtol=1e-5, atol=1e-6)


def test_text_completion_matches_the_engine(server, client):
    prompt = "The capital of France is"
    reply = client.completions.create(
        model=server.model_id, prompt=prompt, max_tokens=8, temperature=0
    )
    run = engine_of(server).start_generation(prompt, GenerationParams(max_tokens=8, temperature=0))
    expected = "".join(run)
    assert reply.choices[0].text == expected and expected
    assert reply.choices[0].finish_reason == run.finish_reason
    assert reply.usage.completion_tokens == run.usage.completion_tokens
    echoed = client.completions.create(
        model=server.model_id, prompt=prompt, max_tokens=8, temperature=0, echo=True
    )
    assert echoed.choices[0].text == prompt + expected


def test_text_completion_stream_from_token_ids(server, client):
    engine = engine_of(server)
    prompt = "Once upon a time"
    token_ids = engine.tokenize(prompt)
    whole = client.completions.create(
        model=server.model_id, prompt=prompt, max_tokens=8, temperature=0
    )
    chunks = list(
        client.completions.create(
            model=server.model_id, prompt=token_ids, max_tokens=8, temperature=0, stream=True
        )
    )
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason


def test_models_list_and_retrieve(server, client):
    listed = client.models.list()
    assert [m.id for m in listed.data] == [server.model_id]
    assert client.models.retrieve(server.model_id).id == server.model_id
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_unknown_model_and_wrong_key(server, client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=2)
    assert info.value.code == "model_not_found"
    wrong = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_bad_request_names_the_field(server, client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=server.model_id, messages=MESSAGES, n=2)
    assert info.value.param == "n"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=server.model_id, messages=MESSAGES, temperature=7)
    assert info.value.param == "temperature"


def test_chat_logprobs_match_the_engine(server, client):
    expected = engine_of(server).complete(
        MESSAGES, GenerationParams(max_tokens=6, temperature=0, logprobs=2)
    )
    assert len(expected.logprobs) == expected.usage.completion_tokens
    reply = client.chat.completions.create(
        model=server.model_id, messages=MESSAGES, max_tokens=6, temperature=0,
        logprobs=True, top_logprobs=2,
    )  # fmt: skip
    content = reply.choices[0].logprobs.content
    assert [c.token for c in content] == [e.token.text for e in expected.logprobs]
    assert [c.logprob for c in content] == pytest.approx([e.token.logprob for e in expected.logprobs])
    for c in content:
        assert len(c.top_logprobs) == 2
        assert c.top_logprobs[0].logprob >= c.top_logprobs[1].logprob
        assert c.logprob <= c.top_logprobs[0].logprob + 1e-6  # a probability, not above the best
        assert bytes(c.bytes).decode("utf-8", errors="replace") == c.token
    streamed = [
        entry
        for chunk in client.chat.completions.create(
            model=server.model_id, messages=MESSAGES, max_tokens=6, temperature=0,
            logprobs=True, stream=True,
        )  # fmt: skip
        if chunk.choices and chunk.choices[0].logprobs
        for entry in chunk.choices[0].logprobs.content
    ]
    assert [e.token for e in streamed] == [c.token for c in content]
    assert all(e.top_logprobs == [] for e in streamed)
    plain = client.chat.completions.create(
        model=server.model_id, messages=MESSAGES, max_tokens=2, temperature=0
    )
    assert plain.choices[0].logprobs is None


def test_text_completion_logprobs(server, client):
    reply = client.completions.create(
        model=server.model_id, prompt="The capital of France is", max_tokens=5, temperature=0,
        logprobs=3,
    )  # fmt: skip
    logprobs = reply.choices[0].logprobs
    assert len(logprobs.tokens) == reply.usage.completion_tokens == 5
    assert "".join(logprobs.tokens) == reply.choices[0].text
    assert all(len(top) == 3 for top in logprobs.top_logprobs)
    assert logprobs.text_offset == [sum(len(t) for t in logprobs.tokens[:i]) for i in range(5)]
    chunks = list(
        client.completions.create(
            model=server.model_id, prompt="The capital of France is", max_tokens=5,
            temperature=0, logprobs=1, stream=True,
        )  # fmt: skip
    )
    tokens = [t for c in chunks if c.choices[0].logprobs for t in c.choices[0].logprobs.tokens]
    assert tokens == logprobs.tokens
