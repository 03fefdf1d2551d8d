"""Messages made canonical and adapted to a template the way llama.cpp adapts them."""

from __future__ import annotations

import pytest
from llamabind.chat import ChatTemplate, TemplateCaps
from llamabind.chat.polyfills import (
    adapt_for_family,
    apply_caps,
    finish_prompt,
    parse_messages,
    parse_tools,
    patch_source,
)

CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}


def test_canonical_messages_have_llama_cpps_shape_and_key_order():
    messages = [
        {"name": "n", "content": None, "role": "assistant", "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        {"role": "assistant", "content": "x", "reasoning_content": "", "name": ""},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "a"}],
            "tool_calls": [{"function": {"name": "g", "arguments": {"b": [1, "é"]}}}],
        },
    ]
    assert parse_messages(messages) == [
        {
            "role": "assistant",
            "content": "",
            "name": "n",
            "tool_calls": [
                {"type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}, "id": "c1"}
            ],
        },
        {"role": "tool", "content": "ok", "tool_call_id": "c1"},
        {"role": "assistant", "content": "x"},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "a"}],
            "tool_calls": [
                {"type": "function", "function": {"name": "g", "arguments": '{"b":[1,"é"]}'}}
            ],
        },
    ]
    assert list(parse_messages(messages)[0]) == ["role", "content", "name", "tool_calls"]
    assert list(parse_messages(messages)[0]["tool_calls"][0]) == ["type", "function", "id"]


def test_parse_messages_does_not_change_its_input():
    messages = [{"role": "user", "content": [{"type": "text", "text": "a"}]}]
    parse_messages(messages)[0]["content"][0]["text"] = "changed"
    assert messages[0]["content"][0]["text"] == "a"


@pytest.mark.parametrize(
    ("messages", "error", "match"),
    [
        ("not a list", TypeError, "list of dicts"),
        (["x"], TypeError, r"messages\[0\] must be a dict"),
        ([{"content": "x"}], ValueError, "needs a 'role'"),
        ([{"role": "user"}], ValueError, "'content' or 'tool_calls'"),
        ([{"role": "user", "content": 3}], TypeError, "content must be"),
        ([{"role": "user", "content": [{"text": "x"}]}], ValueError, "needs a 'type'"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
            ValueError,
            "'image_url' is not supported",
        ),
        ([{"role": "user", "content": [{"type": "text"}]}], ValueError, "'text' as a string"),
        ([{"role": "a", "content": "", "tool_calls": "x"}], TypeError, "must be a list"),
        ([{"role": "a", "content": "", "tool_calls": [{"type": "x"}]}], ValueError, "type 'x'"),
        ([{"role": "a", "content": "", "tool_calls": [{"function": {}}]}], ValueError, "'name'"),
        ([{"role": "a", "content": "", "reasoning_content": 1}], TypeError, "must be a string"),
    ],
)
def test_bad_messages_raise_clear_errors(messages, error, match):
    with pytest.raises(error, match=match):
        parse_messages(messages)


def test_canonical_tools():
    tools = [{"type": "function", "function": {"name": "f", "extra": 1}}]
    assert parse_tools(tools) == [
        {"type": "function", "function": {"name": "f", "description": "", "parameters": {}}}
    ]
    assert parse_tools([]) is None and parse_tools(None) is None
    with pytest.raises(ValueError, match="not supported"):
        parse_tools([{"type": "retrieval"}])
    with pytest.raises(ValueError, match="'name'"):
        parse_tools([{"type": "function", "function": {}}])
    with pytest.raises(TypeError):
        parse_tools("f")


def _canonical(*messages):
    return parse_messages(list(messages))


def test_string_only_templates_get_parts_joined_with_newlines():
    messages = _canonical(
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    )
    apply_caps(messages, TemplateCaps(), "")
    assert messages[0]["content"] == "a\nb"
    parts = [{"type": "text", "text": t} for t in ("", "a", "", "b")]
    messages = _canonical({"role": "user", "content": parts})
    apply_caps(messages, TemplateCaps(), "")
    assert messages[0]["content"] == "a\n\nb"  # no newline before the first text


def test_parts_only_templates_get_strings_wrapped():
    messages = _canonical({"role": "user", "content": "a"})
    apply_caps(
        messages, TemplateCaps(supports_string_content=False, supports_typed_content=True), ""
    )
    assert messages[0]["content"] == [{"type": "text", "text": "a"}]


def test_templates_taking_both_get_content_as_given():
    messages = _canonical(
        {"role": "user", "content": "a"},
        {"role": "user", "content": [{"type": "text", "text": "b"}]},
    )
    apply_caps(messages, TemplateCaps(supports_typed_content=True), "")
    assert messages[0]["content"] == "a" and messages[1]["content"] == [
        {"type": "text", "text": "b"}
    ]


def test_developer_becomes_system_except_for_gpt_oss():
    messages = _canonical({"role": "developer", "content": "d"})
    apply_caps(messages, TemplateCaps(), "")
    assert messages[0]["role"] == "system"
    messages = _canonical({"role": "developer", "content": "d"})
    apply_caps(messages, TemplateCaps(), "<|channel|>")
    assert messages[0]["role"] == "developer"


def test_system_message_merged_when_the_template_has_no_system_role():
    no_system = TemplateCaps(supports_system_role=False)
    messages = _canonical({"role": "system", "content": "S"}, {"role": "user", "content": "U"})
    apply_caps(messages, no_system, "")
    assert messages == [{"role": "user", "content": "S\nU"}]
    messages = _canonical({"role": "system", "content": "S"})
    apply_caps(messages, no_system, "")
    assert messages == []


def test_object_arguments_are_parsed_for_templates_that_want_them():
    messages = _canonical({"role": "assistant", "content": "", "tool_calls": [CALL]})
    apply_caps(messages, TemplateCaps(supports_object_arguments=True), "")
    assert messages[0]["tool_calls"][0]["function"]["arguments"] == {"a": 1}
    bad = dict(CALL, function={"name": "f", "arguments": "{not json"})
    messages = _canonical({"role": "assistant", "content": "", "tool_calls": [bad]})
    with pytest.raises(ValueError, match="not valid JSON"):
        apply_caps(messages, TemplateCaps(supports_object_arguments=True), "")


def test_stepfun_contents_are_trimmed():
    source = "You have access to the following functions in JSONSchema format"
    messages = _canonical(
        {"role": "user", "content": "  a \n"},
        {"role": "assistant", "content": "b", "reasoning_content": " \n"},
    )
    apply_caps(messages, TemplateCaps(), source)
    assert messages == [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]


def test_gpt_oss_and_lfm2_read_reasoning_from_thinking():
    message = {"role": "assistant", "content": "c", "reasoning_content": "r", "tool_calls": [CALL]}
    adapted, _ = adapt_for_family(_canonical(message), "<|channel|>")
    assert adapted[0]["thinking"] == "r" and "content" not in adapted[0]
    adapted, _ = adapt_for_family(_canonical(message), "<|tool_list_start|><|tool_list_end|>")
    assert adapted[0]["thinking"] == "r" and adapted[0]["content"] == "c"


def test_ministral_3_gets_content_blocks():
    source = "[SYSTEM_PROMPT][TOOL_CALLS][ARGS]"
    messages = _canonical(
        {"role": "assistant", "content": "c", "reasoning_content": "r"},
        {"role": "user", "content": "u"},
    )
    adapted, _ = adapt_for_family(messages, source)
    assert adapted[0] == {
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": "r"}, {"type": "text", "text": "c"}],
    }
    assert adapted[1] == {"role": "user", "content": "u"}


def test_deepseek_v4_orders_tool_results_like_the_calls():
    source = "dsml_token DSML tool_calls"
    calls = [dict(CALL, id="a"), dict(CALL, id="b")]
    messages = [
        {"role": "assistant", "content": "", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "b", "content": "B"},
        {"role": "tool", "tool_call_id": "a", "content": "A"},
    ]
    adapted, _ = adapt_for_family(_canonical(*messages), source)
    assert [m["content"] for m in adapted[1:]] == ["A", "B"]
    unchanged, _ = adapt_for_family(_canonical(*messages), source + " function_calls")
    assert [m["content"] for m in unchanged[1:]] == ["B", "A"]


def test_old_gemma4_templates_get_tool_results_inside_the_turn():
    source = "'<|tool_call>call:'"
    messages = _canonical(
        {"role": "assistant", "content": "", "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"t": 1}'},
        {"role": "assistant", "content": "done"},
    )
    adapted, _ = adapt_for_family(messages, source)
    assert adapted == [
        {
            "role": "assistant",
            "tool_calls": [messages[0]["tool_calls"][0]],
            "tool_responses": [{"name": "f", "response": {"t": 1}}],
            "content": "done",
        }
    ]
    current, _ = adapt_for_family(_canonical(*messages), source + "{#- OpenAI Chat Completions:")
    assert len(current) == 3


def test_finish_prompt_family_corrections():
    assert finish_prompt("a<|return|>b<|return|>", "<|channel|>", False) == "a<|return|>b<|end|>"
    assert finish_prompt("a<|return|>", "<|channel|>", True) == "a<|return|>"
    assert finish_prompt("x<turn|>\n", "'<|tool_call>call:'", True) == "x<turn|>\n<|turn>model\n"
    assert finish_prompt("x<turn|>\n", "'<|tool_call>call:'", False) == "x<turn|>\n"
    assert finish_prompt("x<turn|>\n", "", True) == "x<turn|>\n"


def test_source_patches_match_llama_cpp():
    gpt_oss = (
        '<|channel|>{%- if "<|channel|>analysis<|message|>" in message.content or '
        '"<|channel|>final<|message|>" in message.content %}'
    )
    assert patch_source(gpt_oss) == "<|channel|>{%- if false %}"
    assert patch_source("plain") == "plain"


def test_render_applies_the_polyfills_end_to_end():
    # a template that ignores system messages (like Gemma 2) gets it merged into the first turn
    source = (
        "{% for m in messages %}{% if m.role != 'system' %}[{{ m.role }}]{{ m.content }}"
        "{% endif %}{% endfor %}"
    )
    template = ChatTemplate(source)
    assert template.caps.supports_system_role is False
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert template.render(messages) == "[user]S\nU"
