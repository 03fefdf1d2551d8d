"""llamabind: run local GGUF language models from Python, on a nanobind binding of llama.cpp.

The high-level API is ``LlamaEngine`` (and ``AsyncLlamaEngine``) with ``ChatSession``; the
seed's low-level API is ``LlamaBackend``. The native handles (``Model``, ``Context``,
``Sampler``, ``Generator``, ``LoraAdapter``) live in :mod:`llamabind._native`; errors in
:mod:`llamabind.errors`.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from llamabind.errors import (
    ContextError,
    ContextOverflowError,
    DecodeError,
    GrammarError,
    HandleClosedError,
    InvalidTextError,
    LlamaError,
    ModelDownloadError,
    ModelLoadError,
    ModelNotFoundError,
    QueueFullError,
    StateError,
    StructuredOutputError,
    TemplateError,
    ToolHandlerError,
    UnsupportedError,
)
from llamabind.options import ChatOptions
from llamabind.params import GenerationParams, GrammarTrigger, LoraAdapterConfig, ModelParams
from llamabind.resolvers import resolve_model, set_default_resolver
from llamabind.slots import QueueInfo
from llamabind.tools import ToolDefinition
from llamabind.types import (
    LlamaAudioContent,
    LlamaChatMessage,
    LlamaChatRole,
    LlamaChatTemplateResult,
    LlamaCompletion,
    LlamaCompletionChunk,
    LlamaGeneratedLogprob,
    LlamaImageContent,
    LlamaNextTokenScores,
    LlamaTextContent,
    LlamaThinkingContent,
    LlamaTokenLogprob,
    LlamaToolCallContent,
    LlamaToolResultContent,
    LlamaUsage,
)

if TYPE_CHECKING:
    from llamabind._native import (
        Context,
        DeviceInfo,
        Generator,
        LoraAdapter,
        Model,
        Sampler,
        json_schema_to_grammar,
        system_info,
    )
    from llamabind.aio import AsyncLlamaEngine
    from llamabind.async_session import AsyncChatSession
    from llamabind.backend import LlamaBackend, decode_utf8
    from llamabind.engine import LlamaEngine, LlamaEngineCapabilities
    from llamabind.generation import GenerationRun, RequestStream, TokenRun
    from llamabind.logs import set_log_level
    from llamabind.session import ChatSession, LlamaToolLoopResult

    LLAMA_CPP_VERSION: str


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llamabind")
    except PackageNotFoundError:  # a source tree on sys.path, not installed
        return "0+unknown"


__version__ = _version()

logging.getLogger("llamabind.native").addHandler(logging.NullHandler())

# Names that need the compiled extension, imported on first use: errors, params, types, chat,
# resolvers and tools import without it (no build needed to test or use them).
_LAZY = {
    "Context": "llamabind._native",
    "DeviceInfo": "llamabind._native",
    "Generator": "llamabind._native",
    "LoraAdapter": "llamabind._native",
    "Model": "llamabind._native",
    "Sampler": "llamabind._native",
    "json_schema_to_grammar": "llamabind._native",
    "system_info": "llamabind._native",
    "AsyncLlamaEngine": "llamabind.aio",
    "AsyncChatSession": "llamabind.async_session",
    "LlamaBackend": "llamabind.backend",
    "decode_utf8": "llamabind.backend",
    "LlamaEngine": "llamabind.engine",
    "LlamaEngineCapabilities": "llamabind.engine",
    "GenerationRun": "llamabind.generation",
    "RequestStream": "llamabind.generation",
    "TokenRun": "llamabind.generation",
    "set_log_level": "llamabind.logs",
    "ChatSession": "llamabind.session",
    "LlamaToolLoopResult": "llamabind.session",
}


def __getattr__(name: str) -> Any:
    """Imports a name that needs the compiled extension when it is first used."""
    if name == "LLAMA_CPP_VERSION":
        value: Any = importlib.import_module("llamabind._native").llama_cpp_version()
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'llamabind' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "LLAMA_CPP_VERSION",
    "AsyncChatSession",
    "AsyncLlamaEngine",
    "ChatOptions",
    "ChatSession",
    "Context",
    "ContextError",
    "ContextOverflowError",
    "DecodeError",
    "DeviceInfo",
    "GenerationParams",
    "GenerationRun",
    "Generator",
    "GrammarError",
    "GrammarTrigger",
    "HandleClosedError",
    "InvalidTextError",
    "LlamaAudioContent",
    "LlamaBackend",
    "LlamaChatMessage",
    "LlamaChatRole",
    "LlamaChatTemplateResult",
    "LlamaCompletion",
    "LlamaCompletionChunk",
    "LlamaEngine",
    "LlamaEngineCapabilities",
    "LlamaError",
    "LlamaImageContent",
    "LlamaGeneratedLogprob",
    "LlamaNextTokenScores",
    "LlamaTextContent",
    "LlamaThinkingContent",
    "LlamaTokenLogprob",
    "LlamaToolCallContent",
    "LlamaToolLoopResult",
    "LlamaToolResultContent",
    "LlamaUsage",
    "LoraAdapter",
    "LoraAdapterConfig",
    "Model",
    "ModelDownloadError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelParams",
    "QueueFullError",
    "QueueInfo",
    "RequestStream",
    "Sampler",
    "StateError",
    "StructuredOutputError",
    "TemplateError",
    "TokenRun",  # alias of GenerationRun (its earlier name)
    "ToolDefinition",
    "ToolHandlerError",
    "UnsupportedError",
    "__version__",
    "decode_utf8",
    "json_schema_to_grammar",
    "resolve_model",
    "set_default_resolver",
    "set_log_level",
    "system_info",
]
