"""``resolve_model``: one entry point from a name or URI to a local GGUF file.

Three levels of configuration, most specific first: a resolver passed with the request, the
engine's resolver (the engine passes it here), and the process-wide default
(:func:`set_default_resolver`; the open :class:`FallbackResolver` until set). Whichever is
chosen decides alone: paths and URIs never bypass it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from llamabind.errors import ModelNotFoundError
from llamabind.resolvers.base import ModelResolver, check_name
from llamabind.resolvers.fallback import FallbackResolver
from llamabind.resolvers.names import name_form

_default: ModelResolver | None = None
_default_lock = threading.Lock()


def get_default_resolver() -> ModelResolver:
    """The process-wide resolver (the open default :class:`FallbackResolver` unless set)."""
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


def resolve_model(
    name_or_uri: str | os.PathLike[str], resolver: ModelResolver | None = None
) -> Path:
    """Turns a model name, path or URI into a local GGUF file, downloading it if needed.

    The form of the name is checked first (schemes case-insensitively): unsupported schemes
    (``ftp:``, ``data:``, ``smb:``...), network (UNC) paths and ``file://`` URIs of other hosts
    are refused. Then the resolver decides, and it alone: a configured resolver (``resolver``,
    or one set with :func:`set_default_resolver`) is given every name, path and URI and
    refuses what it does not allow. The default :class:`FallbackResolver` is open:

    - ``file:///abs/model.gguf`` and existing paths (absolute, ``~``, relative to the current
      directory): that file.
    - ``https://host/model.gguf`` (optionally ``#sha256=<hex>``): downloaded once into the
      cache by a :class:`UrlModelResolver`.
    - ``hf://org/repo/file.gguf``, ``hf://org/repo:Q4_K_M`` (optionally ``@revision`` after the
      repo): through :class:`HFModelResolver`.
    - ``package:<distribution>[/<file>]``: a model shipped in an installed distribution.
    - Any other name: the fallback chain (:func:`~llamabind.resolvers.default_chain`).

    Args:
        name_or_uri: What to load.
        resolver: The resolver of this request or engine; ``None`` for the default
            (:func:`get_default_resolver`).

    Returns:
        The path of an existing GGUF file (the first part, for a split model).

    Raises:
        ModelNotFoundError: The model was not found; the message lists every location tried.
        ModelDownloadError: A download failed (network, TLS, timeout, checksum, disk full).
        ValueError: An unsupported form, a name the configured resolver refuses (a path
            outside its directory, a URI it does not download), or an invalid reference.
        TypeError: ``name_or_uri`` is not a string or path.
    """
    name = check_name(name_or_uri)
    name_form(name)  # refuses unsupported forms before any resolver sees them
    chosen = resolver if resolver is not None else get_default_resolver()
    result = Path(chosen.resolve(name))
    if not result.is_file():
        raise ModelNotFoundError(
            f"resolver {chosen!r} returned {result} for {name!r}, which is not a file",
            locations=[str(result)],
            name=name,
        )
    return result
