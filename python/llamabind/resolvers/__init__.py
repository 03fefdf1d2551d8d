"""Model resolvers: from a name, path or URI to a local GGUF file.

:func:`resolve_model` is the entry point (``LlamaEngine.load_model`` calls it). Resolvers
implement the :class:`ModelResolver` protocol; :class:`FallbackResolver` is the default. The
management functions list, pull, measure and remove downloaded models. Nothing here imports the
compiled extension, and ``huggingface-hub`` is imported only when an ``hf://`` model is used.
Log records go to the ``llamabind.resolvers`` logger; nothing is printed unless the application
configures logging.
"""

from __future__ import annotations

import logging

from llamabind.resolvers.base import (
    DownloadProgress,
    ModelDownloadError,
    ModelInfo,
    ModelResolver,
    ProgressCallback,
)
from llamabind.resolvers.cache import CachedModelResolver, default_cache_dir, hf_cache_dir
from llamabind.resolvers.download import DownloadOptions
from llamabind.resolvers.fallback import MODELS_PATH_VARIABLE, FallbackResolver, default_chain
from llamabind.resolvers.file import FileModelResolver
from llamabind.resolvers.gguf_info import GGUFInfo, read_gguf_info
from llamabind.resolvers.hf import HFModelResolver, HFReference, parse_hf_reference
from llamabind.resolvers.management import (
    CacheInfo,
    cache_info,
    list_local_models,
    pull_model,
    remove_model,
)
from llamabind.resolvers.package import PackageModelResolver
from llamabind.resolvers.progress import tqdm_progress
from llamabind.resolvers.resolve import get_default_resolver, resolve_model, set_default_resolver
from llamabind.resolvers.url import UrlModelResolver

logging.getLogger("llamabind.resolvers").addHandler(logging.NullHandler())

__all__ = [
    "MODELS_PATH_VARIABLE",
    "CacheInfo",
    "CachedModelResolver",
    "DownloadOptions",
    "DownloadProgress",
    "FallbackResolver",
    "FileModelResolver",
    "GGUFInfo",
    "HFModelResolver",
    "HFReference",
    "ModelDownloadError",
    "ModelInfo",
    "ModelResolver",
    "PackageModelResolver",
    "ProgressCallback",
    "UrlModelResolver",
    "cache_info",
    "default_cache_dir",
    "default_chain",
    "get_default_resolver",
    "hf_cache_dir",
    "list_local_models",
    "parse_hf_reference",
    "pull_model",
    "read_gguf_info",
    "remove_model",
    "resolve_model",
    "set_default_resolver",
    "tqdm_progress",
]
