"""Every seed of every fuzz target, once, through the plain target function (no atheris).

Keeps the harnesses of ``tests/fuzz`` working between fuzzing runs (``scripts/fuzz.py``), and
holds the inputs that fuzzing found (kept as seeds) to their fixed behaviour.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import no_native
import targets

CASES = [(name, seed) for name in targets.TARGETS for seed in targets.seeds(name)]


@pytest.fixture(scope="module", autouse=True)
def _stop_worker():
    yield
    targets.close()


@pytest.mark.parametrize(("name", "seed"), CASES, ids=[f"{n}/{s.name}" for n, s in CASES])
def test_seed(name: str, seed: Path):
    if name == "gguf" and no_native.ENABLED:
        pytest.skip("the model-load worker needs the compiled extension")
    targets.TARGETS[name](seed.read_bytes())


def test_every_target_has_seeds():
    assert {name for name, _ in CASES} == set(targets.TARGETS)


def test_only_the_hierarchy_and_documented_value_errors_are_answers():
    from llamabind.errors import GrammarError

    assert targets.accepted(GrammarError("x"))
    assert targets.accepted(ValueError("x"), ValueError)
    assert not targets.accepted(ValueError("x"))
    assert not targets.accepted(
        UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogate"), ValueError
    )
    with pytest.raises(UnicodeEncodeError):
        targets._call(lambda: "\udcff".encode(), ValueError)
