"""Tiny recurrent (Mamba) and hybrid (Jamba: Mamba and attention layers) GGUFs for tests.

No small recurrent model is published as a test dependency, so one is written with the ``gguf``
package in llama.cpp's layout (``src/models/mamba.cpp``, ``jamba.cpp``), with random float32
weights and the tokenizer of the vendored ``ggml-vocab-llama-spm.gguf``. Its text is noise, but
greedy decoding is deterministic and depends on every earlier token (the state remembers far
back), which is what prefix-reuse tests need.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.append(str(BENCHMARKS))

import synthetic_model  # the vocabulary lookup and tokenizer copy of the Llama writer

SSM_OUT_GAIN = 4.0  # the mixer's output outweighs the residual token embedding


@dataclass(frozen=True, slots=True)
class SsmShape:
    """Hyperparameters; llama.cpp requires ``d_inner == 2 * n_embd``.

    With ``attention_layers`` the model is a Jamba hybrid whose listed layers are attention
    (``n_head`` heads, no RoPE) and the rest Mamba, each followed by a feed-forward network.
    """

    n_embd: int = 64
    n_layer: int = 2
    d_conv: int = 4
    d_state: int = 16
    dt_rank: int = 4
    attention_layers: tuple[int, ...] = ()
    n_head: int = 4
    n_ff: int = 128
    n_ctx_train: int = 2048
    rms_eps: float = 1e-5
    vocab: str = "llama-spm"

    @property
    def d_inner(self) -> int:
        return 2 * self.n_embd

    @property
    def arch(self) -> str:
        return "jamba" if self.attention_layers else "mamba"


MAMBA = SsmShape()
JAMBA = SsmShape(n_layer=3, attention_layers=(1,))


def _mamba_mixer(shape: SsmShape, blk: str) -> list[tuple[str, tuple[int, ...]]]:
    d_inner, d_state, dt_rank = shape.d_inner, shape.d_state, shape.dt_rank
    tensors = [
        (f"{blk}.ssm_in.weight", (2 * d_inner, shape.n_embd)),
        (f"{blk}.ssm_conv1d.weight", (d_inner, shape.d_conv)),
        (f"{blk}.ssm_conv1d.bias", (d_inner,)),
        (f"{blk}.ssm_x.weight", (dt_rank + 2 * d_state, d_inner)),
        (f"{blk}.ssm_dt.weight", (d_inner, dt_rank)),
        (f"{blk}.ssm_dt.bias", (d_inner,)),
        (f"{blk}.ssm_a", (d_inner, d_state)),
        (f"{blk}.ssm_d", (d_inner,)),
        (f"{blk}.ssm_out.weight", (shape.n_embd, d_inner)),
    ]
    if shape.arch == "jamba":
        tensors += [
            (f"{blk}.ssm_dt_norm.weight", (dt_rank,)),
            (f"{blk}.ssm_b_norm.weight", (d_state,)),
            (f"{blk}.ssm_c_norm.weight", (d_state,)),
        ]
    return tensors


def tensor_shapes(shape: SsmShape, n_vocab: int) -> list[tuple[str, tuple[int, ...]]]:
    """Tensor names and NumPy shapes (llama.cpp's ``ne`` reversed)."""
    n_embd = shape.n_embd
    tensors: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (n_vocab, n_embd))]
    for i in range(shape.n_layer):
        blk = f"blk.{i}"
        tensors.append((f"{blk}.attn_norm.weight", (n_embd,)))
        if i in shape.attention_layers:
            tensors += [
                (f"{blk}.attn_{w}.weight", (n_embd, n_embd)) for w in ("q", "k", "v", "output")
            ]
        else:
            tensors += _mamba_mixer(shape, blk)
        if shape.arch == "jamba":
            tensors += [
                (f"{blk}.ffn_norm.weight", (n_embd,)),
                (f"{blk}.ffn_gate.weight", (shape.n_ff, n_embd)),
                (f"{blk}.ffn_up.weight", (shape.n_ff, n_embd)),
                (f"{blk}.ffn_down.weight", (n_embd, shape.n_ff)),
            ]
    # An output projection of its own: tied to token_embd, each token would predict itself.
    tensors += [("output_norm.weight", (n_embd,)), ("output.weight", (n_vocab, n_embd))]
    return tensors


def _tensor(
    name: str, dims: tuple[int, ...], rng: np.random.Generator, shape: SsmShape
) -> np.ndarray:
    if name.endswith("norm.weight"):
        return np.ones(dims, dtype=np.float32)
    if name.endswith(".ssm_a"):
        # A = -exp(A_log): Mamba's initialisation (1..d_state) scaled down so the state decays
        # slowly and a token many steps back still moves the output
        rates = np.arange(1, shape.d_state + 1, dtype=np.float32) / shape.d_state
        return -np.tile(rates, (dims[0], 1))
    if name.endswith(".ssm_d"):
        return np.full(dims, 0.1, dtype=np.float32)  # a weak skip: the output leans on the state
    if name.endswith(".ssm_dt.bias"):
        # softplus(-3) ~ 0.05: a small step, so the state remembers tokens from far back
        return np.full(dims, -3.0, dtype=np.float32)
    if name in ("token_embd.weight", "output.weight"):
        scale = 1.0  # distinct logits keep greedy choices stable against rounding
    elif name.endswith((".ssm_out.weight", ".attn_output.weight")):
        scale = SSM_OUT_GAIN / np.sqrt(dims[-1])
    else:
        scale = 1.0 / np.sqrt(dims[-1])  # fan-in scaling keeps each layer's output near unit size
    return rng.standard_normal(dims, dtype=np.float32) * np.float32(scale)


def write_ssm_gguf(path: Path, shape: SsmShape = MAMBA, seed: int = 0) -> Path:
    """Writes an all-F32 GGUF of ``shape`` (Mamba, or Jamba) with random weights; returns ``path``."""
    import gguf

    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), shape.arch)
    writer.add_name(f"synthetic {shape.arch}")
    n_vocab = synthetic_model._copy_tokenizer(writer, synthetic_model.find_vocab(shape.vocab))
    writer.add_vocab_size(n_vocab)
    writer.add_context_length(shape.n_ctx_train)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    if shape.arch == "jamba":
        writer.add_feed_forward_length(shape.n_ff)
        writer.add_head_count(shape.n_head)
        # no key-value heads is what marks a layer recurrent
        writer.add_head_count_kv(
            [shape.n_head if i in shape.attention_layers else 0 for i in range(shape.n_layer)]
        )
    else:
        writer.add_feed_forward_length(0)  # as convert_hf_to_gguf.py writes for Mamba
        writer.add_head_count(0)
    writer.add_ssm_conv_kernel(shape.d_conv)
    writer.add_ssm_inner_size(shape.d_inner)
    writer.add_ssm_state_size(shape.d_state)
    writer.add_ssm_time_step_rank(shape.dt_rank)
    writer.add_layer_norm_rms_eps(shape.rms_eps)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    for name, dims in tensor_shapes(shape, n_vocab):
        writer.add_tensor(name, _tensor(name, dims, rng, shape))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
