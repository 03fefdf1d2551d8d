"""LlamaEngine.create / complete / create_structured_json / chat_template on real models:
OpenAI-shaped chunks, usage, tool calls, structured output."""

from __future__ import annotations

import threading

import jsonschema
import pytest

from llamabind import (
    GenerationParams,
    InvalidTextError,
    LlamaChatMessage,
    LlamaEngine,
    ModelParams,
    StateError,
    StructuredOutputError,
    UnsupportedError,
)
from llamabind.chat.template import MissingChatTemplateWarning

GREEDY = GenerationParams(temperature=0, max_tokens=40)
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Gets the current weather of a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"]}}}


@pytest.fixture(scope="module")
def engine(smollm2_path):
    with LlamaEngine(smollm2_path, ModelParams(n_ctx=2048, n_threads=2)) as engine:
        yield engine


def test_stream_chunks_are_openai_shaped_and_equal_complete(engine):
    chunks = list(engine.create(QUESTION, GREEDY))
    assert chunks[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert all(c.finish_reason is None and c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.finish_reason == "stop" and last.usage is not None
    text = "".join(c.text for c in chunks)
    assert "Paris" in text
    completion = engine.complete(QUESTION, GREEDY)
    assert completion.text == text and completion.finish_reason == "stop"
    wire = last.to_dict()
    assert set(wire) == {"id", "object", "created", "model", "choices", "usage"}
    assert wire["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_usage_counts_equal_the_tokenizer(engine):
    rendered = engine.chat_template(QUESTION)
    assert rendered.prompt.endswith("<|im_start|>assistant\n")
    assert rendered.token_count == len(engine.tokenize(rendered.prompt, parse_special=True))
    completion = engine.complete(QUESTION, GREEDY)
    usage = completion.usage
    assert usage.prompt_tokens == rendered.token_count
    # The reply re-tokenizes to the tokens generated (end-of-text not counted).
    assert usage.completion_tokens == len(engine.tokenize(completion.text, add_special=False))
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    again = engine.complete(QUESTION, GREEDY).usage
    assert again.cached_prompt_tokens == rendered.token_count - 1  # the prompt is in the cache
    assert usage.time_to_first_token_ms > 0 and usage.duration_ms >= usage.time_to_first_token_ms


def test_length_finish_and_max_tokens(engine):
    completion = engine.complete(QUESTION, GREEDY.replace(max_tokens=3))
    assert completion.finish_reason == "length" and completion.usage.completion_tokens == 3


def test_cancel_ends_with_a_cancelled_chunk(engine):
    stream = engine.create([{"role": "user", "content": "Write a long story about a dragon."}],
                           GenerationParams(max_tokens=None, ignore_eos=True, seed=1))
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == 4:
            threading.Thread(target=engine.cancel_generation).start()
    assert chunks[-1].finish_reason == "cancelled" and chunks[-1].usage is not None
    assert len(chunks) < 12
    assert "Paris" in engine.complete(QUESTION, GREEDY).text


def test_forced_tool_call_validates_against_the_schema(engine):
    completion = engine.complete(
        [{"role": "user", "content": "What's the weather in Paris, in celsius?"}],
        GREEDY.replace(max_tokens=80), tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert completion.finish_reason == "tool_calls"
    (call,) = completion.tool_calls
    assert call.name == "get_weather" and call.id
    jsonschema.validate(call.arguments, WEATHER_TOOL["function"]["parameters"])
    wire = completion.to_dict()["choices"][0]["message"]
    assert wire["tool_calls"][0]["function"]["name"] == "get_weather"


def test_tool_call_deltas_stream_in_openai_shape(engine):
    chunks = list(engine.create([{"role": "user", "content": "Weather in Oslo?"}],
                                GREEDY.replace(max_tokens=80), tools=[WEATHER_TOOL],
                                tool_choice="required"))
    calls = [c for c in chunks if c.delta.tool_calls]
    assert calls and calls[0].delta.tool_calls[0].function.name == "get_weather"
    assert chunks[-1].finish_reason == "tool_calls"
    assert not any(c.delta.content for c in chunks)  # no JSON or markers leak into content


SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
     "required": ["name", "age"]},
    {"type": "object", "properties": {"colors": {"type": "array", "items": {"type": "string"},
                                                 "minItems": 2, "maxItems": 3}},
     "required": ["colors"]},
    {"type": "object", "properties": {"size": {"enum": ["small", "medium", "large"]},
                                      "ok": {"type": "boolean"}},
     "required": ["size", "ok"]},
    {"type": "object", "properties": {"person": {"type": "object", "properties": {
        "first": {"type": "string"}, "address": {"type": "object", "properties": {
            "city": {"type": "string"}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
            "required": ["city", "zip"]}}, "required": ["first", "address"]}},
     "required": ["person"]},
    {"type": "object", "properties": {"value": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                                      "when": {"type": "string", "format": "date"}},
     "required": ["value", "when"]},
    {"type": "object", "properties": {"score": {"type": "number", "minimum": 0, "maximum": 10},
                                      "tags": {"type": "array", "items": {"enum": ["a", "b"]}}},
     "required": ["score", "tags"], "additionalProperties": False},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_json_schema_responses_parse_and_validate(engine, schema):
    value = engine.create_structured_json(
        [{"role": "user", "content": "Reply with an example JSON object."}], schema,
        GenerationParams(temperature=0, max_tokens=120))
    jsonschema.validate(value, schema)


def test_json_object_response_and_cut_short_output(engine):
    value = engine.create_structured_json([{"role": "user", "content": "Give me a JSON object."}],
                                          None, GenerationParams(temperature=0, max_tokens=100))
    assert isinstance(value, dict)
    with pytest.raises(StructuredOutputError, match="length"):
        engine.create_structured_json([{"role": "user", "content": "List ten fruits."}],
                                      {"type": "object", "properties": {"fruits": {
                                          "type": "array", "items": {"type": "string"}}}},
                                      GenerationParams(temperature=0, max_tokens=4))


def test_bad_requests_raise_clearly(engine):
    with pytest.raises(ValueError, match="response_format"):
        engine.complete(QUESTION, GREEDY, response_format={"type": "xml"})
    with pytest.raises(ValueError, match="not among the tools"):
        engine.complete(QUESTION, GREEDY, tools=[WEATHER_TOOL],
                        tool_choice={"type": "function", "function": {"name": "nope"}})
    with pytest.raises(ValueError, match="needs tools"):
        engine.complete(QUESTION, GREEDY, tool_choice="required")
    with pytest.raises(ValueError, match="tool_choice"):
        engine.complete(QUESTION, GREEDY, tools=[WEATHER_TOOL], tool_choice="sometimes")
    with pytest.raises(UnsupportedError):
        engine.complete([{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "file:///cat.png"}}]}], GREEDY)
    with pytest.raises(ValueError, match="role"):
        engine.complete([{"role": "narrator", "content": "x"}], GREEDY)
    with pytest.raises(ValueError, match="grammar"):
        engine.complete(QUESTION, GREEDY.replace(grammar='root ::= "x"'),
                        response_format={"type": "json_object"})
    first = engine.create(QUESTION, GREEDY)
    next(first)
    with pytest.raises(StateError):
        engine.complete(QUESTION, GREEDY)
    first.close()
    assert engine.complete(QUESTION, GREEDY).text


def test_llama_chat_messages_and_dicts_render_the_same(engine):
    as_dicts = engine.chat_template([{"role": "system", "content": "Be brief."}] + QUESTION).prompt
    as_messages = engine.chat_template([LlamaChatMessage.system("Be brief."),
                                        LlamaChatMessage.user("What is the capital of France?")]).prompt
    assert as_dicts == as_messages


def test_model_without_template_falls_back_to_chatml_with_a_warning(gemma3_path):
    with LlamaEngine(gemma3_path, ModelParams(n_ctx=512)) as engine:
        with pytest.warns(MissingChatTemplateWarning):
            rendered = engine.chat_template(QUESTION)
        assert rendered.prompt.startswith("<|im_start|>user\nWhat is the capital of France?")
        completion = engine.complete(QUESTION, GenerationParams(temperature=0, max_tokens=8))
        assert completion.usage.completion_tokens <= 8


QWEN_TEMPLATE = "vendor/llama.cpp/models/templates/Qwen-Qwen2.5-7B-Instruct.jinja"


@pytest.fixture(scope="module")
def hermes_engine(smollm2_path):
    """SmolLM2 with a template that has its own tool syntax (Hermes <tool_call> as in Qwen 2.5)."""
    from pathlib import Path

    source = (Path(__file__).resolve().parent.parent / QWEN_TEMPLATE).read_text()
    with LlamaEngine(smollm2_path, ModelParams(n_ctx=2048, chat_template=source)) as engine:
        yield engine


def test_native_format_forced_call_streams_arguments(hermes_engine):
    question = [{"role": "user", "content": "What's the weather in Paris, in celsius?"}]
    rendered = hermes_engine.chat_template(question, tools=[WEATHER_TOOL], tool_choice="required")
    assert rendered.grammar and not rendered.grammar_lazy
    assert rendered.prompt.endswith("<|im_start|>assistant\n<tool_call>\n")  # opened for the model
    chunks = list(hermes_engine.create(question, GREEDY.replace(max_tokens=80), tools=[WEATHER_TOOL],
                                       tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    deltas = [c.delta.tool_calls[0] for c in chunks if c.delta.tool_calls]
    assert len(deltas) > 2  # the arguments arrive piece by piece
    assert deltas[0].function.name == "get_weather" and deltas[0].id
    assert all(d.index == 0 for d in deltas)
    assert chunks[-1].finish_reason == "tool_calls"
    assert not any(c.delta.content for c in chunks)
    arguments = "".join(d.function.arguments for d in deltas)
    import json

    jsonschema.validate(json.loads(arguments), WEATHER_TOOL["function"]["parameters"])


def test_native_format_auto_keeps_a_lazy_grammar(hermes_engine):
    rendered = hermes_engine.chat_template(QUESTION, tools=[WEATHER_TOOL])
    assert rendered.grammar_lazy and any(t.value.startswith("<tool_call>") for t in rendered.grammar_triggers)
    assert "<tool_call>" in rendered.preserved_tokens
    assert "get_weather" in rendered.prompt  # the template itself lists the tools


@pytest.mark.parametrize(
    ("request_kwargs", "field"),
    [
        ({"messages": [{"role": "user", "content": "hi \ud800"}]}, "messages[0].content"),
        ({"messages": [{"role": "system", "content": "ok"},
                       {"role": "user", "content": [{"type": "text", "text": "\udcff"}]}]},
         "messages[1].content"),  # text parts are joined before the check
        ({"tools": [{**WEATHER_TOOL, "function": {**WEATHER_TOOL["function"], "description": "\ud800"}}]},
         "tools[0].function.description"),
        ({"response_format": {"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"enum": ["\udcff"]}}}}, "response_format.json_schema.schema.enum[0]"),
        ({"chat_template_kwargs": {"note": "\ud800"}}, "chat_template_kwargs.note"),
    ],
)
def test_lone_surrogates_anywhere_in_a_request_raise_invalid_text(engine, request_kwargs, field):
    kwargs = {"messages": QUESTION, **request_kwargs}
    messages = kwargs.pop("messages")
    for call in (lambda: list(engine.create(messages, GREEDY, **kwargs)),
                 lambda: engine.complete(messages, GREEDY, **kwargs)):
        with pytest.raises(InvalidTextError, match="surrogates") as caught:
            call()
        assert caught.value.field == field
    with pytest.raises(InvalidTextError, match="surrogates"):
        engine.chat_template(messages, **kwargs)
    assert engine.complete(QUESTION, GenerationParams(max_tokens=2)).text  # the engine goes on
