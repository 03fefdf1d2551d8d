"""How a model name is read: a plain name, a local path, or a URI of a supported scheme.

Schemes are matched case-insensitively. The supported forms are local paths, ``file:///`` URIs
of this machine, ``http(s)://`` URLs, ``hf://`` references and ``package:`` names; anything
else that looks like a URI (``ftp:``, ``data:``, ``javascript:``, ``smb:``), a UNC path
(``\\\\server\\share``) or a ``file://`` URI of another host is refused with a ``ValueError``
that names the supported forms, before any resolver sees it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

NameForm = Literal["name", "path", "file", "http", "hf", "package"]

SUPPORTED_FORMS = (
    "a model name, a local path, file:///absolute/path.gguf, https://host/file.gguf, "
    "hf://org/repo:QUANT, hf://org/repo/file.gguf or package:<distribution>"
)
# Two or more characters, so that a Windows drive letter (C:\models) is not a scheme.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
_WITH_SLASHES = {"file": "file", "http": "http", "https": "http", "hf": "hf"}


def _refuse(name: str, why: str) -> ValueError:
    return ValueError(f"{why} in model name {name!r}; supported forms: {SUPPORTED_FORMS}")


def is_unc_path(name: str) -> bool:
    """Whether ``name`` names a network share (``\\\\server\\share`` or ``//server/share``)."""
    return name.startswith(("\\\\", "//")) and not name.startswith("///")


def name_form(name: str) -> NameForm:
    """Says what ``name`` is, refusing forms llamabind does not support.

    Args:
        name: A model name, path or URI (already checked by ``check_name``).

    Returns:
        ``"file"``, ``"http"`` (also https), ``"hf"`` or ``"package"`` for those URIs;
        ``"path"`` for something that reads as a local path (absolute, ``~``, ``./``, ``../``);
        ``"name"`` otherwise (it may still be a relative path).

    Raises:
        ValueError: An unsupported scheme, a UNC path, a ``file://`` URI of another host, or a
            supported scheme written without its ``//``.
    """
    if is_unc_path(name):
        raise _refuse(name, "network (UNC) paths are not supported")
    match = _SCHEME.match(name)
    if match:
        scheme = match[1].lower()
        if scheme == "package":
            return "package"
        if scheme not in _WITH_SLASHES:
            raise _refuse(
                name,
                f"unsupported model URI scheme {scheme!r} (a file name with a colon: write ./name)",
            )
        if not name[len(scheme) + 1 :].startswith("//"):
            raise _refuse(name, f"{scheme}: needs '//' (as in {scheme}://...)")
        if scheme == "file":
            file_uri_path(name)  # refuses other hosts
        return _WITH_SLASHES[scheme]  # type: ignore[return-value]
    path = Path(name)
    if path.is_absolute() or path.drive or path.root:
        return "path"
    if name.startswith(("~", "./", "../", ".\\", "..\\")) or name in (".", ".."):
        return "path"
    return "name"


def user_path(name: str) -> Path:
    """``name`` as a path with a leading ``~`` or ``~user`` expanded.

    A ``~user`` with no known home directory stays as written, as ``os.path.expanduser`` leaves
    it (``Path.expanduser`` would raise RuntimeError): such a name is then simply not found.
    """
    return Path(os.path.expanduser(name))


def path_problem(path: Path) -> str | None:
    """Why ``path`` is not a file to open: ``"no such file"``, ``"not a file"``, or the operating
    system's reason (such as a name longer than the file system allows); None for a file."""
    try:
        if path.is_file():
            return None
        return "not a file" if path.exists() else "no such file"
    except OSError as exc:
        return exc.strerror or str(exc)


def file_uri_path(uri: str) -> Path:
    """The local path a ``file://`` URI names (``file:///abs/m.gguf`` or ``file://localhost/``).

    Raises:
        ValueError: A URI of another host, or a network share.
    """
    parts = urlsplit(uri)
    if parts.netloc.lower() not in ("", "localhost"):
        raise _refuse(uri, f"file:// URIs of other hosts ({parts.netloc!r}) are not supported")
    raw = unquote(parts.path)
    if is_unc_path(raw):
        raise _refuse(uri, "network (UNC) paths are not supported")
    return Path(url2pathname(raw) if os.name == "nt" else raw)
