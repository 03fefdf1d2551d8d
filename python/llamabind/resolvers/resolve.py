"""``resolve_model``: one entry point from a name or URI to a local GGUF file.

Three levels of configuration, most specific first: a resolver passed with the request, the
engine's resolver (the engine passes it here), and the process-wide default
(:func:`set_default_resolver`; a :class:`FallbackResolver` until set).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from llamabind.errors import ModelNotFoundError
from llamabind.resolvers.base import ModelResolver, check_name, not_found
from llamabind.resolvers.fallback import HINT, FallbackResolver
from llamabind.resolvers.hf import HFModelResolver
from llamabind.resolvers.package import (
    PACKAGE_PREFIX,
    PackageModelResolver,
    shared_package_resolver,
)
from llamabind.resolvers.url import UrlModelResolver

_default: ModelResolver | None = None
_default_lock = threading.Lock()
_Kind = TypeVar("_Kind")


def get_default_resolver() -> ModelResolver:
    """The process-wide resolver for plain names (a :class:`FallbackResolver` unless set)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = FallbackResolver()
        return _default


def set_default_resolver(resolver: ModelResolver | None) -> None:
    """Sets the process-wide resolver used when neither the request nor the engine gives one.

    Args:
        resolver: Any :class:`ModelResolver`; ``None`` restores the default
            :class:`FallbackResolver`.

    Raises:
        TypeError: ``resolver`` has no ``resolve``/``list_models`` methods.
    """
    global _default
    if resolver is not None and not isinstance(resolver, ModelResolver):
        raise TypeError(f"a resolver needs resolve() and list_models(), got {resolver!r}")
    with _default_lock:
        _default = resolver


def _member(resolver: ModelResolver | None, kind: type[_Kind]) -> _Kind | None:
    """``resolver`` if it is a ``kind``, or the first ``kind`` in a fallback chain."""
    if isinstance(resolver, kind):
        return resolver
    if isinstance(resolver, FallbackResolver) and resolver.resolvers is not None:
        return next((r for r in resolver.resolvers if isinstance(r, kind)), None)
    return None


def _is_path_like(name: str) -> bool:
    path = Path(name)
    return (
        path.is_absolute() or bool(path.drive) or name.startswith(("~", "./", "../", ".\\", "..\\"))
    )


def _file_uri_path(uri: str) -> Path:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"file:// URIs of other hosts are not supported: {uri!r}")
    return Path(url2pathname(unquote(parts.path)) if os.name == "nt" else unquote(parts.path))


def resolve_model(
    name_or_uri: str | os.PathLike[str], resolver: ModelResolver | None = None
) -> Path:
    """Turns a model name, path or URI into a local GGUF file, downloading it if needed.

    - ``file:///abs/model.gguf`` and existing paths: that file.
    - ``https://host/model.gguf`` (optionally ``#sha256=<hex>``): downloaded once into the
      cache by a :class:`UrlModelResolver` (``resolver``'s own, if it is or contains one).
    - ``hf://org/repo/file.gguf``, ``hf://org/repo:Q4_K_M`` (optionally ``@revision`` after the
      repo): through :class:`HFModelResolver` (``resolver``'s own, if any).
    - ``package:<distribution>[/<file>]``: a model shipped in an installed distribution.
    - Any other name: ``resolver.resolve(name)``, or the default resolver's.

    Args:
        name_or_uri: What to load.
        resolver: The resolver of this request or engine; ``None`` for the default
            (:func:`get_default_resolver`).

    Returns:
        The path of an existing GGUF file (the first part, for a split model).

    Raises:
        ModelNotFoundError: The model was not found; the message lists every location tried.
        ModelDownloadError: A download failed (network, TLS, timeout, checksum, disk full).
        ValueError: An unsupported URI scheme or an invalid reference.
        TypeError: ``name_or_uri`` is not a string or path.
    """
    if isinstance(name_or_uri, os.PathLike):
        path = Path(name_or_uri)
        if path.is_file():
            return path.absolute()
        raise not_found(str(path), [(str(path.absolute()), "no such file")], HINT)
    name = check_name(name_or_uri)
    scheme = name.split("://", 1)[0].lower() if "://" in name else ""
    if scheme == "file":
        path = _file_uri_path(name)
        if path.is_file():
            return path
        raise not_found(name, [(str(path), "no such file")], "check the path in the file:// URI")
    if scheme in ("http", "https"):
        return (_member(resolver, UrlModelResolver) or UrlModelResolver()).resolve(name)
    if scheme == "hf":
        return (_member(resolver, HFModelResolver) or HFModelResolver()).resolve(name)
    if scheme:
        raise ValueError(
            f"unsupported model URI scheme {scheme!r} in {name!r}: use a path, "
            "file://, http(s)://, hf:// or package:"
        )
    if name.startswith(PACKAGE_PREFIX):
        return (_member(resolver, PackageModelResolver) or shared_package_resolver()).resolve(name)
    path = Path(name).expanduser()
    if path.is_file():
        return path.absolute()
    if _is_path_like(name):
        raise not_found(name, [(str(path.absolute()), "no such file")], HINT)
    chosen = resolver if resolver is not None else get_default_resolver()
    result = Path(chosen.resolve(name))
    if not result.is_file():
        raise ModelNotFoundError(
            f"resolver {chosen!r} returned {result} for {name!r}, which is not a file",
            locations=[str(result)],
        )
    return result
