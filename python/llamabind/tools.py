"""Tools the model may call: a name, a JSON schema of the arguments, and a Python handler.

``ToolDefinition.from_function`` derives the schema from a function's type hints and its
Google-style docstring, so a plain typed function becomes a tool.
"""

from __future__ import annotations

import enum
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

from llamabind.errors import ToolHandlerError

ToolChoice = Literal["auto", "none", "required"] | Mapping[str, Any] | str


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """A function the model may call.

    Args:
        name: The function name the model writes.
        description: What it does (the model reads this).
        parameters: JSON schema of the arguments (an object schema).
        handler: Called with the arguments as keyword arguments by ``send_with_tools``;
            None for tools the caller handles itself.
    """

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    handler: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", self.name):
            raise ValueError(
                f"ToolDefinition.name must be 1-64 letters, digits, _ . -; got {self.name!r}"
            )
        if (
            not isinstance(self.parameters, Mapping)
            or self.parameters.get("type", "object") != "object"
        ):
            raise ValueError(f"ToolDefinition.parameters of {self.name!r} must be an object schema")

    def to_openai(self) -> dict[str, Any]:
        """OpenAI's tool shape: ``{"type": "function", "function": {...}}``."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }

    @classmethod
    def from_openai(cls, tool: Mapping[str, Any] | ToolDefinition) -> ToolDefinition:
        """A tool from OpenAI's shape (or a ToolDefinition, returned as is)."""
        if isinstance(tool, ToolDefinition):
            return tool
        if callable(tool) and not isinstance(tool, Mapping):
            return cls.from_function(tool)
        if not isinstance(tool, Mapping):
            raise TypeError(f"a tool must be a ToolDefinition, a function or a dict, got {tool!r}")
        function = tool.get("function", tool)
        if "name" not in function:
            raise ValueError(f"tool without a function name: {dict(tool)!r}")
        return cls(
            function["name"],
            function.get("description", ""),
            function.get("parameters") or {"type": "object", "properties": {}},
        )

    @classmethod
    def from_function(
        cls, function: Callable[..., Any], name: str | None = None, description: str | None = None
    ) -> ToolDefinition:
        """A tool whose schema comes from ``function``'s type hints and docstring.

        Parameters without a default are required. ``Args:`` entries of a Google-style
        docstring become parameter descriptions; its first paragraph the tool's description.
        """
        hints = typing.get_type_hints(function)
        doc = inspect.getdoc(function) or ""
        arg_docs = _docstring_args(doc)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for param in inspect.signature(function).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            schema = _schema_of(hints.get(param.name, str))
            if param.name in arg_docs:
                schema["description"] = arg_docs[param.name]
            properties[param.name] = schema
            if param.default is inspect.Parameter.empty:
                required.append(param.name)
        parameters: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            parameters["required"] = required
        summary = doc.split("\n\n", 1)[0].strip() if doc else ""
        return cls(
            name or function.__name__,
            description if description is not None else summary,
            parameters,
            function,
        )

    def invoke(self, arguments: Mapping[str, Any]) -> Any:
        """Calls the handler with the arguments as keywords."""
        if self.handler is None:
            raise ToolHandlerError(
                f"tool {self.name!r} has no handler: give ToolDefinition a "
                "handler, or handle its calls yourself",
                tool_name=self.name,
            )
        return self.handler(**dict(arguments))


def _docstring_args(doc: str) -> dict[str, str]:
    match = re.search(r"^Args:\n((?:[ \t]+.*\n?)+)", doc, re.MULTILINE)
    if not match:
        return {}
    out: dict[str, str] = {}
    for line in match.group(1).splitlines():
        entry = re.match(r"\s+(\w+)(?:\s*\([^)]*\))?:\s*(.*)", line)
        if entry:
            out[entry.group(1)] = entry.group(2).strip()
    return out


def _schema_of(hint: Any) -> dict[str, Any]:
    origin, args = get_origin(hint), get_args(hint)
    if hint is str:
        return {"type": "string"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is type(None):
        return {"type": "null"}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [member.value for member in hint]}
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        return {"anyOf": [_schema_of(arg) for arg in args]}
    if origin in (list, tuple, set, frozenset, Sequence) or hint in (list, tuple):
        return {"type": "array", "items": _schema_of(args[0])} if args else {"type": "array"}
    if origin in (dict, Mapping) or hint is dict:
        return {"type": "object"}
    return {"type": "string"}


def normalize_tools(tools: Sequence[Any] | None) -> list[ToolDefinition]:
    """ToolDefinitions from ToolDefinition values, typed functions or OpenAI dicts."""
    if tools is None:
        return []
    if isinstance(tools, (str, Mapping)):
        raise TypeError("tools must be a list")
    result = [ToolDefinition.from_openai(tool) for tool in tools]
    names = [tool.name for tool in result]
    if len(set(names)) != len(names):
        raise ValueError(f"tool names must be unique, got {names}")
    return result
