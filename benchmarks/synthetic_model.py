"""Write a Llama-architecture GGUF with random weights in a real model's shape, then quantize it.

Speed depends on shapes and quantization, not on what the weights say, so a model of the
right shape measures what a download would, with no download. The tokenizer is copied from a
vocabulary GGUF of llama.cpp (``models/ggml-vocab-*.gguf``: vendored, or in the full tree that
``scripts/build_llama_bench.py`` unpacks); the weights are written as F16 and quantized with
the ``llama-quantize`` built by that script.

    python benchmarks/synthetic_model.py llama-3.2-1b                 # Q4_K_M, ~0.8 GB
    python benchmarks/synthetic_model.py llama-3.1-8b --quant Q4_K_M  # ~4.7 GB, 16 GB of F16 first
    python benchmarks/synthetic_model.py tiny --quant F16 -o tiny.gguf

Default output: ``~/.cache/llamabind/synthetic-models/<shape>-<quant>.gguf``. Shapes:
smollm2-135m, llama-3.2-1b, llama-3.1-8b (their published configs), tiny (for tests).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT / "scripts") not in sys.path:
    sys.path.append(str(REPO_ROOT / "scripts"))

import build_llama_bench

WEIGHT_STD = 0.02  # the usual initialisation scale; keeps activations finite through the layers
POOL_SIZE = 1 << 24  # random values drawn once and reused (rolled) for every tensor


@dataclass(frozen=True, slots=True)
class Shape:
    """The hyperparameters that set a Llama-architecture model's cost."""

    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    vocab: str  # the ggml-vocab-<vocab>.gguf whose tokenizer is copied (sets n_vocab)
    tied_embeddings: bool
    rope_freq_base: float
    n_ctx_train: int
    rms_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


SHAPES: dict[str, Shape] = {
    # HuggingFaceTB/SmolLM2-135M: 49152-token vocab; gpt-2's 50257 is the nearest vendored one.
    "smollm2-135m": Shape(576, 30, 9, 3, 1536, "gpt-2", True, 100000.0, 8192),
    "llama-3.2-1b": Shape(2048, 16, 32, 8, 8192, "llama-bpe", True, 500000.0, 131072),
    "llama-3.1-8b": Shape(4096, 32, 32, 8, 14336, "llama-bpe", False, 500000.0, 131072),
    "tiny": Shape(64, 2, 4, 2, 128, "llama-spm", True, 10000.0, 2048),
}

LLAMA_FTYPE_MOSTLY_F16 = 1  # general.file_type of the written file (llama.h)


def default_cache_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "llamabind" / "synthetic-models"


def default_output(shape: str, quant: str) -> Path:
    """Where ``shape`` quantized as ``quant`` is written by default."""
    return default_cache_dir() / f"{shape}-{quant}.gguf"


def find_vocab(name: str) -> Path:
    """The ggml-vocab GGUF of that name: vendored, or in llama-bench's unpacked source tree."""
    file = f"ggml-vocab-{name}.gguf"
    places = [REPO_ROOT / "vendor" / "llama.cpp" / "models" / file,
              build_llama_bench.default_install_dir() / "src" / "llama.cpp" / "models" / file]
    for place in places:
        if place.exists():
            return place
    raise FileNotFoundError(
        f"{file} not found in {', '.join(str(p.parent) for p in places)}; run "
        "scripts/build_llama_bench.py once (it unpacks the full llama.cpp tree) or pass --vocab")


def tensor_shapes(shape: Shape, n_vocab: int) -> list[tuple[str, tuple[int, ...]]]:
    """Tensor names and NumPy shapes (rows, columns) in llama.cpp's Llama layout."""
    q_dim = shape.n_head * shape.head_dim
    kv_dim = shape.n_head_kv * shape.head_dim
    tensors: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (n_vocab, shape.n_embd))]
    for i in range(shape.n_layer):
        blk = f"blk.{i}"
        tensors += [
            (f"{blk}.attn_norm.weight", (shape.n_embd,)),
            (f"{blk}.attn_q.weight", (q_dim, shape.n_embd)),
            (f"{blk}.attn_k.weight", (kv_dim, shape.n_embd)),
            (f"{blk}.attn_v.weight", (kv_dim, shape.n_embd)),
            (f"{blk}.attn_output.weight", (shape.n_embd, q_dim)),
            (f"{blk}.ffn_norm.weight", (shape.n_embd,)),
            (f"{blk}.ffn_gate.weight", (shape.n_ff, shape.n_embd)),
            (f"{blk}.ffn_up.weight", (shape.n_ff, shape.n_embd)),
            (f"{blk}.ffn_down.weight", (shape.n_embd, shape.n_ff)),
        ]
    tensors.append(("output_norm.weight", (shape.n_embd,)))
    if not shape.tied_embeddings:
        tensors.append(("output.weight", (n_vocab, shape.n_embd)))
    return tensors


def _copy_tokenizer(writer, vocab_path: Path) -> int:
    """Copies every ``tokenizer.*`` key of a GGUF; returns its vocabulary size."""
    import gguf

    reader = gguf.GGUFReader(vocab_path)
    n_vocab = 0
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        sub_type = field.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type)
        if key == "tokenizer.ggml.tokens":
            n_vocab = len(field.data)
    if not n_vocab:
        raise ValueError(f"{vocab_path} has no tokenizer.ggml.tokens")
    return n_vocab


def write_random_gguf(path: Path, shape: Shape, vocab_path: Path, seed: int = 0,
                      name: str = "synthetic") -> int:
    """Writes an F16 Llama GGUF of ``shape`` with random weights; returns its parameter count.

    Tensors are streamed to the file one at a time, so memory stays at about the largest one.
    """
    import gguf

    rng = np.random.default_rng(seed)
    pool = (rng.standard_normal(POOL_SIZE, dtype=np.float32) * WEIGHT_STD).astype(np.float16)
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name(name)
    n_vocab = _copy_tokenizer(writer, vocab_path)
    writer.add_vocab_size(n_vocab)
    writer.add_context_length(shape.n_ctx_train)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_rope_freq_base(shape.rope_freq_base)
    writer.add_layer_norm_rms_eps(shape.rms_eps)
    writer.add_file_type(LLAMA_FTYPE_MOSTLY_F16)

    tensors = tensor_shapes(shape, n_vocab)
    for tensor_name, dims in tensors:
        is_norm = len(dims) == 1
        dtype = np.dtype(np.float32 if is_norm else np.float16)
        writer.add_tensor_info(tensor_name, dims, dtype, int(np.prod(dims)) * dtype.itemsize)
    writer.write_header_to_file(path)
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    n_params = 0
    for _, dims in tensors:
        count = int(np.prod(dims))
        n_params += count
        if len(dims) == 1:
            data = np.ones(dims, dtype=np.float32)  # RMS-norm gains
        else:
            data = np.resize(np.roll(pool, int(rng.integers(POOL_SIZE))), count).reshape(dims)
        writer.write_tensor_data(data)
    writer.close()
    return n_params


def quantize(source: Path, target: Path, quant: str, llama_quantize: Path,
             threads: int | None = None) -> None:
    """Quantizes with llama.cpp's llama-quantize (stdout and stderr only shown on failure)."""
    argv = [str(llama_quantize), str(source), str(target), quant, str(threads or os.cpu_count() or 1)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"llama-quantize failed ({done.returncode}):\n{done.stderr[-3000:]}")


def make_model(shape_name: str, quant: str, output: Path, vocab: Path | None = None,
               llama_quantize: Path | None = None, seed: int = 0, keep_f16: bool = False) -> Path:
    """Writes (and quantizes unless ``quant`` is F16) one synthetic model; returns its path."""
    shape = SHAPES[shape_name]
    vocab_path = vocab or find_vocab(shape.vocab)
    output.parent.mkdir(parents=True, exist_ok=True)
    f16 = output if quant == "F16" else output.with_name(output.stem + ".f16.gguf")
    started = time.perf_counter()
    n_params = write_random_gguf(f16, shape, vocab_path, seed, name=f"synthetic {shape_name}")
    print(f"wrote {f16} ({n_params / 1e6:,.0f} M parameters, {f16.stat().st_size / 1e6:,.0f} MB) "
          f"in {time.perf_counter() - started:.0f} s")
    if quant != "F16":
        tool = llama_quantize or build_llama_bench.tool_path("llama-quantize")
        if not tool.exists():
            raise FileNotFoundError(f"{tool} not found; build it with scripts/build_llama_bench.py")
        started = time.perf_counter()
        try:
            quantize(f16, output, quant, tool)
        finally:
            if not keep_f16:
                f16.unlink(missing_ok=True)
        print(f"quantized to {quant}: {output} ({output.stat().st_size / 1e9:.2f} GB) "
              f"in {time.perf_counter() - started:.0f} s")
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shape", choices=sorted(SHAPES))
    parser.add_argument("--quant", default="Q4_K_M",
                        help="a llama-quantize type (Q4_0, Q4_K_M, Q8_0, ...) or F16 for none")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="output file (default: ~/.cache/llamabind/synthetic-models/<shape>-<quant>.gguf)")
    parser.add_argument("--vocab", type=Path, default=None,
                        help="a GGUF whose tokenizer is copied (default: the shape's ggml-vocab file)")
    parser.add_argument("--llama-quantize", type=Path, default=None,
                        help="llama-quantize binary (default: the one build_llama_bench.py built)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-f16", action="store_true", help="keep the F16 file after quantizing")
    parser.add_argument("--force", action="store_true", help="write it even if the output exists")
    args = parser.parse_args()

    output = args.output or default_output(args.shape, args.quant)
    if output.exists() and not args.force:
        print(f"{output} exists (--force to write it again)")
        return
    make_model(args.shape, args.quant, output, args.vocab, args.llama_quantize, args.seed,
               args.keep_f16)


if __name__ == "__main__":
    main()
