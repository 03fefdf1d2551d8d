"""llama.cpp's chat machinery (csrc/chat.cpp): templates, formats, grammars and the parser.

Per model family: the format detected from the template in vendor/llama.cpp/models/templates,
a tool conversation rendered, and a realistic reply parsed whole and streamed (one byte at a
time, and split in two at every byte boundary), the streamed deltas adding up to the whole parse
with no tool-call marker ever in the content. SmolLM2 generates for real under the grammars.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from llamabind import _native
from llamabind.errors import (
    GrammarError,
    HandleClosedError,
    InvalidTextError,
    StateError,
    TemplateError,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "models" / "templates"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city"},
                "days": {"type": "integer", "description": "Days of forecast"},
            },
            "required": ["city"],
        },
    },
}
TOOLS_JSON = json.dumps([WEATHER_TOOL])
QUESTION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the weather in Paris?"},
]
# A whole tool round trip: the call (id of 9 alphanumerics, as Mistral's templates require),
# the tool's result, the answer, and a new question.
TOOL_CONVERSATION = [
    *QUESTION,
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "type": "function",
                "id": "call00001",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {
        "role": "tool",
        "tool_call_id": "call00001",
        "name": "get_weather",
        "content": '{"temperature": 18}',
    },
    {"role": "assistant", "content": "It is 18 degrees in Paris."},
    {"role": "user", "content": "And in Lyon?"},
]


def template(name: str) -> str:
    return (TEMPLATES / f"{name}.jinja").read_text()


@dataclass(frozen=True)
class Case:
    """A model family: its template, the apply() options, a reply and what it parses to."""

    id: str
    template: str
    output: str
    content: str = ""
    reasoning: str = ""
    calls: tuple[tuple[str, dict], ...] = ()
    call_ids: tuple[str, ...] = ()  # ids the model itself writes
    markers: tuple[str, ...] = ()  # must never appear in content
    trigger: str = ""  # the lazy grammar's trigger (word or pattern)
    generation_prompt: str = ""
    format: str = "peg-native"
    options: dict = field(default_factory=dict)
    renders_tool_history: bool = True


PARIS = ("get_weather", {"city": "Paris"})
PARIS_2 = ("get_weather", {"city": "Paris", "days": 2})
LYON = ("get_weather", {"city": "Lyon"})
DS = "｜"  # DeepSeek's fullwidth bar: multi-byte, so byte splits fall inside markers
DS_CALL = (
    f"<{DS}tool▁calls▁begin{DS}><{DS}tool▁call▁begin{DS}>function<{DS}tool▁sep{DS}>get_weather\n"
    f'```json\n{{"city": "Paris"}}\n```<{DS}tool▁call▁end{DS}><{DS}tool▁calls▁end{DS}>'
)

CASES = [
    Case(
        "hermes-qwen2.5",
        "Qwen-Qwen2.5-7B-Instruct",
        'Let me check the weather.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}\n'
        "</tool_call>",
        content="Let me check the weather.\n",
        calls=(PARIS_2,),
        markers=("<tool_call>", "</tool_call>", '"name"'),
        trigger="<tool_call>\n",
        generation_prompt="<|im_start|>assistant\n",
    ),
    Case(
        "hermes-3-parallel",
        "NousResearch-Hermes-3-Llama-3.1-8B-tool_use",
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lyon"}}\n</tool_call>',
        calls=(PARIS, LYON),
        markers=("<tool_call>", "</tool_call>"),
        trigger="<tool_call>\n",
        generation_prompt="<|im_start|>assistant\n",
        options={"parallel_tool_calls": True},
    ),
    Case(
        "llama-3.1",
        "meta-llama-Llama-3.1-8B-Instruct",
        '{"name": "get_weather", "parameters": {"city": "Paris", "days": 2}}',
        calls=(PARIS_2,),
        markers=('"name"', '"parameters"'),
        generation_prompt="<|start_header_id|>assistant<|end_header_id|>\n\n",
    ),
    Case(
        "llama-3.3-content",
        "meta-llama-Llama-3.3-70B-Instruct",
        "I can look that up: which unit do you prefer?",
        content="I can look that up: which unit do you prefer?",
        generation_prompt="<|start_header_id|>assistant<|end_header_id|>\n\n",
    ),
    Case(
        "mistral-nemo",
        "mistralai-Mistral-Nemo-Instruct-2407",
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "a1b2c3d4e"}]',
        calls=(PARIS,),
        call_ids=("a1b2c3d4e",),
        markers=("[TOOL_CALLS]", '"name"'),
        trigger="[TOOL_CALLS]",
    ),
    Case(
        "functionary-v3.2",
        "meetkai-functionary-medium-v3.2",
        'get_weather\n{"city": "Paris", "days": 2}',
        calls=(PARIS_2,),
        markers=(">>>", "get_weather"),
        trigger=">>>(?!all)",
        generation_prompt="<|start_header_id|>assistant<|end_header_id|>\n\n>>>",
    ),
    Case(
        "functionary-v3.2-content",
        "meetkai-functionary-medium-v3.2",
        "all\nIt is sunny in Paris.",
        content="It is sunny in Paris.",
        markers=(">>>", "all\n"),
        trigger=">>>(?!all)",
        generation_prompt="<|start_header_id|>assistant<|end_header_id|>\n\n>>>",
    ),
    Case(
        "command-r7b",
        "CohereForAI-c4ai-command-r7b-12-2024-tool_use",
        "<|START_THINKING|>The user wants the weather in Paris.<|END_THINKING|><|START_ACTION|>[\n"
        '    {"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"city": "Paris"}}\n'
        "]<|END_ACTION|>",
        reasoning="The user wants the weather in Paris.",
        calls=(PARIS,),
        call_ids=("0",),
        markers=("<|START_ACTION|>", "<|END_ACTION|>", "<|START_THINKING|>", "tool_name"),
        trigger="<|START_ACTION|>",
    ),
    Case(
        "command-r7b-response",
        "CohereForAI-c4ai-command-r7b-12-2024-tool_use",
        "<|START_THINKING|>Easy.<|END_THINKING|><|START_RESPONSE|>It is sunny in Paris.<|END_RESPONSE|>",
        content="It is sunny in Paris.",
        reasoning="Easy.",
        markers=("<|START_RESPONSE|>", "<|END_RESPONSE|>", "<|END_THINKING|>"),
        trigger="<|START_ACTION|>",
    ),
    Case(
        "deepseek-r1",
        "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
        f"The user asks about Paris. I should call the tool.\n</think>\n\n{DS_CALL}",
        content="\n\n",
        reasoning="\nThe user asks about Paris. I should call the tool.\n",
        calls=(PARIS,),
        markers=("</think>", f"<{DS}tool", "```json"),
        trigger=f"<{DS}tool▁calls▁begin{DS}>",
        generation_prompt=f"<{DS}Assistant{DS}><think>\n",
    ),
    Case(
        "deepseek-v3.1",
        "deepseek-ai-DeepSeek-V3.1",
        f"The user asks about Paris.</think>Let me look.<{DS}tool▁calls▁begin{DS}><{DS}tool▁call▁begin{DS}>"
        f'get_weather<{DS}tool▁sep{DS}>{{"city": "Paris", "days": 2}}<{DS}tool▁call▁end{DS}><{DS}tool▁calls▁end{DS}>',
        content="Let me look.",
        reasoning="The user asks about Paris.",
        calls=(PARIS_2,),
        markers=("</think>", f"<{DS}tool"),
        trigger=f"<{DS}tool▁calls▁begin{DS}>",
        generation_prompt=f"<{DS}Assistant{DS}><think>",
    ),
    Case(
        "qwen3-coder",
        "Qwen3-Coder",
        "I will check the weather.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
        "<parameter=days>\n2\n</parameter>\n</function>\n</tool_call>",
        content="I will check the weather.\n",
        calls=(PARIS_2,),
        markers=("<tool_call>", "<function=", "<parameter="),
        trigger="<tool_call>",
        generation_prompt="<|im_start|>assistant\n",
    ),
    Case(
        "gpt-oss",
        "openai-gpt-oss-120b",
        "<|channel|>analysis<|message|>User wants the weather. Call the tool.<|end|><|start|>assistant"
        '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}',
        reasoning="User wants the weather. Call the tool.",
        calls=(PARIS,),
        markers=("<|channel|>", "<|message|>", "to=functions"),
        trigger="^<\\|channel\\|>(?:commentary|analysis)\\s+to=functions$",
        generation_prompt="<|start|>assistant",
    ),
    Case(
        "gpt-oss-final",
        "openai-gpt-oss-120b",
        "<|channel|>analysis<|message|>Simple.<|end|><|start|>assistant<|channel|>final<|message|>It is sunny.",
        content="It is sunny.",
        reasoning="Simple.",
        markers=("<|channel|>", "<|message|>", "<|start|>"),
        trigger="^\\s+to$",
        generation_prompt="<|start|>assistant",
    ),
    Case(
        "granite-4.0",
        "ibm-granite-granite-4.0",
        'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        content="Checking.\n",
        calls=(PARIS,),
        markers=("<tool_call>", "</tool_call>"),
        trigger="<tool_call>\n",
        generation_prompt="<|start_of_role|>assistant<|end_of_role|>",
    ),
    Case(
        "granite-3.3-thinking",
        "ibm-granite-granite-3.3-2B-Instruct",
        "<think>The user wants the weather.</think>I cannot look up the weather.",
        content="I cannot look up the weather.",
        reasoning="The user wants the weather.",
        markers=("<think>", "</think>"),
        generation_prompt="<|start_of_role|>assistant<|end_of_role|>",
    ),
    Case(
        "kimi-k2",
        "Kimi-K2-Instruct",
        "Let me check both.<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0"
        '<|tool_call_argument_begin|>{"city": "Paris"}<|tool_call_end|><|tool_call_begin|>functions.get_weather:1'
        '<|tool_call_argument_begin|>{"city": "Lyon"}<|tool_call_end|><|tool_calls_section_end|>',
        content="Let me check both.",
        calls=(PARIS, LYON),
        call_ids=("functions.get_weather:0", "functions.get_weather:1"),
        markers=("<|tool_call", "functions."),
        trigger="<|tool_call_begin|>",
        generation_prompt="<|im_assistant|>assistant<|im_middle|>",
        options={"parallel_tool_calls": True},
    ),
    Case(
        "glm-4.6",
        "GLM-4.6",
        "\n<think>The user wants the weather.</think>\nLet me check.<tool_call>get_weather\n"
        "<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n<arg_key>days</arg_key>\n<arg_value>2</arg_value>\n"
        "</tool_call>",
        content="Let me check.",
        reasoning="The user wants the weather.",
        calls=(PARIS_2,),
        markers=("<tool_call>", "<arg_key>", "<arg_value>", "<think>"),
        trigger="<tool_call>",
        generation_prompt="<|assistant|>",
    ),
    Case(
        "glm-4.7-flash",
        "GLM-4.7-Flash",
        "The user wants the weather.</think>Let me check.<tool_call>get_weather<arg_key>city</arg_key>"
        "<arg_value>Paris</arg_value></tool_call>",
        content="Let me check.",
        reasoning="The user wants the weather.",
        calls=(PARIS,),
        markers=("<tool_call>", "<arg_key>", "</think>"),
        trigger="<tool_call>",
        generation_prompt="<|assistant|><think>",
    ),
    Case(
        "gemma-4",
        "google-gemma-4-31B-it",
        "<|channel>thought\nThe user wants the weather.<channel|>Let me check."
        '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>,days:2}<tool_call|>',
        content="Let me check.",
        reasoning="The user wants the weather.",
        calls=(PARIS_2,),
        markers=("<|tool_call>", "call:", "<|channel>", '<|"|>'),
        trigger="<|tool_call>",
        generation_prompt="<|turn>model\n",
        format="peg-gemma4",
    ),
    Case(
        "gemma-2",
        "google-gemma-2-2b-it",
        "It is sunny in Paris.",
        content="It is sunny in Paris.",
        generation_prompt="<start_of_turn>model\n",
        renders_tool_history=False,  # its template raises on a "tool" turn
    ),
]


@pytest.fixture(scope="module")
def applied() -> dict[str, tuple[_native.ChatTemplates, _native.ChatParams]]:
    """Every case's templates and the ChatParams of QUESTION with the weather tool (cached)."""
    out = {}
    for case in CASES:
        tmpl = _native.ChatTemplates(
            template=template(case.template), bos_token="<s>", eos_token="</s>"
        )
        params = tmpl.apply(json.dumps(QUESTION), tools_json=TOOLS_JSON, **case.options)
        out[case.id] = (tmpl, params)
    return out


def calls_of(message: dict) -> list[tuple[str, dict]]:
    return [(call["name"], json.loads(call["arguments"])) for call in message["tool_calls"]]


def collect(deltas: list[dict], into: dict) -> None:
    """Adds OpenAI-shaped deltas up into a message (the way a streaming client does)."""
    for delta in deltas:
        assert delta, "an empty delta"
        into["content"] += delta.get("content_delta", "")
        into["reasoning_content"] += delta.get("reasoning_content_delta", "")
        if "tool_call_index" in delta:
            calls = into["tool_calls"]
            index = delta["tool_call_index"]
            assert index <= len(calls), "tool call indices skip"
            if index == len(calls):
                calls.append({"name": "", "arguments": "", "id": ""})
            call = calls[index]
            if "tool_call_name" in delta:
                assert call["name"] in ("", delta["tool_call_name"]) or delta[
                    "tool_call_name"
                ].startswith(call["name"])
                call["name"] = delta["tool_call_name"]
            if "tool_call_id" in delta:
                call["id"] = delta["tool_call_id"]
            call["arguments"] += delta.get("tool_call_arguments_delta", "")


def check_streamed(case: Case, params: _native.ChatParams, pieces: list[bytes]) -> dict:
    parser = _native.ChatParser(params)
    streamed = {"content": "", "reasoning_content": "", "tool_calls": []}
    for piece in pieces:
        collect(parser.feed(piece), streamed)
        for marker in case.markers:
            assert marker not in streamed["content"], f"{marker!r} leaked into the content"
    collect(parser.finish(), streamed)
    assert parser.parse_error is None
    final = parser.message
    assert streamed["content"] == final["content"] == case.content
    assert streamed["reasoning_content"] == final["reasoning_content"] == case.reasoning
    assert [(c["name"], c["arguments"], c["id"]) for c in streamed["tool_calls"]] == [
        (c["name"], c["arguments"], c["id"]) for c in final["tool_calls"]
    ]
    return final


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_format_is_detected(case, applied):
    tmpl, params = applied[case.id]
    assert params.format == case.format
    assert params.generation_prompt == case.generation_prompt
    assert params.prompt.endswith(case.generation_prompt)
    if tmpl.caps["supports_tools"]:
        assert "get_weather" in params.prompt  # the tools are described to the model
    if case.trigger:  # tool calls are constrained once the model starts one
        assert case.trigger in [value for _, value, _ in params.grammar_triggers]
        assert params.grammar_lazy and params.grammar
    if case.reasoning:
        assert params.supports_thinking
    assert params.reasoning_format == "auto"
    assert tmpl.has_explicit_template
    assert isinstance(tmpl.caps["supports_tool_calls"], bool)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_tool_conversation_renders(case, applied):
    tmpl, _ = applied[case.id]
    if not case.renders_tool_history:
        with pytest.raises(TemplateError):
            tmpl.apply(json.dumps(TOOL_CONVERSATION), tools_json=TOOLS_JSON, **case.options)
        return
    params = tmpl.apply(json.dumps(TOOL_CONVERSATION), tools_json=TOOLS_JSON, **case.options)
    prompt = params.prompt
    assert prompt.endswith(case.generation_prompt)
    for text in ("What is the weather in Paris?", "get_weather", "18", "And in Lyon?"):
        assert text in prompt, f"{text!r} missing from the prompt"
    if tmpl.caps["supports_tool_calls"]:
        assert "Paris" in prompt.split("What is the weather in Paris?", 1)[1], (
            "the tool call was not rendered"
        )
    # Without the generation prompt the text stops at the last user turn.
    bare = tmpl.apply(
        json.dumps(TOOL_CONVERSATION), tools_json=TOOLS_JSON, add_generation_prompt=False
    )
    assert prompt == bare.prompt + case.generation_prompt


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_reply_parses(case, applied):
    _, params = applied[case.id]
    message = _native.ChatParser(params).parse(case.output)
    assert message["role"] == "assistant"
    assert message["content"] == case.content
    assert message["reasoning_content"] == case.reasoning
    assert calls_of(message) == list(case.calls)
    ids = [call["id"] for call in message["tool_calls"]]
    if case.call_ids:
        assert ids == list(case.call_ids)
    else:  # filled in: 9 alphanumerics, the form every template accepts back
        assert all(re.fullmatch("[0-9A-Za-z]{9}", i) for i in ids)
        assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_reply_streams_byte_by_byte(case, applied):
    _, params = applied[case.id]
    data = case.output.encode()
    final = check_streamed(case, params, [data[i : i + 1] for i in range(len(data))])
    assert calls_of(final) == list(case.calls)
    ids = [call["id"] for call in final["tool_calls"]]
    assert all(ids) and len(set(ids)) == len(ids)
    if case.call_ids and not case.id.startswith(
        "mistral"
    ):  # Mistral writes its id after the arguments
        assert ids == list(case.call_ids)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_reply_streams_split_at_every_boundary(case, applied):
    _, params = applied[case.id]
    data = case.output.encode()
    for i in range(1, len(data)):
        final = check_streamed(case, params, [data[:i], data[i:]])
        assert calls_of(final) == list(case.calls)


def test_streaming_text_pieces_and_ids_are_stable(applied):
    _, params = applied["hermes-3-parallel"]
    case = next(c for c in CASES if c.id == "hermes-3-parallel")
    parser = _native.ChatParser(params)
    ids: dict[int, str] = {}
    for piece in re.findall(r"\s*\S+", case.output):  # word-sized pieces, as str
        for delta in parser.feed(piece):
            if "tool_call_id" in delta:
                assert (
                    ids.setdefault(delta["tool_call_index"], delta["tool_call_id"])
                    == delta["tool_call_id"]
                )
    parser.finish()
    assert [call["id"] for call in parser.message["tool_calls"]] == [ids[0], ids[1]]
    assert parser.text == case.output and parser.is_finished
    with pytest.raises(StateError):
        parser.feed("more")
    with pytest.raises(StateError):
        parser.finish()


def test_reasoning_format_none_keeps_reasoning_in_content():
    tmpl = _native.ChatTemplates(template=template("deepseek-ai-DeepSeek-V3.1"))
    params = tmpl.apply(json.dumps(QUESTION), reasoning_format="none")
    message = _native.ChatParser(params).parse("Thinking.</think>Sunny.")
    # The reply is read after the generation prompt, whose "<think>" opens the reasoning.
    assert (
        message["reasoning_content"] == ""
        and message["content"] == "<think>Thinking.</think>Sunny."
    )
    params = tmpl.apply(json.dumps(QUESTION))
    assert (
        _native.ChatParser(params).parse("Thinking.</think>Sunny.")["reasoning_content"]
        == "Thinking."
    )


def test_enable_thinking_switch():
    tmpl = _native.ChatTemplates(template=template("Qwen-Qwen3-0.6B"))
    assert tmpl.supports_enable_thinking
    on = tmpl.apply(json.dumps(QUESTION))
    off = tmpl.apply(json.dumps(QUESTION), enable_thinking=False)
    assert (
        on.supports_thinking
        and on.thinking_start_tag == "<think>"
        and on.thinking_end_tags == ["</think>"]
    )
    assert off.prompt != on.prompt and off.prompt.endswith("<think>\n\n</think>\n\n")
    # chat_template_kwargs, as llama-server takes them: enable_thinking there wins.
    via_kwargs = tmpl.apply(
        json.dumps(QUESTION), chat_template_kwargs_json='{"enable_thinking": false}'
    )
    assert via_kwargs.prompt == off.prompt
    with pytest.raises(ValueError, match="enable_thinking"):
        tmpl.apply(json.dumps(QUESTION), chat_template_kwargs_json='{"enable_thinking": "no"}')
    assert not _native.ChatTemplates(
        template=template("Qwen-Qwen2.5-7B-Instruct")
    ).supports_enable_thinking


def test_template_kwargs_reach_the_template():
    tmpl = _native.ChatTemplates(
        template="{{ greeting }} {% for m in messages %}{{ m.content }}{% endfor %}"
    )
    params = tmpl.apply(json.dumps(QUESTION[1:]), chat_template_kwargs_json='{"greeting": "Hello"}')
    assert params.prompt == "Hello What is the weather in Paris?"
    with pytest.raises(ValueError, match="JSON object"):
        tmpl.apply(json.dumps(QUESTION), chat_template_kwargs_json="[1]")


def test_tool_choice(applied):
    tmpl, _ = applied["hermes-qwen2.5"]
    required = tmpl.apply(json.dumps(QUESTION), tools_json=TOOLS_JSON, tool_choice="required")
    assert required.grammar and not required.grammar_lazy and required.grammar_triggers == []
    none = tmpl.apply(json.dumps(QUESTION), tools_json=TOOLS_JSON, tool_choice="none")
    assert none.grammar == ""
    assert _native.ChatParser(none).parse(CASES[0].output)["tool_calls"] == []
    with pytest.raises(ValueError, match="tool_choice"):
        tmpl.apply(json.dumps(QUESTION), tools_json=TOOLS_JSON, tool_choice="get_weather")
    with pytest.raises(ValueError, match="grammar"):
        tmpl.apply(json.dumps(QUESTION), tools_json=TOOLS_JSON, grammar='root ::= "x"')
    assert tmpl.apply(
        json.dumps(QUESTION), tools_json=TOOLS_JSON, tool_choice="none", grammar='root ::= "x"'
    ).grammar


def test_json_schema_gives_a_grammar_with_prefill(smollm2):
    tmpl = _native.ChatTemplates(template=template("Qwen-Qwen2.5-7B-Instruct"))
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
    }
    params = tmpl.apply(json.dumps(QUESTION), json_schema=json.dumps(schema))
    assert params.grammar and not params.grammar_lazy
    kwargs = params.sampler_kwargs(smollm2)
    assert kwargs["grammar_prefill"] == params.generation_prompt == "<|im_start|>assistant\n"
    assert _native.Sampler(smollm2, temperature=0, **kwargs).has_grammar
    message = _native.ChatParser(params).parse('{"answer": 42}')
    assert json.loads(message["content"]) == {"answer": 42}
    # A user grammar is passed through as is (no prefill: it does not start with the prompt).
    user = tmpl.apply(json.dumps(QUESTION), grammar='root ::= "yes" | "no"')
    assert user.grammar == 'root ::= "yes" | "no"' and "grammar_prefill" not in user.sampler_kwargs(
        smollm2
    )
    assert tmpl.apply(json.dumps(QUESTION)).sampler_kwargs(smollm2) == {}


@pytest.mark.parametrize(
    "schema, error",
    [
        ("{not json", ValueError),
        ("[1, 2]", ValueError),
        ('{"type": "object", "properties": {"a": {"$ref": "#/nope"}}}', GrammarError),
        ('{"type": "unknown"}', GrammarError),
    ],
)
def test_bad_json_schema(schema, error):
    tmpl = _native.ChatTemplates(template=template("Qwen-Qwen2.5-7B-Instruct"))
    with pytest.raises(error):
        tmpl.apply(json.dumps(QUESTION), json_schema=schema)
    with pytest.raises(ValueError, match="not both"):
        tmpl.apply(json.dumps(QUESTION), json_schema="{}", grammar='root ::= "x"')


@pytest.mark.parametrize(
    "messages",
    [
        "not json",
        "{}",
        '[{"content": "no role"}]',
        '[{"role": "user", "content": 3}]',
        '[{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]',
        '[{"role": "assistant", "tool_calls": [{"type": "function", "function": {"arguments": "{}"}}]}]',
        '[{"role": "user", "content": "x", "extra": '
        + "[" * 70
        + "]" * 70
        + "}]",  # nested past 64
    ],
)
def test_bad_messages_raise_value_error(messages):
    tmpl = _native.ChatTemplates(template=template("Qwen-Qwen2.5-7B-Instruct"))
    with pytest.raises(ValueError):
        tmpl.apply(messages)


@pytest.mark.parametrize(
    "tools",
    [
        "{}",
        '[{"type": "retrieval"}]',
        '[{"type": "function", "function": {"description": "no name"}}]',
        '[{"type": "function", "function": {"name": "f", "parameters": "not a schema"}}]',
    ],
)
def test_bad_tools_raise_value_error(tools):
    tmpl = _native.ChatTemplates(template=template("Qwen-Qwen2.5-7B-Instruct"))
    with pytest.raises(ValueError):
        tmpl.apply(json.dumps(QUESTION), tools_json=tools)
    with pytest.raises(ValueError, match="reasoning_format"):
        tmpl.apply(json.dumps(QUESTION), reasoning_format="verbose")


@pytest.mark.parametrize(
    "text",
    [
        "{% if %}",
        "{{ unclosed",
        "{% for x in %}{% endfor %}",
        "{{ 'unterminated }}",
        "{% macro f() %}never closed",
    ],
)
def test_bad_template_raises_template_error(text):
    with pytest.raises(TemplateError):
        _native.ChatTemplates(template=text).apply(json.dumps(QUESTION))


def test_template_that_raises_gives_template_error():
    text = (
        "{% for m in messages %}{% if 'secret' in m.content %}{{ raise_exception('no secrets') }}{% endif %}"
        "{{ m.content }}{% endfor %}"
    )
    tmpl = _native.ChatTemplates(template=text)
    with pytest.raises(TemplateError, match="no secrets"):
        tmpl.apply(json.dumps([{"role": "user", "content": "a secret"}]))
    assert tmpl.apply(json.dumps(QUESTION[1:])).prompt == "What is the weather in Paris?"


RECURSIVE = (
    "{% macro down(n) %}{% if n > 0 %}[{{ down(n - 1) }}]{% endif %}{% endmacro %}"
    "{% for m in messages %}{{ m.content }}{{ down(DEPTH) }}{% endfor %}"
)


@pytest.mark.skipif(
    bool(os.environ.get("LLAMABIND_SANITIZED")),
    reason="sanitizer builds use several times the stack per frame: the 512 KiB thread overflows",
)
def test_runaway_recursion_is_a_template_error_even_on_a_small_stack():
    """llama.cpp's Jinja engine has no recursion limit; ours stops macros at 128 levels."""
    result: list[object] = []

    def run() -> None:
        tmpl = _native.ChatTemplates(template=RECURSIVE.replace("DEPTH", "1000000"))
        try:
            tmpl.apply(json.dumps(QUESTION[1:]))
        except TemplateError as exc:
            result.append(exc)
        ok = _native.ChatTemplates(template=RECURSIVE.replace("DEPTH", "100"))
        result.append(ok.apply(json.dumps(QUESTION[1:])).prompt)

    old = threading.stack_size(512 * 1024)
    try:
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
    finally:
        threading.stack_size(old)
    assert isinstance(result[0], TemplateError) and "128" in str(result[0])
    assert result[1] == "What is the weather in Paris?" + "[" * 100 + "]" * 100


@pytest.mark.parametrize(
    "text",
    [
        "{{ " + "(" * 100 + "1" + ")" * 100 + " }}",
        "{% if true %}" * 100 + "x" + "{% endif %}" * 100,
        "{% if a %}1" + "{% elif a %}1" * 100 + "{% endif %}",
        "{{ " + "not " * 100 + "x }}",
    ],
)
def test_deep_nesting_is_rejected_before_parsing(text):
    with pytest.raises(TemplateError, match="nests"):
        _native.ChatTemplates(template=text)


def test_macro_guard_leaves_the_rendering_unchanged():
    """The depth counter added to macros outputs nothing and keeps whitespace control; a macro
    parameter named like a builtin (`namespace`, as in Functionary's template) is fine."""
    text = (
        "{%- macro item(x, namespace='n') -%}\n  <{{ namespace }}:{{ x }}>\n{%- endmacro -%}\n"
        "{% macro raw(x) %}\n[{{ x }}]\n{% endmacro %}"
        "{% for m in messages %}{{ item(m.role) }}{{ raw(m.content) }}{% endfor %}\n"
    )
    params = _native.ChatTemplates(template=text).apply(json.dumps(QUESTION[1:]))
    assert params.prompt == "<n:user>[What is the weather in Paris?]\n"


def test_parser_rejects_runaway_nesting(applied):
    """The PEG parser recurses per bracket: generated text nested past 128 is not parsed."""
    _, params = applied["hermes-qwen2.5"]
    deep = (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": '
        + "[" * 5000
        + "]" * 5000
        + "}}\n</tool_call>"
    )
    parser = _native.ChatParser(params)
    with pytest.raises(ValueError, match="nests"):
        parser.parse(deep)
    assert parser.feed(deep) == []
    parser.finish()
    assert parser.message["content"] == deep and "nests" in parser.parse_error


def test_unparseable_final_text_falls_back_to_content(applied):
    _, params = applied["functionary-v3.2"]
    parser = _native.ChatParser(params)
    text = "not a recipient line"
    with pytest.raises(ValueError, match="does not match"):
        parser.parse(text)
    parser.feed(text)
    assert parser.finish() == [{"content_delta": text}]
    assert parser.message["content"] == text and parser.message["tool_calls"] == []
    assert "does not match" in parser.parse_error


def test_templates_need_a_model_or_a_template(smollm2_path):
    with pytest.raises(ValueError):
        _native.ChatTemplates()
    with pytest.raises(ValueError):
        _native.ChatTemplates(template="")
    model = _native.Model(smollm2_path, vocab_only=True)
    model.close()
    with pytest.raises(HandleClosedError):
        _native.ChatTemplates(model)


def test_model_template(smollm2):
    tmpl = _native.ChatTemplates(smollm2)
    assert tmpl.source == smollm2.chat_template(None) and tmpl.has_explicit_template
    assert not tmpl.has_tool_use_variant and tmpl.tool_use_source is None
    params = tmpl.apply(json.dumps(QUESTION))
    assert params.prompt.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    assert params.prompt.endswith(
        "<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert not tmpl.caps["supports_tools"]
    # SmolLM2's own template knows no tools: llama.cpp then neither describes them nor builds a
    # grammar (llama-server behaves the same); a tool template must be given instead.
    with_tools = tmpl.apply(json.dumps(QUESTION), tools_json=TOOLS_JSON, tool_choice="required")
    assert with_tools.grammar == "" and "get_weather" not in with_tools.prompt


def test_model_without_template_gets_chatml(gemma3_path):
    model = _native.Model(gemma3_path, vocab_only=True)
    tmpl = _native.ChatTemplates(model)
    assert not tmpl.has_explicit_template and tmpl.source == "chatml"
    assert tmpl.apply(json.dumps(QUESTION[1:])).prompt == (
        "<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n<|im_start|>assistant\n"
    )
    # A given template overrides; the model still supplies BOS/EOS. The model adds BOS when
    # tokenizing (add_special=True), so llama.cpp drops it from the rendered text.
    named = _native.ChatTemplates(
        model, template="{{ bos_token }}{{ messages[0].content }}{{ eos_token }}"
    )
    assert model.add_bos
    assert named.apply(json.dumps(QUESTION[1:])).prompt == "What is the weather in Paris?<eos>"
    plain = _native.ChatTemplates(
        template="{{ bos_token }}{{ messages[0].content }}", bos_token="<B>"
    )
    assert plain.apply(json.dumps(QUESTION[1:])).prompt == "<B>What is the weather in Paris?"
    model.close()


def generate_text(
    model, params, sampler, prompt: str, max_tokens: int, stop: str | None = None
) -> str:
    ctx = _native.Context(model, n_ctx=2048, n_batch=512, n_threads=2)
    tokens = model.tokenize(prompt, add_special=False, parse_special=True)
    out = b""
    with ctx.generate(
        tokens,
        sampler,
        max_tokens=max_tokens,
        render_special_tokens=params.preserved_token_ids(model),
    ) as gen:
        for _, piece in gen:
            out += piece
            if stop and stop.encode() in out:
                break
    ctx.close()
    return out.decode()


def test_smollm2_required_tool_call(smollm2):
    """tool_choice "required" on SmolLM2 with a ChatML tool template (Qwen 2.5's Hermes style).

    llama.cpp's "required" grammar lets text come before the call; to force the call from the
    first token (a named function), the reply is opened with the format's tool-call marker: in
    the prompt, in the grammar's prefill and in the parser.
    """
    tools = [WEATHER_TOOL]  # a named function: only that tool, and "required"
    tmpl = _native.ChatTemplates(smollm2, template=template("Qwen-Qwen2.5-7B-Instruct"))
    params = tmpl.apply(json.dumps(QUESTION), tools_json=json.dumps(tools), tool_choice="required")
    assert params.grammar and not params.grammar_lazy
    opener = next(
        v
        for t, v, _ in tmpl.apply(
            json.dumps(QUESTION), tools_json=json.dumps(tools)
        ).grammar_triggers
        if t == "word"
    )
    assert opener == "<tool_call>\n"
    kwargs = params.sampler_kwargs(smollm2)
    kwargs["grammar_prefill"] = params.generation_prompt + opener
    sampler = _native.Sampler(smollm2, temperature=0, **kwargs)
    assert "grammar" in sampler.names
    text = generate_text(smollm2, params, sampler, params.prompt + opener, 80, stop="</tool_call>")
    parser = _native.ChatParser(params)
    deltas = parser.feed(opener) + parser.feed(text) + parser.finish()
    assert parser.parse_error is None
    [call] = parser.message["tool_calls"]
    assert call["name"] == "get_weather" and re.fullmatch("[0-9A-Za-z]{9}", call["id"])
    arguments = json.loads(call["arguments"])
    assert isinstance(arguments["city"], str) and set(arguments) <= {"city", "days"}
    assert parser.message["content"] == ""
    assert any(d.get("tool_call_name") == "get_weather" for d in deltas)


def test_smollm2_json_schema_reply(smollm2):
    tmpl = _native.ChatTemplates(smollm2)
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}, "sunny": {"type": "boolean"}},
        "required": ["city", "sunny"],
        "additionalProperties": False,
    }
    params = tmpl.apply(json.dumps(QUESTION), json_schema=json.dumps(schema))
    sampler = _native.Sampler(smollm2, temperature=0, **params.sampler_kwargs(smollm2))
    text = generate_text(smollm2, params, sampler, params.prompt, 60)
    reply = json.loads(_native.ChatParser(params).parse(text)["content"])
    assert set(reply) == {"city", "sunny"} and isinstance(reply["sunny"], bool)


def test_generate_renders_chosen_control_tokens(smollm2):
    """render_special_tokens: these control tokens reach the text even with render_special off."""
    im_start = smollm2.tokenize("<|im_start|>", add_special=False, parse_special=True)
    assert len(im_start) == 1
    prompt = smollm2.tokenize("Hello", add_special=False, parse_special=False)

    def first_piece(**kwargs) -> bytes:
        ctx = _native.Context(smollm2, n_ctx=256, n_threads=2)
        sampler = _native.Sampler(smollm2, temperature=0, logit_bias={im_start[0]: 100.0})
        with ctx.generate(prompt, sampler, max_tokens=1, **kwargs) as gen:
            [(token, piece)] = list(gen)
        assert token == im_start[0]
        return piece

    assert first_piece() == b""
    assert first_piece(render_special_tokens=im_start) == b"<|im_start|>"
    assert first_piece(render_special_tokens=(5, im_start[0], 7)) == b"<|im_start|>"
    assert first_piece(render_special=True) == b"<|im_start|>"


def test_sampler_trigger_patterns_full_are_anchored(smollm2):
    """A "pattern" is searched anywhere; a "pattern_full" must match all the text so far."""
    prompt = smollm2.tokenize(
        "<|im_start|>user\nDescribe the weather in Paris.<|im_end|>\n<|im_start|>assistant\n",
        add_special=False,
        parse_special=True,
    )

    def run(**kwargs) -> str:
        ctx = _native.Context(smollm2, n_ctx=512, n_threads=2)
        sampler = _native.Sampler(smollm2, temperature=0, **kwargs)
        with ctx.generate(prompt, sampler, max_tokens=24) as gen:
            return b"".join(piece for _, piece in gen).decode()

    free = run()
    # A word inside the reply (not at its start) with something other than [a-z ] after it.
    word = next(
        m.group()
        for m in re.finditer("[A-Za-z]{4,}", free)
        if m.start() > 0 and re.search("[^a-z ]", free[m.end() :])
    )
    grammar = f'root ::= "{word}" [a-z ]*'
    searched = run(grammar=grammar, grammar_lazy=True, trigger_patterns=[word])
    head, tail = searched.split(word, 1)
    assert head == free.split(word, 1)[0] and re.fullmatch("[a-z ]*", tail)
    assert searched != free
    anchored = run(grammar=grammar, grammar_lazy=True, trigger_patterns_full=[word])
    assert anchored == free  # "^word$" never matches the whole text: the grammar never applies
    with pytest.raises(GrammarError):
        _native.Sampler(
            smollm2, grammar=grammar, grammar_lazy=True, trigger_patterns_full=["(unclosed"]
        )


def test_sampler_grammar_prefill(smollm2):
    grammar = 'root ::= "<|im_start|>assistant\\n" ("yes" | "no")'
    sampler = _native.Sampler(
        smollm2, temperature=0, grammar=grammar, grammar_prefill="<|im_start|>assistant\n"
    )
    prompt = smollm2.tokenize("Is Paris in France?", add_special=False, parse_special=False)
    ctx = _native.Context(smollm2, n_ctx=256, n_threads=2)
    with ctx.generate(prompt, sampler, max_tokens=4) as gen:
        assert b"".join(piece for _, piece in gen) in (b"yes", b"no")
    sampler.reset()  # the prefill is taken again
    with ctx.generate(prompt, sampler, max_tokens=4) as gen:
        assert b"".join(piece for _, piece in gen) in (b"yes", b"no")
    with pytest.raises(GrammarError, match="grammar_prefill"):
        _native.Sampler(smollm2, grammar=grammar, grammar_prefill="something else")
    with pytest.raises(ValueError, match="lazy"):
        _native.Sampler(
            smollm2, grammar=grammar, grammar_lazy=True, trigger_words=["x"], grammar_prefill="<"
        )
    with pytest.raises(ValueError):
        _native.Sampler(smollm2, grammar_prefill="no grammar")


def test_apply_and_parse_from_many_threads():
    """apply() releases the GIL and shares the parsed template; a parser serializes its callers."""
    tmpl = _native.ChatTemplates(template=template("Qwen-Qwen2.5-7B-Instruct"))
    expected = tmpl.apply(json.dumps(TOOL_CONVERSATION), tools_json=TOOLS_JSON).prompt
    parser = _native.ChatParser(tmpl.apply(json.dumps(QUESTION)))
    prompts: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                prompts.append(
                    tmpl.apply(json.dumps(TOOL_CONVERSATION), tools_json=TOOLS_JSON).prompt
                )
                parser.feed("ab")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and prompts == [expected] * 40
    parser.finish()
    assert parser.message["content"] == "ab" * 40


def test_error_excerpt_cut_inside_a_character_still_raises_template_error():
    """llama.cpp quotes 40 bytes around a failing spot, cutting through UTF-8 characters."""
    text = "日本語" * 20 + "{{ foo(1) }}" + "日本語" * 20
    with pytest.raises(TemplateError, match="Callee is not a function") as info:
        _native.ChatTemplates(template=text).apply(json.dumps(QUESTION))
    assert "\ufffd" in info.value.message
    # A syntax error names the parser's reason (llama.cpp's init would only say "std::exception").
    with pytest.raises(TemplateError, match="Unexpected token"):
        _native.ChatTemplates(template="{{ foo( }}")


def test_text_with_lone_surrogates_is_invalid_text():
    source = (TEMPLATES / "Qwen-Qwen2.5-7B-Instruct.jinja").read_text(encoding="utf-8")
    with pytest.raises(InvalidTextError, match=r"\[ChatTemplates\] template is not valid Unicode"):
        _native.ChatTemplates(template=source + "\ud800")
    with pytest.raises(InvalidTextError, match=r"\[ChatTemplates\] eos_token"):
        _native.ChatTemplates(template=source, eos_token="\udcff")
    templates = _native.ChatTemplates(template=source)
    with pytest.raises(InvalidTextError, match=r"\[ChatTemplates.apply\] messages_json"):
        templates.apply('[{"role": "user", "content": "\ud800"}]')
    hello = json.dumps([{"role": "user", "content": "hi"}])
    for name in ["tools_json", "json_schema", "grammar", "chat_template_kwargs_json"]:
        with pytest.raises(InvalidTextError, match=rf"\[ChatTemplates.apply\] {name}"):
            templates.apply(hello, **{name: '"\udcff"'})
    parser = _native.ChatParser(templates.apply(hello))
    with pytest.raises(InvalidTextError, match=r"\[ChatParser.parse\] text"):
        parser.parse("a\ud800")
    with pytest.raises(InvalidTextError, match=r"\[ChatParser.feed\] piece"):
        parser.feed("a\udcff")
    parser.feed(b"ok \xff")  # bytes are taken as they are
    parser.finish()
    assert parser.message["content"] == "ok \ufffd"
