"""Model settings: pydantic-ai's generic ``ModelSettings`` plus ``llamabind_`` extras.

The generic settings that llama.cpp has map onto ``GenerationParams`` fields; the extras are the
llama.cpp sampling knobs OpenAI's API has no name for, a GBNF grammar, and template variables.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pydantic_ai.settings import ModelSettings

from llamabind.params import GenerationParams

# Generic ModelSettings key -> GenerationParams field.
_GENERIC_FIELDS = {
    "max_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
PREFIX = "llamabind_"
# llamabind_<field> settings that are GenerationParams fields of the same name.
_EXTRA_FIELDS = (
    "min_p",
    "typical_p",
    "top_n_sigma",
    "repeat_penalty",
    "penalty_last_n",
    "dry_multiplier",
    "dry_base",
    "dry_allowed_length",
    "dry_penalty_last_n",
    "xtc_probability",
    "xtc_threshold",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
    "grammar",
    "grammar_root",
    "ignore_eos",
)


class LlamaModelSettings(ModelSettings, total=False):
    """Settings of a llamabind model request: pydantic-ai's generic ones and llama.cpp's own.

    Generic settings used: ``max_tokens``, ``temperature``, ``top_p``, ``top_k``, ``seed``,
    ``presence_penalty``, ``frequency_penalty``, ``logit_bias`` (token id as a string → bias),
    ``stop_sequences``, ``parallel_tool_calls``, ``tool_choice`` and ``thinking`` (False turns
    thinking off on templates that have the switch). ``timeout``, ``max_retries``,
    ``extra_headers``, ``extra_body``, ``service_tier`` and ``citations`` have no meaning for an
    in-process model and are ignored. Unset values take ``GenerationParams``' defaults (those of
    llama.cpp), or those of ``llamabind_generation_params`` when given.
    """

    # ALL KEYS ARE PREFIXED `llamabind_` SO THAT THEY MERGE WITH OTHER MODELS' SETTINGS.

    llamabind_generation_params: GenerationParams
    """The starting point; the other settings override its fields."""

    llamabind_min_p: float
    """Drop tokens below min_p × the top probability; 0 disables."""

    llamabind_typical_p: float
    """Locally typical sampling mass; 1.0 disables."""

    llamabind_top_n_sigma: float
    """Keep logits within n standard deviations of the top; negative disables."""

    llamabind_repeat_penalty: float
    """Penalty for tokens seen in the last ``llamabind_penalty_last_n``; 1.0 disables."""

    llamabind_penalty_last_n: int
    """Tokens the penalties look back over; -1 means the whole context."""

    llamabind_dry_multiplier: float
    """DRY repetition penalty strength; 0 disables."""

    llamabind_dry_base: float
    """DRY base."""

    llamabind_dry_allowed_length: int
    """Repeats up to this length go unpenalised by DRY."""

    llamabind_dry_penalty_last_n: int
    """Tokens DRY looks back over; -1 means the whole context."""

    llamabind_xtc_probability: float
    """Chance of XTC removing top choices; 0 disables."""

    llamabind_xtc_threshold: float
    """XTC probability threshold."""

    llamabind_mirostat: int
    """0 off, 1 or 2 for Mirostat v1/v2."""

    llamabind_mirostat_tau: float
    """Mirostat target entropy."""

    llamabind_mirostat_eta: float
    """Mirostat learning rate."""

    llamabind_grammar: str
    """A GBNF grammar constraining the reply (not combinable with tools or structured output)."""

    llamabind_grammar_root: str
    """The grammar's start rule."""

    llamabind_ignore_eos: bool
    """Keep generating past end-of-text tokens."""

    llamabind_chat_template_kwargs: dict[str, Any]
    """Extra variables for the model's chat template."""


def generation_params(settings: Mapping[str, Any]) -> GenerationParams:
    """The ``GenerationParams`` of one request's merged settings.

    Raises:
        ValueError: a value out of range (``GenerationParams`` checks every field).
        TypeError: ``llamabind_generation_params`` is not a GenerationParams.
    """
    base = settings.get(f"{PREFIX}generation_params") or GenerationParams()
    if not isinstance(base, GenerationParams):
        raise TypeError(f"{PREFIX}generation_params must be GenerationParams, got {base!r}")
    changes: dict[str, Any] = {}
    for key, field in _GENERIC_FIELDS.items():
        if key in settings:
            changes[field] = settings[key]
    for field in _EXTRA_FIELDS:
        if f"{PREFIX}{field}" in settings:
            changes[field] = settings[f"{PREFIX}{field}"]
    if "stop_sequences" in settings:
        changes["stop"] = tuple(settings["stop_sequences"])
    if "logit_bias" in settings:
        changes["logit_bias"] = {
            int(token): float(bias) for token, bias in settings["logit_bias"].items()
        }
    return dataclasses.replace(base, **changes) if changes else base
