"""llamabind models for pydantic-ai: chat (``LlamaModel``) and embeddings (``LlamaEmbeddingModel``).

Needs the extra: ``pip install 'llamabind[pydantic-ai]'`` (Python 3.11 or newer).

    from pydantic_ai import Agent
    from llamabind.integrations.pydantic_ai import LlamaModel

    agent = Agent(LlamaModel("SmolLM2-135M-Instruct.Q4_1.gguf"))
    print(agent.run_sync("Say hello.").output)

Models run in this process; a ``LlamaProvider`` loads each file once and shares it between the
model objects that name it. Tools are offered through the model's own chat template and read
back by llama.cpp's parser; native structured output is a JSON-schema grammar; reasoning comes
back as thinking parts; usage is llamabind's own token counts.
"""

from __future__ import annotations

try:
    import pydantic_ai  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "llamabind.integrations.pydantic_ai needs pydantic-ai: "
        "pip install 'llamabind[pydantic-ai]' (or pip install pydantic-ai-slim; "
        "Python 3.11 or newer)"
    ) from exc

from llamabind.integrations.pydantic_ai._embeddings import (
    LlamaEmbeddingModel,
    LlamaEmbeddingSettings,
)
from llamabind.integrations.pydantic_ai._model import (
    LlamaModel,
    LlamaStreamedResponse,
    map_usage,
)
from llamabind.integrations.pydantic_ai._provider import (
    LlamaProvider,
    LoadedModel,
    llamabind_model_profile,
)
from llamabind.integrations.pydantic_ai._settings import LlamaModelSettings

__all__ = [
    "LlamaEmbeddingModel",
    "LlamaEmbeddingSettings",
    "LlamaModel",
    "LlamaModelSettings",
    "LlamaProvider",
    "LlamaStreamedResponse",
    "LoadedModel",
    "llamabind_model_profile",
    "map_usage",
]
