"""The exceptions llamabind raises, defined once for the Python and the native layer.

Every error llamabind raises on its own account derives from :class:`LlamaError`. Errors the
native layer detects are raised as these classes by one translator in ``csrc/``; their
structured fields (numbers, paths) are attributes. Bad argument values raise ``ValueError``
or ``TypeError`` as usual. This module imports nothing compiled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class LlamaError(Exception):
    """Base class of llamabind's errors.

    Each subclass declares its structured fields (numbers, paths) as typed attributes and
    ``__init__`` parameters.

    Args:
        message: What went wrong and, where known, what to do about it.
        **details: Every structured fact about the failure, declared fields included (e.g.
            ``path``, ``n_tokens``, ``n_ctx``), as a dict in ``details``.

    Attributes:
        message: The message.
        details: The structured facts by name.
    """

    message: str
    details: dict[str, Any]

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ModelLoadError(LlamaError):
    """A model file could not be loaded: missing, unreadable, not GGUF, truncated, corrupt.

    Attributes:
        path: The file (model or LoRA adapter), where known.
        cancelled: The progress callback cancelled the load.
        key: The GGUF metadata key that was out of limits, where that was the cause.
    """

    path: str | None
    cancelled: bool
    key: str | None

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        cancelled: bool = False,
        key: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, path=path, cancelled=bool(cancelled), key=key, **details)
        self.path, self.cancelled, self.key = path, bool(cancelled), key


class ModelNotFoundError(LlamaError, FileNotFoundError):
    """No resolver found the model; ``locations`` lists every place searched.

    Also a ``FileNotFoundError`` (so an ``OSError``), for code that handles missing files.

    Attributes:
        locations: Every place searched, in order.
        reasons: Why each location did not have the model (same order), where known.
        name: The model asked for, where known.
    """

    locations: list[str]
    reasons: list[str]
    name: str | None

    def __init__(
        self,
        message: str,
        locations: list[str] | None = None,
        *,
        reasons: list[str] | None = None,
        name: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(
            message,
            locations=list(locations or []),
            reasons=list(reasons or []),
            name=name,
            **details,
        )
        self.locations = list(locations or [])
        self.reasons = list(reasons or [])
        self.name = name


class ModelDownloadError(LlamaError, OSError):
    """A model could not be downloaded: network, TLS, timeout, checksum, disk full, cancelled.

    Also an ``OSError``. No file that looks complete is left behind; a partial download may be
    kept (as ``*.part``) to resume from.

    Attributes:
        url: What was being downloaded.
        reason: ``"http"``, ``"connection"``, ``"timeout"`` (no data, or past the deadline),
            ``"too_slow"`` (below the minimum throughput), ``"tls"``, ``"checksum"``,
            ``"disk_full"``, ``"incomplete"`` (the end could not be verified) or
            ``"cancelled"``.
        status: The HTTP status, for ``reason == "http"``; None otherwise.
        expected_sha256: The checksum asked for, for ``reason == "checksum"``.
        actual_sha256: The checksum of what arrived, for ``reason == "checksum"``.
    """

    url: str
    reason: str
    status: int | None
    expected_sha256: str | None
    actual_sha256: str | None

    def __init__(
        self,
        message: str,
        *,
        url: str,
        reason: str,
        status: int | None = None,
        expected_sha256: str | None = None,
        actual_sha256: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(
            message,
            url=url,
            reason=reason,
            status=status,
            expected_sha256=expected_sha256,
            actual_sha256=actual_sha256,
            **details,
        )
        self.url, self.reason, self.status = url, reason, status
        self.expected_sha256, self.actual_sha256 = expected_sha256, actual_sha256


class ContextError(LlamaError):
    """A context could not be created or used (e.g. a vocab-only model, out of memory)."""


class ContextOverflowError(ContextError):
    """The tokens do not fit in the context window (``n_tokens`` against ``n_ctx``).

    Attributes:
        n_tokens: The tokens that were to be held, where known.
        n_ctx: The context window in tokens, where known.
        code: llama_decode's return code, when a decode found no room (1).
    """

    n_tokens: int | None
    n_ctx: int | None
    code: int | None

    def __init__(
        self,
        message: str,
        *,
        n_tokens: int | None = None,
        n_ctx: int | None = None,
        code: int | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, n_tokens=n_tokens, n_ctx=n_ctx, code=code, **details)
        self.n_tokens, self.n_ctx, self.code = n_tokens, n_ctx, code


class DecodeError(LlamaError):
    """llama.cpp failed to evaluate a batch.

    Attributes:
        code: llama_decode's return code, where known.
    """

    code: int | None

    def __init__(self, message: str, *, code: int | None = None, **details: Any) -> None:
        super().__init__(message, code=code, **details)
        self.code = code


class GrammarError(LlamaError, ValueError):
    """A GBNF grammar or JSON schema could not be parsed or compiled."""


class InvalidTextError(LlamaError, ValueError):
    """Text that is not valid Unicode: it holds lone surrogates (such as ``"\\ud800"``).

    Such a ``str`` has no UTF-8 form, so llama.cpp cannot be given it. It comes from decoding
    bytes with ``errors="surrogateescape"`` or from JSON escapes like ``"\\ud800"``; remove or
    replace the surrogates (``text.encode("utf-8", "replace").decode()``). Also a ``ValueError``.

    Attributes:
        field: What held the text (an argument, a message field), where known.
    """

    field: str | None

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message, field=field, **details)
        self.field = field


def check_text(value: Any, field: str) -> None:
    """Raises InvalidTextError if ``value`` holds a ``str`` with lone surrogates.

    Args:
        value: A ``str``, or JSON-like data (dicts, lists, tuples) whose keys and strings are
            checked, however deep.
        field: What ``value`` is (``"messages"``); the error names the place, as
            ``messages[1].content``.

    Raises:
        InvalidTextError: The first such string found.
    """
    stack: list[tuple[Any, str]] = [(value, field)]
    seen: set[int] = set()  # a container that holds itself is walked once
    while stack:
        item, where = stack.pop()
        if isinstance(item, (Mapping, list, tuple)):
            if id(item) in seen:
                continue
            seen.add(id(item))
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidTextError(
                    f"{where} is not valid Unicode text ({exc}); remove or replace the lone "
                    "surrogates",
                    field=where,
                ) from None
        elif isinstance(item, Mapping):
            for key, child in item.items():
                stack.append((key, f"{where} key"))
                name = f".{key}" if isinstance(key, str) and key.isidentifier() else f"[{key!a}]"
                stack.append((child, where + name))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))


class TemplateError(LlamaError):
    """A chat template failed to render or tried something the sandbox forbids.

    Attributes:
        name: The template's name (``"default"``, ``"tool_use"``, ``"override"``, ...).
        lineno: The template line, where known.
        kind: ``"syntax"``, ``"raised"`` (the template called raise_exception), ``"limit"``,
            ``"security"`` or ``"runtime"``; None from llama.cpp's renderer.
        template_message: What the template's raise_exception said.
    """

    name: str | None
    lineno: int | None
    kind: str | None
    template_message: str | None

    def __init__(
        self,
        message: str,
        *,
        name: str | None = None,
        lineno: int | None = None,
        kind: str | None = None,
        template_message: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(
            message,
            name=name,
            lineno=lineno,
            kind=kind,
            template_message=template_message,
            **details,
        )
        self.name, self.lineno, self.kind = name, lineno, kind
        self.template_message = template_message


class HandleClosedError(LlamaError):
    """A native handle (model, context, sampler, generator, adapter) was used after close().

    Attributes:
        handle: The integer handle of ``LlamaBackend`` that is not open, for that API.
    """

    handle: int | None

    def __init__(self, message: str, *, handle: int | None = None, **details: Any) -> None:
        super().__init__(message, handle=handle, **details)
        self.handle = handle


class StateError(LlamaError):
    """An operation is not allowed in the current state (e.g. a generation is running).

    Attributes:
        path: The state file that could not be written or read, for state I/O.
    """

    path: str | None

    def __init__(self, message: str, *, path: str | None = None, **details: Any) -> None:
        super().__init__(message, path=path, **details)
        self.path = path


class QueueFullError(StateError):
    """Every sequence slot of the engine is busy and its wait queue is full; retry later.

    Attributes:
        n_parallel: Requests the engine runs at once.
        n_queue: Requests that may wait.
    """

    n_parallel: int | None
    n_queue: int | None

    def __init__(
        self,
        message: str,
        *,
        n_parallel: int | None = None,
        n_queue: int | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, n_parallel=n_parallel, n_queue=n_queue, **details)
        self.n_parallel, self.n_queue = n_parallel, n_queue


class StructuredOutputError(LlamaError, ValueError):
    """A structured (JSON) reply did not parse or did not match its schema (e.g. cut short).

    Attributes:
        text: The reply as generated.
        finish_reason: Why generation stopped ("length" when cut short).
    """

    text: str | None
    finish_reason: str | None

    def __init__(
        self,
        message: str,
        *,
        text: str | None = None,
        finish_reason: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, text=text, finish_reason=finish_reason, **details)
        self.text, self.finish_reason = text, finish_reason


class ToolHandlerError(LlamaError, LookupError):
    """A tool call has no function to run: the tool has no handler and none was given.

    Also a ``LookupError``.

    Attributes:
        tool_name: The tool that was called.
    """

    tool_name: str

    def __init__(self, message: str, *, tool_name: str, **details: Any) -> None:
        super().__init__(message, tool_name=tool_name, **details)
        self.tool_name = tool_name


class UnsupportedError(LlamaError):
    """A feature this build or model does not support (e.g. image input without a projector).

    Attributes:
        part: The kind of message content that is not supported (e.g. ``"image"``), where
            that was the cause.
    """

    part: str | None

    def __init__(self, message: str, *, part: str | None = None, **details: Any) -> None:
        super().__init__(message, part=part, **details)
        self.part = part


__all__ = [
    "ContextError",
    "ContextOverflowError",
    "DecodeError",
    "GrammarError",
    "HandleClosedError",
    "InvalidTextError",
    "LlamaError",
    "ModelDownloadError",
    "ModelLoadError",
    "ModelNotFoundError",
    "QueueFullError",
    "StateError",
    "StructuredOutputError",
    "TemplateError",
    "ToolHandlerError",
    "UnsupportedError",
]
