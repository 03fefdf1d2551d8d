"""The jinja2 sandbox chat templates run in: transformers' conventions, llama.cpp's leniency.

Templates inside GGUF files are untrusted code. They run in a subclass of jinja2's
``ImmutableSandboxedEnvironment``: no attribute starting with ``_`` (so no ``__class__``,
``__globals__``, ``_TemplateReference__context``; such a name is only ever a mapping key), no
internal attributes of functions, frames or generators, no mutation of the caller's objects,
``str.format`` through the sandboxed formatter, no ``include``/``import``/``extends`` (there is
no loader), and no ``lipsum``/``cycler``/``joiner`` globals. An unsafe access raises at once
(jinja2 alone would print an empty string for ``{{ ''.__class__ }}``). Every render has a
budget (see ``limits``).

Conventions of transformers' ``apply_chat_template``: ``trim_blocks``, ``lstrip_blocks``,
loop controls, ``{% generation %}`` blocks (rendered as their body), ``raise_exception``,
``strftime_now`` and a ``tojson`` that does not escape HTML and takes ``ensure_ascii``,
``indent``, ``separators`` and ``sort_keys``.

Where llama.cpp's own engine (``common/jinja``) is more lenient than jinja2, this sandbox
follows llama.cpp, so that both render the same prompt: an undefined value's attributes are
undefined too (jinja2's ``ChainableUndefined``); a string ``+`` or ``~`` None or an undefined
value is the string; ``tojson`` writes undefined as ``null``; ``map``, ``select`` and the like
give lists; ``safe`` gives a plain string (no Markup escaping what it later meets); and lists
may be changed with ``append`` and ``pop`` (Kimi K2's templates need it; the render works on
copies of the caller's data).

This module imports nothing compiled.
"""

from __future__ import annotations

import functools
import json
import re
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, cast

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.ext import Extension, loopcontrols
from jinja2.filters import FILTERS
from jinja2.parser import Parser
from jinja2.runtime import ChainableUndefined, Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.tests import TESTS
from markupsafe import Markup

from .limits import (
    FILTER_PRE_CHECKS,
    LimitExceeded,
    active_state,
    check_format_string,
    check_multiply,
    check_power,
    check_printf,
    check_result,
    check_str_method,
    check_value,
    current_state,
)
from .marking import rebalance_call
from .tracking import mark

__all__ = ["TemplateEnvironment", "TemplateRaised"]

_LOOP_GUARD = "__llamabind_loop_guard__"
_CONCAT = "__llamabind_concat__"
_MUTABLE_LIST_METHODS = frozenset({"append", "pop"})


def _is_tracking() -> bool:
    state = active_state()
    return state is not None and state.tracking


class TemplateRaised(Exception):
    """Raised by ``raise_exception(message)`` inside a template."""


# ----------------------------------------------------------------------------- globals, filters


def _raise_exception(message: Any) -> None:
    raise TemplateRaised(str(message))


def _strftime_now(format: str) -> str:
    if not isinstance(format, str):
        raise TypeError("strftime_now() takes a format string")
    state = current_state()
    state.check_size(len(format) * 256, "strftime_now()")  # CPython's own bound on the output
    return state.now.strftime(format)


def _json_default(value: Any) -> Any:
    if isinstance(value, Undefined):
        return None
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The JSON escape of a data marker (U+FDD0/U+FDD1), not an escaped backslash before 'u'.
_ESCAPED_MARKER = re.compile(r"(?<!\\)((?:\\\\)*)\\u(fdd[01])", re.IGNORECASE)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: tuple[str, str] | list[str] | None = None,
    sort_keys: bool = False,
) -> str:
    """``json.dumps`` exactly as transformers' chat templates call it (no HTML escaping)."""
    check_value(value, "tojson()")
    if _is_tracking():
        mark(value, "tojson", deep=True)
    if separators is not None:
        separators = tuple(separators)  # type: ignore[assignment]
    text = json.dumps(
        value,
        ensure_ascii=ensure_ascii,
        indent=indent,
        separators=separators,  # type: ignore[arg-type]
        sort_keys=sort_keys,
        default=_json_default,
    )
    if ensure_ascii:  # keep the data markers (chat.marking) findable in escaped JSON
        text = _ESCAPED_MARKER.sub(lambda m: m.group(1) + chr(int(m.group(2), 16)), text)
    return check_result(text, "tojson()")


def _guarded_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > 100_000:
        raise LimitExceeded("range() is limited to 100000 items")
    return rng


def _loop_guard(iterable: Any) -> Iterator[Any]:
    """Wraps the iterable of every ``for`` loop: one step per iteration."""
    state = current_state()
    if state.tracking:
        mark(iterable, "array_access")
    if isinstance(iterable, Undefined):
        iterable = []
    for item in iterable:
        state.step()
        yield item


def _safe(value: Any) -> Any:
    """``safe``: nothing to do without autoescaping (jinja2's Markup would escape later text)."""
    return str(value) if not isinstance(value, Undefined) else value


def _wrap_filter(name: str, func: Callable[..., Any], is_test: bool = False) -> Callable[..., Any]:
    """A filter or test that records its use, pre-checks sizes and post-checks its result."""
    pass_arg = getattr(func, "jinja_pass_arg", None)  # context/environment passed first
    n_lead = 0 if pass_arg is None else 1
    pre = FILTER_PRE_CHECKS.get(name) if not is_test else None
    op = ("test_is_" if is_test else "") + name
    deep = not is_test and name == "string"

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        state = active_state()
        value = args[n_lead] if len(args) > n_lead else None
        if state is not None and state.tracking:
            mark(value, op, deep=deep)
        if pre is not None:
            pre(*args[n_lead:], **kwargs)
        result = func(*args, **kwargs)
        if is_test:
            return result
        if isinstance(result, types.GeneratorType):  # map, select...: a list, as in llama.cpp
            result = list(result)
        elif isinstance(result, Markup):  # no autoescaping: Markup would escape what it meets
            result = str(result)
        return check_result(result, f"the {name} filter")

    if pass_arg is not None:
        wrapper.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    return wrapper


# ----------------------------------------------------------------------------- environment


class _GenerationTag(Extension):
    """``{% generation %}...{% endgeneration %}`` (transformers' assistant masks): the body."""

    tags = {"generation"}  # noqa: RUF012 - jinja2 declares it an instance attribute

    def parse(self, parser: Parser) -> list[nodes.Node]:
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


class _GuardedCodeGenerator(CodeGenerator):
    """Routes every ``for`` iterable and every ``~`` concatenation through the guards.

    Both become filter calls, so that constant folding at compile time uses them too.
    """

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        for loop in node.find_all(nodes.For):
            if not (isinstance(loop.iter, nodes.Filter) and loop.iter.name == _LOOP_GUARD):
                loop.iter = nodes.Filter(loop.iter, _LOOP_GUARD, [], [], None, None)
                loop.iter.set_lineno(loop.lineno)
        _replace_concat(node)
        super().visit_Template(node, frame)


def _replace_concat(node: nodes.Node) -> None:
    for field, value in node.iter_fields():
        if isinstance(value, nodes.Concat):
            joined = nodes.Filter(nodes.List(value.nodes), _CONCAT, [], [], None, None)
            joined.set_lineno(value.lineno)
            setattr(node, field, joined)
            _replace_concat(joined)
        elif isinstance(value, nodes.Node):
            _replace_concat(value)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, nodes.Concat):
                    item = value[i] = nodes.Filter(
                        nodes.List(item.nodes), _CONCAT, [], [], None, None
                    )
                if isinstance(item, nodes.Node):
                    _replace_concat(item)


def _concat(parts: Iterable[Any]) -> str:
    """``a ~ b``: converts each part to a string, checking the sizes first."""
    state = current_state()
    parts = tuple(parts)
    has_text = any(isinstance(part, str) for part in parts)
    texts = []
    total = 0
    for part in parts:
        if state.tracking:
            mark(part)
        check_value(part, "the ~ operator")
        # as llama.cpp: None or an undefined value joined to a string is empty
        text = "" if has_text and _is_null(part) else str(part)
        total += len(text)
        state.check_size(total, "the ~ operator")
        texts.append(text)
    return "".join(texts)


def _finalize(value: Any) -> Any:
    """Runs on every ``{{ ... }}`` value before it is written."""
    state = active_state()
    if state is not None and state.tracking:
        mark(value)
    check_value(value, "a printed value")
    return value


class TemplateEnvironment(ImmutableSandboxedEnvironment):
    """The sandboxed jinja2 environment of chat templates (see the module docstring)."""

    code_generator_class = _GuardedCodeGenerator
    intercepted_binops = frozenset({"+", "*", "%", "**"})

    def __init__(self) -> None:
        super().__init__(
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=[loopcontrols, _GenerationTag],
            autoescape=False,
            finalize=_finalize,
            undefined=ChainableUndefined,
            cache_size=0,
        )
        for name in ("lipsum", "cycler", "joiner"):
            self.globals.pop(name, None)
        self.globals["range"] = _guarded_range
        self.globals["raise_exception"] = _raise_exception
        self.globals["strftime_now"] = _strftime_now
        self.filters = {name: _wrap_filter(name, f) for name, f in FILTERS.items()}
        self.filters["safe"] = _wrap_filter("safe", _safe)
        self.filters["tojson"] = _tojson
        self.filters[_LOOP_GUARD] = _loop_guard
        self.filters[_CONCAT] = _concat
        self.tests = {
            name: _wrap_filter(name, cast(Callable[..., Any], f), is_test=True)
            for name, f in TESTS.items()
        }

    # --- attribute access: HF semantics, unsafe access raises, usage recorded while tracking

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, list) and attr in _MUTABLE_LIST_METHODS:
            return True  # the render works on copies; llama.cpp allows these two as well
        return super().is_safe_attribute(obj, attr, value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )

    def getattr(self, obj: Any, attribute: str) -> Any:
        value = _private_name(self, obj, attribute)
        if value is not _NOT_PRIVATE:
            return value
        value = super().getattr(obj, attribute)
        if _is_tracking():
            mark(obj, attribute)
            mark(obj, "object_access")
            mark(value)
        return value

    def getitem(self, obj: Any, argument: Any) -> Any:
        value = _private_name(self, obj, argument)
        if value is not _NOT_PRIVATE:
            return value
        value = super().getitem(obj, argument)
        if _is_tracking():
            is_index = isinstance(argument, (int, bool))
            mark(obj, "array_access" if is_index else "object_access")
            mark(value)
        return value

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt: str = value.__self__

        @functools.wraps(wrapper)
        def guarded(*args: Any, **kwargs: Any) -> str:
            check_format_string(fmt)
            return check_result(str(wrapper(*args, **kwargs)), "str.format()")

        return guarded

    # --- calls and operators: counted and size-checked

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        state = current_state()
        state.step()
        if state.tracking:
            for arg in (*args, *kwargs.values()):
                mark(arg)
        source = getattr(obj, "__self__", None)
        is_str_method = isinstance(obj, types.BuiltinMethodType) and isinstance(source, str)
        if is_str_method:
            check_str_method(obj, args, kwargs)
        result = super().call(context, obj, *args, **kwargs)
        if is_str_method and isinstance(source, str):  # a split keeps each piece's data marks
            result = rebalance_call(obj.__name__, source, args, kwargs, result)
        return check_result(result, "a call's result")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        state = current_state()
        if state.tracking:
            mark(left)
            mark(right)
        if operator == "*":
            check_multiply(state, left, right)
        elif operator == "**":
            check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            check_printf(left)
        elif operator == "+" and (_is_null(left) or _is_null(right)):
            # as llama.cpp: a string plus None or an undefined value is the string
            if isinstance(left, str) and not isinstance(right, str):
                return left
            if isinstance(right, str) and not isinstance(left, str):
                return right
        result = self.binop_table[operator](left, right)
        return check_result(result, f"the {operator} operator")

    def concat(self, parts: list[str]) -> str:  # type: ignore[override]
        """Joins the buffered output of macros, ``set`` and ``call`` blocks, checked first."""
        current_state().check_size(sum(map(len, parts)), "a block's output")
        return "".join(parts)


_NOT_PRIVATE = object()


def _private_name(env: TemplateEnvironment, obj: Any, name: Any) -> Any:
    """Looks up a name starting with "_", or returns ``_NOT_PRIVATE`` for any other name.

    Such a name is only ever a key of a mapping (undefined when missing) or a link in a chain
    of undefined values; as an attribute of anything else, or as a ``__dunder__`` name of an
    undefined value, it is refused.
    """
    if not (isinstance(name, str) and name.startswith("_")):
        return _NOT_PRIVATE
    if isinstance(obj, Mapping):
        return obj[name] if name in obj else env.undefined(obj=obj, name=name)
    if isinstance(obj, Undefined) and not name.startswith("__"):
        return obj
    raise SecurityError(f"access to attribute {name!r} of {type(obj).__name__!r} object is unsafe")


def _is_null(value: Any) -> bool:
    return value is None or isinstance(value, Undefined)
