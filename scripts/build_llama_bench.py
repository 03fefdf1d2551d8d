#!/usr/bin/env python3
"""Build llama.cpp's own ``llama-bench``, ``llama-batched-bench`` and ``llama-quantize`` once, from our llama.cpp version.

``vendor/llama.cpp`` has its ``tools/`` pruned, so this script takes the same llama.cpp from
the same place: the llama-cpp-python sdist on PyPI (checked against its sha256), whose
``vendor/llama.cpp`` is a complete checkout. It builds the tools with the settings of our
extension (static libraries, ``GGML_NATIVE=ON``, OpenMP, ggml's AMX kernels off unless asked
for, as ``LLAMABIND_AMX`` in our CMakeLists.txt) into a cache folder, and prints their paths:

    python scripts/build_llama_bench.py                # CPU build
    python scripts/build_llama_bench.py --cuda         # -DGGML_CUDA=ON, a separate folder

Default folder: ``~/.cache/llamabind/llama-bench-b<build>[-cuda]`` (``XDG_CACHE_HOME`` is
honoured). A second run finds the binaries and does nothing; ``--force`` rebuilds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1] / "python"))  # pure-Python parts; an installed llamabind wins
from llamabind.resolvers.download import sha256_of  # the one sha256 helper

REPO_ROOT = Path(__file__).resolve().parent.parent
SDIST_VERSION = "0.3.36"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
TARGETS = ("llama-bench", "llama-batched-bench", "llama-quantize")
SERVER_TARGET = "llama-server"  # with --server, for benchmarks/serve.py

# A top-level project around llama.cpp, as our own CMakeLists.txt is: the place where the
# ggml-cpu target exists and can be given the flags that keep AMX kernels out.
WRAPPER_CMAKE = """\
cmake_minimum_required(VERSION 3.18)
project(llamabind_llama_bench C CXX)
add_subdirectory(llama.cpp)
option(LLAMABIND_AMX "let -march=native builds use ggml's AMX kernels" OFF)
if (NOT LLAMABIND_AMX AND TARGET ggml-cpu AND CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64"
    AND NOT MSVC)
    target_compile_options(ggml-cpu PRIVATE -mno-amx-tile -mno-amx-int8 -mno-amx-bf16)
endif()
"""


def vendored_build() -> tuple[str, str]:
    """The llama.cpp build number and commit named in our CMakeLists.txt."""
    text = (REPO_ROOT / "CMakeLists.txt").read_text()
    number = re.search(r"set\(LLAMA_BUILD_NUMBER (\d+)", text)
    commit = re.search(r'set\(LLAMA_BUILD_COMMIT "([0-9a-f]+)"', text)
    if not number or not commit:
        sys.exit("CMakeLists.txt does not name LLAMA_BUILD_NUMBER / LLAMA_BUILD_COMMIT")
    return number.group(1), commit.group(1)


def default_install_dir(cuda: bool = False) -> Path:
    """Where the tools of this llama.cpp version are built by default."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    number, _ = vendored_build()
    return cache / "llamabind" / f"llama-bench-b{number}{'-cuda' if cuda else ''}"


def tool_path(name: str, install_dir: Path | None = None, cuda: bool = False) -> Path:
    """The path of a built tool (``llama-bench`` or ``llama-quantize``); it may not exist."""
    return (install_dir or default_install_dir(cuda)) / "bin" / name


def fetch_sdist(into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    target = into / f"llama_cpp_python-{SDIST_VERSION}.tar.gz"
    if not target.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             "-d", str(into), f"llama-cpp-python=={SDIST_VERSION}"],
            check=False,
        )
    if not target.exists():
        sys.exit(f"could not download llama-cpp-python=={SDIST_VERSION} (pass --sdist PATH)")
    return target


def unpack_llama_cpp(sdist: Path, dest: Path) -> None:
    """Extracts the sdist's vendor/llama.cpp (complete, tools included) to ``dest``."""
    digest = sha256_of(sdist).hexdigest()
    if digest != SDIST_SHA256:
        sys.exit(f"{sdist.name}: sha256 {digest}, expected {SDIST_SHA256}")
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp_name:
        tmp = Path(tmp_name)
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name]
            tar.extractall(tmp, members=members, filter="data")
        (src,) = tmp.glob("*/vendor/llama.cpp")
        git_link = src / ".git"  # a submodule link file: llama.cpp's CMake would ask git
        if git_link.is_file():
            git_link.unlink()
        if dest.exists():
            shutil.rmtree(dest)
        src.rename(dest)


def cmake_args(source: Path, build: Path, cuda: bool, cuda_arch: str | None,
               server: bool = False) -> list[str]:
    number, commit = vendored_build()
    args = ["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"]
    if shutil.which("ninja"):
        args += ["-G", "Ninja"]
    flags = {
        "BUILD_SHARED_LIBS": "OFF",
        "LLAMA_BUILD_COMMON": "ON",
        "LLAMA_BUILD_TOOLS": "ON",
        "LLAMA_BUILD_SERVER": "ON" if server else "OFF",
        "LLAMA_BUILD_EXAMPLES": "OFF",
        "LLAMA_BUILD_TESTS": "OFF",
        "LLAMA_BUILD_APP": "OFF",
        "LLAMA_OPENSSL": "OFF",
        "LLAMA_USE_PREBUILT_UI": "OFF",
        "GGML_BUILD_TESTS": "OFF",
        "GGML_BUILD_EXAMPLES": "OFF",
        "GGML_NATIVE": "ON",
        "LLAMA_BUILD_NUMBER": number,
        "LLAMA_BUILD_COMMIT": commit,
    }
    if cuda:
        flags["GGML_CUDA"] = "ON"
        if cuda_arch:
            flags["CMAKE_CUDA_ARCHITECTURES"] = cuda_arch
    ccache = shutil.which("ccache")
    if ccache:
        # As in our CMakeLists.txt: hash paths relative to the source tree.
        launcher = (f"{shutil.which('cmake') or 'cmake'};-E;env;CCACHE_BASEDIR={source};"
                    "CCACHE_NOHASHDIR=1;"
                    "CCACHE_SLOPPINESS=include_file_mtime,include_file_ctime,time_macros;" + ccache)
        flags["CMAKE_C_COMPILER_LAUNCHER"] = launcher
        flags["CMAKE_CXX_COMPILER_LAUNCHER"] = launcher
        if cuda:
            flags["CMAKE_CUDA_COMPILER_LAUNCHER"] = ccache
    return args + [f"-D{key}={value}" for key, value in flags.items()]


def build(install_dir: Path, sdist: Path | None, cuda: bool, cuda_arch: str | None,
          jobs: int, server: bool = False) -> dict[str, str]:
    source = install_dir / "src"
    llama_cpp = source / "llama.cpp"
    if not (llama_cpp / "CMakeLists.txt").exists():
        source.mkdir(parents=True, exist_ok=True)
        unpack_llama_cpp(sdist or fetch_sdist(install_dir / "sdist"), llama_cpp)
    (source / "CMakeLists.txt").write_text(WRAPPER_CMAKE)
    build_dir = install_dir / "build"
    subprocess.run(cmake_args(source, build_dir, cuda, cuda_arch, server), check=True)
    targets = TARGETS + ((SERVER_TARGET,) if server else ())
    subprocess.run(["cmake", "--build", str(build_dir), "--target", *targets, "-j", str(jobs)],
                   check=True)
    bin_dir = install_dir / "bin"
    bin_dir.mkdir(exist_ok=True)
    paths = {}
    for name in targets:
        built = build_dir / "bin" / name
        shutil.copy2(built, bin_dir / name)
        paths[name] = str(bin_dir / name)
    number, commit = vendored_build()
    info = {"llama_cpp_build": int(number), "llama_cpp_commit": commit,
            "sdist": f"llama-cpp-python=={SDIST_VERSION}", "cuda": cuda,
            "ggml_native": True, "amx": False, "tools": paths}
    (install_dir / "build-info.json").write_text(json.dumps(info, indent=2) + "\n")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuda", action="store_true", help="build with -DGGML_CUDA=ON")
    parser.add_argument("--cuda-arch", default=None,
                        help="CMAKE_CUDA_ARCHITECTURES, e.g. 90 (default: llama.cpp's choice)")
    parser.add_argument("--install-dir", type=Path, default=None,
                        help="cache folder (default: ~/.cache/llamabind/llama-bench-b<build>)")
    parser.add_argument("--sdist", type=Path, default=None,
                        help=f"a local llama_cpp_python-{SDIST_VERSION}.tar.gz instead of PyPI")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--force", action="store_true", help="rebuild even if the tools exist")
    parser.add_argument("--server", action="store_true",
                        help="also build llama-server (web UI left out), for benchmarks/serve.py")
    args = parser.parse_args()

    install_dir = args.install_dir or default_install_dir(args.cuda)
    targets = TARGETS + ((SERVER_TARGET,) if args.server else ())
    existing = {name: tool_path(name, install_dir) for name in targets}
    if not args.force and all(p.exists() for p in existing.values()):
        paths = {name: str(p) for name, p in existing.items()}
    else:
        paths = build(install_dir, args.sdist, args.cuda, args.cuda_arch, args.jobs, args.server)
    for name, path in paths.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
