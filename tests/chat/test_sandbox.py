"""The template sandbox: untrusted templates cannot reach Python, cannot hang, cannot exhaust memory;
real templates get the conventions of transformers' apply_chat_template."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from llamabind.chat import ChatTemplate, RenderLimits
from llamabind.errors import TemplateError

HELLO = [{"role": "user", "content": "hi"}]


def render(source: str, limits: RenderLimits | None = None, **kwargs) -> str:
    return ChatTemplate(source, limits=limits).render(HELLO, **kwargs)


# --------------------------------------------------------------------------- SSTI payloads

# Each tries to run `touch <marker>`; {marker} is replaced by a path in a temporary directory.
SSTI_PAYLOADS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__ }}",
    "{{ cycler.__init__.__globals__.os.popen('touch {marker}').read() }}",
    "{{ joiner.__init__.__globals__.os.popen('touch {marker}').read() }}",
    "{{ namespace.__init__.__globals__.os.popen('touch {marker}').read() }}",
    "{{ lipsum.__globals__['os'].popen('touch {marker}').read() }}",
    "{{ lipsum.__globals__.__builtins__.__import__('os').system('touch {marker}') }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.popen('touch {marker}') }}",
    "{{ self.__init__.__globals__.__builtins__.__import__('os').system('touch {marker}') }}",
    "{{ config.__class__.__init__.__globals__['os'].popen('touch {marker}').read() }}",
    "{{ config.items() }}",
    "{{ request.application.__globals__.__builtins__.__import__('os').popen('touch {marker}') }}",
    "{{ request['application']['__globals__']['__builtins__']['__import__']('os') }}",
    "{{ messages.__class__.__base__.__subclasses__() }}",
    "{{ messages[0].__class__.__init__.__globals__ }}",
    "{{ raise_exception.__globals__['__builtins__']['eval'](\"__import__('os').system('touch {marker}')\") }}",
    "{{ strftime_now.__globals__.os.system('touch {marker}') }}",
    "{{ range.__self__.__import__('os').system('touch {marker}') }}",
    "{{ dict.__base__.__subclasses__() }}",
    "{{ (messages|first).items.__self__.__class__ }}",
    "{{ '{0.__class__.__mro__[1].__subclasses__}'.format('') }}",
    "{{ '{0.__init__.__globals__[os]}'.format(cycler) }}",
    "{{ '{0.__globals__}'.format(raise_exception) }}",
    "{{ '{m.__class__}'.format_map({'m': messages}) }}",
    "{% set x = ''|attr('__class__') %}{{ x.__mro__ }}",
    "{{ (''|attr('__class__')|attr('__mro__'))[1] }}",
    "{% for c in ''.__class__.__mro__[1].__subclasses__() %}{{ c }}{% endfor %}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}{{ os.system('touch {marker}') }}",
    "{% extends '/etc/passwd' %}",
    "{{ messages.append.__self__.__class__ }}",
    "{{ tools.__len__() }}",
    "{{ loop.__class__ }}{% for m in messages %}{{ loop.__class__.__init__.__globals__ }}{% endfor %}",
]


@pytest.mark.parametrize("payload", SSTI_PAYLOADS)
def test_ssti_payload_fails_and_executes_nothing(payload, tmp_path):
    marker = tmp_path / "pwned"
    source = payload.replace("{marker}", str(marker))
    with pytest.raises(TemplateError) as info:
        ChatTemplate(source).render(HELLO, tools=[_tool("f")])
    assert info.value.kind in ("security", "runtime", "syntax")
    assert not marker.exists()


def test_unsafe_access_is_a_security_error_with_the_name():
    with pytest.raises(TemplateError, match="__class__") as info:
        render("{{ messages.__class__ }}")
    assert info.value.kind == "security"
    assert "unsafe" in str(info.value)


def test_keys_starting_with_underscore_are_still_readable_from_mappings():
    assert render("{{ x._private }}", x={"_private": "ok"}) == "ok"
    assert render("{{ x['_private'] }}", x={"_private": "ok"}) == "ok"


def test_the_callers_objects_are_not_changed():
    messages = [{"role": "user", "content": "hi"}]
    extra = {"items": [1, 2]}
    ChatTemplate(
        "{% set _ = messages.append(1) %}{% set _ = extra['items'].append(3) %}{{ messages|length }}"
    ).render(messages, extra=extra)
    assert messages == [{"role": "user", "content": "hi"}]
    assert extra == {"items": [1, 2]}


def test_only_append_and_pop_mutate_and_only_lists():
    assert render("{% set ns = namespace(l=[]) %}{% set _ = ns.l.append(1) %}{{ ns.l }}") == "[1]"
    assert render("{% set ns = namespace(l=[1, 2]) %}{{ ns.l.pop(0) }}{{ ns.l }}") == "1[2]"
    for mutation in ("ns.l.clear()", "ns.l.extend([1])", "ns.d.update(a=1)", "ns.d.clear()"):
        with pytest.raises(TemplateError):
            render("{% set ns = namespace(l=[1], d={}) %}{{ " + mutation + " }}")


# --------------------------------------------------------------------------- resource limits

SMALL = RenderLimits(max_output_chars=100_000, max_steps=20_000, max_seconds=5)

DOS_PAYLOADS = [
    "{{ 'a' * 10**10 }}",
    "{{ 'a' * 100000000 }}",
    "{{ [1] * 100000000 }}",
    "{{ range(10**10)|list }}",
    "{{ range(100001)|list }}",
    "{{ 2 ** (10 ** 10) }}",
    "{{ 9**999999 }}",
    "{% set ns = namespace(n=3) %}{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}{% endfor %}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '%.999999999f' % 1.0 }}",
    "{{ '%*d' % (999999999, 1) }}",
    "{{ '%0999999999d'|format(1) }}",
    "{{ '{:>999999999}'.format('x') }}",
    "{{ '{:.999999999f}'.format(1.0) }}",
    "{{ '{:{w}}'.format('x', w=999999999) }}",
    "{{ 'x'.ljust(999999999) }}",
    "{{ 'x'.center(999999999) }}",
    "{{ '1'.zfill(999999999) }}",
    "{{ ('\t' * 1000).expandtabs(999999) }}",
    "{{ 'x'|center(999999999) }}",
    "{{ 'a\nb'|indent(999999999) }}",
    "{{ ('a' * 50000).replace('', 'bbbbb') }}",
    "{{ ('a' * 50000)|replace('a', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb') }}",
    "{% set s = 'a' * 60000 %}{{ s ~ s }}",
    "{% set s = 'a' * 60000 %}{{ s + s }}",
    "{% set s = 'a' * 60000 %}{{ [s, s, s]|join }}",
    "{% set s = 'a' * 60000 %}{{ ''.join([s, s, s]) }}",
    "{% set s = 'a' * 60000 %}{{ [s, s, s]|tojson }}",
    "{% set s = 'a' * 60000 %}{{ [s, s, s] }}",
    "{% set s = 'a' * 60000 %}{{ [s, s, s]|string }}",
    (
        "{% set s = 'a' * 1000 %}{% set ns = namespace(s=s) %}"
        "{% for i in range(30) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
    ),
    "{% set s = 'a' * 60000 %}{% macro m() %}{{ s }}{{ s }}{% endmacro %}{% set x = m() %}",
    "{% set s = 'a' * 60000 %}{% set x %}{{ s }}{{ s }}{% endset %}",
    "{% set s = 'a' * 1000 %}{% for i in range(1000) %}{{ s }}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    "{% for x in range(1000) recursive %}{{ loop(range(1000)) }}{% endfor %}",
    (
        "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}"
        "{% set _ = ns.l.append(i) %}{% endfor %}"
    ),
]


@pytest.mark.parametrize("payload", DOS_PAYLOADS)
def test_dos_payload_fails_quickly(payload):
    started = time.monotonic()
    with pytest.raises(TemplateError) as info:
        render(payload, limits=SMALL)
    assert time.monotonic() - started < 3
    assert info.value.kind in ("limit", "security", "runtime")


def test_default_limits_stop_a_hang_and_a_huge_string():
    started = time.monotonic()
    with pytest.raises(TemplateError, match="loop iterations and calls") as info:
        render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
    assert info.value.kind == "limit"
    assert time.monotonic() - started < 30
    with pytest.raises(TemplateError, match="16777216") as info:
        render("{{ 'a' * (2 ** 25) }}")
    assert info.value.kind == "limit"


def test_the_deadline_stops_a_render():
    limits = RenderLimits(max_steps=10**12, max_seconds=0.2)
    started = time.monotonic()
    with pytest.raises(TemplateError, match="longer than 0.2 s"):
        render(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            limits,
        )
    assert time.monotonic() - started < 5


def test_limits_are_validated():
    with pytest.raises(ValueError):
        RenderLimits(max_steps=0)
    with pytest.raises(ValueError):
        RenderLimits(max_seconds=0)


def test_work_within_the_limits_renders():
    source = "{% for i in range(1000) %}{{ 'ab' * 10 }}{% endfor %}{{ '%5d|%-3s' % (42, 'x') }}"
    assert render(source) == "ab" * 10_000 + "   42|x  "
    assert render("{{ '{:>6}|{:.2f}'.format('x', 2.5) }}") == "     x|2.50"


# --------------------------------------------------------------------------- HF conventions


def test_trim_blocks_and_lstrip_blocks():
    source = (
        "{% for m in messages %}\n    {% if true %}\n{{ m.role }}\n    {% endif %}\n{% endfor %}"
    )
    assert render(source) == "user\n"


def test_loop_controls():
    source = "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}"
    source += "{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}"
    assert render(source) == "013"


def test_generation_block_renders_its_body():
    assert render("a{% generation %}b{{ 1 }}{% endgeneration %}c") == "ab1c"


def test_raise_exception_gives_the_templates_message():
    source = "{{ raise_exception('Conversation roles must alternate user/assistant') }}"
    with pytest.raises(TemplateError, match="roles must alternate") as info:
        render(source)
    assert info.value.kind == "raised"
    assert info.value.template_message == "Conversation roles must alternate user/assistant"
    assert info.value.lineno == 1


def test_errors_name_the_template_line():
    with pytest.raises(TemplateError, match=r"line 3") as info:
        ChatTemplate("a\nb\n{{ 1 / 0 }}", name="t").render(HELLO)
    assert info.value.lineno == 3 and info.value.kind == "runtime"
    assert "ZeroDivisionError" in str(info.value) and "'t'" in str(info.value)


def test_syntax_error_is_a_template_error_at_construction():
    with pytest.raises(TemplateError, match="does not compile: line 2") as info:
        ChatTemplate("ok\n{% for %}", name="broken")
    assert info.value.kind == "syntax" and info.value.lineno == 2


def test_strftime_now_uses_the_given_time():
    now = datetime(2024, 7, 26, 9, 30)
    assert render("{{ strftime_now('%d %b %Y %H:%M') }}", now=now) == "26 Jul 2024 09:30"
    assert render("{{ strftime_now('%B %d, %Y') }}", now=now) == "July 26, 2024"
    assert render("{{ date_string }}|{{ datetime }}", now=now) == "26 Jul 2024|Jul 26 2024"


def test_strftime_now_defaults_to_the_local_time():
    before = datetime.now().strftime("%Y-%m-%d")
    rendered = render("{{ strftime_now('%Y-%m-%d') }}")
    assert rendered in (before, datetime.now().strftime("%Y-%m-%d"))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("{'a': '<b>&é'}|tojson", '{"a": "<b>&é"}'),  # no HTML escaping, no ASCII escaping
        ("{'a': 'é'}|tojson(ensure_ascii=True)", '{"a": "\\u00e9"}'),
        ("{'b': 1, 'a': [1, 2]}|tojson(indent=2)", '{\n  "b": 1,\n  "a": [\n    1,\n    2\n  ]\n}'),
        ("{'b': 1, 'a': 2}|tojson(sort_keys=True)", '{"a": 2, "b": 1}'),
        ("{'a': [1, 2]}|tojson(separators=(',', ':'))", '{"a":[1,2]}'),
        ("[1, 'x', none, true]|tojson", '[1, "x", null, true]'),
        ("undefined_name|tojson", "null"),
        ("'He said \"hi\"\\n'|tojson", '"He said \\"hi\\"\\n"'),
    ],
)
def test_tojson_is_json_dumps_as_transformers_calls_it(expression, expected):
    assert render("{{ " + expression + " }}") == expected


def test_filters_that_stream_give_lists():
    assert render("{{ messages|map(attribute='role')|tojson }}") == '["user"]'
    assert render("{{ [1, 2, 3]|select('odd')|list|length }}") == "2"


def test_safe_does_not_turn_on_escaping():
    assert render("{{ '<a>'|safe + '<b>' }}") == "<a><b>"


def test_string_joined_with_none_or_undefined_is_the_string():
    assert render("{{ 'a' + none }}|{{ none ~ 'b' }}|{{ 'c' + missing }}") == "a|b|c"
    assert render("{{ none }}|{{ missing }}|{{ missing.attribute.chain }}") == "None||"


def test_no_lipsum_cycler_or_joiner():
    for name in ("lipsum", "cycler", "joiner"):
        assert render("{{ " + name + " is defined }}") == "False"


def _tool(name: str) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
