"""The vendored chat templates and a standard set of conversations that the chat tests render
(parity with llama.cpp, data marking, request planning). Importable without the extension."""

from __future__ import annotations

from pathlib import Path

TEMPLATES_DIR = (
    Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "models" / "templates"
)
TEMPLATE_FILES = sorted(TEMPLATES_DIR.glob("*.jinja"))
BOS, EOS = "<s>", "</s>"

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the web.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}, "max_results": {"type": "integer"}},
                "required": ["query"],
            },
        },
    },
]
# nine alphanumeric characters: the tool call ids Mistral's templates insist on
CALL = {
    "id": "a1b2c3d4e",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'},
}
CALL_NESTED = {
    "id": "f5g6h7i8j",
    "type": "function",
    "function": {
        "name": "get_weather",
        "arguments": '{"city": "Zürich", "options": {"days": [1, 2], "hourly": true}}',
    },
}
CALL_SEARCH = {
    "id": "k9l8m7n6o",
    "type": "function",
    "function": {
        "name": "search",
        "arguments": '{"query": "Eiffel tower height", "max_results": 3}',
    },
}
SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
ASK = {"role": "user", "content": "What's the weather in Paris?"}
REASONED = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4", "reasoning_content": "Two plus two is four."},
    {"role": "user", "content": "And 3+3?"},
]

CONVERSATIONS = {
    "system_user": {"messages": [SYSTEM, ASK]},
    "system_only": {"messages": [SYSTEM]},
    "multi_turn": {
        "messages": [
            SYSTEM,
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Tell me a joke."},
        ]
    },
    "no_generation_prompt": {
        "messages": [
            SYSTEM,
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
        ],
        "add_generation_prompt": False,
    },
    "content_parts": {
        "messages": [
            {"role": "developer", "content": "Be terse."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": ""},
                    {"type": "text", "text": "One."},
                    {"type": "text", "text": "Two."},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "Three."}]},
            {"role": "user", "content": '<b>bold</b> & "quotes" — ünïcødé ☁️'},
        ]
    },
    "tools_offered": {"messages": [SYSTEM, ASK], "tools": TOOLS},
    "tool_call": {
        "messages": [ASK, {"role": "assistant", "content": None, "tool_calls": [CALL]}],
        "tools": TOOLS,
        "add_generation_prompt": False,
    },
    "tool_loop": {
        "messages": [
            SYSTEM,
            ASK,
            {"role": "assistant", "content": "Let me check.", "tool_calls": [CALL_NESTED]},
            {
                "role": "tool",
                "tool_call_id": "f5g6h7i8j",
                "name": "get_weather",
                "content": '{"temperature": 18, "sky": "cloudy"}',
            },
            {"role": "assistant", "content": "It is 18 °C and cloudy."},
            {"role": "user", "content": "Thanks!"},
        ],
        "tools": TOOLS,
    },
    "parallel_calls": {
        "messages": [
            ASK,
            {"role": "assistant", "content": None, "tool_calls": [CALL, CALL_SEARCH]},
            {"role": "tool", "tool_call_id": "a1b2c3d4e", "content": "18 C"},
            {"role": "tool", "tool_call_id": "k9l8m7n6o", "content": "330 m"},
        ],
        "tools": TOOLS,
    },
    "thinking_on": {"messages": REASONED, "enable_thinking": True},
    "thinking_off": {"messages": REASONED, "enable_thinking": False},
    "thinking_tool_call": {
        "messages": [
            ASK,
            {
                "role": "assistant",
                "content": "",
                "reasoning_content": "I need the weather.",
                "tool_calls": [CALL],
            },
            {"role": "tool", "tool_call_id": "a1b2c3d4e", "content": "18 C"},
        ],
        "tools": TOOLS,
        "kwargs": {"reasoning_effort": "high", "preserve_reasoning": True},
    },
}
