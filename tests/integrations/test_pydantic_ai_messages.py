"""pydantic-ai messages and settings → what llamabind's engine takes (no model needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from llamabind import GenerationParams, UnsupportedError
from llamabind.integrations.pydantic_ai import LlamaModel
from llamabind.integrations.pydantic_ai._messages import map_messages, map_tool, response_format
from llamabind.integrations.pydantic_ai._settings import generation_params
from llamabind.types import to_messages
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import (
    CachePoint,
    ImageUrl,
    InstructionPart,
    ModelRequest,
    ModelResponse,
    RetryFeedbackPart,
    RetryInfo,
    SystemPromptPart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.tools import ToolDefinition


def test_import_llamabind_does_not_import_pydantic_ai():
    code = "import sys, llamabind; print('pydantic_ai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_extra_names_the_pip_install():
    code = ("import sys; sys.modules['pydantic_ai'] = None\n"
            "import llamabind.integrations.pydantic_ai")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode != 0
    assert "ImportError" in out.stderr
    assert "pip install 'llamabind[pydantic-ai]'" in out.stderr


def test_conversation_maps_both_ways_with_one_leading_system_message():
    history = [
        ModelRequest(parts=[SystemPromptPart("You are terse."),
                            UserPromptPart(["Weather in ", CachePoint(), "Paris?"])]),
        ModelResponse(parts=[ThinkingPart("Need the tool."), TextPart("Checking."),
                             ToolCallPart("get_weather", {"city": "Paris"}, tool_call_id="c1")]),
        ModelRequest(parts=[ToolReturnPart("get_weather", "sunny", tool_call_id="c1")]),
        ModelResponse(parts=[TextPart("It is sunny.")]),
        ModelRequest(parts=[UserPromptPart("Thanks")]),
    ]
    mapped = map_messages(history, [InstructionPart("Answer in English.")])
    assert mapped == [
        {"role": "system", "content": "You are terse.\n\nAnswer in English."},
        {"role": "user", "content": "Weather in \n\nParis?"},
        {"role": "assistant", "content": "Checking.", "reasoning_content": "Need the tool.",
         "tool_calls": [{"id": "c1", "type": "function", "function": {
             "name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": "sunny"},
        {"role": "assistant", "content": "It is sunny."},
        {"role": "user", "content": "Thanks"},
    ]
    # the engine reads them back as the same turns, reasoning and tool call included
    messages = to_messages(mapped)
    assert messages[2].reasoning == "Need the tool."
    assert messages[2].tool_calls[0].arguments == {"city": "Paris"}
    assert messages[3].tool_results[0].id == "c1"


def test_retries_reach_the_model_as_a_tool_result_and_as_fenced_user_text():
    history = [
        ModelRequest(parts=[UserPromptPart("Weather?")]),
        ModelResponse(parts=[ToolCallPart("get_weather", {"city": ""}, tool_call_id="c9")]),
        ModelRequest(parts=[ToolReturnPart("get_weather", "city must not be empty",
                                           tool_call_id="c9", outcome="retried"),
                            RetryFeedbackPart("answer in JSON",
                                              retry=RetryInfo(cause="model_retry"))]),
    ]
    # an Agent runs prepare_messages before every request; it needs no loaded model
    prepared = LlamaModel("not-loaded.gguf").prepare_messages(history)
    tool, feedback = map_messages(prepared, None)[2:]
    assert tool["role"] == "tool" and tool["tool_call_id"] == "c9"
    assert "city must not be empty" in tool["content"]
    assert feedback["role"] == "user" and "answer in JSON" in feedback["content"]


def test_an_unprepared_part_raises_instead_of_being_dropped():
    request = ModelRequest(parts=[RetryFeedbackPart("x", retry=RetryInfo(cause="model_retry"))])
    with pytest.raises(UserError, match="prepare_messages"):
        map_messages([request], None)


def test_image_input_is_refused_not_dropped():
    request = ModelRequest(parts=[UserPromptPart(["Look:", ImageUrl("https://example.com/a.png")])])
    with pytest.raises(UnsupportedError, match="multimodal projector"):
        map_messages([request], None)


def test_tools_and_native_output_map_to_openai_shapes():
    tool = ToolDefinition(name="get_weather", description="Weather of a city.",
                          parameters_json_schema={"type": "object",
                                                  "properties": {"city": {"type": "string"}}})
    assert map_tool(tool) == {"type": "function", "function": {
        "name": "get_weather", "description": "Weather of a city.",
        "parameters": tool.parameters_json_schema}}
    from pydantic_ai.output import OutputObjectDefinition

    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    native = ModelRequestParameters(output_mode="native",
                                    output_object=OutputObjectDefinition(schema, name="City"))
    assert response_format(native, has_tools=False) == {"type": "json_schema", "json_schema": {
        "name": "City", "schema": schema, "strict": True}}
    prompted = ModelRequestParameters(output_mode="prompted",
                                      output_object=OutputObjectDefinition(schema))
    assert response_format(prompted, has_tools=True) is None
    assert response_format(ModelRequestParameters(), has_tools=False) is None


def test_settings_become_generation_params():
    params = generation_params({
        "max_tokens": 12, "temperature": 0.2, "top_k": 7, "seed": 3,
        "stop_sequences": ["END"], "logit_bias": {"15": -100},
        "llamabind_min_p": 0.05, "llamabind_repeat_penalty": 1.3, "llamabind_grammar": 'root ::= "a"',
    })
    assert params == GenerationParams(max_tokens=12, temperature=0.2, top_k=7, seed=3,
                                      stop=("END",), logit_bias={15: -100.0}, min_p=0.05,
                                      repeat_penalty=1.3, grammar='root ::= "a"')
    base = GenerationParams(top_p=0.5, max_tokens=3)
    assert generation_params({"llamabind_generation_params": base, "max_tokens": 9}) == \
        GenerationParams(top_p=0.5, max_tokens=9)
    assert generation_params({}) == GenerationParams()
    with pytest.raises(ValueError, match="min_p"):
        generation_params({"llamabind_min_p": 2.0})
