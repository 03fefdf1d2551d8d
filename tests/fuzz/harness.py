"""Runs one fuzz target under atheris (libFuzzer): ``python tests/fuzz/harness.py NAME [ARGS]``.

ARGS are libFuzzer's (corpus folders, ``-max_total_time=S``, ``-timeout=S``,
``-artifact_prefix=DIR/``). llamabind's Python modules are instrumented for coverage; its
native code is not (libFuzzer still catches its crashes and hangs). ``scripts/fuzz.py`` runs
every target this way. Needs the ``fuzz`` extra (``pip install -e ".[fuzz]"``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=["llamabind"]):
    import llamabind.chat.template  # noqa: F401  (imported here to be instrumented)
    import llamabind.resolvers.file  # noqa: F401
    import llamabind.resolvers.hf  # noqa: F401
    import targets


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
        raise SystemExit(
            f"usage: harness.py NAME [libFuzzer args]; NAME in {list(targets.TARGETS)}"
        )
    target = targets.TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    try:
        atheris.Fuzz()
    finally:
        targets.close()


if __name__ == "__main__":
    main()
