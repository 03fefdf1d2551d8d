"""The fast lane: model-free tests without the compiled extension (``LLAMABIND_NO_NATIVE=1``).

``block()`` installs a meta-path finder that refuses ``llamabind._native``: a test module that
imports it is skipped at collection, a test that reaches it while running is skipped, and
whatever passes has shown that it runs without a build. CI runs this lane from the source
tree (``PYTHONPATH=python``) before building llama.cpp.
"""

from __future__ import annotations

import importlib.abc
import os
import sys

import pytest

ENABLED = os.environ.get("LLAMABIND_NO_NATIVE") == "1"
NATIVE = "llamabind._native"


class _NativeBlocker(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == NATIVE:
            pytest.skip("needs the compiled extension (LLAMABIND_NO_NATIVE=1)",
                        allow_module_level=True)


def block() -> None:
    """Makes ``llamabind._native`` unimportable for this process (skips what needs it)."""
    sys.modules.pop(NATIVE, None)
    sys.meta_path.insert(0, _NativeBlocker())
