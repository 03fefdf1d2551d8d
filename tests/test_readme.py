"""Every ```python block of README.md runs as written, each in a fresh interpreter.

The default model is available as it is for a reader who followed the quick start: by its
name, through ``LLAMABIND_MODELS_PATH`` (set to the test-model folder); the working directory
is an empty folder, so no relative path resolves by accident. HTML comments on the lines
right before a block's opening fence change how it runs:

- ``<!-- needs-network -->``: the block downloads, or talks to a server the reader started
  (``llamabind serve``); it is only compiled, not run.
- ``<!-- continues -->``: the block goes on from the python block before it (it uses its names),
  so the two run together, in one interpreter.
- ``<!-- models-folder: /srv/models -->``: ``/srv/models`` in the block is a placeholder for the
  reader's folder of GGUF files; the test puts the folder of the default model in its place.

Nothing else is skipped or changed: the code runs as it stands in the README.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
NEEDS_NETWORK = "<!-- needs-network -->"
CONTINUES = "<!-- continues -->"
_FENCE = re.compile(r"^```(\S*)\s*$")
_MODELS_FOLDER = re.compile(r"^<!-- models-folder: (\S+) -->$")


@dataclass(frozen=True)
class Block:
    """One python block: where it starts, its code, and its markers."""

    line: int
    code: str
    needs_network: bool = False
    continues: bool = False
    models_folder: str | None = None


def _block(line: int, code: str, markers: list[str]) -> Block:
    folders = [m.group(1) for m in map(_MODELS_FOLDER.match, markers) if m]
    known = {NEEDS_NETWORK, CONTINUES}
    unknown = [m for m in markers if m not in known and not _MODELS_FOLDER.match(m)]
    if unknown:
        raise ValueError(f"README.md:{line}: unknown marker {unknown[0]!r}")
    return Block(line, code, NEEDS_NETWORK in markers, CONTINUES in markers,
                 folders[0] if folders else None)


def readme_blocks(text: str) -> list[Block]:
    """The ```python blocks of a Markdown text, with the markers written before them."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        language, start = match.group(1), i
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            raise ValueError(f"README.md:{start + 1}: a code block that is never closed")
        if language == "python":
            markers = []
            j = start - 1
            while j >= 0 and lines[j].startswith("<!--") and lines[j].rstrip().endswith("-->"):
                markers.append(lines[j].strip())
                j -= 1
            blocks.append(_block(start + 1, "\n".join(lines[start + 1:end]) + "\n", markers))
        i = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def program(index: int, models_folder: str) -> tuple[str, bool]:
    """The code that block ``index`` runs (with the blocks it continues, placeholders filled),
    and whether it needs the network (itself or a block it continues)."""
    block = BLOCKS[index]
    code = block.code
    if block.models_folder is not None:
        code = code.replace(block.models_folder, models_folder)
    if block.continues:
        if index == 0:
            raise ValueError(f"README.md:{block.line}: the first python block cannot continue one")
        before, network = program(index - 1, models_folder)
        return before + code, network or block.needs_network
    return code, block.needs_network


def test_the_readme_has_python_blocks_and_the_parser_reads_markers():
    assert len(BLOCKS) >= 8
    sample = (f"text\n{NEEDS_NETWORK}\n```python\nx = 1\n```\n<!-- models-folder: /m -->\n"
              f"{CONTINUES}\n```python\ny = x\n```\n```bash\nls\n```\n")
    first, second = readme_blocks(sample)
    assert first == Block(3, "x = 1\n", needs_network=True)
    assert second == Block(8, "y = x\n", continues=True, models_folder="/m")
    with pytest.raises(ValueError, match="never closed"):
        readme_blocks("```python\nx = 1\n")
    with pytest.raises(ValueError, match="unknown marker"):
        readme_blocks("<!-- needs-gpu -->\n```python\nx = 1\n```\n")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"line{b.line}" for b in BLOCKS])
def test_readme_block_runs(index, model_paths, tmp_path):
    folders = sorted({str(Path(path).parent) for path in model_paths.values()})
    code, needs_network = program(index, folders[0])
    compile(code, f"README.md:{BLOCKS[index].line}", "exec")
    if needs_network:
        pytest.skip(f"README.md:{BLOCKS[index].line} is marked {NEEDS_NETWORK}")
    env = dict(os.environ, LLAMABIND_MODELS_PATH=os.pathsep.join(folders),
               HF_HUB_OFFLINE="1", PYTHONWARNINGS="default")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=850, check=False)
    assert result.returncode == 0, (
        f"README.md:{BLOCKS[index].line} failed (exit {result.returncode}):\n"
        f"{result.stderr[-4000:]}")
