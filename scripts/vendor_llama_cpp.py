#!/usr/bin/env python3
"""Vendor llama.cpp from the llama-cpp-python sdist on PyPI into ``vendor/llama.cpp``.

GitHub is not reachable from our build machines, but PyPI is, and the sdist of
llama-cpp-python carries a complete llama.cpp checkout under ``vendor/llama.cpp``. This
script downloads that sdist (or takes a local one), extracts llama.cpp, prunes everything
llamabind neither builds nor tests with, and replaces ``vendor/llama.cpp`` with the result.
The pruning rules live here, so an update is one command and a reviewable diff:

    python scripts/vendor_llama_cpp.py --version 0.3.36 --build 11448 --commit 0c1e57098

Afterwards update ``vendor/README.md`` (version, commit, sha256) and the build number and
commit in ``CMakeLists.txt``.
"""

from __future__ import annotations

import argparse
import fnmatch
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1] / "python"))  # pure-Python parts; an installed llamabind wins
from llamabind.resolvers.download import sha256_of  # the one sha256 helper

REPO_ROOT = Path(__file__).resolve().parent.parent
DEST = REPO_ROOT / "vendor" / "llama.cpp"

# Paths kept, relative to the llama.cpp root; everything else is dropped.
KEEP = [
    "CMakeLists.txt",
    "LICENSE",
    "licenses",
    "cmake",
    "include",
    "src",
    "common",
    "vendor/CMakeLists.txt",
    "vendor/nlohmann",
    "vendor/sheredom",
    "vendor/hash",
    "vendor/stb",
    "vendor/miniaudio",
    "ggml/CMakeLists.txt",
    "ggml/cmake",
    "ggml/include",
    "ggml/src/*.c",
    "ggml/src/*.cpp",
    "ggml/src/*.h",
    "ggml/src/*.in",
    "ggml/src/CMakeLists.txt",
    "ggml/src/ggml-cpu",
    "ggml/src/ggml-cuda",
    "ggml/src/ggml-hip",
    "ggml/src/ggml-musa",
    "ggml/src/ggml-metal",
    "ggml/src/ggml-vulkan",
    "ggml/src/ggml-blas",
    "ggml/src/ggml-rpc",
    "models/templates/*.jinja",
]

# Tokenizer test vocabularies kept (with their .inp/.out cases): SPM, WPM and several BPE
# pre-tokenizers, about 17 MB in all.
VOCABS = [
    "llama-spm",  # SPM
    "phi-3",  # SPM
    "bert-bge",  # WPM
    "gpt-2",  # BPE
    "deepseek-coder",  # BPE
    "falcon",  # BPE
    "starcoder",  # BPE
    "refact",  # BPE
    "qwen2",  # BPE
]

# Dropped even inside kept folders.
DROP_PATTERNS = [".git", ".gitignore", ".gitmodules", "*.md", "__pycache__"]
# miniaudio is never compiled (only llama.cpp's multimodal tool uses it); its CMakeLists
# stays because llama.cpp's vendor/CMakeLists.txt adds the folder unconditionally.
DROP_FILES = ["vendor/miniaudio/miniaudio.h"]


def download_sdist(version: str, into: Path) -> Path:
    # --no-build-isolation + --no-deps stops pip from building metadata we do not need.
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         "--no-build-isolation", "-d", str(into), f"llama-cpp-python=={version}"],
        check=False,
    )
    found = sorted(into.glob(f"llama_cpp_python-{version}.tar.gz"))
    if not found:
        sys.exit(f"could not download llama-cpp-python=={version} sdist")
    return found[0]


def ignore(root: Path):
    def _ignore(directory: str, names: list[str]) -> set[str]:
        rel_dir = Path(directory).relative_to(root)
        dropped = set()
        for name in names:
            rel = (rel_dir / name).as_posix()
            if any(fnmatch.fnmatch(name, p) for p in DROP_PATTERNS) or rel in DROP_FILES:
                dropped.add(name)
        return dropped

    return _ignore


def copy_kept(src: Path, dest: Path) -> None:
    for pattern in KEEP:
        matches = sorted(src.glob(pattern))
        if not matches:
            sys.exit(f"pattern {pattern!r} matched nothing: the layout changed, update KEEP")
        for path in matches:
            rel = path.relative_to(src)
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                shutil.copytree(path, target, ignore=ignore(src))
            elif rel.as_posix() not in DROP_FILES:
                shutil.copy2(path, target)
    for vocab in VOCABS:
        for suffix in ("", ".inp", ".out"):
            name = f"models/ggml-vocab-{vocab}.gguf{suffix}"
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, dest / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", default="0.3.36", help="llama-cpp-python sdist version")
    parser.add_argument("--sdist", type=Path, help="use this sdist instead of downloading")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sdist = args.sdist or download_sdist(args.version, tmp)
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name]
            tar.extractall(tmp / "x", members=members, filter="data")
        (src,) = (tmp / "x").glob("*/vendor/llama.cpp")
        staged = tmp / "llama.cpp"
        copy_kept(src, staged)
        if DEST.exists():
            shutil.rmtree(DEST)
        DEST.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staged, DEST)

    size = sum(p.stat().st_size for p in DEST.rglob("*") if p.is_file())
    print(f"sdist: {sdist.name} sha256 {sha256_of(sdist).hexdigest()}")
    print(f"vendored into {DEST.relative_to(REPO_ROOT)}: {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
