"""Capability detection with llama.cpp's probes (test_parity compares all vendored templates with
llama.cpp's own detection; these show each rule on a small template)."""

from __future__ import annotations

import time

import pytest
from llamabind.chat import ChatTemplate, RenderLimits, TemplateCaps
from llamabind.errors import TemplateError


def caps(source: str) -> TemplateCaps:
    return ChatTemplate(source).caps


STRING_ONLY = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
PARTS_ONLY = "{% for m in messages %}{% for p in m.content %}{{ p.text }}{% endfor %}{% endfor %}"
BOTH = (
    "{% for m in messages %}{% if m.content is string %}{{ m.content }}{% else %}"
    "{% for p in m.content %}{{ p.text }}{% endfor %}{% endif %}{% endfor %}"
)
TOOLS_AS_JSON = (
    "{% for t in tools %}{{ t.function.name }}{% endfor %}"
    "{% for m in messages %}{% for c in m.tool_calls or [] %}"
    "{{ c.function.name }}{{ c.function.arguments|tojson }}{% endfor %}{% endfor %}"
)
TOOLS_AS_TEXT = (
    "{% for t in tools %}{{ t.function.name }}{% endfor %}"
    "{% for m in messages %}{% if m.tool_calls %}{{ m.tool_calls[0].function.name }}"
    "{{ m.tool_calls[0].function.arguments }}{% endif %}{% endfor %}"
)


def test_string_content():
    found = caps(STRING_ONLY)
    assert found.supports_string_content and not found.supports_typed_content


def test_parts_content():
    found = caps(PARTS_ONLY)
    assert found.supports_typed_content and not found.supports_string_content


def test_both_kinds_of_content():
    found = caps(BOTH)
    assert found.supports_typed_content and found.supports_string_content


def test_system_role():
    assert caps(STRING_ONLY).supports_system_role
    ignores_system = "{% for m in messages if m.role != 'system' %}{{ m.content }}{% endfor %}"
    assert not caps(ignores_system).supports_system_role


def test_tools_and_arguments_as_objects():
    found = caps(TOOLS_AS_JSON)
    assert found.supports_tools and found.supports_tool_calls
    assert found.supports_object_arguments and found.supports_parallel_tool_calls


def test_tools_with_arguments_as_text_and_one_call_only():
    found = caps(TOOLS_AS_TEXT)
    assert found.supports_tools and found.supports_tool_calls
    assert not found.supports_object_arguments and not found.supports_parallel_tool_calls


def test_no_tools():
    found = caps(STRING_ONLY)
    assert not found.supports_tools and not found.supports_tool_calls


def test_reasoning():
    keeps = "{% for m in messages %}{{ m.reasoning_content }}{{ m.content }}{% endfor %}"
    assert caps(keeps).supports_preserve_reasoning
    assert not caps(STRING_ONLY).supports_preserve_reasoning
    effort = "{% if reasoning_effort == 'high' %}think hard{% endif %}{{ messages[0].content }}"
    assert caps(effort).supports_reasoning_effort
    assert caps("{{ reasoning_strength }}").supports_reasoning_effort
    assert not caps(STRING_ONLY).supports_reasoning_effort


def test_caps_to_dict_names_llama_cpps_fields():
    assert set(TemplateCaps().to_dict()) == {
        "supports_tools",
        "supports_tool_calls",
        "supports_system_role",
        "supports_parallel_tool_calls",
        "supports_preserve_reasoning",
        "supports_reasoning_effort",
        "supports_string_content",
        "supports_typed_content",
        "supports_object_arguments",
    }


def test_a_failing_probe_is_a_finding_not_an_error():
    template = ChatTemplate("{{ raise_exception('no') if tools else messages[0].content }}")
    assert not template.caps.supports_tools


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{{ ''.__class__ }}",
    ],
)
def test_a_hostile_template_fails_during_detection(source):
    started = time.monotonic()
    with pytest.raises(TemplateError):
        _ = ChatTemplate(source, limits=RenderLimits(max_steps=50_000)).caps
    assert time.monotonic() - started < 5
