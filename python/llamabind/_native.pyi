"""llamabind's native layer: llama.cpp handles bound with nanobind."""

from collections.abc import Callable, Sequence
from typing import Annotated

import numpy
from numpy.typing import NDArray


def system_info() -> str:
    """
    llama.cpp's system information line: the CPU features and backends compiled in.
    """

def llama_cpp_version() -> str:
    """The vendored llama.cpp build, e.g. ``"b11448-0c1e57098"``."""

def supports_gpu_offload() -> bool:
    """
    Whether this build can offload layers to a GPU (CUDA, Metal, Vulkan, HIP, ...).
    """

def supports_mmap() -> bool:
    """Whether model files can be memory-mapped."""

def supports_mlock() -> bool:
    """Whether model memory can be locked in RAM."""

class DeviceInfo:
    """A compute device llama.cpp can use."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def type(self) -> str:
        """"cpu", "gpu", "igpu" or "accel"."""

    @property
    def memory_free_bytes(self) -> int: ...

    @property
    def memory_total_bytes(self) -> int: ...

    def __repr__(self) -> str: ...

def devices() -> list[DeviceInfo]:
    """
    The compute devices of this build, with their free and total memory in bytes.
    """

def set_log_threshold(level: int) -> None:
    """
    Drop llama.cpp log records below this Python logging level at the source.

    The records that pass go to the logger ``llamabind.native``; ``llamabind.set_log_level``
    sets both this threshold and that logger's level.
    """

def log_threshold() -> int:
    """The current source threshold (a logging level)."""

def flush_logs() -> None:
    """Emit queued llama.cpp log records now."""

class Model:
    """
    A GGUF model loaded by llama.cpp.

    Loading releases the GIL. A model is read-only afterwards and may be shared by many threads
    and contexts; contexts keep the weights alive, so ``close()`` frees them once no context uses
    them. Using a closed model raises ``HandleClosedError``.
    """

    def __init__(self, path: str, progress: Callable | None = None, **kwargs) -> None:
        """
        Loads a GGUF file.

        Args:
            path: The .gguf file (the first part of a split model).
            progress: Called with the load progress in [0, 1]; returning False cancels the load
                (raising ModelLoadError with ``cancelled=1``); an exception it raises is re-raised.
            **kwargs: llama_model_params: n_gpu_layers (-1: all, the default), split_mode (0 none,
                1 layer, 2 row, 3 tensor), main_gpu, tensor_split (list of proportions), use_mmap
                (True), use_mlock (False), vocab_only (False), check_tensors (False), kv_overrides
                (dict of GGUF key -> bool/int/float/str).

        Raises:
            ModelLoadError: missing file, a directory, an empty, non-GGUF, truncated or corrupt file.
        """

    def close(self) -> None:
        """Drops this handle's reference to the weights now."""

    @property
    def is_closed(self) -> bool: ...

    def __enter__(self) -> object: ...

    def __exit__(self, *args) -> None: ...

    @property
    def path(self) -> str: ...

    @property
    def metadata(self) -> dict[str, str]:
        """All GGUF key/value metadata as strings (arrays are not expanded)."""

    @property
    def description(self) -> str: ...

    @property
    def architecture(self) -> str: ...

    @property
    def n_params(self) -> int: ...

    @property
    def size_bytes(self) -> int: ...

    @property
    def n_ctx_train(self) -> int: ...

    @property
    def n_embd(self) -> int: ...

    @property
    def n_layer(self) -> int: ...

    @property
    def n_head(self) -> int: ...

    @property
    def n_vocab(self) -> int: ...

    @property
    def vocab_type(self) -> int:
        """1 SPM, 2 BPE, 3 WPM, 4 UGM, 5 RWKV, 6 PLaMo-2."""

    @property
    def is_vocab_only(self) -> bool: ...

    @property
    def has_encoder(self) -> bool: ...

    @property
    def has_decoder(self) -> bool: ...

    @property
    def is_recurrent(self) -> bool: ...

    @property
    def special_tokens(self) -> dict[str, int]:
        """bos, eos, eot, sep, nl, pad, mask, fim_*: token id, -1 when absent."""

    @property
    def add_bos(self) -> bool: ...

    @property
    def add_eos(self) -> bool: ...

    def is_eog(self, token: int) -> bool:
        """Whether the token ends generation (EOS, EOT, ...)."""

    def is_control(self, token: int) -> bool: ...

    def token_attr(self, token: int) -> int:
        """llama_token_attr bit flags of the token."""

    def token_text(self, token: int) -> str:
        """The token's vocabulary entry."""

    def token_score(self, token: int) -> float: ...

    def chat_template(self, name: str | None = None) -> str | None:
        """
        The model's chat template (a named one when ``name`` is given), or None.
        """

    @property
    def chat_templates(self) -> dict[str, str]:
        """All chat templates by name ("default" for the main one)."""

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """
        Text -> token ids. ``add_special`` adds BOS/EOS as the model wants; ``parse_special`` turns special-token text into those tokens.
        """

    def detokenize(self, tokens: Sequence[int], remove_special: bool = False, unparse_special: bool = False) -> bytes:
        """
        Token ids -> UTF-8 bytes (decode with errors="replace" for partial characters).
        """

    def token_to_piece(self, token: int, special: bool = False) -> bytes:
        """One token's bytes."""

    def __repr__(self) -> str: ...

class Sampler:
    """A llama.cpp sampler chain, optionally constrained by a GBNF grammar."""

    def __init__(self, model: Model, **kwargs) -> None:
        """
        Builds the chain: logit bias, grammar, penalties, DRY, top-n-sigma, top-k, typical-p,
        top-p, min-p, XTC, temperature, dist; greedy when temperature <= 0 or greedy=True; mirostat
        1/2 after temperature.

        Keyword args (llama.cpp defaults): seed (random), temperature (0.8), dynatemp_range (0),
        dynatemp_exponent (1), top_k (40), top_p (0.95), min_p (0.05), typical_p (1), top_n_sigma (-1),
        xtc_probability (0), xtc_threshold (0.1), penalty_last_n (64), repeat_penalty (1),
        frequency_penalty (0), presence_penalty (0), dry_multiplier (0: off), dry_base (1.75),
        dry_allowed_length (2), dry_penalty_last_n (-1), dry_sequence_breakers, mirostat (0),
        mirostat_tau (5), mirostat_eta (0.1), greedy (False), logit_bias ({token: bias}), grammar
        (GBNF text), grammar_root ("root"), grammar_lazy (False), trigger_words, trigger_patterns
        (regexes), trigger_tokens, min_keep (0).

        Raises:
            GrammarError: the grammar does not parse (llama.cpp's message) or a trigger pattern is invalid.
            ValueError: out-of-range parameters.
        """

    def sample(self, context: Context, i: int = -1) -> int:
        """
        Samples a token from output i of the context's last decode, and accepts it.
        """

    def accept(self, token: int) -> None:
        """
        Feeds a token to the chain's state (penalties, grammar) without sampling.
        """

    def reset(self) -> None: ...

    def clone(self) -> Sampler:
        """An independent copy, state included."""

    def close(self) -> None: ...

    @property
    def is_closed(self) -> bool: ...

    @property
    def names(self) -> list[str]:
        """The names of the samplers in the chain, in order."""

    @property
    def is_greedy(self) -> bool: ...

    @property
    def has_grammar(self) -> bool: ...

    def __enter__(self) -> object: ...

    def __exit__(self, *args) -> None: ...

def json_schema_to_grammar(schema_json: str) -> str:
    """
    Converts a JSON schema (JSON text) to a GBNF grammar with llama.cpp's converter.

    Raises:
        GrammarError: the text is not JSON or the schema cannot be converted.
    """

class LoraAdapter:
    """
    A LoRA adapter (GGUF) for a model, applied to contexts with Context.set_lora.
    """

    def __init__(self, model: Model, path: str) -> None: ...

    @property
    def path(self) -> str: ...

    @property
    def metadata(self) -> dict[str, str]: ...

    def close(self) -> None:
        """
        Makes this handle unusable; the weights are freed once no context uses them.
        """

    @property
    def is_closed(self) -> bool: ...

    def __enter__(self) -> object: ...

    def __exit__(self, *args) -> None: ...

class Context:
    """
    A llama.cpp context (KV cache, compute buffers) over a Model.

    One thread uses a context at a time (an internal lock, waited on without the GIL). It keeps its
    model's weights alive. ``close()`` frees it at once; later use raises HandleClosedError.
    """

    def __init__(self, model: Model, **kwargs) -> None:
        """
        Creates a context.

        Args:
            model: The model; vocab-only models cannot have a context (ContextError).
            **kwargs: llama_context_params: n_ctx (0: the model's training context), n_batch, n_ubatch,
                n_seq_max, n_threads, n_threads_batch, flash_attn (-1 auto, 0/False off, 1/True on),
                type_k, type_v (ggml types), offload_kqv, op_offload, swa_full, kv_unified, embeddings,
                no_perf, pooling_type (-1 model's, 0 none, 1 mean, 2 cls, 3 last, 4 rank),
                attention_type (-1, 0 causal, 1 non-causal), rope_scaling_type, rope_freq_base,
                rope_freq_scale, yarn_ext_factor, yarn_attn_factor, yarn_beta_fast, yarn_beta_slow,
                yarn_orig_ctx. None keeps llama.cpp's default.

        Raises:
            ValueError: n_ctx < 0 or absurd, n_batch > n_ctx, n_ubatch > n_batch, bad enums.
            ContextError: llama.cpp could not create it (e.g. out of memory).
        """

    def close(self) -> None:
        """Frees the context now (waits for a call in flight)."""

    @property
    def is_closed(self) -> bool: ...

    def __enter__(self) -> object: ...

    def __exit__(self, *args) -> None: ...

    @property
    def n_ctx(self) -> int: ...

    @property
    def n_batch(self) -> int: ...

    @property
    def n_ubatch(self) -> int: ...

    @property
    def n_seq_max(self) -> int: ...

    @property
    def n_threads(self) -> int: ...

    @property
    def n_vocab(self) -> int: ...

    @property
    def n_embd(self) -> int: ...

    @property
    def pooling_type(self) -> int: ...

    def set_n_threads(self, n_threads: int, n_threads_batch: int) -> None: ...

    def decode(self, tokens: Sequence[int], seq_id: int = 0, logits: str = 'last') -> None:
        """
        Evaluates tokens after what sequence ``seq_id`` holds, in n_batch pieces, without the GIL.

        Args:
            tokens: Token ids.
            seq_id: The sequence (< n_seq_max).
            logits: Which outputs to keep: "last" (default), "all" or "none". Output i of
                ``logits(i)``/``embeddings(i)`` counts the kept outputs of the last piece; -1 is the last.

        Raises:
            ContextOverflowError: the sequence would outgrow the context.
            ValueError: tokens outside the vocabulary or an empty list.
            KeyboardInterrupt: Ctrl-C between pieces (what was evaluated stays in the cache).
        """

    def logits(self, i: int = -1) -> Annotated[NDArray[numpy.float32], dict(shape=(None,))]:
        """
        A copy of the logits of output i of the last decode (float32, n_vocab).
        """

    def embeddings(self, i: int = -1) -> Annotated[NDArray[numpy.float32], dict(shape=(None,))]:
        """
        A copy of the embedding of output i (float32, n_embd); needs embeddings=True.
        """

    def sequence_embeddings(self, seq_id: int = 0) -> Annotated[NDArray[numpy.float32], dict(shape=(None,))]:
        """
        A copy of the pooled embedding of a sequence; needs embeddings=True and pooling.
        """

    def memory_clear(self) -> None:
        """Empties the KV cache."""

    def memory_remove(self, seq_id: int, p0: int = -1, p1: int = -1) -> bool:
        """
        Removes positions [p0, p1) of a sequence (-1: open end; seq_id -1: all). False if a partial removal is impossible.
        """

    def memory_copy(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None: ...

    def memory_keep(self, seq_id: int) -> None:
        """Removes every sequence but this one."""

    def memory_shift(self, seq_id: int, p0: int, p1: int, delta: int) -> None:
        """Adds delta to the positions [p0, p1) of a sequence."""

    def memory_pos_max(self, seq_id: int = 0) -> int:
        """The largest position the sequence holds, -1 when empty."""

    def memory_pos_min(self, seq_id: int = 0) -> int: ...

    @property
    def memory_can_shift(self) -> bool: ...

    def cached_tokens(self, seq_id: int = 0) -> list[int]:
        """
        The token ids this context knows the sequence holds (-1 where unknown); used for prompt reuse.
        """

    def state_bytes(self, seq_id: int | None = None) -> bytes:
        """The whole state (or one sequence's) as bytes."""

    def load_state_bytes(self, data: bytes, seq_id: int | None = None) -> None: ...

    def save_state_file(self, path: str, seq_id: int | None = None) -> None:
        """Writes the state (and the known tokens) to a file."""

    def load_state_file(self, path: str, seq_id: int | None = None) -> None: ...

    def perf(self) -> dict:
        """llama.cpp's performance counters of this context."""

    def perf_reset(self) -> None: ...

    def set_lora(self, adapters: Sequence[tuple[LoraAdapter, float]]) -> None:
        """
        Sets the LoRA adapters as (adapter, scale) pairs; an empty list removes them all.
        """

    def set_control_vector(self, data: Sequence[float] | None, il_start: int = 1, il_end: int = -1) -> None:
        """
        Applies a control vector (n_embd x n_layer floats from layer 1), or clears it with None.
        """

    def generate(self, prompt_tokens: Sequence[int], sampler: Sampler, max_tokens: int = -1, seq_id: int = 0, ignore_eog: bool = False, render_special: bool = False) -> Generator:
        """
        Starts a generation; see Generator.

        Args:
            prompt_tokens: The whole prompt; a prefix the context already holds is reused.
            sampler: The sampler chain (its state advances with each token).
            max_tokens: The most tokens to generate; -1 for no limit but the context.
            seq_id: The sequence to generate in.
            ignore_eog: Keep going past end-of-generation tokens.
            render_special: Render control tokens into the pieces.

        Raises:
            ContextOverflowError: the prompt is longer than the context.
        """

class Generator:
    """
    The generate loop as a Python iterator of (token_id, piece_bytes).

    Each ``next()`` releases the GIL, decodes the previous token, samples and returns one token.
    The first step evaluates the prompt, reusing the prefix the context already holds. It stops at
    an end-of-generation token ("eog"), at max_tokens ("length"), when the context is full
    ("context") or after cancel() ("cancelled"): see ``finish_reason``.
    """

    def __iter__(self) -> object: ...

    def __next__(self) -> tuple: ...

    def cancel(self) -> None:
        """
        Stops the generation from any thread; a decode in flight is aborted. The context stays usable.
        """

    def close(self) -> None:
        """Cancels and finishes the generation."""

    def __enter__(self) -> object: ...

    def __exit__(self, *args) -> None: ...

    @property
    def finish_reason(self) -> object:
        """
        None while running; then "eog", "length", "context", "cancelled" or "error".
        """

    @property
    def n_prompt_tokens(self) -> int: ...

    @property
    def n_reused_tokens(self) -> int:
        """Prompt tokens found already in the context and not evaluated again."""

    @property
    def n_generated_tokens(self) -> int: ...

    @property
    def t_prompt_eval_ms(self) -> float:
        """Milliseconds to evaluate the prompt and sample the first token."""

    @property
    def t_generation_ms(self) -> float:
        """Milliseconds spent on the tokens after the first."""

    @property
    def token_ids(self) -> list[int]:
        """The ids generated so far."""
