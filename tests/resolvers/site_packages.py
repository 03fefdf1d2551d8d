"""Installed distributions written by hand: a dist-info folder (METADATA, RECORD) and files."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path


def install(site: Path, name: str, files: dict[str, bytes | Path], version: str = "1.0") -> None:
    """Writes an installed distribution: its files plus a dist-info with METADATA and RECORD.
    A ``Path`` value is linked rather than copied (the real model is 98 MB)."""
    dist_info = f"{name.replace('-', '_')}-{version}.dist-info"
    (site / dist_info).mkdir(parents=True)
    (site / dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    )
    lines = []
    for relative, content in files.items():
        target = site / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            target.symlink_to(content)
            lines.append(f"{relative},,")
        else:
            target.write_bytes(content)
            digest = (
                base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
            )
            lines.append(f"{relative},sha256={digest},{len(content)}")
    lines += [f"{dist_info}/METADATA,,", f"{dist_info}/RECORD,,"]
    (site / dist_info / "RECORD").write_text("\n".join(lines) + "\n")
