"""One chat request (``llamabind.chat.request``): one render per prompt, llama.cpp's format plan
reused across requests, no unbounded renderer on the request path, data tokenized as text."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conversations import CONVERSATIONS, TEMPLATE_FILES, TOOLS
from llamabind import _native
from llamabind.chat import ChatTemplate
from llamabind.chat.request import build_chat_request
from llamabind.errors import TemplateError
from llamabind.options import ChatOptions

TEMPLATES = {path.name: path for path in TEMPLATE_FILES}
PLAN_FIELDS = ("format", "grammar", "grammar_lazy", "grammar_triggers", "preserved_tokens",
               "additional_stops", "generation_prompt", "supports_thinking",
               "thinking_start_tag", "thinking_end_tags")
HOSTILE = ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
           "{{ messages[0].content }}")


@pytest.fixture(scope="module")
def vocab(smollm2_path):
    model = _native.Model(smollm2_path, vocab_only=True)
    yield model
    model.close()


def _request(model, cache, conversation, source, **settings):
    options = ChatOptions(tools=conversation.get("tools") or (),
                          enable_thinking=conversation.get("enable_thinking", True),
                          chat_template_kwargs=conversation.get("kwargs"), **settings)
    return build_chat_request(model, cache, [dict(m) for m in conversation["messages"]], options,
                              template_override=source,
                              add_generation_prompt=conversation.get("add_generation_prompt", True))


def test_the_prompt_is_ours_and_the_plan_is_reused(vocab):
    source = TEMPLATES["Qwen-Qwen3-0.6B.jinja"].read_text(encoding="utf-8")
    cache: dict = {}
    first = _request(vocab, cache, CONVERSATIONS["tools_offered"], source)
    second = _request(vocab, cache, {"messages": CONVERSATIONS["multi_turn"]["messages"],
                                     "tools": TOOLS}, source)
    assert second.native is first.native  # llama.cpp was not asked again
    ours = ChatTemplate.from_model(vocab, source=source).render(
        CONVERSATIONS["multi_turn"]["messages"], tools=TOOLS)
    assert second.rendered.prompt == ours
    assert second.rendered.prompt != second.native.prompt  # the plan's prompt is another conversation's
    after_tool = _request(vocab, cache, CONVERSATIONS["tool_loop"], source)
    assert after_tool.native is not first.native or after_tool.rendered.prompt.endswith(
        first.native.generation_prompt)


@pytest.mark.parametrize("name", ["Qwen-Qwen3-0.6B.jinja", "google-gemma-4-31B-it.jinja",
                                  "deepseek-ai-DeepSeek-V3.2.jinja", "openai-gpt-oss-120b.jinja",
                                  "meta-llama-Llama-3.1-8B-Instruct.jinja",
                                  "mistralai-Ministral-3-14B-Reasoning-2512.jinja",
                                  "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja"])
def test_a_reused_plan_equals_llama_cpps_plan_for_the_conversation(vocab, name):
    """Whatever conversation made the cached plan, it equals what llama.cpp plans for this one."""
    source = TEMPLATES[name].read_text(encoding="utf-8")
    native = _native.ChatTemplates(vocab, template=source)
    cache: dict = {}
    n_compared = 0
    for _ in range(2):  # the second pass mostly reuses plans made by other conversations
        for conversation in CONVERSATIONS.values():
            if not conversation.get("add_generation_prompt", True):
                continue
            try:
                request = _request(vocab, cache, conversation, source)
            except (TemplateError, ValueError):  # a template that cannot render this shape
                continue
            tools = conversation.get("tools")
            kwargs = conversation.get("kwargs")
            fresh = native.apply(json.dumps(conversation["messages"]),
                                 tools_json=json.dumps(tools) if tools else None,
                                 enable_thinking=conversation.get("enable_thinking", True),
                                 chat_template_kwargs_json=json.dumps(kwargs) if kwargs else None)
            for field in PLAN_FIELDS:
                assert getattr(request.native, field) == getattr(fresh, field), field
            n_compared += 1
    assert n_compared >= 10


def test_a_runaway_template_never_reaches_llama_cpps_renderer(smollm2_path):
    """llama.cpp's renderer has no step limit: a request must fail in our sandbox first."""
    script = textwrap.dedent(f"""
        from llamabind import LlamaEngine, ModelParams, TemplateError
        with LlamaEngine({smollm2_path!r}, ModelParams(n_ctx=256, chat_template={HOSTILE!r})) as e:
            for call in (lambda: list(e.create([{{"role": "user", "content": "hi"}}], max_tokens=1)),
                         lambda: e.chat_template([{{"role": "user", "content": "hi"}}]),
                         e.get_capabilities):
                try:
                    call()
                except TemplateError as exc:
                    print("TemplateError", exc.kind)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=240, cwd=Path(__file__).resolve().parents[2], check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["TemplateError limit"] * 3


def test_chatml_fallback_stops_at_its_end_of_turn_and_says_so_once(gemma3_path, caplog):
    """Gemma 3 270M has no template: ChatML stands in, and its <|im_end|> ends the reply."""
    import logging

    from llamabind import GenerationParams, LlamaEngine, ModelParams
    from llamabind.chat.template import CHATML_END_OF_TURN, MissingChatTemplateWarning

    question = [{"role": "user", "content": "Name three colors."}]
    greedy = GenerationParams(temperature=0, max_tokens=200)
    with LlamaEngine(gemma3_path, ModelParams(n_ctx=1024, n_threads=2)) as engine, \
            caplog.at_level(logging.INFO, logger="llamabind.chat"):
        with pytest.warns(MissingChatTemplateWarning):
            rendered = engine.chat_template(question)
        first = engine.complete(question, greedy)
        second = engine.complete(question, greedy)
    assert CHATML_END_OF_TURN in rendered.stop
    said = [r for r in caplog.records if "ChatML fallback" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO
    for completion in (first, second):
        assert completion.finish_reason == "stop"
        assert completion.usage.completion_tokens < greedy.max_tokens
        assert "<|im_" not in completion.text  # greedy Gemma 3 ends its turn at once
