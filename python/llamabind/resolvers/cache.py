"""Where downloaded models live: llamabind's own cache (URL downloads) and the Hugging Face cache.

llamabind's cache is ``$LLAMABIND_CACHE_DIR``, else ``$XDG_CACHE_HOME/llamabind/models``, else
``~/.cache/llamabind/models`` (``%LOCALAPPDATA%\\llamabind\\models`` on Windows). A URL is cached
as ``<cache>/<host>/<path>``. Models from ``hf://`` stay in the Hugging Face cache
(``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``) in its own layout,
so that they are shared with every other Hugging Face tool.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from llamabind.resolvers.base import ModelInfo, check_name, not_found, with_gguf_suffix
from llamabind.resolvers.download import read_sidecar
from llamabind.resolvers.gguf_info import is_later_split_part

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
PACKAGES_FOLDER = "packages"  # where PackageModelResolver joins chunked models


def default_cache_dir() -> Path:
    """llamabind's model cache directory (it may not exist yet).

    Returns:
        ``$LLAMABIND_CACHE_DIR``, else ``$XDG_CACHE_HOME/llamabind/models``, else
        ``~/.cache/llamabind/models`` (on Windows ``%LOCALAPPDATA%\\llamabind\\models``).
    """
    env = os.environ.get("LLAMABIND_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "llamabind" / "models"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "llamabind" / "models"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, found the way ``huggingface_hub`` finds it.

    Returns:
        ``$HF_HUB_CACHE`` (or the legacy ``$HUGGINGFACE_HUB_CACHE``), else ``$HF_HOME/hub``,
        else ``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``.
    """
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.path.expandvars(os.environ[variable])).expanduser()
    home = (
        os.environ.get("HF_HOME")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    )
    return Path(os.path.expandvars(str(home))).expanduser() / "hub"


@dataclass(frozen=True, slots=True)
class HFCachedFile:
    """One file of a model repository in the Hugging Face cache.

    Attributes:
        repo_id: ``org/repo``.
        commit: The snapshot (commit hash) it belongs to.
        filename: Its path inside the repository (``/``-separated).
        path: The snapshot entry (a link to the blob, or a copy where links are unsupported).
        refs: Branch or tag names that point at ``commit`` (``["main"]``).
    """

    repo_id: str
    commit: str
    filename: str
    path: Path
    refs: tuple[str, ...]

    @property
    def name(self) -> str:
        """``org/repo/file.gguf`` for the current snapshot of ``main``, else with ``@commit``."""
        at = "" if "main" in self.refs else f"@{self.commit}"
        return f"{self.repo_id}{at}/{self.filename}"


def repo_cache_folder(cache_dir: Path, repo_id: str) -> Path:
    """The folder of a model repository in the Hugging Face cache (``models--org--repo``)."""
    return cache_dir / ("models--" + repo_id.replace("/", "--"))


def commit_for(cache_dir: Path, repo_id: str, revision: str) -> str | None:
    """The commit a branch or tag points to in the cache (a commit hash is returned as is)."""
    if _COMMIT.match(revision):
        return revision
    ref = repo_cache_folder(cache_dir, repo_id) / "refs" / revision
    try:
        return ref.read_text("utf-8").strip() or None
    except OSError:
        return None


def scan_hf_cache(cache_dir: Path, repo_id: str | None = None) -> Iterator[HFCachedFile]:
    """Yields the files of model repositories in the Hugging Face cache, without the network.

    Args:
        cache_dir: The hub cache directory.
        repo_id: Only this repository; ``None`` for all.

    Yields:
        Every file of every snapshot (dangling links, left by an interrupted download, are
        skipped).
    """
    if repo_id is not None:
        folders = [repo_cache_folder(cache_dir, repo_id)]
    elif cache_dir.is_dir():
        folders = sorted(cache_dir.glob("models--*--*"))
    else:
        folders = []
    for folder in folders:
        snapshots = folder / "snapshots"
        if not snapshots.is_dir():
            continue
        repo = folder.name[len("models--") :].replace("--", "/", 1)
        refs: dict[str, list[str]] = {}
        for ref in sorted((folder / "refs").rglob("*")) if (folder / "refs").is_dir() else []:
            if ref.is_file():
                name = ref.relative_to(folder / "refs").as_posix()
                refs.setdefault(ref.read_text("utf-8").strip(), []).append(name)
        for snapshot in sorted(snapshots.iterdir()):
            for path in sorted(snapshot.rglob("*")):
                if path.is_file():
                    yield HFCachedFile(
                        repo,
                        snapshot.name,
                        path.relative_to(snapshot).as_posix(),
                        path,
                        tuple(refs.get(snapshot.name, ())),
                    )


def _is_model_file(path: Path) -> bool:
    return (
        path.name.lower().endswith(".gguf")
        and "mmproj" not in path.name.lower()
        and not is_later_split_part(path)
    )


def url_cache_models(cache_dir: Path) -> Iterator[ModelInfo]:
    """Yields the GGUF files in llamabind's cache (first parts of split models only): URL
    downloads (``source="url"``) and models joined from package chunks (``"package"``)."""
    if not cache_dir.is_dir():
        return
    for path in sorted(cache_dir.rglob("*.gguf")):
        if path.is_file() and not is_later_split_part(path):
            relative = path.relative_to(cache_dir)
            source = "package" if relative.parts[0] == PACKAGES_FOLDER else "url"
            name = relative.as_posix()[: -len(".gguf")]
            uri = read_sidecar(path).get("url")
            yield ModelInfo.from_file(path, name=name, source=source, uri=uri)


def hf_cache_models(cache_dir: Path, repo_id: str | None = None) -> Iterator[ModelInfo]:
    """Yields the GGUF models in the Hugging Face cache (no projector files, no later parts)."""
    for entry in scan_hf_cache(cache_dir, repo_id):
        if _is_model_file(entry.path):
            yield ModelInfo.from_file(
                entry.path, name=entry.name, source="hf", uri=f"hf://{entry.name}"
            )


class CachedModelResolver:
    """Finds models downloaded earlier, in llamabind's cache and the Hugging Face cache, by file
    name or stem (``"SmolLM2-135M-Instruct.Q4_1"``) or by their listed name (``"host/path/x"``,
    ``"org/repo/x.gguf"``). It never uses the network, and paths and URLs are not found: it
    only ever returns files inside the two caches.

    Args:
        cache_dir: llamabind's cache; ``None`` for :func:`default_cache_dir` (read at each call).
        hf_cache: The Hugging Face cache; ``None`` for :func:`hf_cache_dir` (read at each call).
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | None = None,
        hf_cache: str | os.PathLike[str] | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.hf_cache = Path(hf_cache) if hf_cache is not None else None

    def __repr__(self) -> str:
        return f"CachedModelResolver({self.cache_dir!r}, {self.hf_cache!r})"

    def directories(self) -> tuple[Path, Path]:
        """llamabind's cache and the Hugging Face cache this resolver searches."""
        return self.cache_dir or default_cache_dir(), self.hf_cache or hf_cache_dir()

    def cached_files(self) -> Iterator[tuple[str, Path]]:
        """Yields ``(listed name with .gguf, path)`` of every cached model, both caches."""
        ours, theirs = self.directories()
        if ours.is_dir():
            for path in sorted(ours.rglob("*.gguf")):
                if path.is_file() and not is_later_split_part(path):
                    yield path.relative_to(ours).as_posix(), path
        for entry in scan_hf_cache(theirs):
            if _is_model_file(entry.path):
                yield entry.name, entry.path

    def resolve(self, name: str) -> Path:
        """Returns the cached file named ``name``.

        Args:
            name: A file name, a stem, or a name from :meth:`list_models`.

        Returns:
            The cached file (the first match, caches in the order above).

        Raises:
            ModelNotFoundError: Nothing cached under that name.
        """
        wanted = set(with_gguf_suffix(check_name(name)))
        for listed, path in self.cached_files():
            if path.name in wanted or listed in wanted:
                return path
        ours, theirs = self.directories()
        raise not_found(
            name,
            [
                (str(ours), "not in llamabind's download cache"),
                (str(theirs), "not in the Hugging Face cache"),
            ],
            "download it first, e.g. llamabind.resolvers.pull_model(uri)",
        )

    def list_models(self) -> Iterator[ModelInfo]:
        """Yields every cached GGUF model: llamabind's cache first, then Hugging Face's."""
        ours, theirs = self.directories()
        yield from url_cache_models(ours)
        yield from hf_cache_models(theirs)
