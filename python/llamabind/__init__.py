"""llamabind: run local GGUF language models from Python, on a nanobind binding of llama.cpp.

The native handles (``Model``, ``Context``, ``Sampler``, ``Generator``, ``LoraAdapter``) live
in :mod:`llamabind._native`; errors in :mod:`llamabind.errors`.
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
from llamabind.errors import (
    ContextError,
    ContextOverflowError,
    DecodeError,
    GrammarError,
    HandleClosedError,
    LlamaError,
    ModelLoadError,
    ModelNotFoundError,
    StateError,
    TemplateError,
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
    "json_schema_to_grammar",
    "set_log_level",
    "system_info",
]
