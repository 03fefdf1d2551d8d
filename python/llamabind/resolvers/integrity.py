"""Checking downloaded files: sha256 checksums and the sidecar that records a file's facts.

A downloaded ``<target>`` has a sidecar ``<target>.json`` with its source URL, sha256, size and
time; a cached copy whose sidecar names the expected sha256 is trusted without hashing it
again. The sha256 helper here is the project's only one (the scripts and tests use it too).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

CHUNK_BYTES = 1 << 20

__all__ = [
    "CHUNK_BYTES",
    "check_sha256",
    "read_sidecar",
    "sha256_of",
    "sidecar_path",
    "write_json_atomically",
]


def sidecar_path(target: Path) -> Path:
    """Where the facts of a downloaded file (source URL, sha256, size) are kept."""
    return target.with_name(target.name + ".json")


def read_sidecar(target: Path) -> dict[str, Any]:
    """The sidecar of ``target`` as a dict (empty if missing or unreadable)."""
    try:
        value = json.loads(sidecar_path(target).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def write_json_atomically(path: Path, value: dict[str, Any]) -> None:
    """Writes ``value`` as JSON to ``path`` through a temporary file and a rename."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(value, indent=1), "utf-8")
    os.replace(temporary, path)


def sha256_of(path: Path, digest: Any = None) -> Any:
    """Feeds the bytes of ``path`` to a sha256 digest (a new one unless given) and returns it."""
    digest = digest or hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(CHUNK_BYTES):
            digest.update(block)
    return digest


def check_sha256(sha256: str | None) -> str | None:
    """Normalizes an expected sha256 (64 hex digits) to lower case.

    Raises:
        ValueError: Not 64 hex digits.
    """
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}")
    return value
