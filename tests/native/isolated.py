"""Runs calls that used to crash the process (SIGABRT/SIGSEGV inside llama.cpp) in a child
process, so that a regression fails one test instead of killing pytest."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PRELUDE = """
import json, sys
from llamabind import _native

def case(name, fn):
    try:
        value = fn()
    except Exception as e:
        print(json.dumps([name, type(e).__name__, str(e)]), flush=True)
    else:
        print(json.dumps([name, None, repr(value)]), flush=True)
"""


def run_cases(body: str, *args: object, timeout: float = 300) -> dict[str, tuple[str | None, str]]:
    """Runs `body` after PRELUDE in a child; each ``case(name, fn)`` reports what ``fn()`` raised.

    Returns ``{name: (exception class name or None, message or repr of the result)}``. Fails
    (naming the cases that did finish) when the child dies, e.g. of SIGABRT.
    """
    code = PRELUDE + textwrap.dedent(body)
    result = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    outcomes: dict[str, tuple[str | None, str]] = {}
    for line in result.stdout.splitlines():
        if line.startswith("["):
            name, cls, message = json.loads(line)
            outcomes[name] = (cls, message)
    assert result.returncode == 0, (
        f"the child process died (exit {result.returncode}) after the cases {list(outcomes)}:\n"
        f"{result.stderr[-4000:]}"
    )
    return outcomes
