"""Shared pydantic-ai fixtures: one provider per session, each test model loaded once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

if sys.version_info < (3, 11):  # pydantic-ai needs Python 3.11; the extra is not installed
    collect_ignore_glob = ["test_pydantic_ai_*.py"]
else:
    from llamabind import ModelParams
    from llamabind.integrations.pydantic_ai import LlamaModel, LlamaProvider

GREEDY = {"temperature": 0.0, "max_tokens": 48}
# The GGUF of Gemma 3 270M carries no chat template. Gemma 2's vendored template writes the
# same turn format (<start_of_turn>user / model) and is strict about alternating roles.
GEMMA_TEMPLATE = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "models" / \
    "templates" / "google-gemma-2-2b-it.jinja"


@pytest.fixture(scope="session")
def provider():
    provider = LlamaProvider(params=ModelParams(n_ctx=2048))
    yield provider
    provider.close()


@pytest.fixture(scope="session")
def smol(provider, smollm2_path) -> LlamaModel:
    """SmolLM2-135M-Instruct, greedy."""
    return LlamaModel(smollm2_path, provider=provider, settings=GREEDY)


@pytest.fixture(scope="session")
def gemma(provider, gemma3_path) -> LlamaModel:
    """Gemma 3 270M with a Gemma turn template, greedy."""
    params = ModelParams(n_ctx=2048, chat_template=GEMMA_TEMPLATE.read_text())
    return LlamaModel(gemma3_path, provider=provider, params=params, settings=GREEDY)
