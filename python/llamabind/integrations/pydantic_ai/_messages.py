"""pydantic-ai messages and tools → the OpenAI-shaped messages and options the engine takes.

Requests reach the model after ``Model.prepare_messages`` (the agent runs it), so retry
feedback, mid-conversation system prompts and tool-returned files already arrive as plain
system, user and tool-return parts. Every part type is matched; one that cannot be rendered
raises instead of being dropped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, assert_never

from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import (
    AudioUrl,
    BinaryContent,
    CachePoint,
    CompactionPart,
    DocumentUrl,
    FilePart,
    ImageUrl,
    InstructionPart,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    NativeToolCallPart,
    NativeToolReturnPart,
    SpeechPart,
    SystemPromptPart,
    TextContent,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UploadedFile,
    UserPromptPart,
    VideoUrl,
)
from pydantic_ai.models import ModelRequestParameters

# A helper of pydantic-ai's own adapters (legacy retry parts, compaction summaries); the extra
# pins pydantic-ai-slim below 3, where such helpers may move.
from pydantic_ai.models import _sendable_request_parts as sendable_request_parts
from pydantic_ai.tools import ToolDefinition

from llamabind.errors import UnsupportedError

OpenAIMessage = dict[str, Any]


def map_messages(
    messages: Sequence[ModelMessage], instructions: Sequence[InstructionPart] | None
) -> list[OpenAIMessage]:
    """The conversation as OpenAI chat messages, with one leading system message.

    The leading system prompts and the request's instructions are joined into one system
    message, since many chat templates render a system message only in first place.

    Raises:
        UnsupportedError: image, audio, video or document input (no multimodal projector).
        UserError: a part that ``Model.prepare_messages`` should have translated first.
    """
    mapped: list[OpenAIMessage] = []
    for message in messages:
        match message:
            case ModelRequest():
                mapped.extend(_request_messages(message))
            case ModelResponse():
                assistant = _response_message(message)
                if assistant is not None:
                    mapped.append(assistant)
            case _:
                assert_never(message)
    n_system = next((i for i, m in enumerate(mapped) if m["role"] != "system"), len(mapped))
    system_texts = [m["content"] for m in mapped[:n_system]]
    system_texts += [part.content for part in instructions or ()]
    system_texts = [text for text in system_texts if text]
    head = [{"role": "system", "content": "\n\n".join(system_texts)}] if system_texts else []
    return head + mapped[n_system:]


def _request_messages(message: ModelRequest) -> Iterator[OpenAIMessage]:
    for part in sendable_request_parts(message.parts):
        match part:
            case SystemPromptPart():
                yield {"role": "system", "content": part.content}
            case UserPromptPart():
                yield {"role": "user", "content": _user_text(part)}
            case ToolReturnPart():
                text, files = part.model_response_str_and_user_content()
                yield {
                    "role": "tool",
                    "tool_call_id": part.tool_call_id,
                    "name": part.tool_name,
                    "content": text,
                }
                if files:
                    yield {"role": "user", "content": _user_text(UserPromptPart(files))}
            case _:
                raise UserError(
                    f"`{type(part).__name__}` cannot be rendered by a llamabind model: call "
                    "`model.prepare_messages(messages)` first (an Agent does this for you)"
                )


def _user_text(part: UserPromptPart) -> str:
    if isinstance(part.content, str):
        return part.content
    texts: list[str] = []
    for item in part.content:
        match item:
            case str():
                texts.append(item)
            case TextContent():
                texts.append(item.content)
            case CachePoint():
                pass  # the KV cache reuses every shared prefix; there is nothing to mark
            case (
                ImageUrl()
                | AudioUrl()
                | DocumentUrl()
                | VideoUrl()
                | BinaryContent()
                | UploadedFile()
            ):
                raise UnsupportedError(
                    f"{type(item).__name__} input needs a multimodal projector, which llamabind "
                    "does not load yet; send text only",
                    part=type(item).__name__,
                )
            case _:
                assert_never(item)
    return "\n\n".join(texts)


def _response_message(message: ModelResponse) -> OpenAIMessage | None:
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in message.parts:
        match part:
            case TextPart():
                texts.append(part.content)
            case ThinkingPart():
                thoughts.append(part.content)
            case ToolCallPart():
                calls.append(
                    {
                        "id": part.tool_call_id,
                        "type": "function",
                        "function": {"name": part.tool_name, "arguments": part.args_as_json_str()},
                    }
                )
            case NativeToolCallPart() | NativeToolReturnPart() | FilePart() | CompactionPart():
                pass  # another provider's server-side items: nothing a local model can read
            case SpeechPart():
                raise UserError(
                    "`SpeechPart` cannot be sent to a llamabind model: call "
                    "`model.prepare_messages(messages)` first"
                )
            case _:
                assert_never(part)
    if not (texts or thoughts or calls):
        return None
    assistant: OpenAIMessage = {"role": "assistant", "content": "\n\n".join(texts)}
    if thoughts:
        assistant["reasoning_content"] = "\n\n".join(t for t in thoughts if t)
    if calls:
        assistant["content"] = assistant["content"] or None
        assistant["tool_calls"] = calls
    return assistant


def map_tool(tool: ToolDefinition) -> dict[str, Any]:
    """A pydantic-ai tool definition in OpenAI's tool shape."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description or "",
            "parameters": tool.parameters_json_schema,
        },
    }


def response_format(parameters: ModelRequestParameters, has_tools: bool) -> dict[str, Any] | None:
    """The engine's ``response_format`` for native (and prompted) structured output.

    Native output becomes a JSON-schema grammar, so the reply always parses and matches the
    schema. Prompted output gets the same grammar when no tool may be called.
    """
    output = parameters.output_object
    if output is None:
        return None
    if parameters.output_mode == "native" or (
        parameters.output_mode == "prompted" and not has_tools
    ):
        return {
            "type": "json_schema",
            "json_schema": {
                "name": output.name or "output",
                "schema": output.json_schema,
                "strict": True,
            },
        }
    return None
