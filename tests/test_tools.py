"""ToolDefinition: schemas from type hints and docstrings, OpenAI shapes."""

from __future__ import annotations

import enum
from typing import Literal

import pytest
from llamabind.errors import ToolHandlerError
from llamabind.tools import ToolDefinition, normalize_tools


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


def get_weather(city: str, unit: Unit = Unit.C, days: int = 1, hourly: bool = False,
                tags: list[str] | None = None, mode: Literal["fast", "exact"] = "fast") -> dict:
    """Gets the weather forecast.

    Longer explanation that is not part of the summary.

    Args:
        city: The city name, e.g. "Paris".
        unit: Temperature unit.
        days (int): How many days ahead.
    """
    return {"city": city, "unit": unit, "days": days}


def test_schema_from_type_hints_and_docstring():
    tool = ToolDefinition.from_function(get_weather)
    assert tool.name == "get_weather" and tool.description == "Gets the weather forecast."
    props = tool.parameters["properties"]
    assert props["city"] == {"type": "string", "description": 'The city name, e.g. "Paris".'}
    assert props["unit"]["enum"] == ["celsius", "fahrenheit"]
    assert props["days"] == {"type": "integer", "description": "How many days ahead."}
    assert props["hourly"] == {"type": "boolean"}
    assert props["tags"] == {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]}
    assert props["mode"] == {"enum": ["fast", "exact"]}
    assert tool.parameters["required"] == ["city"]
    assert tool.invoke({"city": "Oslo", "days": 2})["days"] == 2
    wire = tool.to_openai()
    assert wire["type"] == "function" and wire["function"]["name"] == "get_weather"


def test_normalize_accepts_definitions_functions_and_dicts():
    tools = normalize_tools([get_weather, {"type": "function", "function": {"name": "search",
                             "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}])
    assert [t.name for t in tools] == ["get_weather", "search"]
    assert tools[1].handler is None
    with pytest.raises(ToolHandlerError, match="has no handler") as caught:
        tools[1].invoke({})
    assert caught.value.tool_name == "search" and isinstance(caught.value, LookupError)
    with pytest.raises(ValueError, match="unique"):
        normalize_tools([get_weather, get_weather])
    with pytest.raises(ValueError, match="name"):
        ToolDefinition("bad name!")
    with pytest.raises(ValueError, match="object schema"):
        ToolDefinition("f", parameters={"type": "string"})
    with pytest.raises(TypeError):
        normalize_tools("get_weather")
