"""Managing downloaded models: list them with their GGUF facts, pull, measure, remove."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from llamabind.resolvers.base import ModelInfo, ProgressCallback, check_name, not_found
from llamabind.resolvers.cache import (
    CachedModelResolver,
    default_cache_dir,
    hf_cache_dir,
    scan_hf_cache,
)
from llamabind.resolvers.download import DownloadOptions
from llamabind.resolvers.gguf_info import split_parts
from llamabind.resolvers.hf import HFModelResolver, parse_hf_reference, select_model_files
from llamabind.resolvers.lock import FileLock
from llamabind.resolvers.url import UrlModelResolver, cache_path_for, split_checksum

logger = logging.getLogger("llamabind.resolvers")

PathArg = str | os.PathLike[str] | None


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """Where downloaded models are and how much space they take.

    Attributes:
        path: llamabind's cache (URL downloads, joined package chunks).
        size_bytes: Everything in it, partial downloads included.
        n_models: GGUF models in it (URL downloads and joined package chunks).
        n_bytes_partial: Bytes in interrupted downloads (``*.part``) that a retry would resume.
        hf_path: The Hugging Face cache.
        hf_size_bytes: The GGUF models in it (other files of the hub cache are not counted).
        n_hf_models: GGUF models in it.
    """

    path: Path
    size_bytes: int
    n_models: int
    n_bytes_partial: int
    hf_path: Path
    hf_size_bytes: int
    n_hf_models: int


def _dirs(cache_dir: PathArg, hf_cache: PathArg) -> tuple[Path, Path]:
    return (
        Path(cache_dir) if cache_dir is not None else default_cache_dir(),
        Path(hf_cache) if hf_cache is not None else hf_cache_dir(),
    )


def list_local_models(cache_dir: PathArg = None, hf_cache: PathArg = None) -> list[ModelInfo]:
    """Lists the downloaded models with the facts their GGUF headers give.

    Args:
        cache_dir: llamabind's cache; ``None`` for the default.
        hf_cache: The Hugging Face cache; ``None`` for the default.

    Returns:
        llamabind's cached models (``source="url"``, or ``"package"`` for models joined from
        package chunks), then the Hugging Face cache's GGUF models (``source="hf"``). Split
        models appear once; broken files carry a ``problem``.
    """
    return list(CachedModelResolver(*_dirs(cache_dir, hf_cache)).list_models())


def pull_model(
    uri: str,
    *,
    progress: ProgressCallback | None = None,
    sha256: str | None = None,
    cache_dir: PathArg = None,
    hf_cache: PathArg = None,
) -> Path:
    """Downloads a model into its cache (or does nothing if it is already there).

    Args:
        uri: ``https://.../file.gguf`` (into llamabind's cache) or ``hf://org/repo:QUANT`` /
            ``hf://org/repo/file.gguf`` (into the Hugging Face cache).
        progress: Called with each :class:`DownloadProgress`; returning ``False`` cancels.
        sha256: Expected checksum of an ``https://`` download.
        cache_dir: llamabind's cache; ``None`` for the default.
        hf_cache: The Hugging Face cache; ``None`` for the default.

    Returns:
        The local file.

    Raises:
        ModelNotFoundError: No such file at the URL or on the hub.
        ModelDownloadError: The download failed.
        ValueError: ``uri`` is not ``http(s)://`` or ``hf://``; ``sha256`` with ``hf://``.
    """
    uri = check_name(uri)
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme in ("http", "https"):
        resolver = UrlModelResolver(cache_dir=cache_dir, options=DownloadOptions(progress=progress))
        return resolver.resolve(uri, sha256=sha256)
    if scheme == "hf":
        if sha256 is not None:
            raise ValueError(
                "sha256 applies to https:// downloads; hf:// files are identified "
                "by their repository revision (pin one with @<commit>)"
            )
        return HFModelResolver(cache_dir=hf_cache, progress=progress).resolve(uri)
    raise ValueError(f"pull_model takes an https:// or hf:// URI, got {uri!r}")


def cache_info(cache_dir: PathArg = None, hf_cache: PathArg = None) -> CacheInfo:
    """Measures the caches.

    Args:
        cache_dir: llamabind's cache; ``None`` for the default.
        hf_cache: The Hugging Face cache; ``None`` for the default.

    Returns:
        Their locations, sizes and model counts.
    """
    ours, theirs = _dirs(cache_dir, hf_cache)
    files = [path for path in ours.rglob("*") if path.is_file()] if ours.is_dir() else []
    models = list(CachedModelResolver(ours, theirs).list_models())
    hf_models = [info for info in models if info.source == "hf"]
    return CacheInfo(
        path=ours,
        size_bytes=sum(path.stat().st_size for path in files),
        n_models=len(models) - len(hf_models),
        n_bytes_partial=sum(path.stat().st_size for path in files if path.name.endswith(".part")),
        hf_path=theirs,
        hf_size_bytes=sum(info.size_bytes or 0 for info in hf_models),
        n_hf_models=len(hf_models),
    )


def _targets(name: str, ours: Path, theirs: Path) -> list[Path]:
    """The cached model files ``name`` designates."""
    if name.lower().startswith(("http://", "https://")):
        path = cache_path_for(split_checksum(name)[0], ours)
        return [path] if path.exists() or path.with_name(path.name + ".part").exists() else []
    if name.lower().startswith("hf://"):
        reference = parse_hf_reference(name)
        entries = [
            e
            for e in scan_hf_cache(theirs, reference.repo_id)
            if reference.revision in (None, e.commit) or reference.revision in e.refs
        ]
        wanted = (
            [reference.filename]
            if reference.filename
            else select_model_files([e.filename for e in entries], reference.quant, name)[:1]
        )
        return [e.path for e in entries if e.filename in wanted]
    path = Path(name).expanduser()
    if path.exists() or path.is_symlink():
        return [path]
    names = {name, name + ".gguf"}
    return [
        path
        for listed, path in CachedModelResolver(ours, theirs).cached_files()
        if listed in names or path.name in names
    ]


def _remove_hf_entry(entry: Path, theirs: Path) -> list[Path]:
    """Removes a snapshot entry and, if no snapshot links to it any more, its blob."""
    blob = entry.resolve()
    entry.unlink(missing_ok=True)
    repo = next((p for p in entry.parents if p.parent == theirs), None)
    if repo is None or not blob.is_relative_to(repo / "blobs"):
        return [entry]
    still_used = any(
        link.is_symlink() and link.resolve() == blob for link in (repo / "snapshots").rglob("*")
    )
    if not still_used:
        blob.unlink(missing_ok=True)
    return [entry]


def remove_model(name: str, *, cache_dir: PathArg = None, hf_cache: PathArg = None) -> list[Path]:
    """Deletes a downloaded model (every part of a split model, its partial download and its
    sidecar; in the Hugging Face cache, the snapshot entries and blobs no longer used).

    Args:
        name: A URL or ``hf://`` reference it was pulled with, a name from
            :func:`list_local_models`, its file name or stem, or its path in a cache.
        cache_dir: llamabind's cache; ``None`` for the default.
        hf_cache: The Hugging Face cache; ``None`` for the default.

    Returns:
        The model files removed.

    Raises:
        ModelNotFoundError: Nothing cached matches ``name``.
        ValueError: ``name`` is a path outside both caches, or matches several models.
    """
    name = check_name(name)
    ours, theirs = _dirs(cache_dir, hf_cache)
    targets = _targets(name, ours, theirs)
    if not targets:
        raise not_found(
            name,
            [
                (str(ours), "not in llamabind's cache"),
                (str(theirs), "not in the Hugging Face cache"),
            ],
            "list what is cached with llamabind.resolvers.list_local_models()",
        )
    firsts = {split_parts(path)[0] for path in targets}
    if len(firsts) > 1:
        raise ValueError(
            f"{name!r} matches several cached models: "
            + ", ".join(sorted(map(str, firsts)))
            + "; pass one of these paths"
        )
    removed: list[Path] = []
    for path in split_parts(firsts.pop()):
        absolute = path.absolute()
        if absolute.is_relative_to(theirs.absolute()):
            if path.exists() or path.is_symlink():
                removed += _remove_hf_entry(absolute, theirs.absolute())
        elif absolute.resolve().is_relative_to(ours.resolve()):
            with FileLock(path.with_name(path.name + ".lock")):
                for extra in (".json", ".part", ".part.json"):
                    path.with_name(path.name + extra).unlink(missing_ok=True)
                if path.exists():
                    path.unlink()
                    removed.append(path)
        else:
            raise ValueError(
                f"refusing to delete {path}: it is not inside llamabind's cache "
                f"({ours}) or the Hugging Face cache ({theirs})"
            )
    logger.info("removed %s", ", ".join(map(str, removed)) or f"partial download of {name}")
    return removed
