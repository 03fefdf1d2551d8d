"""llamabind's native layer: llama.cpp handles bound with nanobind."""

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

import numpy
from numpy.typing import NDArray


def system_info() -> str:
    """
    llama.cpp's system information line: the CPU features and backends in use, ending
    with the CPU variant (see cpu_variant).
    """

def cpu_variant() -> str:
    """
    The CPU backend variant in use.

    Portable builds (the wheels) carry ggml's CPU backend once per instruction-set level and load
    the best one for this CPU at import: ``"haswell"``, ``"zen4"``, ``"armv8.2_2"``, ... Source
    builds compile it in for the building machine: ``"builtin"``.
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

def release_compute_threads() -> None:
    """
    Frees the calling thread's idle CPU compute threads (ggml's OpenMP team).

    libgomp counts every team still alive; once there are more such threads than cores it stops
    spin-waiting at its barriers and CPU decoding gets several times slower. So a thread that
    computed (Context.decode) and will not again soon, while another thread goes on computing,
    should call this. Generators do it themselves when their decode-ahead thread takes over;
    LlamaEngine does it after embeddings and scoring. A no-op without OpenMP.
    """

def flush_logs() -> None:
    """Emit queued llama.cpp log records now."""

class Model:
    """
    A GGUF model loaded by llama.cpp.

    Loading releases the GIL. A model is read-only afterwards and may be shared by many threads
    and contexts; contexts keep the weights alive, so ``close()`` frees them once no context uses
    them. Using a closed model raises ``HandleClosedError``.
    """

    def __init__(self, path: str, progress: Callable[[float], bool | None] | None = None, *, n_gpu_layers: int | None = None, split_mode: int | None = None, main_gpu: int | None = None, tensor_split: Sequence[float] | None = None, use_mmap: bool = True, use_mlock: bool = False, vocab_only: bool = False, check_tensors: bool = False, kv_overrides: Mapping[str, bool | int | float | str] | None = None) -> None:
        """
        Loads a GGUF file.

        Args:
            path: The .gguf file (the first part of a split model).
            progress: Called with the load progress in [0, 1]; returning False cancels the load
                (raising ModelLoadError with ``cancelled=1``); an exception it raises is re-raised.
            n_gpu_layers, split_mode, main_gpu, tensor_split, use_mmap, use_mlock, vocab_only,
                check_tensors, kv_overrides: keyword-only llama_model_params, None keeping llama.cpp's
                default: n_gpu_layers (-1: all, the default), split_mode (0 none, 1 layer, 2 row,
                3 tensor), tensor_split (proportions per device), kv_overrides (GGUF key -> value;
                checked against the limits llama.cpp asserts on, e.g. block_count <= 512).

        Raises:
            ModelLoadError: missing file, a directory, an empty, non-GGUF, truncated or corrupt file,
                hyperparameters past llama.cpp's limits.
            ValueError: a NUL byte in the path, non-finite floats, ints out of range.
            InvalidTextError: lone surrogates in the path that are not the escapes of os.fsdecode.
        """

    def close(self) -> None:
        """Drops this handle's reference to the weights now."""

    @property
    def is_closed(self) -> bool: ...

    def __enter__(self) -> object: ...

    def __exit__(self, *args: object) -> None: ...

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
    def output_on_gpu(self) -> bool:
        """
        Whether the output layer (the logits) is computed on a GPU: every layer offloaded
        and a GPU present. Context.generate then samples inside the compute graph by default.
        """

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

    def __init__(self, model: Model, *, seed: int | None = None, temperature: float | None = 0.8, dynatemp_range: float | None = 0.0, dynatemp_exponent: float | None = 1.0, top_k: int | None = 40, top_p: float | None = 0.95, min_p: float | None = 0.05, typical_p: float | None = 1.0, top_n_sigma: float | None = -1.0, xtc_probability: float | None = 0.0, xtc_threshold: float | None = 0.1, penalty_last_n: int | None = 64, repeat_penalty: float | None = 1.0, frequency_penalty: float | None = 0.0, presence_penalty: float | None = 0.0, dry_multiplier: float | None = 0.0, dry_base: float | None = 1.75, dry_allowed_length: int | None = 2, dry_penalty_last_n: int | None = -1, dry_sequence_breakers: Sequence[str] | None = ['\n', ':', '"', '*'], mirostat: int | None = 0, mirostat_tau: float | None = 5.0, mirostat_eta: float | None = 0.1, greedy: bool | None = False, logit_bias: Mapping[int, float] | None = None, grammar: str | None = None, grammar_root: str | None = 'root', grammar_lazy: bool | None = False, trigger_words: Sequence[str] | None = None, trigger_patterns: Sequence[str] | None = None, trigger_patterns_full: Sequence[str] | None = None, trigger_tokens: Sequence[int] | None = None, grammar_prefill: str | None = None, min_keep: int | None = 0) -> None:
        """
        Builds the chain: logit bias, grammar, penalties, DRY, top-n-sigma, top-k, typical-p,
        top-p, min-p, XTC, temperature, dist; greedy when temperature <= 0 or greedy=True; mirostat
        1/2 after temperature.

        Keyword-only args (llama.cpp defaults, as in the signature; None keeps the default): seed
        (None: random), temperature, dynatemp_range, dynatemp_exponent, top_k, top_p, min_p,
        typical_p, top_n_sigma, xtc_probability, xtc_threshold, penalty_last_n (-1: the whole
        context, i.e. the model's training context), repeat_penalty, frequency_penalty,
        presence_penalty, dry_multiplier (0: off), dry_base, dry_allowed_length, dry_penalty_last_n
        (-1: the whole context), dry_sequence_breakers, mirostat, mirostat_tau, mirostat_eta, greedy,
        logit_bias ({token: bias}; -inf bans a token, NaN is refused), grammar (GBNF text, groups
        nested at most 256 deep, at most 4 MiB), grammar_root, grammar_lazy, trigger_words,
        trigger_patterns (regexes found anywhere in the generated text), trigger_patterns_full
        (regexes that must match the whole text generated so far), trigger_tokens, grammar_prefill
        (text a non-lazy grammar accepts before the first token: a chat format's generation prompt,
        see ChatParams.sampler_kwargs), min_keep. Floats must be finite. Trigger patterns (at most
        1024 bytes, no NUL) may not repeat a group that itself repeats, like (a+)+, nor repeat a part that
        can match one text in several ways, like (a|a)* or (a|ab)*: std::regex backtracks.

        A lazy grammar constrains nothing until a trigger appears, then applies from the trigger on.

        Raises:
            GrammarError: the grammar does not parse (llama.cpp's message), is past the limits, or a
                trigger pattern is invalid or may backtrack exponentially.
            ValueError: out-of-range or non-finite parameters.
            InvalidTextError: a text argument holds lone surrogates.
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
    def can_run_in_graph(self) -> bool:
        """
        Whether the whole chain can run inside the compute graph (backend sampling): true
        when it holds no grammar and only logit bias, top-k, top-p, min-p, temperature (also
        dynamic), greedy and dist.
        """

    @property
    def has_grammar(self) -> bool: ...

    def __enter__(self) -> object: ...

    def __exit__(self, *args: object) -> None: ...

def json_schema_to_grammar(schema_json: str) -> str:
    """
    Converts a JSON schema (JSON text) to a GBNF grammar with llama.cpp's converter.

    Limits keep the converter from exhausting the stack or running for minutes: at most 128 JSON
    levels, 512 properties per object, and a grammar of at most 4 MiB.

    Raises:
        GrammarError: the text is not JSON, the schema is past the limits or cannot be converted.
        InvalidTextError: the text holds lone surrogates.
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

    def __exit__(self, *args: object) -> None: ...

class Context:
    """
    A llama.cpp context (KV cache, compute buffers) over a Model.

    One thread uses a context at a time (an internal lock, waited on without the GIL). It keeps its
    model's weights alive. ``close()`` frees it at once; later use raises HandleClosedError.
    """

    def __init__(self, model: Model, *, n_ctx: int | None = None, n_batch: int | None = None, n_ubatch: int | None = None, n_seq_max: int | None = None, n_threads: int | None = None, n_threads_batch: int | None = None, flash_attn: bool | int | None = None, type_k: int | None = None, type_v: int | None = None, offload_kqv: bool | None = None, op_offload: bool | None = None, swa_full: bool | None = None, kv_unified: bool | None = None, embeddings: bool = False, no_perf: bool = False, pooling_type: int | None = None, attention_type: int | None = None, rope_scaling_type: int | None = None, rope_freq_base: float | None = None, rope_freq_scale: float | None = None, yarn_ext_factor: float | None = None, yarn_attn_factor: float | None = None, yarn_beta_fast: float | None = None, yarn_beta_slow: float | None = None, yarn_orig_ctx: int | None = None, prompt_cache_mib: int | None = None) -> None:
        """
        Creates a context.

        Args:
            model: The model; vocab-only models cannot have a context (ContextError).
            n_ctx ... yarn_orig_ctx: keyword-only llama_context_params, None keeping llama.cpp's
                default: n_ctx (0: the model's training context), n_batch, n_ubatch, n_seq_max,
                n_threads, n_threads_batch (at most 4 per CPU core), flash_attn (-1 auto, 0/False off,
                1/True on), type_k, type_v (KV cache ggml types: f32 0, f16 1, bf16 30, q8_0 8, q4_0 2,
                q4_1 3, iq4_nl 20, q5_0 6, q5_1 7), offload_kqv, op_offload, swa_full, kv_unified,
                embeddings, no_perf, pooling_type (-1 model's, 0 none, 1 mean, 2 cls, 3 last, 4 rank),
                attention_type (-1, 0 causal, 1 non-causal), rope_scaling_type, rope_freq_base,
                rope_freq_scale, yarn_ext_factor, yarn_attn_factor, yarn_beta_fast, yarn_beta_slow
                (finite), yarn_orig_ctx.
            prompt_cache_mib: Host memory (MiB) for the batch loop's prompt cache (n_seq_max > 1):
                a sequence's cache that a new prompt would overwrite is kept there, and a later prompt
                that shares more with it than with any sequence restores it. None or 0: no cache.

        Raises:
            ValueError: n_ctx < 0 or absurd, n_batch > n_ctx, n_ubatch > n_batch, bad enums, thread
                counts past the cap, KV cache types ggml cannot use, non-finite floats, ints out of range.
            ContextError: llama.cpp could not create it (e.g. out of memory).
        """

    def close(self) -> None:
        """Frees the context now (waits for a call in flight)."""

    @property
    def is_closed(self) -> bool: ...

    def __enter__(self) -> object: ...

    def __exit__(self, *args: object) -> None: ...

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
    def n_ctx_seq(self) -> int:
        """
        Tokens one sequence may hold: n_ctx / n_seq_max (with kv_unified too: each sequence gets its share).
        """

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

    def prefix_lengths(self, tokens: Sequence[int]) -> list[int]:
        """
        For each sequence id: how many of ``tokens`` its cache holds as a prefix (one hold of
        the lock, where cached_tokens takes one per sequence).
        """

    def state_bytes(self, seq_id: int | None = None) -> bytes:
        """The whole state (or one sequence's) as bytes."""

    def load_state_bytes(self, data: bytes, seq_id: int | None = None) -> None: ...

    def save_state_file(self, path: str, seq_id: int | None = None) -> None:
        """Writes the state (and the known tokens) to a file."""

    def load_state_file(self, path: str, seq_id: int | None = None) -> None: ...

    def perf(self) -> dict[str, float | int]:
        """llama.cpp's performance counters of this context."""

    def batch_stats(self) -> dict[str, int]:
        """
        The batch loop's counters (contexts with n_seq_max > 1): decode steps, tokens decoded,
        and tokens sampled by generating sequences (n_sampled / n_steps is the mean batch of
        generations per step); then its prompt cache: entries and bytes held, states saved and
        restored.
        """

    def perf_reset(self) -> None: ...

    def set_lora(self, adapters: Sequence[tuple[LoraAdapter, float]]) -> None:
        """
        Sets the LoRA adapters as (adapter, scale) pairs; an empty list removes them all.
        """

    def set_control_vector(self, data: Sequence[float] | None, il_start: int = 1, il_end: int = -1) -> None:
        """
        Applies a control vector (n_embd x n_layer floats from layer 1), or clears it with None.
        """

    def generate(self, prompt_tokens: Sequence[int], sampler: Sampler, max_tokens: int = -1, seq_id: int = 0, ignore_eog: bool = False, render_special: bool = False, render_special_tokens: Sequence[int] = (), backend_sampling: bool | None = None, decode_ahead: bool = True, n_logprobs: int = -1) -> Generator:
        """
        Starts a generation; see Generator.

        Args:
            prompt_tokens: The whole prompt; a prefix the context already holds is reused.
            sampler: The sampler chain (its state advances with each token).
            max_tokens: The most tokens to generate; -1 for no limit but the context.
            seq_id: The sequence to generate in.
            ignore_eog: Keep going past end-of-generation tokens.
            render_special: Render control tokens into the pieces.
            render_special_tokens: Ids of control tokens rendered into the pieces even when
                render_special is False: a chat format's preserved tokens (e.g. ``<tool_call>``,
                see ChatParams.preserved_token_ids) that its parser must see.
            backend_sampling: Where the chain runs. None (default): inside the compute graph when
                it can and the logits are on a GPU (Model.output_on_gpu; llama.cpp backend sampling:
                only the token is read back, not the logits), else on the CPU. True: in the graph,
                or ValueError. False: always on the CPU.
                Chains that can run in the graph hold only logit bias, top-k, top-p, min-p,
                temperature (also dynamic), greedy and dist; grammars, penalties, DRY, typical,
                XTC, top-n-sigma and mirostat sample on the CPU. See Generator.sampling_backend.
            decode_ahead: Decode each token handed out (and sample the next) on the generator's
                thread while Python handles it (default). False: every step runs inside next(), so
                the sampler has accepted exactly the tokens handed out.
            n_logprobs: -1 (default): none; 0: each token's log-probability (see
                Generator.last_logprobs); k <= 100: also the k most likely tokens'. Sampling stays on
                the CPU then.

        Raises:
            ContextOverflowError: the prompt is longer than the context.
            ValueError: backend_sampling is True and the chain cannot run in the graph.
        """

class Generator:
    """
    The generate loop as a Python iterator of (token_id, piece_bytes).

    Each ``next()`` releases the GIL and returns one token. The first step evaluates the prompt,
    reusing the prefix the context already holds. Decode-ahead: once a token is handed out, a
    thread of the generator decodes it and samples the next while Python handles it, so Python's
    time per token overlaps the decode (the sampler has accepted one token more than was handed
    out). A newer generator on the same sequence supersedes this one: it finishes "cancelled".
    It stops at an end-of-generation token ("eog"), at max_tokens ("length"), when the context is
    full ("context") or after cancel() ("cancelled"): see ``finish_reason``.
    """

    def __iter__(self) -> Generator: ...

    def __next__(self) -> tuple[int, bytes]: ...

    def cancel(self) -> None:
        """
        Stops the generation from any thread; a decode in flight is aborted. The context stays usable.
        """

    def close(self) -> None:
        """
        Cancels and finishes the generation (waits for a decode in flight to stop).
        """

    def __enter__(self) -> object: ...

    def __exit__(self, *args: object) -> None: ...

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

    @property
    def sampling_backend(self) -> str:
        """
        Where the latest token was picked: "backend" inside the compute graph
        (llama.cpp's backend sampling: only the picked token is read back), "cpu" from the logits on
        the CPU. Before the first token it says where the first will be picked; after the end it
        keeps the path of the last one.
        """

    @property
    def last_logprobs(self) -> tuple[float, list[tuple[int, float]]] | None:
        """
        The latest token's log-probability under the model (from the raw logits, before
        the sampler) and the n_logprobs most likely tokens with theirs, most likely first; None unless
        generate() was given n_logprobs >= 0.
        """

    @property
    def n_graph_sampled_tokens(self) -> int:
        """
        How many of the tokens (the end-of-generation token included) were picked inside
        the compute graph; the rest were sampled on the CPU.
        """

class ChatParams:
    """
    A rendered chat prompt and what generating and parsing its reply need.

    Made by ChatTemplates.apply(). The format's grammar (tool calls, structured output) goes to a
    Sampler through ``sampler_kwargs(model)``, its preserved tokens to ``Context.generate`` through
    ``preserved_token_ids(model)``, ``additional_stops`` to the stop strings, and the whole object to
    ChatParser, which holds the format's parser.
    """

    @property
    def prompt(self) -> str:
        """
        The rendered prompt text. Tokenize it with parse_special=True and add_special=True: when
        the model adds a BOS token itself, llama.cpp leaves it out of the text.
        """

    @property
    def format(self) -> str:
        """
        llama.cpp's name of the parser kind: "Content-only", "peg-simple", "peg-native", "peg-gemma4", ...
        """

    @property
    def grammar(self) -> str:
        """
        GBNF constraining the reply (tool calls, json_schema, or the grammar given to apply); "" if none.
        """

    @property
    def grammar_lazy(self) -> bool:
        """
        True when the grammar applies only once a trigger appears (tool_choice "auto").
        """

    @property
    def grammar_triggers(self) -> list[tuple[str, str, int]]:
        """
        (type, value, token) triples: type "word", "pattern" (regex found anywhere),
        "pattern_full" (regex matching the whole text so far) or "token" (token is the id, else -1).
        """

    @property
    def preserved_tokens(self) -> list[str]:
        """
        Control tokens of the format that must reach the parser as text (e.g. "<tool_call>").
        """

    @property
    def additional_stops(self) -> list[str]:
        """Stop strings the format adds."""

    @property
    def generation_prompt(self) -> str:
        """
        What add_generation_prompt appended to the prompt (e.g. "<|im_start|>assistant\\n");
        the parser reads the reply as if it followed this text.
        """

    @property
    def supports_thinking(self) -> bool:
        """
        Whether the format has a reasoning block (thinking_start_tag .. thinking_end_tags).
        """

    @property
    def thinking_start_tag(self) -> str:
        """The tag that opens a reasoning block (e.g. "<think>"); "" when none."""

    @property
    def thinking_end_tags(self) -> list[str]:
        """The tags that close a reasoning block."""

    @property
    def reasoning_format(self) -> str:
        """
        The reasoning_format given to apply ("none": reasoning stays in content).
        """

    def sampler_kwargs(self, model: Model) -> dict[str, object]:
        """
        The grammar as keyword arguments for Sampler (empty when there is no grammar).

        As llama-server: a trigger word that is one token of the model becomes a trigger token, and a
        grammar that is not lazy gets the generation prompt as ``grammar_prefill``.

        Args:
            model: The model that will generate (its vocabulary).

        Returns:
            ``grammar``, ``grammar_lazy``, ``trigger_words``, ``trigger_patterns``,
            ``trigger_patterns_full``, ``trigger_tokens`` and, when needed, ``grammar_prefill``.
        """

    def preserved_token_ids(self, model: Model) -> list[int]:
        """
        The ids of preserved_tokens that are single tokens of model, sorted: pass them to
        ``Context.generate(render_special_tokens=...)``.
        """

    def __repr__(self) -> str: ...

class ChatTemplates:
    """
    A chat template rendered by llama.cpp's own Jinja engine (common/chat).

    It detects the template's format (tool-call syntax, reasoning tags), renders prompts, and builds
    the format's grammar and parser. Templates in model files are untrusted: llama.cpp's engine runs
    no Python, and llamabind bounds what could exhaust the stack (macro recursion, nesting depth).
    """

    def __init__(self, model: Model | None = None, *, template: str | None = None, bos_token: str | None = None, eos_token: str | None = None) -> None:
        """
        Parses the model's chat template, or the given one.

        Args:
            model: Supplies the template (``tokenizer.chat_template`` and its ``tool_use`` variant)
                unless ``template`` is given, and the BOS/EOS token texts. A model without a template
                gets ChatML (see has_explicit_template).
            template: Jinja template text overriding the model's ("chatml" names the built-in one).
            bos_token: The ``bos_token`` text the template sees (with a model: ignored, the model's).
            eos_token: The ``eos_token`` text the template sees (with a model: ignored, the model's).

        Raises:
            TemplateError: The template does not parse or nests too deeply.
            ValueError: Neither model nor template.
            HandleClosedError: The model is closed.
        """

    @property
    def source(self) -> str:
        """The template text ("chatml" for the built-in ChatML)."""

    @property
    def tool_use_source(self) -> str | None:
        """
        The model's ``tool_use`` template variant, used when tools are given; None if none.
        """

    @property
    def has_tool_use_variant(self) -> bool:
        """Whether the model has a separate ``tool_use`` template."""

    @property
    def has_explicit_template(self) -> bool:
        """False when the model has no template and ChatML stands in."""

    @property
    def supports_enable_thinking(self) -> bool:
        """
        Whether the template has a reasoning mode that ``enable_thinking`` switches.
        """

    @property
    def caps(self) -> dict[str, bool]:
        """
        What the template supports, as llama.cpp detects it (supports_tools, supports_tool_calls,
        supports_system_role, supports_parallel_tool_calls, ...).
        """

    def apply(self, messages_json: str, *, tools_json: str | None = None, tool_choice: str = 'auto', parallel_tool_calls: bool = False, add_generation_prompt: bool = True, enable_thinking: bool = True, reasoning_format: str = 'auto', json_schema: str | None = None, grammar: str | None = None, chat_template_kwargs_json: str | None = None) -> ChatParams:
        """
        Renders messages and builds the format's grammar and parser (common_chat_templates_apply).

        Args:
            messages_json: OpenAI-style messages as a JSON array (role, content as text or text parts,
                tool_calls, tool_call_id, name, reasoning_content).
            tools_json: OpenAI-style tools as a JSON array ({"type": "function", "function": {...}}).
            tool_choice: "auto", "none" or "required". For a named function, pass "required" and only
                that tool (llama-server itself reads an object tool_choice as "auto").
            parallel_tool_calls: Allow several tool calls in one reply.
            add_generation_prompt: End the prompt where the assistant's reply begins.
            enable_thinking: Let a reasoning model think (templates with a thinking switch).
            reasoning_format: "none" keeps reasoning in content; "auto" (= "deepseek") splits it out.
                The parser is built here, so this decides what ChatParser returns.
            json_schema: A JSON schema (JSON text) the reply must follow.
            grammar: A GBNF grammar the reply must follow (not with tools, unless tool_choice "none").
            chat_template_kwargs_json: A JSON object of extra template variables (as llama-server's
                chat_template_kwargs; a boolean enable_thinking there overrides the argument; a
                ``date_string`` replaces the date llama.cpp provides).

        Returns:
            ChatParams.

        Raises:
            ValueError: Invalid JSON (or nested over 64 deep), malformed messages or tools, bad
                tool_choice / reasoning_format, grammar combined with tools or json_schema.
            GrammarError: json_schema cannot be converted to a grammar.
            TemplateError: The template failed to render (raise_exception, runaway recursion, a shape
                it cannot render) or llama.cpp could not build a parser for it.
            InvalidTextError: A text argument holds lone surrogates.
        """

class ChatParser:
    """
    Splits generated text into content, reasoning and tool calls: llama.cpp's parser for the format.

    Streaming (llama-server's semantics): ``feed(piece)`` re-parses all text so far as partial and
    returns the differences from the last good parse as OpenAI-shaped deltas; a partial parse that
    fails returns no deltas (the next piece tries again). ``finish()`` parses the whole text as
    final and returns the remaining deltas; if that final parse fails, ``message`` falls back to the
    raw text as content (as llama-server did before its PEG parsers) and ``parse_error`` says why.
    Tool calls the model gave no id get 9 random alphanumerics (llama-server uses 32, which Mistral's
    templates reject when the conversation is rendered again), stable for the stream; an id the
    model writes after the call's first delta (Mistral writes it after the arguments) is not used.
    Delta dicts hold only their non-empty keys: content_delta, reasoning_content_delta,
    tool_call_index, tool_call_id, tool_call_name, tool_call_arguments_delta.
    """

    def __init__(self, params: ChatParams) -> None:
        """
        A parser for replies to the prompt in params (its format, parser and generation prompt).
        """

    def parse(self, text: str, is_partial: bool = False) -> dict[str, Any]:
        """
        Parses a whole reply (stateless: missing tool call ids are fresh on each call).

        Args:
            text: The generated text (control tokens of preserved_tokens rendered).
            is_partial: The text may stop mid-way (streaming); unfinished parts are kept.

        Returns:
            {"role", "content", "reasoning_content", "tool_calls": [{"name", "arguments", "id"}]},
            arguments as JSON text.

        Raises:
            ValueError: The text does not match the format.
            InvalidTextError: The text holds lone surrogates.
        """

    def feed(self, piece: str | bytes) -> list[dict[str, Any]]:
        """
        Appends generated text and returns the new deltas (possibly none).

        Args:
            piece: Text, or the raw bytes of a token piece: a UTF-8 character split between pieces
                waits for its last byte.

        Raises:
            StateError: After finish().
        """

    def finish(self) -> list[dict[str, Any]]:
        """
        Parses the text as complete and returns the remaining deltas.

        Raises:
            StateError: Called twice.
        """

    @property
    def message(self) -> dict[str, Any]:
        """
        The message parsed so far (final after finish()), with the stream's tool call ids.
        """

    @property
    def text(self) -> str:
        """All text fed so far (bytes that are not UTF-8 shown as U+FFFD)."""

    @property
    def parse_error(self) -> str | None:
        """Why the final parse fell back to raw content; None if it did not."""

    @property
    def is_finished(self) -> bool:
        """Whether finish() was called."""
