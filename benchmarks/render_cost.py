"""What it costs to make one chat request ready: each renderer alone, and the whole request.

    python benchmarks/render_cost.py                 # a few vendored templates with tool syntax
    python benchmarks/render_cost.py -t Qwen-Qwen3-0.6B.jinja -n 50

The conversation has a system prompt and 20 user turns with two tools offered; every fourth
turn the assistant calls a tool and gets its result (40+ messages). Per template, the median
over ``-n`` repetitions of:

- ``python``: our sandboxed Jinja rendering (``ChatTemplate.render``);
- ``native``: llama.cpp's ``common_chat_templates_apply`` (``ChatTemplates.apply``), which
  renders the prompt and builds the format's grammar and parser;
- ``request``: ``build_chat_request`` as ``LlamaEngine.create`` calls it (a warm per-model
  cache, as on the second and later turns of a conversation).

The vocabulary comes from SmolLM2-135M-Instruct loaded ``vocab_only`` (no weights).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "vendor" / "llama.cpp" / "models" / "templates"
sys.path.insert(0, str(REPO / "tests"))

from llamabind import _native  # noqa: E402
from llamabind.chat import ChatTemplate  # noqa: E402
from llamabind.chat.request import build_chat_request  # noqa: E402
from llamabind.options import ChatOptions  # noqa: E402
from model_files import ensure_test_models  # noqa: E402

DEFAULT_TEMPLATES = [
    "Qwen-Qwen3-0.6B.jinja",
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja",
    "meta-llama-Llama-3.1-8B-Instruct.jinja",
    "mistralai-Mistral-Nemo-Instruct-2407.jinja",
]
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather in a city.",
        "parameters": {"type": "object", "required": ["city"], "properties": {
            "city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}}}}},
    {"type": "function", "function": {
        "name": "search", "description": "Search the web.",
        "parameters": {"type": "object", "required": ["query"], "properties": {
            "query": {"type": "string"}, "max_results": {"type": "integer"}}}}},
]


def conversation(n_turns: int = 20) -> list[dict]:
    """A system prompt and ``n_turns`` user turns; every fourth one goes through a tool call."""
    messages: list[dict] = [{"role": "system", "content": "You are a helpful assistant."}]
    for turn in range(n_turns):
        messages.append({"role": "user", "content": f"Question {turn}: what is the weather in "
                                                    f"city number {turn}, and why?"})
        if turn % 4 == 3:
            call_id = f"call{turn:05d}"
            messages.append({"role": "assistant", "content": None, "tool_calls": [{
                "id": call_id, "type": "function", "function": {
                    "name": "get_weather", "arguments": json.dumps({"city": f"City {turn}"})}}]})
            messages.append({"role": "tool", "tool_call_id": call_id,
                             "content": json.dumps({"temperature": turn, "sky": "clear"})})
        if turn < n_turns - 1:
            messages.append({"role": "assistant", "content": f"Answer {turn}: sunny, because "
                                                             "the pressure is high."})
    return messages


def median_ms(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up (compilation, capability probes, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(model: _native.Model, name: str, repeats: int) -> dict[str, float]:
    source = (TEMPLATES / name).read_text()
    messages = conversation()
    options = ChatOptions(tools=TOOLS)
    python = ChatTemplate.from_model(model, source=source)
    native = _native.ChatTemplates(model, template=source)
    messages_json = json.dumps(messages)
    tools_json = json.dumps(TOOLS)
    cache: dict = {}

    def request() -> object:
        return build_chat_request(model, cache, copy.deepcopy(messages), options,
                                  template_override=source)

    return {
        "python_ms": median_ms(lambda: python.render(messages, tools=TOOLS), repeats),
        "native_ms": median_ms(lambda: native.apply(messages_json, tools_json=tools_json),
                               repeats),
        "request_ms": median_ms(request, repeats),
        "prompt_chars": len(python.render(messages, tools=TOOLS)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-t", "--template", action="append", help="vendored template file name")
    parser.add_argument("-n", "--repeats", type=int, default=20)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    model = _native.Model(str(ensure_test_models()["smollm2"]), vocab_only=True)
    print(f"{'template':52} {'python ms':>10} {'native ms':>10} {'request ms':>11} {'chars':>7}")
    for name in args.template or DEFAULT_TEMPLATES:
        row = measure(model, name, args.repeats)
        print(f"{name:52} {row['python_ms']:10.2f} {row['native_ms']:10.2f} "
              f"{row['request_ms']:11.2f} {row['prompt_chars']:7d}")


if __name__ == "__main__":
    main()
