"""benchmarks/serve.py on the tiny model: our server under a few concurrent streaming clients."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

pytestmark = pytest.mark.timeout(600)


def test_serve_benchmark_runs_and_reports(tmp_path, smollm2_path):
    out = tmp_path / "serve.json"
    command = [sys.executable, str(BENCHMARKS / "serve.py"), "-m", smollm2_path,
               "--contender", "llamabind", "--clients", "2", "--requests", "4",
               "--max-tokens", "4", "-t", "2", "--max-load", "1000", "--max-wait", "0",
               "--json", str(out)]  # fmt: skip
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    payload = json.loads(out.read_text())
    (row,) = payload["models"][0]["results"]
    assert row["contender"] == "llamabind"
    assert row["n_failed"] == 0, row["errors"]
    assert row["n_tokens"] == 4 * 4  # ignore_eos: every reply is exactly max_tokens long
    assert row["tokens_per_s"] > 0 and row["ttft_p50_ms"] > 0
    assert "| llamabind" in result.stdout
