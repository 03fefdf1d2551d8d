"""The budget of one render of an untrusted chat template, and the size checks that enforce it.

Every render has :class:`RenderLimits`: loop iterations and calls are counted, a wall-clock
deadline is checked at each of them, and every string or list the template builds (``*``,
``+``, ``~``, ``%``, ``str.format``, padding methods, ``join``, ``replace``, ``center``,
``indent``, ``tojson``, buffered macro and ``set`` blocks, the output itself) is checked
against a size limit, *before* it is allocated wherever the size can be known in advance.
Integers may not grow past 4096 bits and ``range()`` past 100,000 items. A render that goes
past a limit raises :class:`LimitExceeded`, which ``ChatTemplate`` turns into TemplateError.
"""

from __future__ import annotations

import re
import string
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from jinja2.exceptions import SecurityError

__all__ = ["LimitExceeded", "RenderLimits", "RenderState", "render_state"]

_MAX_INT_BITS = 4096
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")
_FORMAT_NUMBER = re.compile(r"\d+")
_FORMATTER = string.Formatter()
_V = TypeVar("_V")


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


class LimitExceeded(SecurityError):
    """A render went past one of its :class:`RenderLimits`."""


class RenderState:
    """The budget and the options of the render in progress (one per render, per thread)."""

    __slots__ = ("deadline", "limits", "now", "steps", "tracking")

    def __init__(
        self, limits: RenderLimits, now: datetime, tracking: bool, deadline: float | None = None
    ) -> None:
        self.limits = limits
        self.steps = 0
        self.deadline = deadline if deadline is not None else time.monotonic() + limits.max_seconds
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


_state: ContextVar[RenderState | None] = ContextVar("llamabind_render_state", default=None)


class render_state:
    """Installs the budget of one render for the current thread or task.

    Args:
        limits: The limits of this render.
        now: The time ``strftime_now`` formats.
        tracking: Record what the template does with tracked values (capability detection).
        deadline: A ``time.monotonic()`` deadline shared with other renders (default: this
            render's own ``limits.max_seconds`` from now).
    """

    def __init__(
        self,
        limits: RenderLimits,
        now: datetime,
        tracking: bool = False,
        deadline: float | None = None,
    ) -> None:
        self._state = RenderState(limits, now, tracking, deadline)
        self._token: Any = None

    def __enter__(self) -> RenderState:
        self._token = _state.set(self._state)
        return self._state

    def __exit__(self, *exc: object) -> None:
        _state.reset(self._token)


def active_state() -> RenderState | None:
    """The state of the render in progress in this thread or task, if any."""
    return _state.get()


def current_state() -> RenderState:
    """The state of the render in progress, or a fresh one (for constant folding at compile
    time, where only the size limits matter)."""
    state = _state.get()
    if state is None:
        state = RenderState(RenderLimits(), datetime.now(), False)
    return state


# ----------------------------------------------------------------------------- size checks


def estimate_chars(value: Any, limit: int) -> int:
    """A lower bound of ``len(str(value))``, walked only until it passes ``limit``."""
    total = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            total += str.__len__(item) + 2
        elif isinstance(item, Mapping) and depth < 64:
            total += 2 + 4 * len(item)
            stack.extend((v, depth + 1) for v in item.values())
            stack.extend((k, depth + 1) for k in item)
        elif isinstance(item, (list, tuple)) and depth < 64:
            total += 2 + 2 * len(item)
            stack.extend((v, depth + 1) for v in item)
        else:
            total += 4
        if total > limit:
            break
    return total


def check_value(value: Any, what: str) -> None:
    """Fails if ``value`` (a string, or a container walked up to the limit) is too large."""
    state = current_state()
    limit = state.limits.max_output_chars
    if isinstance(value, str):
        state.check_size(str.__len__(value), what)  # str.__len__: no usage mark
    elif isinstance(value, (list, tuple, Mapping)):
        state.check_size(estimate_chars(value, limit), what)


def check_result(value: _V, what: str) -> _V:
    """Fails if ``value``, a string or list just built, is over the size limit; else returns it."""
    if isinstance(value, str):
        current_state().check_size(str.__len__(value), what)
    elif isinstance(value, list):
        current_state().check_size(len(value), what)
    return value


def check_printf(fmt: str) -> None:
    """Rejects ``%``-format widths and precisions that would build huge strings."""
    state = current_state()
    for match in _PRINTF_SPEC.finditer(fmt):
        for number in match.groups():
            if number == "*":
                raise SecurityError("'*' widths are not allowed in % formats")
            if number is not None:
                state.check_size(int(number), "a % format width")


def check_format_string(fmt: str) -> None:
    """Rejects ``str.format`` specs with nested fields or huge widths and precisions."""
    state = current_state()
    for _, field, spec, _ in _FORMATTER.parse(fmt):
        if field is None or not spec:
            continue
        if "{" in spec:
            raise SecurityError("nested fields in str.format specs are not allowed")
        for number in _FORMAT_NUMBER.findall(spec):
            state.check_size(int(number) if len(number) < 12 else 1 << 62, "a str.format width")


def check_str_method(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Pre-checks the str methods whose output can be much larger than their input."""
    text: str = method.__self__
    name = method.__name__
    state = current_state()
    if name in ("ljust", "rjust", "center", "zfill") and args and isinstance(args[0], int):
        state.check_size(args[0], f"str.{name}()")
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tabsize, int):
            state.check_size(len(text) + text.count("\t") * max(tabsize, 0), "str.expandtabs()")
    elif name == "replace" and len(args) >= 2:
        check_replace(text, args[0], args[1])
    elif name == "join" and args:
        items = args[0]
        if isinstance(items, (list, tuple)):
            total = estimate_chars(items, state.limits.max_output_chars)
            state.check_size(total + len(text) * len(items), "str.join()")


def check_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        n_hits = text.count(old) if old else len(text) + 1
        size = len(text) + n_hits * (len(new) - len(old))
        current_state().check_size(size, "replace()")


def _pre_center(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> None:
    if isinstance(width, int):
        current_state().check_size(width, "center()")


def _pre_indent(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> None:
    text = str(value) if not isinstance(value, str) else value
    size = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    current_state().check_size(len(text) + (text.count("\n") + 1) * max(size, 0), "indent()")


def _pre_format(value: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(value, str):
        check_printf(value)


def _pre_join(value: Any, d: Any = "", *args: Any, **kwargs: Any) -> None:
    if isinstance(value, (list, tuple)):
        state = current_state()
        total = estimate_chars(value, state.limits.max_output_chars)
        state.check_size(total + len(str(d)) * len(value), "join()")


def _pre_replace(value: Any, old: Any = "", new: Any = "", *args: Any, **kwargs: Any) -> None:
    check_replace(value, old, new)


def _pre_value(value: Any, *args: Any, **kwargs: Any) -> None:
    check_value(value, "a filter's input")


FILTER_PRE_CHECKS: dict[str, Callable[..., None]] = {
    "center": _pre_center,
    "indent": _pre_indent,
    "format": _pre_format,
    "join": _pre_join,
    "replace": _pre_replace,
    "string": _pre_value,
    "pprint": _pre_value,
    "list": _pre_value,
}


def check_multiply(state: RenderState, left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > _MAX_INT_BITS:
            raise LimitExceeded(f"integers are limited to {_MAX_INT_BITS} bits")
        return
    for seq, count in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(count, int):
            state.check_size(len(seq) * max(count, 0), "the * operator")


def check_power(base: Any, exponent: Any) -> None:
    is_int = isinstance(base, int) and isinstance(exponent, int)
    if is_int and abs(base) > 1 and exponent > 0 and base.bit_length() * exponent > _MAX_INT_BITS:
        raise LimitExceeded(f"integers are limited to {_MAX_INT_BITS} bits")
