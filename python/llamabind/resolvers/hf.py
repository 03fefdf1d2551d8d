"""Models from the Hugging Face Hub, through ``huggingface_hub`` and its cache.

References look like ``hf://org/repo[@revision]/path/file.gguf`` (one file) or
``hf://org/repo[@revision]:QUANT`` (the file of that quantization, e.g. ``:Q4_K_M``); with no
file and no quantization, ``Q4_K_M`` is chosen, or the repository's only model file. A split
model (``*-00001-of-00003.gguf``) is fetched whole and its first part returned. Downloads use
``hf_hub_download`` (its cache, ``HF_TOKEN`` / saved token, ``HF_ENDPOINT``, offline mode).
``huggingface-hub`` is optional: ``pip install 'llamabind[hf]'``.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from llamabind.resolvers.base import (
    DownloadProgress,
    ModelDownloadError,
    ModelInfo,
    ProgressCallback,
    check_name,
    not_found,
)
from llamabind.resolvers.cache import commit_for, hf_cache_dir, hf_cache_models, scan_hf_cache
from llamabind.resolvers.download import PROGRESS_INTERVAL_S
from llamabind.resolvers.gguf_info import SPLIT_PATTERN, split_parts
from llamabind.resolvers.hf_errors import LocalOnly, translated_hub_errors
from llamabind.resolvers.reachability import unreachable_reason

logger = logging.getLogger("llamabind.resolvers")

DEFAULT_QUANT = "Q4_K_M"
DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = ("1", "ON", "YES", "TRUE")
_PART = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_REFERENCE = re.compile(
    rf"^(?P<repo>{_PART}/{_PART})(?:@(?P<revision>[^/:]+))?(?:/(?P<file>.+)|:(?P<quant>[\w.-]+))?$"
)


@dataclass(frozen=True, slots=True)
class HFReference:
    """A parsed ``hf://`` reference.

    Attributes:
        repo_id: ``org/repo``.
        revision: Branch, tag or commit; ``None`` for the resolver's default (``main``).
        filename: Path of one file in the repository, or ``None``.
        quant: Quantization to pick (``"Q4_K_M"``), or ``None``.
    """

    repo_id: str
    revision: str | None = None
    filename: str | None = None
    quant: str | None = None

    def uri(self) -> str:
        """The reference written back as ``hf://...``."""
        at = f"@{self.revision}" if self.revision else ""
        tail = f"/{self.filename}" if self.filename else f":{self.quant}" if self.quant else ""
        return f"hf://{self.repo_id}{at}{tail}"


def parse_hf_reference(text: str) -> HFReference:
    """Parses ``[hf://]org/repo[@revision][/path/file.gguf | :QUANT]``.

    A revision with a ``/`` (``refs/pr/1``) is written percent-encoded (``refs%2Fpr%2F1``) or
    given as ``HFModelResolver(revision=...)``.

    Raises:
        ValueError: Not of that form, or the file path has ``..`` or is absolute.
    """
    body = text[len("hf://") :] if text.lower().startswith("hf://") else text
    match = _REFERENCE.match(body)
    if not match:
        raise ValueError(
            f"{text!r} is not a Hugging Face reference: expected "
            "hf://org/repo/file.gguf or hf://org/repo:QUANT (optionally @revision)"
        )
    filename = match["file"]
    if filename is not None:
        pieces = filename.split("/")
        if (
            filename.startswith("/")
            or "\\" in filename
            or any(p in ("", ".", "..") for p in pieces)
        ):
            raise ValueError(f"invalid file path {filename!r} in Hugging Face reference {text!r}")
    revision = unquote(match["revision"]) if match["revision"] else None
    return HFReference(match["repo"], revision, filename, match["quant"])


def looks_like_hf_reference(name: str) -> bool:
    """Whether ``name`` has the shape of a Hugging Face reference (``org/repo...``).

    ``dir/file.gguf`` does not: it reads as a relative path, not as a repository.
    """
    if name.lower().startswith("hf://"):
        return True
    match = _REFERENCE.match(name)
    if not match or "\\" in name:
        return False
    return bool(match["file"] or match["quant"]) or not name.lower().endswith(".gguf")


def _quant_pattern(quant: str) -> re.Pattern[str]:
    return re.compile(rf"(?:^|[-_./]){re.escape(quant)}(?:[-_.]|$)", re.IGNORECASE)


def select_model_files(files: list[str], quant: str | None, label: str) -> list[str]:
    """Picks the model file(s) of one quantization among a repository's files.

    Args:
        files: Paths of the repository's files.
        quant: The quantization asked for; ``None`` picks ``Q4_K_M`` or the only model.
        label: How to name the repository in errors.

    Returns:
        One file, or every part of a split model (first part first).

    Raises:
        ModelNotFoundError: No model file matches; the message lists the available ones.
        ValueError: Several different models match; name one file instead.
    """
    groups: dict[str, list[str]] = {}
    for file in sorted(files):
        base = file.rsplit("/", 1)[-1]
        if not base.lower().endswith(".gguf") or "mmproj" in base.lower():
            continue
        split = SPLIT_PATTERN.match(base)
        key = file[: len(file) - len(base)] + split["prefix"] if split else file
        groups.setdefault(key, []).append(file)
    available = ", ".join(sorted(groups)) or "none"
    if quant is None:
        if len(groups) == 1:
            return next(iter(groups.values()))
        quant = DEFAULT_QUANT
    pattern = _quant_pattern(quant)
    matches = [key for key in groups if pattern.search(key)]
    if not matches:
        raise not_found(
            f"{label}:{quant}",
            [(label, f"no GGUF file of quantization {quant}")],
            f"pick one of the repository's GGUF files: {available}",
        )
    if len(matches) > 1:
        raise ValueError(
            f"{label}:{quant} matches several models ({', '.join(matches)}); "
            f"name the file: hf://{label}/<file>.gguf"
        )
    return groups[matches[0]]


def _hub() -> Any:
    try:
        return importlib.import_module("huggingface_hub")
    except ImportError:
        raise ImportError(
            "hf:// models need the huggingface-hub package: pip install 'llamabind[hf]'"
        ) from None


def _progress_class(callback: ProgressCallback, uri: str) -> type:
    """A tqdm class for ``hf_hub_download`` that reports to ``callback`` instead of drawing.

    Xet-backed files make two bars (network transfer, then writing the file); only the first
    one created reports, so the progress seen is monotonic.
    """
    from tqdm import tqdm  # type: ignore[import-untyped]  # a huggingface-hub dependency

    first = [True]

    class CallbackProgress(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self.is_reporting, first[0] = first[0], False
            self.n_bytes_done = kwargs.get("initial") or 0
            self.n_bytes_total = kwargs.get("total")
            self.last_report_s = 0.0

        def update(self, n: float | None = 1) -> bool | None:
            self.n_bytes_done += int(n or 0)
            now = time.monotonic()
            if self.is_reporting and now - self.last_report_s >= PROGRESS_INTERVAL_S:
                self.last_report_s = now
                event = DownloadProgress(uri, None, self.n_bytes_done, self.n_bytes_total)
                if callback(event) is False:
                    raise ModelDownloadError(
                        f"download of {uri} cancelled by the progress callback; the partial "
                        "file is kept and the next attempt resumes",
                        url=uri,
                        reason="cancelled",
                    )
            return None

    return CallbackProgress


class HFModelResolver:
    """Resolves Hugging Face references to files in the Hugging Face cache, downloading them.

    With ``repo``, names are relative to it: ``"model-Q8_0.gguf"`` (a file) or ``"Q8_0"`` /
    ``":Q8_0"`` (a quantization), and full references (``hf://org/repo/...``) are accepted only
    for that repository. Without ``repo``, any reference works, with or without the ``hf://``
    prefix. Local paths, ``file://``, ``http(s)://`` and ``package:`` names are never accepted.

    Args:
        repo: Default repository, ``org/repo``.
        revision: Default branch, tag or commit (pin a commit for reproducibility);
            ``None`` means ``main``.
        cache_dir: The hub cache; ``None`` for ``HF_HUB_CACHE`` / ``HF_HOME`` / the default.
        token: Access token; ``None`` uses ``HF_TOKEN`` or the token saved by ``hf auth login``.
        endpoint: Hub URL; ``None`` uses ``HF_ENDPOINT`` (read at each download) or
            https://huggingface.co.
        offline: Use only the cache; ``None`` follows ``HF_HUB_OFFLINE``.
        progress: Called with download progress (returning ``False`` cancels); ``None`` keeps
            ``huggingface_hub``'s own progress bars. Byte-level progress needs
            huggingface-hub 1.3 or later (``tqdm_class``); older versions report only the end.
    """

    def __init__(
        self,
        repo: str | None = None,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        token: str | bool | None = None,
        endpoint: str | None = None,
        offline: bool | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        if repo is not None and not re.fullmatch(f"{_PART}/{_PART}", repo):
            raise ValueError(f"repo must look like 'org/name', got {repo!r}")
        self.repo, self.revision = repo, revision
        self._cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.token, self.endpoint, self.offline, self.progress = token, endpoint, offline, progress

    def __repr__(self) -> str:
        return f"HFModelResolver({self.repo!r}, {self.revision!r})"

    @property
    def cache_dir(self) -> Path:
        """The hub cache in use."""
        return self._cache_dir or hf_cache_dir()

    def _endpoint(self) -> str | None:
        # Read at each call (huggingface_hub reads HF_ENDPOINT once, at import).
        return self.endpoint or os.environ.get("HF_ENDPOINT") or None

    def _offline_mode(self) -> LocalOnly | None:
        """Offline mode, from ``offline`` or the environment, saying where it was set."""
        if self.offline is not None:
            if not self.offline:
                return None
            why, hint = "offline mode is on (HFModelResolver(offline=True))", "offline=False"
            return LocalOnly(why, f"pass {hint} to download it, or name a cached file", True)
        for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
            if os.environ.get(variable, "").upper() in _TRUE:
                why = f"offline mode is on ({variable}={os.environ[variable]})"
                hint = f"unset {variable} to download it, or name a cached file"
                return LocalOnly(why, hint, True)
        return None

    def local_only(self) -> LocalOnly | None:
        """Why only the cache may be used now: offline mode, or a hub that does not accept
        connections (checked with one quick connection, so that an unreachable hub fails fast
        instead of being retried for ~23 s); ``None`` when the hub can be used."""
        offline = self._offline_mode()
        if offline is not None:
            return offline
        endpoint = self._endpoint() or DEFAULT_ENDPOINT
        problem = unreachable_reason(endpoint)
        if problem is None:
            return None
        logger.debug("the hub at %s is unreachable (%s); using the cache only", endpoint, problem)
        return LocalOnly(
            f"the hub at {endpoint} could not be reached ({problem})",
            "check the network (or HTTPS_PROXY / HF_ENDPOINT); set HF_HUB_OFFLINE=1 to use "
            "only cached models without trying the network",
            False,
        )

    def reference(self, name: str) -> HFReference:
        """Parses ``name`` the way :meth:`resolve` does (see the class docstring).

        Raises:
            ValueError: Not a valid reference, or one outside ``repo``.
        """
        name = check_name(name)
        if name.lower().startswith("hf://") or self.repo is None:
            reference = parse_hf_reference(name)
            if self.repo is not None and reference.repo_id.lower() != self.repo.lower():
                raise ValueError(
                    f"{self!r} only serves the repository {self.repo}; {name!r} is refused "
                    "(use HFModelResolver() without repo to allow any repository)"
                )
        elif name.lower().endswith(".gguf"):
            reference = parse_hf_reference(f"{self.repo}/{name}")
        else:
            reference = parse_hf_reference(f"{self.repo}:{name.lstrip(':')}")
        if reference.revision is None and self.revision is not None:
            reference = HFReference(
                reference.repo_id, self.revision, reference.filename, reference.quant
            )
        return reference

    def resolve(self, name: str) -> Path:
        """Returns the cached file for ``name``, downloading it (and all parts) if needed.

        Args:
            name: A reference (see the class docstring).

        Returns:
            The file in the hub cache (for a split model, its first part; the other parts are
            next to it).

        Raises:
            ModelNotFoundError: No such repository, revision or file, or offline and not cached.
            ModelDownloadError: The hub could not be reached, or access was refused.
            ValueError: ``name`` is not a reference, or matches several models.
            ImportError: ``huggingface-hub`` is not installed.
        """
        reference = self.reference(name)
        local = self.local_only()
        if reference.filename is not None:
            files = [part.as_posix() for part in split_parts(Path(reference.filename))]
        else:
            files = select_model_files(
                self._repo_files(reference, local), reference.quant, reference.repo_id
            )
        paths = [self._download(reference, file, local) for file in files]
        return paths[0]

    def repo_files(self, reference: HFReference) -> list[str]:
        """The files of the reference's repository at its revision: from the hub, or from the
        cache when offline or when the hub cannot be reached.

        Raises:
            ModelNotFoundError: No such repository or revision (or, offline, nothing cached).
            ModelDownloadError: The hub could not be reached and nothing is cached.
        """
        return self._repo_files(reference, self.local_only())

    def _repo_files(self, reference: HFReference, local: LocalOnly | None) -> list[str]:
        revision = reference.revision or "main"
        if local is None:
            return self._hub_repo_files(reference, revision)
        files = self._cached_files(reference.repo_id, revision)
        if not files:
            raise local.not_cached(reference.uri(), self.cache_dir)
        return files

    def _hub_repo_files(self, reference: HFReference, revision: str) -> list[str]:
        api = _hub().HfApi(endpoint=self._endpoint(), token=self.token)
        try:
            with self._hub_errors(reference):
                return list(api.list_repo_files(reference.repo_id, revision=revision))
        except ModelDownloadError as exc:
            cached = self._cached_files(reference.repo_id, revision)
            if exc.reason != "connection" or not cached:
                raise
            logger.warning("%s; choosing among the cached files of %s", exc, reference.uri())
            return cached

    def _cached_files(self, repo_id: str, revision: str) -> list[str]:
        commit = commit_for(self.cache_dir, repo_id, revision)
        return [
            entry.filename
            for entry in scan_hf_cache(self.cache_dir, repo_id)
            if entry.commit == commit
        ]

    def _download(self, reference: HFReference, filename: str, local: LocalOnly | None) -> Path:
        hub = _hub()
        uri = HFReference(reference.repo_id, reference.revision, filename).uri()
        kwargs: dict[str, Any] = {
            "revision": reference.revision,
            "cache_dir": str(self.cache_dir),
            "token": self.token,
            "endpoint": self._endpoint(),
            "local_files_only": local is not None,
        }
        if (
            self.progress is not None
            and "tqdm_class" in inspect.signature(hub.hf_hub_download).parameters
        ):
            kwargs["tqdm_class"] = _progress_class(self.progress, uri)
        logger.debug(
            "hf_hub_download(%r, %r, revision=%r)", reference.repo_id, filename, reference.revision
        )
        file_reference = HFReference(reference.repo_id, reference.revision, filename)
        with translated_hub_errors(file_reference, self.cache_dir, local):
            path = Path(hub.hf_hub_download(reference.repo_id, filename, **kwargs))
        if self.progress is not None:
            size = path.stat().st_size
            self.progress(DownloadProgress(uri, path, size, size, "done"))
        return path

    def _hub_errors(self, reference: HFReference) -> contextlib.AbstractContextManager[None]:
        return translated_hub_errors(reference, self.cache_dir, None)

    def list_models(self) -> Iterator[ModelInfo]:
        """Yields the repository's GGUF models, or, without ``repo``, every cached GGUF model.

        Remote files that are not cached have ``path=None`` and no GGUF facts. Offline, only
        cached files are listed.

        Yields:
            One :class:`ModelInfo` per model (split models once, projector files left out).
        """
        if self.repo is None or self.local_only() is not None:
            yield from hf_cache_models(self.cache_dir, self.repo)
            return
        reference = HFReference(self.repo, self.revision)
        hub = _hub()
        api = hub.HfApi(endpoint=self._endpoint(), token=self.token)
        with self._hub_errors(reference):
            entries = [
                entry
                for entry in api.list_repo_tree(self.repo, recursive=True, revision=self.revision)
                if hasattr(entry, "size")
            ]
        sizes = {entry.path: entry.size for entry in entries}
        groups: dict[str, list[str]] = {}
        for file in sorted(sizes):
            base = file.rsplit("/", 1)[-1]
            if base.lower().endswith(".gguf") and "mmproj" not in base.lower():
                groups.setdefault(split_parts(Path(file))[0].as_posix(), []).append(file)
        for first, parts in groups.items():
            uri = HFReference(self.repo, self.revision, first).uri()
            name = uri[len("hf://") :]
            cached = hub.try_to_load_from_cache(
                self.repo, first, cache_dir=str(self.cache_dir), revision=self.revision
            )
            if isinstance(cached, str) and Path(cached).is_file():
                yield ModelInfo.from_file(Path(cached), name=name, source="hf", uri=uri)
            else:
                yield ModelInfo(
                    name=name,
                    source="hf",
                    uri=uri,
                    n_split=len(split_parts(Path(first))),
                    size_bytes=sum(sizes[part] for part in parts),
                )
