"""Models in a directory of the local file system."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from llamabind.resolvers.base import ModelInfo, check_name, not_found, with_gguf_suffix
from llamabind.resolvers.gguf_info import is_later_split_part
from llamabind.resolvers.names import file_uri_path, name_form, path_problem, user_path


class FileModelResolver:
    """Resolves names to ``.gguf`` files under one base directory, and never outside it.

    ``resolve("llama-3.2-1b")`` returns ``<base_dir>/llama-3.2-1b.gguf`` (the ``.gguf`` suffix is
    appended when missing); sub-directories work (``"qwen/qwen3-4b"``). Paths are accepted only
    inside the directory: relative paths are taken relative to it (never to the current
    directory), and absolute paths, ``~`` paths and ``file:///`` URIs must point into it. Names
    that would escape it are rejected with ``ValueError``: ``..`` components, absolute paths
    and ``file://`` URIs outside it (unless ``allow_absolute``), symbolic links pointing out of
    it (unless ``allow_links_out``), and URLs, ``hf://`` and ``package:`` names (this resolver
    never downloads), so names from an untrusted source can be resolved safely.

    Args:
        base_dir: The directory to search; ``~`` is expanded. It need not exist yet.
        allow_absolute: Accept absolute paths and ``file:///`` URIs outside ``base_dir`` as
            they are (the resolver then opens any local file it is given).
        allow_links_out: Follow symbolic links inside ``base_dir`` that point outside it.
        label: How this directory is described in errors and logs (e.g. ``"current directory"``).
        recursive: Whether :meth:`list_models` descends into sub-directories (``resolve``
            accepts relative paths either way).
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        *,
        allow_absolute: bool = False,
        allow_links_out: bool = False,
        label: str | None = None,
        recursive: bool = True,
    ) -> None:
        self.base_dir = Path(base_dir).expanduser().absolute()
        self.allow_absolute = allow_absolute
        self.allow_links_out = allow_links_out
        self.label = label
        self.recursive = recursive

    def __repr__(self) -> str:
        return f"FileModelResolver({str(self.base_dir)!r})"

    def _inside(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.base_dir.resolve())

    def candidates(self, name: str) -> list[Path]:
        """The paths ``resolve(name)`` checks, in order.

        Args:
            name: The model name.

        Returns:
            Absolute paths under ``base_dir`` (or the absolute path itself, where allowed).

        Raises:
            ValueError: ``name`` escapes ``base_dir``.
        """
        name = check_name(name)
        form = name_form(name)
        if form in ("http", "hf", "package"):
            raise ValueError(
                f"{self!r} only opens files under {self.base_dir} and never downloads; "
                f"{name!r} is refused (configure a UrlModelResolver, HFModelResolver or "
                "PackageModelResolver to allow such names)"
            )
        raw = file_uri_path(name) if form == "file" else user_path(name)
        if raw.is_absolute() or raw.drive or raw.root:
            if not (self.allow_absolute or self._inside(raw)):
                raise ValueError(
                    f"model name {name!r} is a path outside {self.base_dir}, which this "
                    "resolver refuses; pass a name relative to it (or "
                    "FileModelResolver(..., allow_absolute=True) to open any local file)"
                )
            return [raw.with_name(file) for file in with_gguf_suffix(raw.name)]
        if ".." in raw.parts:
            raise ValueError(f"model name {name!r} escapes {self.base_dir}: '..' is not allowed")
        parent = self.base_dir / raw.parent
        return [parent / file for file in with_gguf_suffix(raw.name)]

    def resolve(self, name: str) -> Path:
        """Returns the file for ``name`` under ``base_dir``.

        Args:
            name: A file name or relative path, with or without ``.gguf``; an absolute path or
                ``file:///`` URI inside ``base_dir`` (or anywhere, with ``allow_absolute``).

        Returns:
            The absolute path of an existing file.

        Raises:
            ModelNotFoundError: No such file (``locations`` lists the paths tried).
            ValueError: ``name`` escapes ``base_dir``, directly or through a symbolic link, or
                is a URL, ``hf://`` or ``package:`` name.
        """
        tried = []
        form = name_form(check_name(name))
        is_absolute = form == "file" or user_path(name).is_absolute()
        for path in self.candidates(name):
            problem = path_problem(path)
            if problem is None:
                confined = not (self.allow_absolute and is_absolute)
                if confined and not self.allow_links_out and not self._inside(path):
                    raise ValueError(
                        f"model {name!r} resolves through a symbolic link to {path.resolve()}, "
                        f"outside {self.base_dir} (pass allow_links_out=True to follow such links)"
                    )
                return path
            tried.append((str(path), problem))
        where = self.label or str(self.base_dir)
        raise not_found(name, tried, f"put the .gguf file in {where} or pass its full path")

    def list_models(self) -> Iterator[ModelInfo]:
        """Yields every ``.gguf`` file under ``base_dir`` (recursively, unless not
        ``recursive``), sorted by path.

        Split models are listed once, by their first part. Links that point out of
        ``base_dir`` are skipped unless ``allow_links_out``.

        Yields:
            Facts of each file; ``name`` is its path relative to ``base_dir`` without ``.gguf``.
        """
        if not self.base_dir.is_dir():
            return
        found = self.base_dir.rglob("*.gguf") if self.recursive else self.base_dir.glob("*.gguf")
        for path in sorted(found):
            if not path.is_file() or is_later_split_part(path):
                continue
            if not self.allow_links_out and not self._inside(path):
                continue
            relative = path.relative_to(self.base_dir).as_posix()
            yield ModelInfo.from_file(path, name=relative[: -len(".gguf")], source="file")
