"""Chat messages, their content parts, and the OpenAI-shaped results of requests.

The definitions live in :mod:`llamabind.messages` (roles, content parts, messages) and
:mod:`llamabind.results` (chunks, completions, usage, token scores, rendered prompts); this
module gathers them under one import path. Nothing here needs a model or compiled code.
"""

from __future__ import annotations

from llamabind.messages import (
    LlamaAudioContent,
    LlamaChatMessage,
    LlamaChatRole,
    LlamaContentPart,
    LlamaImageContent,
    LlamaTextContent,
    LlamaThinkingContent,
    LlamaToolCallContent,
    LlamaToolResultContent,
    to_messages,
)
from llamabind.results import (
    FinishReason,
    LlamaChatTemplateResult,
    LlamaChunkChoice,
    LlamaChunkDelta,
    LlamaChunkFunction,
    LlamaChunkToolCall,
    LlamaCompletion,
    LlamaCompletionAccumulator,
    LlamaCompletionChunk,
    LlamaGeneratedLogprob,
    LlamaNextTokenScores,
    LlamaTokenLogprob,
    LlamaUsage,
)

__all__ = [
    "FinishReason",
    "LlamaAudioContent",
    "LlamaChatMessage",
    "LlamaChatRole",
    "LlamaChatTemplateResult",
    "LlamaChunkChoice",
    "LlamaChunkDelta",
    "LlamaChunkFunction",
    "LlamaChunkToolCall",
    "LlamaCompletion",
    "LlamaCompletionAccumulator",
    "LlamaCompletionChunk",
    "LlamaContentPart",
    "LlamaImageContent",
    "LlamaGeneratedLogprob",
    "LlamaNextTokenScores",
    "LlamaTextContent",
    "LlamaThinkingContent",
    "LlamaTokenLogprob",
    "LlamaToolCallContent",
    "LlamaToolResultContent",
    "LlamaUsage",
    "to_messages",
]
