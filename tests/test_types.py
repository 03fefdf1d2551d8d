"""Messages to and from OpenAI's shape; chunk accumulation; usage JSON."""

from __future__ import annotations

import json

import pytest
from llamabind import UnsupportedError
from llamabind.types import (
    LlamaChatMessage,
    LlamaChatRole,
    LlamaChunkChoice,
    LlamaChunkDelta,
    LlamaChunkFunction,
    LlamaChunkToolCall,
    LlamaCompletionAccumulator,
    LlamaCompletionChunk,
    LlamaImageContent,
    LlamaTextContent,
    LlamaThinkingContent,
    LlamaToolCallContent,
    LlamaUsage,
    to_messages,
)


def test_text_message_round_trip():
    message = LlamaChatMessage("user", "hi")
    assert message.role is LlamaChatRole.USER and message.text == "hi"
    assert message.to_openai() == {"role": "user", "content": "hi"}
    assert LlamaChatMessage.from_openai({"role": "user", "content": "hi"}) == message
    assert LlamaChatMessage.from_openai({"role": "developer", "content": "x"}).role is LlamaChatRole.SYSTEM
    parts = LlamaChatMessage.from_openai({"role": "user", "content": [{"type": "text", "text": "a"},
                                                                     {"type": "text", "text": "b"}]})
    assert parts.text == "ab"


def test_assistant_with_reasoning_and_tool_calls_round_trip():
    message = LlamaChatMessage.assistant([
        LlamaThinkingContent("let me think"),
        LlamaToolCallContent.from_json("get_weather", '{"city": "Paris"}', "call_1"),
    ])
    wire = message.to_openai()
    assert wire["content"] is None and wire["reasoning_content"] == "let me think"
    assert wire["tool_calls"] == [{"id": "call_1", "type": "function",
                                   "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    back = LlamaChatMessage.from_openai(wire)
    assert back.tool_calls[0].arguments == {"city": "Paris"} and back.reasoning == "let me think"
    # Object arguments (as some clients send) become JSON text.
    obj = LlamaChatMessage.from_openai({"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]})
    assert json.loads(obj.tool_calls[0].raw_json) == {"a": 1}


def test_tool_result_message():
    message = LlamaChatMessage.tool_result("get_weather", {"temp": 21}, "call_1")
    assert message.to_openai() == {"role": "tool", "content": '{"temp": 21}',
                                   "tool_call_id": "call_1", "name": "get_weather"}
    back = LlamaChatMessage.from_openai(message.to_openai())
    assert back.tool_results[0].result == '{"temp": 21}' and back.tool_results[0].id == "call_1"


def test_bad_messages_raise():
    with pytest.raises(ValueError, match="role"):
        LlamaChatMessage("wizard", "hi")
    with pytest.raises(ValueError, match="without a role"):
        LlamaChatMessage.from_openai({"content": "hi"})
    with pytest.raises(TypeError):
        to_messages("hello")
    with pytest.raises(TypeError):
        LlamaChatMessage("user", [object()])
    with pytest.raises(ValueError, match="unknown message content part"):
        LlamaChatMessage.from_openai({"role": "user", "content": [{"type": "video"}]})


def test_image_and_audio_parts_exist_but_are_unsupported():
    message = LlamaChatMessage.from_openai({"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "file:///x.png"}}]})
    assert isinstance(message.parts[1], LlamaImageContent)
    with pytest.raises(UnsupportedError, match="multimodal projector"):
        message.to_openai()


def test_tool_call_arguments_that_are_not_an_object():
    call = LlamaToolCallContent.from_json("f", "[1, 2")
    assert call.arguments == {} and call.raw_json == "[1, 2"


def _chunk(delta, finish=None, usage=None):
    return LlamaCompletionChunk("id", 1, "m", (LlamaChunkChoice(0, delta, finish),), usage)


def test_accumulator_joins_streamed_tool_call_arguments():
    acc = LlamaCompletionAccumulator()
    acc.add(_chunk(LlamaChunkDelta(role="assistant", reasoning_content="hmm")))
    acc.add(_chunk(LlamaChunkDelta(content="Sure. ")))
    acc.add(_chunk(LlamaChunkDelta(tool_calls=(LlamaChunkToolCall(0, "call_0", function=LlamaChunkFunction("f", '{"a"')),))))
    acc.add(_chunk(LlamaChunkDelta(tool_calls=(LlamaChunkToolCall(0, function=LlamaChunkFunction(None, ': 1}')),))))
    usage = LlamaUsage(10, 5, 4, 12.5, 100.0, 50.0, 99.0)
    acc.add(_chunk(LlamaChunkDelta(), "tool_calls", usage))
    done = acc.build()
    assert done.text == "Sure. " and done.reasoning == "hmm" and done.finish_reason == "tool_calls"
    assert done.tool_calls[0].name == "f" and done.tool_calls[0].arguments == {"a": 1}
    assert done.usage.total_tokens == 15
    wire = done.to_dict()
    assert wire["object"] == "chat.completion"
    assert wire["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"a": 1}'
    assert wire["usage"]["prompt_tokens_details"]["cached_tokens"] == 4
    first = _chunk(LlamaChunkDelta(role="assistant", content="x")).to_dict()
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0] == {"index": 0, "delta": {"role": "assistant", "content": "x"},
                                   "logprobs": None, "finish_reason": None}
    assert [type(p) for p in done.message.parts] == [LlamaThinkingContent, LlamaTextContent,
                                                      LlamaToolCallContent]


def test_the_seeds_message_constructors_and_role_spellings():
    message = LlamaChatMessage.from_text(role=LlamaChatRole.user, text="Explain top-p.")
    assert message == LlamaChatMessage.user("Explain top-p.")
    parts = [LlamaTextContent("a"), LlamaTextContent("b")]
    built = LlamaChatMessage.with_content(role="assistant", content=parts)
    assert built.role is LlamaChatRole.ASSISTANT and built.parts == tuple(parts)
    assert LlamaChatRole.user is LlamaChatRole.USER and LlamaChatRole.tool is LlamaChatRole.TOOL
    assert list(LlamaChatRole) == [LlamaChatRole.SYSTEM, LlamaChatRole.USER,
                                   LlamaChatRole.ASSISTANT, LlamaChatRole.TOOL]
    assert LlamaChatRole("User") is LlamaChatRole.USER and LlamaChatRole.system == "system"
    assert LlamaChatMessage("ASSISTANT", "x").role is LlamaChatRole.ASSISTANT
    with pytest.raises(ValueError, match="must be one of system, user, assistant, tool"):
        LlamaChatMessage.from_text(role="bot", text="x")
    with pytest.raises(TypeError, match="from_text needs text as a str"):
        LlamaChatMessage.from_text(role="user", text=parts)
    with pytest.raises(TypeError, match="use from_text"):
        LlamaChatMessage.with_content(role="user", content="text")
