"""Models downloaded over HTTP(S) into llamabind's cache."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from llamabind.errors import check_text
from llamabind.resolvers.base import ModelInfo, check_name, not_found
from llamabind.resolvers.cache import default_cache_dir, url_cache_models
from llamabind.resolvers.download import DownloadOptions, download_file

_UNSAFE_CHARACTERS = re.compile(r'[<>:"|?*/\\\x00-\x1f]')  # "/" from a decoded %2F


def split_checksum(url: str) -> tuple[str, str | None]:
    """Splits a ``#sha256=<hex>`` fragment (pip's syntax) off a URL.

    Returns:
        The URL without the fragment, and the checksum or ``None``.
    """
    parts = urlsplit(url)
    match = re.fullmatch(r"sha256=([0-9a-fA-F]{64})", parts.fragment)
    if not match:
        return url, None
    return urlunsplit(parts._replace(fragment="")), match[1].lower()


def cache_path_for(url: str, cache_dir: Path) -> Path:
    """Where ``url`` is cached: ``<cache_dir>/<host>[_<port>]/<path segments>``.

    Segments are percent-decoded; ``.``/``..`` segments and characters that are unsafe in file
    names are neutralized so a URL can never write outside ``cache_dir``. A query string adds
    a short hash to the file name; the name always ends in ``.gguf``.

    Args:
        url: An ``http(s)://`` URL.
        cache_dir: The cache root.

    Returns:
        The cache path (inside ``cache_dir``).

    Raises:
        ValueError: The URL has no host or no file name.
        InvalidTextError: The URL holds lone surrogates.
    """
    check_text(url, "the model URL")
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"URL {url!r} has no host")
    host = parts.hostname + (f"_{parts.port}" if parts.port else "")
    segments = []
    for raw in parts.path.split("/"):
        segment = _UNSAFE_CHARACTERS.sub("_", unquote(raw))
        if segment in ("", ".", ".."):
            continue
        segments.append(segment)
    if not segments:
        raise ValueError(f"URL {url!r} names no file")
    name = segments.pop()
    stem, suffix = (
        (name[: -len(".gguf")], ".gguf") if name.lower().endswith(".gguf") else (name, "")
    )
    if parts.query:
        stem += "-" + hashlib.sha256(parts.query.encode()).hexdigest()[:8]
    path = cache_dir.joinpath(
        _UNSAFE_CHARACTERS.sub("_", host), *segments, stem + (suffix or ".gguf")
    )
    if not path.resolve().is_relative_to(cache_dir.resolve()):  # belt and braces
        raise ValueError(f"URL {url!r} maps outside the cache")
    return path


def _is_under(url: str, base_url: str) -> bool:
    """Whether ``url`` is ``base_url`` or below it, with no ``..`` segment (even encoded)."""
    parts, base = urlsplit(url), urlsplit(base_url)
    if (parts.scheme, parts.netloc.lower()) != (base.scheme, base.netloc.lower()):
        return False
    if any(unquote(segment) in (".", "..") for segment in parts.path.split("/")):
        return False
    prefix = base.path if base.path.endswith("/") else base.path + "/"
    return parts.path == base.path or parts.path.startswith(prefix)


class UrlModelResolver:
    """Downloads models over HTTP(S) into a cache and returns the cached file.

    ``resolve("https://host/models/m.gguf")`` downloads once (resuming an interrupted
    download, verifying the sha256 when one is known, renaming into place only when complete)
    and afterwards returns the cached copy without touching the network. With a ``base_url``,
    plain names are files under it: ``resolve("m")`` fetches ``<base_url>/m.gguf``, and full
    URLs are accepted only under it. Local paths, ``file://``, ``hf://`` and ``package:`` names
    are never accepted.

    Args:
        base_url: Prefix for plain names, and the only place full URLs may point to; ``None``
            accepts any full ``http(s)://`` URL and no plain names.
        cache_dir: Where downloads go; ``None`` for the default cache (``LLAMABIND_CACHE_DIR``,
            else ``~/.cache/llamabind/models``), read when a model is resolved.
        checksums: Expected sha256 by name or URL. A URL can also carry ``#sha256=<hex>``.
        options: Progress callback, timeouts, retries, headers, TLS context.
    """

    def __init__(
        self,
        base_url: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        checksums: Mapping[str, str] | None = None,
        options: DownloadOptions | None = None,
    ) -> None:
        if base_url is not None and urlsplit(base_url).scheme not in ("http", "https"):
            raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
        self.base_url = base_url
        self._cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.checksums = dict(checksums or {})
        self.options = options or DownloadOptions()

    def __repr__(self) -> str:
        return f"UrlModelResolver({self.base_url!r}, {str(self.cache_dir)!r})"

    @property
    def cache_dir(self) -> Path:
        """The cache directory in use."""
        return self._cache_dir or default_cache_dir()

    def url_for(self, name: str) -> str:
        """The URL ``resolve(name)`` downloads (without any ``#sha256=`` fragment).

        Raises:
            ModelNotFoundError: ``name`` is not a URL and there is no ``base_url``.
            ValueError: ``name`` tries to leave ``base_url`` (``..``, an absolute path, another
                scheme, a full URL elsewhere).
            InvalidTextError: ``name`` holds lone surrogates.
        """
        name = check_name(name)
        check_text(name, "the model URL")  # a URL is UTF-8 text: no surrogate-escaped bytes
        if urlsplit(name).scheme in ("http", "https"):
            url = split_checksum(name)[0]
            if self.base_url is not None and not _is_under(url, self.base_url):
                raise ValueError(
                    f"{self!r} only downloads under {self.base_url}; {url!r} is refused "
                    "(use a UrlModelResolver without base_url to allow any URL)"
                )
            return url
        if self.base_url is None:
            raise not_found(
                name,
                [("URL resolver", "not an http(s):// URL and no base_url set")],
                "pass a full https:// URL or UrlModelResolver(base_url=...)",
            )
        if "://" in name or name.startswith(("/", "\\")) or ".." in re.split(r"[/\\]", name):
            raise ValueError(f"model name {name!r} must be a relative path under {self.base_url}")
        if not name.lower().endswith(".gguf"):
            name += ".gguf"
        return self.base_url.rstrip("/") + "/" + quote(name, safe="/")

    def cached_path(self, name: str) -> Path:
        """Where ``resolve(name)`` keeps its download (it may not exist)."""
        return cache_path_for(self.url_for(name), self.cache_dir)

    def resolve(self, name: str, *, sha256: str | None = None) -> Path:
        """Returns the cached download of ``name``, downloading it first if needed.

        Args:
            name: A full ``http(s)://`` URL (optionally with ``#sha256=<hex>``) or a path under
                ``base_url``.
            sha256: The expected checksum (overrides ``checksums`` and the URL fragment).

        Returns:
            The complete, verified file in the cache.

        Raises:
            ModelNotFoundError: HTTP 404/410, or a plain name without a ``base_url``.
            ModelDownloadError: Network, TLS, timeout, checksum, disk or cancellation failure.
            ValueError: The name tries to leave ``base_url``.
        """
        url = self.url_for(name)
        expected = (
            sha256
            or split_checksum(check_name(name))[1]
            or self.checksums.get(name)
            or self.checksums.get(url)
        )
        return download_file(
            url, cache_path_for(url, self.cache_dir), sha256=expected, options=self.options
        )

    def list_models(self) -> Iterator[ModelInfo]:
        """Yields the models in the cache (downloaded earlier), with their source URLs.

        Yields:
            One :class:`ModelInfo` per cached file; ``name`` is its path in the cache.
        """
        yield from url_cache_models(self.cache_dir)
