"""``python -m llamabind``: the ``llamabind`` command (see :mod:`llamabind.cli`)."""

from __future__ import annotations

from llamabind.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
