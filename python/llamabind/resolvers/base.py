"""The resolver protocol and the values resolvers share: model facts, download progress, errors."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from llamabind.errors import ModelDownloadError as ModelDownloadError
from llamabind.errors import ModelLoadError as ModelLoadError
from llamabind.errors import ModelNotFoundError as ModelNotFoundError
from llamabind.resolvers.gguf_info import read_gguf_info, split_parts

GGUF_SUFFIX = ".gguf"


@runtime_checkable
class ModelResolver(Protocol):
    """Turns a model name into a local GGUF file. Implement it to plug in a model source.

    A resolver raises :class:`~llamabind.errors.ModelNotFoundError` (with ``locations``) when
    it does not have the model, so that a :class:`FallbackResolver` can try the next one, and
    ``ValueError`` for a name it refuses. Once configured (per request, per engine or as the
    default), a resolver is handed every name, path and URI, so what it accepts is all that is
    ever opened or downloaded through it.
    """

    def resolve(self, name: str) -> Path:
        """Returns the local path of the model ``name``, fetching it first if need be.

        Args:
            name: A model name in the resolver's own terms (file name, stem, URL, repo file).

        Returns:
            An existing ``.gguf`` file (the first part, for a split model).

        Raises:
            ModelNotFoundError: The resolver does not have the model.
            ValueError: The resolver refuses the name (e.g. a path outside what it allows).
        """
        ...

    def list_models(self) -> Iterator[ModelInfo]:
        """Yields the models this resolver can resolve, with their facts.

        Yields:
            One :class:`ModelInfo` per model (a split model counts once).
        """
        ...


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A model a resolver knows, with facts read from its GGUF header (weights are not loaded).

    GGUF facts are ``None`` when the file is not local (a remote listing) or its header could
    not be read; ``problem`` then says why.

    Attributes:
        name: A short name: for local files the path relative to where they were found,
            without ``.gguf`` (the listing resolver resolves it); for hub files
            ``org/repo/file.gguf``. ``uri`` or ``path`` always resolve with ``resolve_model``.
        source: Which resolver listed it: ``"file"``, ``"url"``, ``"hf"``, ``"package"``.
        path: The local file (first part of a split model), ``None`` if not downloaded.
        uri: Where it comes from (``https://...``, ``hf://org/repo/file.gguf``), if remote.
        size_bytes: Size of the file(s), all parts of a split model together.
        modified: Last modification time of the local file (UTC).
        architecture: ``general.architecture`` (``"llama"``, ``"gemma3"``).
        n_params: Parameter count (tensor elements, as llama.cpp counts them).
        quantization: File type from the header (``"Q4_K_M"``).
        n_ctx_train: Context length the model was trained with.
        has_chat_template: Whether the file carries a chat template.
        n_split: How many files the model is split into.
        problem: Why the file is not usable (truncated, not GGUF), ``None`` when it is.
    """

    name: str
    source: str
    path: Path | None = None
    uri: str | None = None
    size_bytes: int | None = None
    modified: datetime | None = None
    architecture: str | None = None
    n_params: int | None = None
    quantization: str | None = None
    n_ctx_train: int | None = None
    has_chat_template: bool | None = None
    n_split: int = 1
    problem: str | None = None

    @classmethod
    def from_file(cls, path: Path, *, name: str, source: str, uri: str | None = None) -> ModelInfo:
        """Builds the facts of a local GGUF file from its header (all parts of a split model).

        Args:
            path: The file, or the first part of a split model.
            name: The name to report.
            source: The resolver kind to report.
            uri: Where the file came from, if remote.

        Returns:
            The facts; an unreadable or truncated file gives ``problem`` instead of raising.
        """
        parts = split_parts(path)
        existing = [part for part in parts if part.is_file()]
        stat = path.stat()
        facts: dict[str, Any] = {
            "size_bytes": sum(part.stat().st_size for part in existing),
            "modified": datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc),
            "n_split": len(parts),
        }
        problems = []
        if len(existing) < len(parts):
            problems.append(f"{len(parts) - len(existing)} of {len(parts)} split parts missing")
        try:
            headers = [read_gguf_info(part) for part in existing]
        except ModelLoadError as exc:
            problems.append(exc.message)
        else:
            first = headers[0]
            facts.update(
                architecture=first.architecture,
                n_params=sum(header.n_params for header in headers),
                quantization=first.quantization,
                n_ctx_train=first.n_ctx_train,
                has_chat_template=first.has_chat_template,
            )
            for header in headers:
                size_problem = header.size_problem(header.path.stat().st_size)
                if size_problem is not None:
                    problems.append(f"{header.path.name}: {size_problem}")
        return cls(
            name=name,
            source=source,
            path=path,
            uri=uri,
            problem="; ".join(problems) or None,
            **facts,
        )


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    """One progress report of a download, passed to a progress callback.

    Attributes:
        url: What is being downloaded (an ``https://`` URL or ``hf://org/repo/file.gguf``).
        path: The file it will be saved as, once complete (``None`` where the Hugging Face
            cache decides).
        n_bytes_done: Bytes on disk so far (including any resumed part).
        n_bytes_total: Size of the file, ``None`` when the server does not say.
        status: ``"downloading"``, ``"verifying"`` (checksum) or ``"done"``.
    """

    url: str
    path: Path | None
    n_bytes_done: int
    n_bytes_total: int | None
    status: Literal["downloading", "verifying", "done"] = "downloading"

    @property
    def fraction(self) -> float | None:
        """Share done, 0.0-1.0, ``None`` when the total is unknown."""
        if not self.n_bytes_total:
            return None
        return min(1.0, self.n_bytes_done / self.n_bytes_total)


ProgressCallback = Callable[[DownloadProgress], "bool | None"]
"""Called with each :class:`DownloadProgress`; returning ``False`` cancels the download (the
partial file is kept, so the next attempt resumes)."""


def not_found(name: str, tried: list[tuple[str, str]], hint: str) -> ModelNotFoundError:
    """Builds a ModelNotFoundError whose message lists every location tried and why it failed.

    Args:
        name: The model asked for.
        tried: ``(location, why it did not have the model)`` pairs, in search order.
        hint: What the user can do about it.

    Returns:
        The error, with ``locations`` (the places) and ``reasons`` (the whys) as attributes.
    """
    lines = "\n".join(f"  - {location}: {why}" for location, why in tried)
    return ModelNotFoundError(
        f"model {name!r} not found; searched:\n{lines}\nTo fix: {hint}",
        locations=[location for location, _ in tried],
        reasons=[why for _, why in tried],
        name=name,
    )


def with_gguf_suffix(name: str) -> list[str]:
    """The file names to try for ``name``: itself if it ends in ``.gguf``, else ``name.gguf``
    first and then ``name`` as given."""
    if name.lower().endswith(GGUF_SUFFIX):
        return [name]
    return [name + GGUF_SUFFIX, name]


def check_name(name: object) -> str:
    """Validates a model name argument.

    Args:
        name: What the caller passed.

    Returns:
        The name as ``str`` (path-like objects are converted).

    Raises:
        TypeError: Not a string or path.
        ValueError: Empty, or contains a NUL character.
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if isinstance(name, bytes) or not isinstance(name, str):
        raise TypeError(f"a model name must be a str or os.PathLike, not {type(name).__name__}")
    if not name.strip():
        raise ValueError("a model name must not be empty")
    if "\x00" in name:
        raise ValueError(f"a model name must not contain NUL characters: {name!r}")
    return name
