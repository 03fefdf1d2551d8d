"""ChatOptions and request keywords: checked once at the public call, then passed as objects."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
from llamabind import (
    AsyncLlamaEngine,
    ChatOptions,
    GenerationParams,
    LlamaEngine,
    ModelParams,
    ToolDefinition,
)
from llamabind.options import (
    ChatOptionSettings,
    GenerationSettings,
    chat_options,
    generation_params,
    request_settings,
)

MESSAGES = [{"role": "user", "content": "Name three colors."}]


def get_weather(city: str) -> dict:
    """Gets the current weather of a city.

    Args:
        city: The city name.
    """
    return {"city": city}


def test_keyword_typed_dicts_name_every_field():
    # The keyword types are kept in step with the objects: a new field needs both.
    assert GenerationSettings.__optional_keys__ == {
        f.name for f in dataclasses.fields(GenerationParams)}
    assert ChatOptionSettings.__optional_keys__ == {f.name for f in dataclasses.fields(ChatOptions)}


def test_chat_options_normalise_tools_and_check_values():
    options = ChatOptions(tools=[get_weather], tool_choice="required")
    assert isinstance(options.tools, tuple) and isinstance(options.tools[0], ToolDefinition)
    assert options.tools[0].name == "get_weather"
    with pytest.raises(TypeError, match="ChatOptions.enable_thinking must be a bool"):
        ChatOptions(enable_thinking="yes")
    with pytest.raises(TypeError, match="response_format must be a dict"):
        ChatOptions(response_format="json")
    with pytest.raises(TypeError, match="tool_choice must be a str or a dict"):
        ChatOptions(tool_choice=3)
    with pytest.raises(TypeError, match="tools must be a list"):
        ChatOptions(tools="get_weather")
    with pytest.raises(TypeError, match="did you mean tool_choice"):
        ChatOptions(toolChoice="auto")


def test_keywords_override_the_objects():
    base = GenerationParams(temperature=0.5, max_tokens=10)
    params, options = request_settings(base, ChatOptions(enable_thinking=False),
                                       {"max_tokens": 3, "tool_choice": "none"}, "f()")
    assert (params.temperature, params.max_tokens) == (0.5, 3)
    assert (options.enable_thinking, options.tool_choice) == (False, "none")
    assert base.max_tokens == 10  # the caller's object is not changed
    assert generation_params(None, {}, "f()") == GenerationParams()
    assert chat_options(None, {}, "f()") == ChatOptions()


def test_unknown_keywords_name_the_call_and_the_likely_name():
    with pytest.raises(TypeError, match=r"LlamaEngine.create\(\) got an unexpected keyword "
                                        r"argument 'temp'; did you mean temperature\?"):
        request_settings(None, None, {"temp": 0}, "LlamaEngine.create()")
    with pytest.raises(TypeError, match="did you mean stop"):
        request_settings(None, None, {"stopSequences": ["x"]}, "ChatSession.send()")
    with pytest.raises(TypeError, match=r"LlamaEngine.generate\(\) takes no chat option 'tools'"):
        generation_params(None, {"tools": []}, "LlamaEngine.generate()")
    with pytest.raises(TypeError, match="did you mean tools"):
        chat_options(None, {"tool": []}, "LlamaEngine.chat_template()")
    with pytest.raises(TypeError, match="params must be GenerationParams"):
        generation_params({"max_tokens": 3}, {}, "f()")
    with pytest.raises(ValueError, match="GenerationParams.top_p must be <= 1.0"):
        generation_params(None, {"top_p": 2.0}, "f()")


@pytest.fixture(scope="module")
def engine(smollm2_path):
    with LlamaEngine(smollm2_path, ModelParams(n_ctx=1024, n_threads=2)) as engine:
        yield engine


def test_engine_requests_take_keywords(engine):
    by_params = engine.complete(MESSAGES, GenerationParams(temperature=0, max_tokens=6))
    by_keywords = engine.complete(MESSAGES, temperature=0, max_tokens=6)
    assert by_keywords.text == by_params.text and by_keywords.usage.completion_tokens == 6
    chunks = list(engine.create(MESSAGES, GenerationParams(max_tokens=50), temperature=0,
                                max_tokens=6))  # the keyword wins over params
    assert chunks[-1].usage.completion_tokens == 6
    assert "".join(engine.generate("The capital of France is", temperature=0, max_tokens=4))
    data = engine.create_structured_json(MESSAGES, {"type": "object", "properties": {
        "a": {"type": "integer"}}, "required": ["a"]}, temperature=0, max_tokens=20)
    assert isinstance(data["a"], int)
    with_tools = engine.chat_template(MESSAGES, tools=[get_weather])
    assert "get_weather" in with_tools.prompt
    assert with_tools.prompt == engine.chat_template(
        MESSAGES, options=ChatOptions(tools=[get_weather])).prompt


def test_engine_keyword_errors_name_the_method(engine):
    with pytest.raises(TypeError, match=r"LlamaEngine.complete\(\) .*'temp'; did you mean "
                                        r"temperature\?"):
        engine.complete(MESSAGES, temp=0)
    with pytest.raises(TypeError, match=r"LlamaEngine.create\(\) .*'maxTokens'; did you mean "
                                        r"max_tokens\?"):
        engine.create(MESSAGES, maxTokens=3)
    with pytest.raises(TypeError, match=r"LlamaEngine.generate\(\) takes no chat option"):
        engine.generate("Hi", tool_choice="none")
    with pytest.raises(ValueError, match="makes the response_format from schema"):
        engine.create_structured_json(MESSAGES, response_format={"type": "json_object"})
    assert json.dumps(engine.chat_template(MESSAGES).prompt)  # the engine is still usable


def test_async_engine_requests_take_keywords(engine):
    async def main():
        wrapped = AsyncLlamaEngine(engine=engine)
        completion = await wrapped.complete(MESSAGES, temperature=0, max_tokens=4)
        pieces = [p async for p in wrapped.generate("The capital of France is", temperature=0,
                                                     max_tokens=3)]
        rendered = await wrapped.chat_template(MESSAGES, tools=[get_weather])
        with pytest.raises(TypeError, match=r"AsyncLlamaEngine.create\(\) .*'topP'; did you "
                                            r"mean top_p\?"):
            wrapped.create(MESSAGES, topP=0.5)
        return completion, pieces, rendered

    completion, pieces, rendered = asyncio.run(main())
    assert completion.usage.completion_tokens == 4
    assert completion.text == engine.complete(MESSAGES, temperature=0, max_tokens=4).text
    assert pieces and "get_weather" in rendered.prompt
