"""Managing downloaded models: list them with their GGUF facts, pull, measure, remove."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from llamabind.errors import ModelNotFoundError
from llamabind.resolvers.base import (
    GGUF_SUFFIX,
    ModelInfo,
    ModelResolver,
    ProgressCallback,
    check_name,
    not_found,
)
from llamabind.resolvers.cache import (
    CachedModelResolver,
    default_cache_dir,
    hf_cache_dir,
    scan_hf_cache,
)
from llamabind.resolvers.download import DownloadOptions
from llamabind.resolvers.fallback import MODELS_PATH_VARIABLE, FallbackResolver
from llamabind.resolvers.file import FileModelResolver
from llamabind.resolvers.gguf_info import split_parts
from llamabind.resolvers.hf import HFModelResolver, parse_hf_reference, select_model_files
from llamabind.resolvers.lock import FileLock
from llamabind.resolvers.names import path_problem, user_path
from llamabind.resolvers.package import PackageModelResolver, shared_package_resolver
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
    """Lists the models on this machine that the default resolver finds by name, with the
    facts their GGUF headers give.

    Args:
        cache_dir: llamabind's cache; ``None`` for the default.
        hf_cache: The Hugging Face cache; ``None`` for the default.

    Returns:
        In the default resolver's order: the models in the directories of
        ``LLAMABIND_MODELS_PATH`` (``source="file"``), the models installed Python packages
        ship (``"package"``), llamabind's cached downloads (``"url"``, or ``"package"`` for
        models joined from package chunks), then the Hugging Face cache's GGUF models
        (``"hf"``). The current directory is not listed. Each file appears once; split
        models once; broken files carry a ``problem``.
    """
    ours, theirs = _dirs(cache_dir, hf_cache)
    chain: list[ModelResolver] = [
        FileModelResolver(directory, label=f"{MODELS_PATH_VARIABLE} entry {directory}")
        for directory in os.environ.get(MODELS_PATH_VARIABLE, "").split(os.pathsep)
        if directory
    ]
    chain.append(
        shared_package_resolver() if cache_dir is None else PackageModelResolver(cache_dir=ours)
    )
    chain.append(CachedModelResolver(ours, theirs))
    return list(FallbackResolver(chain).list_models())


def pull_model(
    uri: str,
    *,
    progress: ProgressCallback | None = None,
    sha256: str | None = None,
    cache_dir: PathArg = None,
    hf_cache: PathArg = None,
    options: DownloadOptions | None = None,
) -> Path:
    """Downloads a model into its cache (or does nothing if it is already there).

    Args:
        uri: ``https://.../file.gguf`` (into llamabind's cache) or ``hf://org/repo:QUANT`` /
            ``hf://org/repo/file.gguf`` (into the Hugging Face cache).
        progress: Called with each :class:`DownloadProgress`; returning ``False`` cancels.
        sha256: Expected checksum of an ``https://`` download.
        cache_dir: llamabind's cache; ``None`` for the default.
        hf_cache: The Hugging Face cache; ``None`` for the default.
        options: Network settings of an ``https://`` download (deadline, minimum throughput,
            cancel event, timeouts, headers, TLS); ``progress``, when given, replaces theirs.
            ``hf://`` downloads use huggingface-hub's own settings.

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
        options = options or DownloadOptions()
        if progress is not None:
            options = dataclasses.replace(options, progress=progress)
        resolver = UrlModelResolver(cache_dir=cache_dir, options=options)
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
        if reference.filename:
            wanted = [reference.filename]
        else:
            try:
                files = [e.filename for e in entries]
                wanted = select_model_files(files, reference.quant, reference.repo_id)[:1]
            except ModelNotFoundError:
                return []
        return [e.path for e in entries if e.filename in wanted]
    path = user_path(name)
    problem = path_problem(path)  # a dangling symbolic link is "no such file"
    if problem in (None, "not a file") or (problem == "no such file" and path.is_symlink()):
        return [path]
    names = {name, name + GGUF_SUFFIX}
    return [
        path
        for listed, path in CachedModelResolver(ours, theirs).cached_files()
        if listed in names or path.name in names
    ]


def _in_cache(path: Path, ours: Path, theirs: Path) -> tuple[Path, Path]:
    """Where ``path`` really is and which cache holds it: ``..`` and linked directories are
    resolved, a link itself is kept (removing a link never touches what it points to).

    Raises:
        ValueError: Not a ``.gguf`` file (or link) inside one of the two caches.
    """
    absolute = path.expanduser().absolute()
    if absolute.name in ("", ".", ".."):
        raise ValueError(f"refusing to delete {path}: not a model file")
    entry = absolute.parent.resolve() / absolute.name
    for cache in (theirs.resolve(), ours.resolve()):
        if entry.is_relative_to(cache) and entry != cache:
            if not entry.name.lower().endswith(GGUF_SUFFIX) or entry.is_dir():
                raise ValueError(f"refusing to delete {path}: not a .gguf model file")
            return entry, cache
    raise ValueError(
        f"refusing to delete {path}: it is not inside llamabind's cache ({ours}) or the "
        f"Hugging Face cache ({theirs}); remove_model only deletes downloaded models"
    )


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


def _remove_download(entry: Path) -> list[Path]:
    """Removes a file of llamabind's cache with its sidecar and partial download."""
    with FileLock(entry.with_name(entry.name + ".lock")):
        for extra in (".json", ".part", ".part.json"):
            entry.with_name(entry.name + extra).unlink(missing_ok=True)
        if entry.exists() or entry.is_symlink():
            entry.unlink()
            return [entry]
    return []


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
        ValueError: ``name`` is a path outside both caches (after resolving ``..`` and
            linked directories) or not a ``.gguf`` file, or matches several models.
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
    # Check every part before deleting any. Unlinking never truncates, so a process that has
    # the model memory-mapped keeps reading the old file until it unloads it.
    places = [_in_cache(path, ours, theirs) for path in split_parts(firsts.pop())]
    removed: list[Path] = []
    for entry, cache in places:
        if cache == theirs.resolve():
            if entry.exists() or entry.is_symlink():
                removed += _remove_hf_entry(entry, cache)
        else:
            removed += _remove_download(entry)
    logger.info("removed %s", ", ".join(map(str, removed)) or f"partial download of {name}")
    return removed
