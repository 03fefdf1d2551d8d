"""ChatTemplate: the API the engine calls, templates from real GGUF files, the ChatML default."""

from __future__ import annotations

import json
import threading
import warnings
from datetime import datetime

import pytest
from llamabind import _native
from llamabind.chat import CHATML_TEMPLATE, ChatTemplate, MissingChatTemplateWarning, TemplateCaps
from llamabind.errors import TemplateError

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Name a colour."},
]


def test_chatml_default_renders_chatml():
    template = ChatTemplate(CHATML_TEMPLATE)
    assert template.render(CONVERSATION[:2]) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert template.render(CONVERSATION[:2], add_generation_prompt=False).endswith("Hi<|im_end|>\n")


def test_chatml_equals_llama_cpps_builtin_chatml():
    native = _native.ChatTemplates(template="chatml")
    assert (
        ChatTemplate(CHATML_TEMPLATE).render(CONVERSATION)
        == native.apply(json.dumps(CONVERSATION)).prompt
    )


def test_from_model_uses_the_gguf_template_and_tokens(smollm2):
    template = ChatTemplate.from_model(smollm2)
    assert template.source == smollm2.chat_template()
    assert template.name == "default" and template.tool_use is None
    assert template.bos_token == "<|im_start|>" and template.eos_token == "<|im_end|>"
    assert template.add_bos is False
    native = _native.ChatTemplates(smollm2)
    for messages in (CONVERSATION, CONVERSATION[1:2]):
        assert template.render(messages) == native.apply(json.dumps(messages)).prompt
    assert "You are a helpful AI assistant named SmolLM" in template.render(CONVERSATION[1:2])


@pytest.fixture(scope="module")
def gemma3_vocab(gemma3_path):
    model = _native.Model(gemma3_path, vocab_only=True)
    yield model
    model.close()


def test_model_without_template_gets_chatml_with_a_warning(gemma3_vocab):
    model = gemma3_vocab
    with pytest.warns(MissingChatTemplateWarning, match="no chat template; using ChatML"):
        template = ChatTemplate.from_model(model)
    assert template.source == CHATML_TEMPLATE and template.name == "chatml"
    assert template.bos_token == "<bos>" and template.add_bos is True
    native = _native.ChatTemplates(model)
    assert native.has_explicit_template is False
    assert template.render(CONVERSATION) == native.apply(json.dumps(CONVERSATION)).prompt


def test_bos_written_by_the_template_is_dropped_when_the_tokenizer_adds_it(gemma3_vocab):
    model = gemma3_vocab
    source = "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}{{ eos_token }}"
    with pytest.warns(MissingChatTemplateWarning):
        tokens = ChatTemplate.from_model(model)
    template = ChatTemplate(
        source, bos_token=tokens.bos_token, eos_token=tokens.eos_token, add_bos=True
    )
    native = _native.ChatTemplates(model, template=source)
    assert (
        template.render(CONVERSATION[1:2])
        == "Hi<eos>"
        == native.apply(json.dumps(CONVERSATION[1:2])).prompt
    )
    assert ChatTemplate(source, bos_token="<bos>").render(CONVERSATION[1:2]) == "<bos>Hi"
    assert ChatTemplate(source, eos_token="</s>", add_eos=True).render(CONVERSATION[1:2]) == "Hi"


def test_from_model_with_an_unknown_name(smollm2):
    with pytest.raises(ValueError, match="no chat template 'tool_use' .*default"):
        ChatTemplate.from_model(smollm2, name="tool_use")
    assert ChatTemplate.from_model(smollm2, name="default").source == smollm2.chat_template()


def test_tool_use_variant_is_used_when_tools_are_given():
    tool = {"type": "function", "function": {"name": "f"}}
    template = ChatTemplate("plain", tool_use=ChatTemplate("{{ tools[0].function.name }}"))
    assert template.render(CONVERSATION) == "plain"
    assert template.render(CONVERSATION, tools=[]) == "plain"
    assert template.render(CONVERSATION, tools=[tool]) == "f"


def test_template_variables():
    source = (
        "{{ add_generation_prompt is defined }}|{{ enable_thinking }}|{{ bos_token }}|"
        "{{ tools is defined }}|{{ documents|tojson }}|{{ custom }}|{{ date_string }}"
    )
    template = ChatTemplate(source, bos_token="<s>")
    now = datetime(2025, 1, 2)
    assert template.render(CONVERSATION, now=now) == "True|True|<s>|False|null||02 Jan 2025"
    assert (
        template.render(
            CONVERSATION,
            add_generation_prompt=False,
            enable_thinking=False,
            documents=[{"title": "t", "text": "x"}],
            custom=[1, "a"],
            date_string="today",
            now=now,
        )
        == 'False|False|<s>|False|[{"title": "t", "text": "x"}]|[1, \'a\']|today'
    )


def test_reasoning_kwargs_set_llama_cpps_aliases():
    source = (
        "{{ preserve_thinking }} {{ clear_thinking }} {{ truncate_history_thinking }} "
        "{{ drop_thinking }} {{ reasoning_effort }} {{ reasoning_strength }}"
    )
    template = ChatTemplate(source)
    assert template.render(CONVERSATION, preserve_reasoning=True, reasoning_effort="low") == (
        "True False False False low low"
    )
    assert template.render(CONVERSATION, preserve_reasoning=False, clear_thinking="x") == (
        "False x True True  "
    )


def test_messages_and_tools_are_checked():
    template = ChatTemplate(CHATML_TEMPLATE)
    with pytest.raises(TypeError):
        template.render("hello")
    with pytest.raises(ValueError, match=r"messages\[0\].*role"):
        template.render([{"content": "x"}])
    with pytest.raises(ValueError, match=r"tools\[0\]"):
        template.render(CONVERSATION, tools=[{"type": "function"}])
    with pytest.raises(TypeError):
        ChatTemplate(b"{{ x }}")


def test_a_template_that_cannot_render_a_shape_fails_cleanly():
    gemma2 = (
        "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
        "{% endif %}{{ message['content'] }}{% endfor %}"
    )
    with pytest.raises(TemplateError, match="roles must alternate") as info:
        ChatTemplate(gemma2).render(
            [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
        )
    assert info.value.kind == "raised"


def test_caps_are_found_once():
    template = ChatTemplate(CHATML_TEMPLATE)
    assert isinstance(template.caps, TemplateCaps) and template.caps is template.caps
    assert template.caps.supports_system_role and not template.caps.supports_tools
    assert "ChatTemplate(name=None" in repr(template)


def test_renders_from_many_threads():
    template = ChatTemplate(
        "{% for m in messages %}{{ m.content }}{% for i in range(200) %}{% endfor %}{% endfor %}"
    )
    results: dict[int, str] = {}

    def work(i: int) -> None:
        results[i] = template.render([{"role": "user", "content": str(i)}] * 50)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: str(i) * 50 for i in range(8)}


def test_no_warning_for_a_model_with_a_template(smollm2):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ChatTemplate.from_model(smollm2)
