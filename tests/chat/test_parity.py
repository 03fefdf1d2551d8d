"""Parity: our Python rendering equals llama.cpp's own (``_native.ChatTemplates``), byte for byte,
for every template llama.cpp ships in ``models/templates`` and a standard set of conversations.

Where a template cannot render a conversation (it raises, e.g. "roles must alternate"), both
must fail with TemplateError at the same template line. The capabilities our probes find must
equal llama.cpp's.

Reasoned exceptions (``EXCEPTIONS``): turning a mapping or a list into text. Jinja (and so
transformers, which model authors test their templates with) writes Python's repr; llama.cpp's
engine prints a mapping as nothing and a list as its items run together
(``gather_string_parts_recursive`` in ``common/jinja/runtime.h``), and in ``~`` or ``|string``
writes its own repr, which does not escape ``\\``, tabs or newlines. We keep Jinja's behaviour:
llama.cpp's drops the value from the prompt. Among the vendored templates only MiniCPM5 does
this in the conversations below (it prints a tool-call argument that is an object); Gemma 4
does it for a system message given as content parts.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest
from conversations import BOS, CONVERSATIONS, EOS, TEMPLATE_FILES
from llamabind import _native
from llamabind.chat import ChatTemplate
from llamabind.errors import TemplateError

EXCEPTIONS = {
    ("openbmb-MiniCPM5-1B.jinja", "tool_loop"): "prints an object argument: repr vs nothing",
}


def _native_render(native: _native.ChatTemplates, conversation: dict) -> tuple[str, str]:
    tools = conversation.get("tools")
    kwargs = conversation.get("kwargs")
    try:
        params = native.apply(
            json.dumps(conversation["messages"]),
            tools_json=json.dumps(tools) if tools else None,
            add_generation_prompt=conversation.get("add_generation_prompt", True),
            enable_thinking=conversation.get("enable_thinking", True),
            chat_template_kwargs_json=json.dumps(kwargs) if kwargs else None,
        )
    except TemplateError as exc:
        return "error", str(exc)
    return "prompt", params.prompt


def _python_render(template: ChatTemplate, conversation: dict, now: datetime) -> tuple[str, str]:
    try:
        prompt = template.render(
            conversation["messages"],
            tools=conversation.get("tools"),
            add_generation_prompt=conversation.get("add_generation_prompt", True),
            enable_thinking=conversation.get("enable_thinking", True),
            now=now,
            **conversation.get("kwargs", {}),
        )
    except TemplateError as exc:
        return "error", f"line {exc.lineno}"
    return "prompt", prompt


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: p.name)
def test_python_rendering_equals_llama_cpp(path):
    source = path.read_text(encoding="utf-8")
    ours = ChatTemplate(source, bos_token=BOS, eos_token=EOS, name=path.name)
    native = _native.ChatTemplates(template=source, bos_token=BOS, eos_token=EOS)
    assert ours.caps.to_dict() == dict(native.caps)
    n_rendered = 0
    for name, conversation in CONVERSATIONS.items():
        for _ in range(2):  # again if the date changed between the two renders
            before = datetime.now()
            expected = _native_render(native, conversation)
            got = _python_render(ours, conversation, before)
            if got == expected or before.date() == datetime.now().date():
                break
        if (path.name, name) in EXCEPTIONS:
            assert got != expected, f"exception {path.name}/{name} no longer needed"
            continue
        if expected[0] == "error":
            assert got[0] == "error", f"{name}: llama.cpp failed ({expected[1]}) but we rendered"
            line = re.search(r"at (line \d+)", expected[1])
            assert line is None or line.group(1) == got[1], f"{name}: {expected[1]} / {got[1]}"
            continue
        assert got == expected, f"{path.name} / {name}"
        n_rendered += 1
    assert n_rendered >= len(CONVERSATIONS) - 6


def test_all_templates_are_covered():
    assert len(TEMPLATE_FILES) >= 70
