"""The jinja2 sandbox chat templates run in: Hugging Face conventions, limits, usage tracking.

Templates inside GGUF files are untrusted code. They run in a subclass of jinja2's
``ImmutableSandboxedEnvironment``: no attribute starting with ``_`` (so no ``__class__``,
``__globals__``, ``_TemplateReference__context``), no internal attributes of functions,
frames or generators, no mutation of the caller's objects, ``str.format`` through the
sandboxed formatter, no ``include``/``import``/``extends`` (there is no loader), and no
``lipsum``/``cycler``/``joiner`` globals. An unsafe access raises at once (jinja2 alone would
print an empty string for ``{{ ''.__class__ }}``).

On top of that every render has a budget (:class:`RenderLimits`): loop iterations and calls
are counted, a wall-clock deadline is checked at each of them, and every string or list the
template builds (``*``, ``+``, ``~``, ``%``, ``str.format``, padding methods, ``join``,
``replace``, ``center``, ``indent``, ``tojson``, buffered macro and ``set`` blocks, the output
itself) is checked against a size limit *before* it is allocated where the size can be known
in advance. Integers may not grow past 4096 bits.

Conventions of ``transformers``' ``apply_chat_template``: ``trim_blocks``, ``lstrip_blocks``,
loop controls, ``{% generation %}`` blocks (rendered as their body), ``raise_exception``,
``strftime_now`` and a ``tojson`` that does not escape HTML and takes ``ensure_ascii``,
``indent``, ``separators`` and ``sort_keys``. As llama.cpp's template engine does, lists the
template itself builds may be changed with ``append`` and ``pop`` (Kimi K2's templates need
it), and ``tojson`` writes an undefined value as ``null``.

This module imports nothing compiled.
"""

from __future__ import annotations

import functools
import json
import re
import string
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.ext import Extension, loopcontrols
from jinja2.filters import FILTERS
from jinja2.parser import Parser
from jinja2.runtime import ChainableUndefined, Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.tests import TESTS
from jinja2.utils import _PassArg
from markupsafe import Markup

__all__ = ["LimitExceeded", "RenderLimits", "TemplateEnvironment", "TemplateRaised", "render_state"]

_MAX_INT_BITS = 4096
_LOOP_GUARD = "__llamabind_loop_guard__"
_MUTABLE_LIST_METHODS = frozenset({"append", "pop"})
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")
_FORMAT_NUMBER = re.compile(r"\d+")
_FORMATTER = string.Formatter()


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """How much one render of an untrusted template may do before it fails with TemplateError.

    Args:
        max_output_chars: The most characters of the rendered prompt, and the most characters
            or items of any one string or list the template builds while rendering. The default,
            16 Mi (16,777,216), is several times more text than any context window holds.
        max_steps: The most loop iterations plus calls (macros, methods, functions) of one
            render. Real templates need a few per message; the default allows 2,000,000.
        max_seconds: Wall-clock limit of one render, checked at every step (default 10 s;
            real templates render in milliseconds).
    """

    max_output_chars: int = 1 << 24
    max_steps: int = 2_000_000
    max_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.max_output_chars < 1 or self.max_steps < 1 or not self.max_seconds > 0:
            raise ValueError(f"RenderLimits must be positive, got {self}")


class TemplateRaised(Exception):
    """Raised by ``raise_exception(message)`` inside a template."""


class LimitExceeded(SecurityError):
    """A render went past one of its :class:`RenderLimits`."""


class _Stats:
    """What a template did with one value (llama.cpp's ``value_t::stats_t``)."""

    __slots__ = ("used", "ops")

    def __init__(self) -> None:
        self.used = False
        self.ops: set[str] = set()


class _RenderState:
    """The budget and the options of the render in progress (one per render, per thread)."""

    __slots__ = ("limits", "steps", "deadline", "now", "tracking")

    def __init__(self, limits: RenderLimits, now: datetime, tracking: bool) -> None:
        self.limits = limits
        self.steps = 0
        self.deadline = time.monotonic() + limits.max_seconds
        self.now = now
        self.tracking = tracking

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise LimitExceeded(
                f"the template ran more than {self.limits.max_steps} loop iterations and calls"
            )
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"the template ran longer than {self.limits.max_seconds} s")

    def check_size(self, n_chars: int, what: str) -> None:
        if n_chars > self.limits.max_output_chars:
            raise LimitExceeded(
                f"{what} would hold {n_chars} characters or items, more than the limit of "
                f"{self.limits.max_output_chars}"
            )


_state: ContextVar[_RenderState | None] = ContextVar("llamabind_render_state", default=None)


class render_state:  # noqa: N801 - used as a context manager, named like one
    """Installs the budget of one render for the current thread or task.

    Args:
        limits: The limits of this render.
        now: The time ``strftime_now`` formats.
        tracking: Record what the template does with tracked values (capability detection).
    """

    def __init__(self, limits: RenderLimits, now: datetime, tracking: bool = False) -> None:
        self._state = _RenderState(limits, now, tracking)
        self._token: Any = None

    def __enter__(self) -> _RenderState:
        self._token = _state.set(self._state)
        return self._state

    def __exit__(self, *exc: object) -> None:
        _state.reset(self._token)


def _current() -> _RenderState:
    state = _state.get()
    if state is None:  # constant folding while compiling: only the size limits matter
        state = _RenderState(RenderLimits(), datetime.now(), False)
    return state


# ----------------------------------------------------------------------------- usage tracking
# During capability detection the inputs are these subclasses; each carries a _Stats that the
# hooks below fill the way llama.cpp's runtime fills its value stats. The "_" prefix keeps the
# stats out of the template's reach.


class TrackedDict(dict):
    """A dict whose use by a template is recorded."""

    __slots__ = ("_lb_stats",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lb_stats = _Stats()


class TrackedList(list):
    """A list whose use by a template is recorded."""

    __slots__ = ("_lb_stats",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._lb_stats = _Stats()


class TrackedStr(str):
    """A string whose use by a template is recorded. Iterating it fails, as in llama.cpp."""

    _lb_stats: _Stats  # str subclasses cannot have __slots__

    def __new__(cls, text: str) -> TrackedStr:
        self = super().__new__(cls, text)
        self._lb_stats = _Stats()
        return self

    def _use(self) -> str:
        self._lb_stats.used = True
        return str.__str__(self)

    def __str__(self) -> str:
        return self._use()

    def __eq__(self, other: object) -> bool:
        return self._use() == other

    def __ne__(self, other: object) -> bool:
        return self._use() != other

    __hash__ = str.__hash__

    def __len__(self) -> int:
        return len(self._use())

    def __contains__(self, item: object) -> bool:
        return item in self._use()  # type: ignore[operator]

    def __add__(self, other: Any) -> Any:
        return self._use() + other

    def __radd__(self, other: Any) -> Any:
        return other + self._use()

    def __getitem__(self, key: Any) -> str:
        if isinstance(key, int):
            self._lb_stats.ops.add("array_access")
        return self._use()[key]

    def __iter__(self) -> Iterator[str]:
        self._lb_stats.ops.add("array_access")
        raise TypeError("llama.cpp's template engine cannot iterate over a string")


_TRACKED = (TrackedDict, TrackedList, TrackedStr)


def track(value: Any) -> Any:
    """A copy of JSON-like ``value`` made of tracked containers and strings."""
    if isinstance(value, _TRACKED):
        return value
    if isinstance(value, Mapping):
        return TrackedDict((k, track(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return TrackedList(track(v) for v in value)
    if isinstance(value, str):
        return TrackedStr(value)
    return value


def stats(value: Any) -> _Stats:
    """The usage record of a tracked value (an empty one for anything else)."""
    return value._lb_stats if isinstance(value, _TRACKED) else _Stats()


def _mark(value: Any, op: str | None = None, deep: bool = False) -> None:
    if isinstance(value, _TRACKED):
        value._lb_stats.used = True
        if op is not None:
            value._lb_stats.ops.add(op)
    if deep:
        if isinstance(value, Mapping):
            for item in dict.values(value):  # type: ignore[arg-type]
                _mark(item, deep=True)
        elif isinstance(value, list):
            for item in list.__iter__(value):
                _mark(item, deep=True)


def _tracking() -> bool:
    state = _state.get()
    return state is not None and state.tracking


# ----------------------------------------------------------------------------- size checks


def _estimate_chars(value: Any, limit: int) -> int:
    """A lower bound of ``len(str(value))``, walked only until it passes ``limit``."""
    total = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, Mapping) and depth < 64:
            total += 2 + 4 * len(item)
            stack.extend((v, depth + 1) for v in dict.values(item))  # type: ignore[arg-type]
            stack.extend((k, depth + 1) for k in item)
        elif isinstance(item, (list, tuple)) and depth < 64:
            total += 2 + 2 * len(item)
            stack.extend((v, depth + 1) for v in item)
        else:
            total += 4
        if total > limit:
            break
    return total


def _check_value(value: Any, what: str) -> None:
    state = _current()
    limit = state.limits.max_output_chars
    if isinstance(value, str):
        state.check_size(len(value), what)
    elif isinstance(value, (list, tuple, Mapping)):
        state.check_size(_estimate_chars(value, limit), what)


def _check_result(value: Any, what: str) -> Any:
    if isinstance(value, (str, list)):
        _current().check_size(len(value), what)
    return value


def _check_printf(fmt: str) -> None:
    """Rejects ``%``-format widths and precisions that would build huge strings."""
    state = _current()
    for match in _PRINTF_SPEC.finditer(fmt):
        for number in match.groups():
            if number == "*":
                raise SecurityError("'*' widths are not allowed in % formats")
            if number is not None:
                state.check_size(int(number), "a % format width")


def _check_format_string(fmt: str) -> None:
    """Rejects ``str.format`` specs with nested fields or huge widths and precisions."""
    state = _current()
    for _, field, spec, _ in _FORMATTER.parse(fmt):
        if field is None or not spec:
            continue
        if "{" in spec:
            raise SecurityError("nested fields in str.format specs are not allowed")
        for number in _FORMAT_NUMBER.findall(spec):
            state.check_size(int(number) if len(number) < 12 else 1 << 62, "a str.format width")


def _guard_str_method(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Pre-checks the str methods whose output can be much larger than their input."""
    text: str = method.__self__
    name = method.__name__
    state = _current()
    if name in ("ljust", "rjust", "center", "zfill") and args and isinstance(args[0], int):
        state.check_size(args[0], f"str.{name}()")
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tabsize, int):
            state.check_size(len(text) + text.count("\t") * max(tabsize, 0), "str.expandtabs()")
    elif name == "replace" and len(args) >= 2:
        _check_replace(text, args[0], args[1])
    elif name == "join" and args:
        items = args[0]
        if isinstance(items, (list, tuple)):
            total = _estimate_chars(items, state.limits.max_output_chars)
            state.check_size(total + len(text) * len(items), "str.join()")


def _check_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        n_hits = text.count(old) if old else len(text) + 1
        size = len(text) + n_hits * (len(new) - len(old))
        _current().check_size(size, "replace()")


# ----------------------------------------------------------------------------- globals, filters


def _raise_exception(message: Any) -> None:
    raise TemplateRaised(str(message))


def _strftime_now(format: str) -> str:  # noqa: A002 - the name templates use
    if not isinstance(format, str):
        raise TypeError("strftime_now() takes a format string")
    state = _current()
    state.check_size(len(format) * 16, "strftime_now()")  # no directive expands past 16x
    return state.now.strftime(format)


def _json_default(value: Any) -> Any:
    if isinstance(value, Undefined):
        return None
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: tuple[str, str] | list[str] | None = None,
    sort_keys: bool = False,
) -> str:
    """``json.dumps`` exactly as transformers' chat templates call it (no HTML escaping)."""
    _check_value(value, "tojson()")
    if _tracking():
        _mark(value, "tojson", deep=True)
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
    return _check_result(text, "tojson()")


def _guarded_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > 100_000:
        raise LimitExceeded("range() is limited to 100000 items")
    return rng


def _loop_guard(iterable: Any) -> Iterator[Any]:
    """Wraps the iterable of every ``for`` loop: one step per iteration."""
    state = _current()
    if state.tracking:
        _mark(iterable, "array_access")
    if isinstance(iterable, Undefined):
        iterable = []
    for item in iterable:
        state.step()
        yield item


def _safe(value: Any) -> Any:
    """``safe``: nothing to do without autoescaping (jinja2's Markup would escape later text)."""
    return str(value) if not isinstance(value, Undefined) else value


def _pre_center(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> None:
    if isinstance(width, int):
        _current().check_size(width, "center()")


def _pre_indent(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> None:
    text = str(value) if not isinstance(value, str) else value
    size = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    _current().check_size(len(text) + (text.count("\n") + 1) * max(size, 0), "indent()")


def _pre_format(value: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(value, str):
        _check_printf(value)


def _pre_join(value: Any, d: Any = "", *args: Any, **kwargs: Any) -> None:
    if isinstance(value, (list, tuple)):
        state = _current()
        total = _estimate_chars(value, state.limits.max_output_chars)
        state.check_size(total + len(str(d)) * len(value), "join()")


def _pre_replace(value: Any, old: Any = "", new: Any = "", *args: Any, **kwargs: Any) -> None:
    _check_replace(value, old, new)


def _pre_value(value: Any, *args: Any, **kwargs: Any) -> None:
    _check_value(value, "a filter's input")


_PRE_CHECKS: dict[str, Callable[..., None]] = {
    "center": _pre_center,
    "indent": _pre_indent,
    "format": _pre_format,
    "join": _pre_join,
    "replace": _pre_replace,
    "string": _pre_value,
    "pprint": _pre_value,
    "list": _pre_value,
}


def _wrap_filter(name: str, func: Callable[..., Any], is_test: bool = False) -> Callable[..., Any]:
    """A filter or test that records its use, pre-checks sizes and post-checks its result."""
    pass_arg = _PassArg.from_obj(func)
    n_lead = 0 if pass_arg is None else 1
    pre = _PRE_CHECKS.get(name) if not is_test else None
    op = ("test_is_" if is_test else "") + name
    deep = not is_test and name == "string"

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        state = _state.get()
        value = args[n_lead] if len(args) > n_lead else None
        if state is not None and state.tracking:
            _mark(value, op, deep=deep)
        if pre is not None:
            pre(*args[n_lead:], **kwargs)
        result = func(*args, **kwargs)
        if is_test:
            return result
        if isinstance(result, types.GeneratorType):  # map, select...: a list, as in llama.cpp
            result = list(result)
        elif isinstance(result, Markup):  # no autoescaping: Markup would escape what it meets
            result = str(result)
        return _check_result(result, f"the {name} filter")

    if pass_arg is not None:
        wrapper.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    return wrapper


# ----------------------------------------------------------------------------- environment


class _GenerationTag(Extension):
    """``{% generation %}...{% endgeneration %}`` (transformers' assistant masks): the body."""

    tags = {"generation"}

    def parse(self, parser: Parser) -> list[nodes.Node]:
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


class _GuardedCodeGenerator(CodeGenerator):
    """Routes every ``for`` iterable and every ``~`` concatenation through the guards."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:  # noqa: N802
        for loop in node.find_all(nodes.For):
            if not (isinstance(loop.iter, nodes.Filter) and loop.iter.name == _LOOP_GUARD):
                loop.iter = nodes.Filter(loop.iter, _LOOP_GUARD, [], [], None, None)
                loop.iter.set_lineno(loop.lineno)
        super().visit_Template(node, frame)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:  # noqa: N802
        self.write("environment.guarded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _finalize(value: Any) -> Any:
    """Runs on every ``{{ ... }}`` value before it is written."""
    state = _state.get()
    if state is not None and state.tracking:
        _mark(value)
    _check_value(value, "a printed value")
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
        self.tests = {name: _wrap_filter(name, f, is_test=True) for name, f in TESTS.items()}

    # --- attribute access: HF semantics, unsafe access raises, usage recorded while tracking

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, list) and attr in _MUTABLE_LIST_METHODS:
            return not attr.startswith("_")
        return super().is_safe_attribute(obj, attr, value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )

    def getattr(self, obj: Any, attribute: str) -> Any:
        value = super().getattr(obj, attribute)
        if _tracking():
            _mark(obj, attribute)
            _mark(obj, "object_access")
            _mark(value)
        return value

    def getitem(self, obj: Any, argument: Any) -> Any:
        value = super().getitem(obj, argument)
        if _tracking():
            is_index = isinstance(argument, (int, bool))
            _mark(obj, "array_access" if is_index else "object_access")
            _mark(value)
        return value

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt: str = value.__self__

        @functools.wraps(wrapper)
        def guarded(*args: Any, **kwargs: Any) -> str:
            _check_format_string(fmt)
            return _check_result(wrapper(*args, **kwargs), "str.format()")

        return guarded

    # --- calls and operators: counted and size-checked

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        state = _current()
        state.step()
        if state.tracking:
            for arg in (*args, *kwargs.values()):
                _mark(arg)
        if isinstance(__obj, types.BuiltinMethodType) and isinstance(
            getattr(__obj, "__self__", None), str
        ):
            _guard_str_method(__obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        return _check_result(result, "a call's result")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        state = _current()
        if state.tracking:
            _mark(left)
            _mark(right)
        if operator == "*":
            _check_multiply(state, left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            _check_printf(left)
        elif operator == "+" and (_is_null(left) or _is_null(right)):
            # as llama.cpp: a string plus None or an undefined value is the string
            if isinstance(left, str) and not isinstance(right, str):
                return left
            if isinstance(right, str) and not isinstance(left, str):
                return right
        result = self.binop_table[operator](left, right)
        return _check_result(result, f"the {operator} operator")

    def guarded_concat(self, parts: Iterable[Any]) -> str:
        """``a ~ b``: converts each part to a string, checking the sizes first."""
        state = _current()
        parts = tuple(parts)
        has_text = any(isinstance(part, str) for part in parts)
        texts = []
        total = 0
        for part in parts:
            if state.tracking:
                _mark(part)
            _check_value(part, "the ~ operator")
            # as llama.cpp: None or an undefined value joined to a string is empty
            text = "" if has_text and _is_null(part) else str(part)
            total += len(text)
            state.check_size(total, "the ~ operator")
            texts.append(text)
        return "".join(texts)

    def concat(self, parts: list[str]) -> str:  # type: ignore[override]
        """Joins the buffered output of macros, ``set`` and ``call`` blocks, checked first."""
        _current().check_size(sum(map(len, parts)), "a block's output")
        return "".join(parts)


def _is_null(value: Any) -> bool:
    return value is None or isinstance(value, Undefined)


def _check_multiply(state: _RenderState, left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > _MAX_INT_BITS:
            raise LimitExceeded(f"integers are limited to {_MAX_INT_BITS} bits")
        return
    for seq, count in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(count, int):
            state.check_size(len(seq) * max(count, 0), "the * operator")


def _check_power(base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1 and exponent > 0:
        if base.bit_length() * exponent > _MAX_INT_BITS:
            raise LimitExceeded(f"integers are limited to {_MAX_INT_BITS} bits")
