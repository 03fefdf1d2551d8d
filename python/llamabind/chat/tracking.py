"""Values that record what a template does with them (capability detection).

llama.cpp finds what a template supports by rendering probe conversations and looking at the
usage statistics its engine keeps on every value (``value_t::stats_t``): whether the value was
read, and which operations touched it (``is string``, iteration, indexing, filters, methods).
These subclasses of dict, list and str carry the same record; the sandbox's hooks fill it while
a render runs with ``tracking`` on. The ``_lb_stats`` attribute starts with ``_``, so the
template cannot reach it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["Stats", "TrackedDict", "TrackedList", "TrackedStr", "mark", "stats", "track"]


class Stats:
    """What a template did with one value (llama.cpp's ``value_t::stats_t``)."""

    __slots__ = ("ops", "used")

    def __init__(self) -> None:
        self.used = False
        self.ops: set[str] = set()


class TrackedDict(dict[Any, Any]):
    """A dict whose use by a template is recorded."""

    __slots__ = ("_lb_stats",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lb_stats = Stats()


class TrackedList(list[Any]):
    """A list whose use by a template is recorded."""

    __slots__ = ("_lb_stats",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._lb_stats = Stats()


class TrackedStr(str):
    """A string whose use by a template is recorded. Iterating it fails, as in llama.cpp."""

    _lb_stats: Stats  # str subclasses cannot have __slots__

    def __new__(cls, text: str) -> TrackedStr:  # noqa: PYI034 - Self needs Python 3.11
        self = super().__new__(cls, text)
        self._lb_stats = Stats()
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


def stats(value: Any) -> Stats:
    """The usage record of a tracked value (an empty one for anything else)."""
    return value._lb_stats if isinstance(value, _TRACKED) else Stats()


def mark(value: Any, op: str | None = None, deep: bool = False) -> None:
    """Records that the template used ``value`` (with operation ``op``; ``deep``: and all it
    contains). Values that are not tracked are ignored."""
    if isinstance(value, _TRACKED):
        value._lb_stats.used = True
        if op is not None:
            value._lb_stats.ops.add(op)
    if deep:
        if isinstance(value, Mapping):
            for item in value.values():
                mark(item, deep=True)
        elif isinstance(value, list):
            for item in list.__iter__(value):
                mark(item, deep=True)
