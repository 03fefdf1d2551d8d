"""llamabind: run local GGUF language models from Python, on a nanobind binding of llama.cpp."""

from llamabind import _native

__version__ = "0.1.0"
LLAMA_CPP_VERSION: str = _native.llama_cpp_version()

__all__ = ["LLAMA_CPP_VERSION", "__version__"]
