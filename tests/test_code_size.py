"""The size flags of STYLE.md, checked: a module past ~500 lines or a function past ~60 (its
docstring not counted) needs a reason written next to it.

A reason is a comment ``# size: <why>`` on the line above the ``def`` (or its decorators), or,
for a module, in its first lines. Past a flag, look for the second concept hiding inside first.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "python" / "llamabind"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
MARK = "# size:"

# Functions in code that other work owns right now; the reason moves next to them there.
ELSEWHERE: dict[tuple[str, str], str] = {}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "_native.pyi")


def _function_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = node.body[0]
    is_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
        first.value.value, str)
    start = first.end_lineno + 1 if is_doc and len(node.body) > 1 else node.lineno
    return node.end_lineno - start + 1


def _has_reason(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    top = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return top >= 2 and lines[top - 2].strip().startswith(MARK)


def test_modules_stay_under_the_flag_or_say_why():
    too_long = []
    for path in _modules():
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > MAX_MODULE_LINES and not any(MARK in line for line in lines[:30]):
            too_long.append(f"{path.relative_to(PACKAGE)}: {len(lines)} lines")
    assert not too_long, too_long


def test_functions_stay_under_the_flag_or_say_why():
    too_long = []
    for path in _modules():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        name = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            n_lines = _function_lines(node)
            if n_lines <= MAX_FUNCTION_LINES or _has_reason(lines, node):
                continue
            if (name, node.name) not in ELSEWHERE:
                too_long.append(f"{name}:{node.lineno} {node.name}: {n_lines} lines")
    assert not too_long, too_long
