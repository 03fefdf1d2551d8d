"""The benchmark tools that are not benchmarks: the synthetic-model writer and the statistics."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("gguf")

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import harness
import synthetic_model
from llamabind import _native


def test_tiny_synthetic_model_loads_and_generates(tmp_path: Path) -> None:
    shape = synthetic_model.SHAPES["tiny"]
    path = synthetic_model.make_model("tiny", "F16", tmp_path / "tiny.gguf")
    with _native.Model(str(path)) as model:
        assert model.architecture == "llama"
        assert (model.n_layer, model.n_embd, model.n_head) == (shape.n_layer, shape.n_embd, shape.n_head)
        assert model.n_vocab == 32000  # copied from ggml-vocab-llama-spm.gguf
        expected = sum(
            math.prod(dims)
            for _, dims in synthetic_model.tensor_shapes(shape, model.n_vocab))
        assert model.n_params == expected
        assert model.tokenize("hello world", add_special=False)  # the tokenizer came along
        with _native.Context(model, n_ctx=64, n_threads=1) as ctx:
            gen = ctx.generate(model.tokenize("hello"), _native.Sampler(model, temperature=0.0),
                               max_tokens=4, ignore_eog=True)
            tokens = [token for token, _ in gen]
    assert len(tokens) == 4 and all(0 <= t < 32000 for t in tokens)


def test_synthetic_shapes_match_published_parameter_counts() -> None:
    # Published sizes: SmolLM2-135M 134.5 M, Llama-3.2-1B 1.236 B, Llama-3.1-8B 8.03 B
    # (ours differ only by the vocabulary copied and by omitting rope_freqs).
    def count(name: str, n_vocab: int) -> int:
        return sum(math.prod(d)
                   for _, d in synthetic_model.tensor_shapes(synthetic_model.SHAPES[name], n_vocab))

    assert count("smollm2-135m", 49152) == pytest.approx(134.5e6, rel=0.01)
    assert count("llama-3.2-1b", 128256) == pytest.approx(1.236e9, rel=0.01)
    assert count("llama-3.1-8b", 128256) == pytest.approx(8.03e9, rel=0.01)


def test_summary_median_and_spread() -> None:
    summary = harness.Summary.of([10.0, 12.0, 11.0])
    assert (summary.median, summary.low, summary.high, summary.n) == (11.0, 10.0, 12.0, 3)
    assert summary.spread_pct == pytest.approx(100 * 2 / 11)
    assert summary.fmt() == "11.0 ±18%"
    with pytest.raises(ValueError):
        harness.Summary.of([])


def test_speed_rounds_run_in_child_processes(tmp_path: Path) -> None:
    # speed.py measures each contender in a process of its own; this runs its llamabind side
    # (and llama-cpp-python's, when installed) for one small round on a tiny model.
    path = synthetic_model.make_model("tiny", "F16", tmp_path / "tiny.gguf")
    args = {"n_prompt": 24, "n_gen": 20, "threads": 1, "n_gpu_layers": 0, "flash_attn": "auto"}
    spec = {"path": str(path), "args": args}
    speed = str(BENCHMARKS / "speed.py")
    facts, _ = harness.run_json_child(speed, {**spec, "role": "prepare"})
    assert len(facts["prompt_ids"]) == 24 and facts["gen_prompt_ids"]
    assert facts["size_bytes"] > 0 and facts["n_params"] > 0
    result, run = harness.run_json_child(speed, {**spec, "role": "ours", "round": 1})
    samples = result["samples"]
    for key in ("pp_native", "ttft_native_ms", "ttft_engine_ms", "native", "native_internal",
                "generate", "create"):
        assert len(samples[key]) == 1 and samples[key][0] > 0, key
    assert result["sampling_backend"] == "cpu"
    assert run.peak_rss_bytes > 0 and run.wall_s > 0
    if harness.peer_available():
        prompts = {k: facts[k] for k in ("prompt_ids", "gen_prompt_ids")}
        result, _ = harness.run_json_child(str(BENCHMARKS / "peer.py"), {**spec, **prompts})
        assert result["samples"]["peer"][0] > 0 and result["samples"]["peer_ttft_ms"][0] > 0


def test_failing_child_process_raises_with_its_error(tmp_path: Path) -> None:
    spec = {"path": str(tmp_path / "missing.gguf"), "role": "prepare",
            "args": {"n_prompt": 8, "n_gen": 8, "threads": 1, "n_gpu_layers": 0, "flash_attn": "auto"}}
    with pytest.raises(RuntimeError, match="missing.gguf"):
        harness.run_json_child(str(BENCHMARKS / "speed.py"), spec)
