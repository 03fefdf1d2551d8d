"""llamabind: run local GGUF language models from Python, on a nanobind binding of llama.cpp.

The high-level API is ``LlamaEngine`` (and ``AsyncLlamaEngine``) with ``ChatSession``; the
seed's low-level API is ``LlamaBackend``. The native handles (``Model``, ``Context``,
``Sampler``, ``Generator``, ``LoraAdapter``) live in :mod:`llamabind._native`; errors in
:mod:`llamabind.errors`.
"""

from __future__ import annotations

import logging

from llamabind import _native
from llamabind._native import (
    Context,
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
from llamabind.engine import LlamaEngine, LlamaEngineCapabilities, TokenRun
from llamabind.errors import (
    ContextError,
    ContextOverflowError,
    DecodeError,
    GrammarError,
    HandleClosedError,
    LlamaError,
    ModelDownloadError,
    ModelLoadError,
    ModelNotFoundError,
    StateError,
    StructuredOutputError,
    TemplateError,
    UnsupportedError,
)
from llamabind.options import ChatOptions
from llamabind.params import GenerationParams, GrammarTrigger, LoraAdapterConfig, ModelParams
from llamabind.resolvers import resolve_model, set_default_resolver
from llamabind.session import ChatSession, LlamaToolLoopResult
from llamabind.tools import ToolDefinition
from llamabind.types import (
    LlamaAudioContent,
    LlamaChatMessage,
    LlamaChatRole,
    LlamaCompletion,
    LlamaCompletionChunk,
    LlamaImageContent,
    LlamaNextTokenScores,
    LlamaTextContent,
    LlamaThinkingContent,
    LlamaToolCallContent,
    LlamaToolResultContent,
    LlamaUsage,
)

__version__ = "0.1.0"
LLAMA_CPP_VERSION: str = _native.llama_cpp_version()

logging.getLogger("llamabind.native").addHandler(logging.NullHandler())


def set_log_level(level: int | str) -> None:
    """Sets how much of llama.cpp's own logging reaches Python's ``logging``.

    Records at or above ``level`` go to the logger ``llamabind.native``; lower ones are dropped
    in C++ before they cost anything. The default is WARNING.

    Args:
        level: A ``logging`` level (``logging.INFO``) or its name (``"INFO"``).
    """
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown logging level: {level!r}")
    _native.set_log_threshold(numeric)
    logging.getLogger("llamabind.native").setLevel(numeric)


__all__ = [
    "LLAMA_CPP_VERSION",
    "AsyncChatSession",
    "AsyncLlamaEngine",
    "ChatOptions",
    "ChatSession",
    "GenerationParams",
    "GrammarTrigger",
    "LlamaAudioContent",
    "LlamaBackend",
    "LlamaChatMessage",
    "LlamaChatRole",
    "LlamaCompletion",
    "LlamaCompletionChunk",
    "LlamaEngine",
    "LlamaEngineCapabilities",
    "LlamaImageContent",
    "LlamaNextTokenScores",
    "LlamaTextContent",
    "LlamaThinkingContent",
    "LlamaToolCallContent",
    "LlamaToolLoopResult",
    "LlamaToolResultContent",
    "LlamaUsage",
    "LoraAdapterConfig",
    "ModelDownloadError",
    "ModelParams",
    "StructuredOutputError",
    "TokenRun",
    "ToolDefinition",
    "UnsupportedError",
    "Context",
    "ContextError",
    "ContextOverflowError",
    "DecodeError",
    "Generator",
    "GrammarError",
    "HandleClosedError",
    "LlamaError",
    "LoraAdapter",
    "Model",
    "ModelLoadError",
    "ModelNotFoundError",
    "Sampler",
    "StateError",
    "TemplateError",
    "__version__",
    "decode_utf8",
    "json_schema_to_grammar",
    "resolve_model",
    "set_default_resolver",
    "set_log_level",
    "system_info",
]
