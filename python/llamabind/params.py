"""Parameters of a loaded model (`ModelParams`) and of one request (`GenerationParams`).

Frozen, slotted dataclasses with llama.cpp's (and the seed's) defaults. Every field is checked
when the object is made: a bad value raises ``ValueError`` naming the field. Load and context
fields use llama.cpp's names (``n_ctx``, ``n_gpu_layers``, ``flash_attn``); request fields use
OpenAI's (``max_tokens``, ``temperature``, ``top_p``, ``stop``, ``seed``). Change one field with
``dataclasses.replace(params, temperature=0.2)`` or ``params.replace(...)``.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

FlashAttention = Literal["auto", "on", "off"]
KvCacheType = Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]
SplitMode = Literal["none", "layer", "row"]
TriggerType = Literal["word", "pattern", "pattern_full", "token"]

# ggml_type values of the KV cache types llama.cpp accepts (ggml.h).
KV_CACHE_GGML_TYPES: dict[str, int] = {
    "f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "iq4_nl": 20, "bf16": 30,
}  # fmt: skip
_FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}
_SPLIT_MODES = {"none": 0, "layer": 1, "row": 2}

DEFAULT_BATCH_SIZE = 2048
DEFAULT_UBATCH_SIZE = 512


# The seed's (llamadart's) spellings of names that are spelled differently here.
SEED_NAMES: dict[str, str] = {
    "maxTokens": "max_tokens",
    "temp": "temperature",
    "topP": "top_p",
    "topK": "top_k",
    "minP": "min_p",
    "typicalP": "typical_p",
    "penalty": "repeat_penalty",
    "penaltyLastN": "penalty_last_n",
    "stopSequences": "stop",
    "contextSize": "n_ctx",
    "gpuLayers": "n_gpu_layers",
    "batchSize": "n_batch",
    "threads": "n_threads",
    "chatTemplate": "chat_template",
    "ignoreEos": "ignore_eos",
}

_T = TypeVar("_T")


def suggest_name(name: str, known: Iterable[str]) -> str | None:
    """The known name a misspelt or seed-spelt ``name`` most likely meant, or None."""
    known = list(known)
    snake = re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()
    for guess in (SEED_NAMES.get(name), snake):
        if guess in known:
            return guess
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_name_error(owner: str, name: str, known: Sequence[str]) -> TypeError:
    """``TypeError`` for an unknown keyword ``name`` of ``owner``: a guess and every name."""
    guess = suggest_name(name, known)
    hint = f"; did you mean {guess}?" if guess else ""
    return TypeError(
        f"{owner} got an unexpected keyword argument {name!r}{hint} (it takes: {', '.join(known)})"
    )


def check_names(cls: type[_T]) -> type[_T]:
    """Makes a dataclass's constructor name the field a wrong keyword most likely meant."""
    init: Callable[..., None] = cls.__init__
    names = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        for key in kwargs:
            if key not in names:
                raise unknown_name_error(f"{cls.__name__}()", key, names)
        init(self, *args, **kwargs)

    cls.__init__ = __init__  # type: ignore[method-assign]
    return cls


def _fail(cls: str, name: str, rule: str, value: Any) -> ValueError:
    return ValueError(f"{cls}.{name} {rule}, got {value!r}")


def _check_int(
    cls: str, name: str, value: Any, minimum: int | None = None, allow_none: bool = False
) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(cls, name, "must be an int", value)
    if minimum is not None and value < minimum:
        raise _fail(cls, name, f"must be >= {minimum}", value)


def _check_float(
    cls: str,
    name: str,
    value: Any,
    lo: float | None = None,
    hi: float | None = None,
    allow_none: bool = False,
) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise _fail(cls, name, "must be a number", value)
    if lo is not None and value < lo:
        raise _fail(cls, name, f"must be >= {lo}", value)
    if hi is not None and value > hi:
        raise _fail(cls, name, f"must be <= {hi}", value)


def _check_choice(cls: str, name: str, value: Any, choices: Mapping[str, Any]) -> None:
    if value not in choices:
        raise _fail(cls, name, f"must be one of {sorted(choices)}", value)


@dataclass(frozen=True, slots=True)
class LoraAdapterConfig:
    """A LoRA adapter applied when the model loads.

    Args:
        path: The adapter's GGUF file.
        scale: Its strength; 1.0 applies it as trained, 0 turns it off.
    """

    path: str
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise _fail("LoraAdapterConfig", "path", "must be a non-empty str", self.path)
        _check_float("LoraAdapterConfig", "scale", self.scale)


@check_names
@dataclass(frozen=True, slots=True)
class ModelParams:
    """How a model is loaded and its context made.

    Args:
        n_ctx: Context window in tokens (the seed's ``contextSize``); 0 takes the model's
            training context.
        n_batch: Most tokens evaluated in one call; None means ``min(n_ctx, 2048)``.
        n_ubatch: Physical micro-batch; None means ``min(n_batch, 512)``.
        n_gpu_layers: Layers offloaded to a GPU (the seed's ``gpuLayers``); -1 means all.
        main_gpu: The GPU used for a model that is not split.
        split_mode: How a model is spread over several GPUs: "none", "layer" or "row".
        n_threads: CPU threads for generation; None lets llama.cpp choose.
        n_threads_batch: CPU threads for prompt evaluation; None lets llama.cpp choose.
        n_seq_max: Sequences the context can hold at once (at least ``n_parallel``).
        n_parallel: Requests the engine generates at once, batched into one decode per step;
            each gets its own sequence of ``n_ctx`` tokens (the KV cache grows with it).
        n_queue: Requests that may wait for a sequence; more raise ``QueueFullError``.
        kv_unified: One KV cache buffer for all sequences (each still holds ``n_ctx`` tokens at
            most): a step is one graph run even when a prompt joins (separate buffers need two),
            a common prefix is shared, not copied; but a greedy reply can differ from the same
            request run alone (a sequence's cells lie among its neighbours').
        prompt_cache_mib: Host memory for KV caches of earlier prompts (``n_parallel`` > 1): a
            sequence's cache that another request overwrites is kept, for a later prompt that
            shares more with it than with any sequence; 0 turns it off.
        flash_attn: "auto", "on" or "off".
        type_k: KV cache type of keys; quantized types need flash attention.
        type_v: KV cache type of values; quantized types need flash attention.
        use_mmap: Memory-map the file instead of reading it.
        use_mlock: Lock the weights in RAM.
        seed: Default sampling seed of requests that set none; None draws a random one.
        loras: LoRA adapters applied at load, in order.
        chat_template: Jinja source that replaces the model's own chat template.
        rope_freq_base: RoPE base frequency; None keeps the model's.
        rope_freq_scale: RoPE frequency scale; None keeps the model's.
    """

    n_ctx: int = 4096
    n_batch: int | None = None
    n_ubatch: int | None = None
    n_gpu_layers: int = -1
    main_gpu: int = 0
    split_mode: SplitMode = "layer"
    n_threads: int | None = None
    n_threads_batch: int | None = None
    n_seq_max: int = 1
    n_parallel: int = 1
    n_queue: int = 64
    kv_unified: bool = False
    prompt_cache_mib: int = 256
    flash_attn: FlashAttention = "auto"
    type_k: KvCacheType = "f16"
    type_v: KvCacheType = "f16"
    use_mmap: bool = True
    use_mlock: bool = False
    seed: int | None = None
    loras: tuple[LoraAdapterConfig, ...] = ()
    chat_template: str | None = None
    rope_freq_base: float | None = None
    rope_freq_scale: float | None = None

    def __post_init__(self) -> None:
        c = "ModelParams"
        _check_int(c, "n_ctx", self.n_ctx, 0)
        _check_int(c, "n_batch", self.n_batch, 1, allow_none=True)
        _check_int(c, "n_ubatch", self.n_ubatch, 1, allow_none=True)
        _check_int(c, "n_gpu_layers", self.n_gpu_layers, -1)
        _check_int(c, "main_gpu", self.main_gpu, 0)
        _check_choice(c, "split_mode", self.split_mode, _SPLIT_MODES)
        _check_int(c, "n_threads", self.n_threads, 1, allow_none=True)
        _check_int(c, "n_threads_batch", self.n_threads_batch, 1, allow_none=True)
        _check_int(c, "n_seq_max", self.n_seq_max, 1)
        _check_int(c, "n_parallel", self.n_parallel, 1)
        if self.n_parallel > 256:
            raise _fail(c, "n_parallel", "must be <= 256", self.n_parallel)
        _check_int(c, "n_queue", self.n_queue, 0)
        _check_int(c, "prompt_cache_mib", self.prompt_cache_mib, 0)
        _check_choice(c, "flash_attn", self.flash_attn, _FLASH_ATTN)
        _check_choice(c, "type_k", self.type_k, KV_CACHE_GGML_TYPES)
        _check_choice(c, "type_v", self.type_v, KV_CACHE_GGML_TYPES)
        for name in ("use_mmap", "use_mlock", "kv_unified"):
            if not isinstance(getattr(self, name), bool):
                raise _fail(c, name, "must be a bool", getattr(self, name))
        _check_int(c, "seed", self.seed, 0, allow_none=True)
        loras = tuple(self.loras)
        if not all(isinstance(lora, LoraAdapterConfig) for lora in loras):
            raise _fail(c, "loras", "must hold LoraAdapterConfig values", self.loras)
        object.__setattr__(self, "loras", loras)
        if self.chat_template is not None and not isinstance(self.chat_template, str):
            raise _fail(c, "chat_template", "must be a str", self.chat_template)
        _check_float(c, "rope_freq_base", self.rope_freq_base, 0.0, allow_none=True)
        _check_float(c, "rope_freq_scale", self.rope_freq_scale, 0.0, allow_none=True)
        if self.n_ctx and self.n_batch is not None and self.n_batch > self.n_ctx:
            raise _fail(c, "n_batch", f"must be <= n_ctx ({self.n_ctx})", self.n_batch)
        batch = self.resolved_n_batch()
        if self.n_ubatch is not None and self.n_ubatch > batch:
            raise _fail(c, "n_ubatch", f"must be <= n_batch ({batch})", self.n_ubatch)
        if self.flash_attn == "off" and (
            self.type_v != "f16" and self.type_v not in ("f32", "bf16")
        ):
            raise _fail(c, "type_v", "needs flash_attn 'on' or 'auto' when quantized", self.type_v)

    def replace(self, **changes: Any) -> ModelParams:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def resolved_n_batch(self, n_ctx: int | None = None) -> int:
        """``n_batch``, or its default for a context of ``n_ctx`` tokens."""
        ctx = n_ctx if n_ctx is not None else self.n_ctx
        if self.n_batch is not None:
            return self.n_batch
        return min(ctx, DEFAULT_BATCH_SIZE) if ctx else DEFAULT_BATCH_SIZE

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``_native.Model``."""
        return {
            "n_gpu_layers": self.n_gpu_layers,
            "main_gpu": self.main_gpu,
            "split_mode": _SPLIT_MODES[self.split_mode],
            "use_mmap": self.use_mmap,
            "use_mlock": self.use_mlock,
        }

    def context_kwargs(self, n_ctx_train: int) -> dict[str, Any]:
        """Keyword arguments of ``_native.Context`` for a model trained on ``n_ctx_train``."""
        n_ctx = self.n_ctx or n_ctx_train
        n_batch = self.resolved_n_batch(n_ctx)
        n_ubatch = self.n_ubatch if self.n_ubatch is not None else min(n_batch, DEFAULT_UBATCH_SIZE)
        n_seq = max(self.n_seq_max, self.n_parallel)
        return {
            # with parallel requests n_ctx is each sequence's share; llama.cpp divides the whole
            "n_ctx": n_ctx * n_seq if self.n_parallel > 1 else n_ctx,
            "n_batch": n_batch,
            "n_ubatch": n_ubatch,
            "n_seq_max": n_seq,
            "kv_unified": self.kv_unified,
            "prompt_cache_mib": self.prompt_cache_mib,
            "n_threads": self.n_threads,
            "n_threads_batch": self.n_threads_batch,
            "flash_attn": _FLASH_ATTN[self.flash_attn],
            "type_k": KV_CACHE_GGML_TYPES[self.type_k],
            "type_v": KV_CACHE_GGML_TYPES[self.type_v],
            "rope_freq_base": self.rope_freq_base,
            "rope_freq_scale": self.rope_freq_scale,
        }


@dataclass(frozen=True, slots=True)
class GrammarTrigger:
    """What wakes a lazy grammar: a word, a regex (anywhere or the whole output) or a token.

    Args:
        type: "word", "pattern", "pattern_full" or "token".
        value: The word, the regular expression, or the token's text.
        token: The token id for type "token".
    """

    type: TriggerType
    value: str
    token: int | None = None

    def __post_init__(self) -> None:
        _check_choice(
            "GrammarTrigger",
            "type",
            self.type,
            {"word": 0, "pattern": 0, "pattern_full": 0, "token": 0},
        )
        if not isinstance(self.value, str):
            raise _fail("GrammarTrigger", "value", "must be a str", self.value)
        if self.type == "token":
            _check_int("GrammarTrigger", "token", self.token, 0)


@check_names
@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Sampling and stopping for one request; OpenAI's names where OpenAI has one.

    The seed's names map onto these: ``temp`` → ``temperature``, ``maxTokens`` →
    ``max_tokens``, ``penalty`` → ``repeat_penalty``, ``stopSequences`` → ``stop``.

    Args:
        max_tokens: Most tokens to generate; None runs until end of text or a full context.
        temperature: Softmax temperature; 0 picks the most likely token (greedy).
        top_k: Keep the k most likely tokens; 0 keeps all.
        top_p: Nucleus sampling mass; 1.0 disables.
        min_p: Drop tokens below min_p × the top probability; 0 disables.
        typical_p: Locally typical sampling mass; 1.0 disables.
        top_n_sigma: Keep logits within n standard deviations of the top; negative disables.
        repeat_penalty: Penalty for tokens seen in the last ``penalty_last_n``; 1.0 disables.
        penalty_last_n: Tokens the penalties look back over; -1 means the whole context.
        presence_penalty: OpenAI presence penalty; 0 disables.
        frequency_penalty: OpenAI frequency penalty; 0 disables.
        dry_multiplier: DRY repetition penalty strength; 0 disables.
        dry_base: DRY base.
        dry_allowed_length: Repeats up to this length go unpenalised by DRY.
        dry_penalty_last_n: Tokens DRY looks back over; -1 means the whole context.
        xtc_probability: Chance of XTC removing top choices; 0 disables.
        xtc_threshold: XTC probability threshold.
        mirostat: 0 off, 1 or 2 for Mirostat v1/v2 (replaces top-k/p, min-p, typical, XTC).
        mirostat_tau: Mirostat target entropy.
        mirostat_eta: Mirostat learning rate.
        seed: Sampling seed; None takes ModelParams.seed, else a random one.
        stop: Strings that end the output; they are not part of it.
        grammar: GBNF grammar constraining the output.
        grammar_root: The grammar's start rule.
        grammar_lazy: Apply the grammar only after a trigger appears.
        grammar_triggers: What wakes a lazy grammar.
        logit_bias: Token id → bias added to its logit (``-math.inf`` bans it).
        ignore_eos: Keep generating past end-of-generation tokens (EOS, EOT and the others
            llama.cpp counts). The seed's and llama-server's name; the native
            ``Context.generate`` takes it as ``ignore_eog`` (llama.h's word for them).
        logprobs: None: none; 0: each generated token's log-probability under the model (raw
            logits, before sampling); k (<= 20): also the k most likely tokens'.
    """

    max_tokens: int | None = 4096
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    top_n_sigma: float = -1.0
    repeat_penalty: float = 1.1
    penalty_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    dry_multiplier: float = 0.0
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_penalty_last_n: int = -1
    xtc_probability: float = 0.0
    xtc_threshold: float = 0.1
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    seed: int | None = None
    stop: tuple[str, ...] = ()
    grammar: str | None = None
    grammar_root: str = "root"
    grammar_lazy: bool = False
    grammar_triggers: tuple[GrammarTrigger, ...] = ()
    logit_bias: Mapping[int, float] = field(default_factory=dict)
    ignore_eos: bool = False
    logprobs: int | None = None

    def __post_init__(self) -> None:
        c = "GenerationParams"
        _check_int(c, "max_tokens", self.max_tokens, 0, allow_none=True)
        _check_float(c, "temperature", self.temperature, 0.0)
        _check_int(c, "top_k", self.top_k, 0)
        _check_float(c, "top_p", self.top_p, 0.0, 1.0)
        _check_float(c, "min_p", self.min_p, 0.0, 1.0)
        _check_float(c, "typical_p", self.typical_p, 0.0, 1.0)
        _check_float(c, "top_n_sigma", self.top_n_sigma)
        _check_float(c, "repeat_penalty", self.repeat_penalty, 0.0)
        _check_int(c, "penalty_last_n", self.penalty_last_n, -1)
        _check_float(c, "presence_penalty", self.presence_penalty, -2.0, 2.0)
        _check_float(c, "frequency_penalty", self.frequency_penalty, -2.0, 2.0)
        _check_float(c, "dry_multiplier", self.dry_multiplier, 0.0)
        _check_float(c, "dry_base", self.dry_base, 1.0)
        _check_int(c, "dry_allowed_length", self.dry_allowed_length, 0)
        _check_int(c, "dry_penalty_last_n", self.dry_penalty_last_n, -1)
        _check_float(c, "xtc_probability", self.xtc_probability, 0.0, 1.0)
        _check_float(c, "xtc_threshold", self.xtc_threshold, 0.0, 1.0)
        if self.mirostat not in (0, 1, 2) or isinstance(self.mirostat, bool):
            raise _fail(c, "mirostat", "must be 0, 1 or 2", self.mirostat)
        _check_float(c, "mirostat_tau", self.mirostat_tau, 0.0)
        _check_float(c, "mirostat_eta", self.mirostat_eta, 0.0)
        _check_int(c, "seed", self.seed, 0, allow_none=True)
        _check_int(c, "logprobs", self.logprobs, 0, allow_none=True)
        if self.logprobs is not None and self.logprobs > 20:
            raise _fail(c, "logprobs", "must be <= 20", self.logprobs)
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        if not all(isinstance(s, str) and s for s in stop):
            raise _fail(c, "stop", "must be non-empty strings", self.stop)
        object.__setattr__(self, "stop", stop)
        if self.grammar is not None and not isinstance(self.grammar, str):
            raise _fail(c, "grammar", "must be GBNF text", self.grammar)
        triggers = tuple(self.grammar_triggers)
        if not all(isinstance(t, GrammarTrigger) for t in triggers):
            raise _fail(c, "grammar_triggers", "must hold GrammarTrigger values", triggers)
        object.__setattr__(self, "grammar_triggers", triggers)
        if self.grammar_lazy and not triggers:
            raise _fail(c, "grammar_triggers", "must not be empty when grammar_lazy", triggers)
        if not isinstance(self.logit_bias, Mapping):
            raise _fail(c, "logit_bias", "must map token ids to biases", self.logit_bias)
        for token, bias in self.logit_bias.items():
            _check_int(c, "logit_bias key", token, 0)
            if isinstance(bias, bool) or not isinstance(bias, (int, float)) or math.isnan(bias):
                raise _fail(c, "logit_bias value", "must be a number", bias)
        for name in ("grammar_lazy", "ignore_eos"):
            if not isinstance(getattr(self, name), bool):
                raise _fail(c, name, "must be a bool", getattr(self, name))

    def replace(self, **changes: Any) -> GenerationParams:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def sampler_kwargs(self, default_seed: int | None = None) -> dict[str, Any]:
        """Keyword arguments of ``_native.Sampler`` (grammar included)."""
        kwargs: dict[str, Any] = {name: float(getattr(self, name)) for name in _SAMPLER_FLOATS}
        kwargs.update({name: getattr(self, name) for name in _SAMPLER_INTS})
        seed = self.seed if self.seed is not None else default_seed
        if seed is not None:
            kwargs["seed"] = seed
        if self.logit_bias:
            kwargs["logit_bias"] = {int(t): float(b) for t, b in self.logit_bias.items()}
        if self.grammar:
            kwargs["grammar"] = self.grammar
            kwargs["grammar_root"] = self.grammar_root
            if self.grammar_lazy:
                kwargs.update(grammar_trigger_kwargs(self.grammar_triggers))
        return kwargs


_SAMPLER_FLOATS = (
    "temperature", "top_p", "min_p", "typical_p", "top_n_sigma", "repeat_penalty",
    "presence_penalty", "frequency_penalty", "dry_multiplier", "dry_base", "xtc_probability",
    "xtc_threshold", "mirostat_tau", "mirostat_eta",
)  # fmt: skip
_SAMPLER_INTS = ("top_k", "penalty_last_n", "dry_allowed_length", "dry_penalty_last_n", "mirostat")


def grammar_trigger_kwargs(triggers: Sequence[GrammarTrigger]) -> dict[str, Any]:
    """The Sampler's lazy-grammar keyword arguments for these triggers."""
    return {
        "grammar_lazy": True,
        "trigger_words": [t.value for t in triggers if t.type == "word"],
        "trigger_patterns": [t.value for t in triggers if t.type == "pattern"],
        "trigger_patterns_full": [t.value for t in triggers if t.type == "pattern_full"],
        "trigger_tokens": [t.token for t in triggers if t.type == "token"],
    }


__all__ = [
    "GenerationParams",
    "GrammarTrigger",
    "LoraAdapterConfig",
    "ModelParams",
]
