"""ModelParams / GenerationParams: defaults, validation naming the field, native kwargs."""

from __future__ import annotations

import math

import pytest
from llamabind.params import GenerationParams, GrammarTrigger, LoraAdapterConfig, ModelParams


def test_model_params_defaults_follow_the_seed():
    p = ModelParams()
    assert (p.n_ctx, p.n_gpu_layers, p.flash_attn, p.use_mmap, p.use_mlock) == (4096, -1, "auto", True, False)
    ctx = p.context_kwargs(n_ctx_train=8192)
    assert (ctx["n_ctx"], ctx["n_batch"], ctx["n_ubatch"]) == (4096, 2048, 512)
    assert ctx["type_k"] == ctx["type_v"] == 1  # f16
    small = ModelParams(n_ctx=256).context_kwargs(8192)
    assert (small["n_batch"], small["n_ubatch"]) == (256, 256)
    assert ModelParams(n_ctx=0).context_kwargs(8192)["n_ctx"] == 8192


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"n_ctx": -1}, "n_ctx"),
        ({"n_ctx": "4096"}, "n_ctx"),
        ({"n_batch": 0}, "n_batch"),
        ({"n_ctx": 512, "n_batch": 1024}, "n_batch"),
        ({"n_batch": 256, "n_ubatch": 512}, "n_ubatch"),
        ({"n_gpu_layers": -2}, "n_gpu_layers"),
        ({"flash_attn": "yes"}, "flash_attn"),
        ({"type_k": "q2_k"}, "type_k"),
        ({"flash_attn": "off", "type_v": "q8_0"}, "type_v"),
        ({"split_mode": "diagonal"}, "split_mode"),
        ({"use_mmap": 1}, "use_mmap"),
        ({"n_threads": 0}, "n_threads"),
        ({"seed": -5}, "seed"),
        ({"loras": ["a.gguf"]}, "loras"),
        ({"rope_freq_scale": -1.0}, "rope_freq_scale"),
    ],
)
def test_model_params_reject_bad_values_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=rf"ModelParams\.{field}\b"):
        ModelParams(**changes)


def test_generation_params_defaults_and_sampler_kwargs():
    g = GenerationParams()
    assert (g.max_tokens, g.temperature, g.top_k, g.top_p, g.repeat_penalty) == (4096, 0.8, 40, 0.9, 1.1)
    kwargs = g.sampler_kwargs(default_seed=7)
    assert kwargs["seed"] == 7 and kwargs["temperature"] == 0.8 and "grammar" not in kwargs
    assert GenerationParams(seed=3).sampler_kwargs(default_seed=7)["seed"] == 3
    assert GenerationParams(stop="END").stop == ("END",)


def test_generation_params_lazy_grammar_maps_triggers():
    g = GenerationParams(grammar='root ::= "x"', grammar_lazy=True, grammar_triggers=(
        GrammarTrigger("word", "<tool_call>"), GrammarTrigger("pattern", r"\{"),
        GrammarTrigger("pattern_full", r"[\s\S]*?x"), GrammarTrigger("token", "<t>", 5)))
    kwargs = g.sampler_kwargs()
    assert kwargs["grammar_lazy"] is True
    assert kwargs["trigger_words"] == ["<tool_call>"]
    assert kwargs["trigger_tokens"] == [5]
    assert len(kwargs["trigger_patterns"]) + len(kwargs.get("trigger_patterns_full", [])) == 2


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"min_p": 2}, "min_p"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"mirostat": 3}, "mirostat"),
        ({"presence_penalty": 3.0}, "presence_penalty"),
        ({"stop": ("",)}, "stop"),
        ({"logit_bias": {"a": 1.0}}, "logit_bias key"),
        ({"logit_bias": {1: "x"}}, "logit_bias value"),
        ({"grammar": 'root ::= "x"', "grammar_lazy": True}, "grammar_triggers"),
        ({"grammar_triggers": ("word",)}, "grammar_triggers"),
        ({"ignore_eos": "no"}, "ignore_eos"),
    ],
)
def test_generation_params_reject_bad_values_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=rf"GenerationParams\.{field}"):
        GenerationParams(**changes)


def test_replace_validates_again():
    g = GenerationParams()
    assert g.replace(temperature=0).temperature == 0
    with pytest.raises(ValueError, match="temperature"):
        g.replace(temperature=-1)
    with pytest.raises(ValueError, match="LoraAdapterConfig.path"):
        LoraAdapterConfig("")
    with pytest.raises(ValueError, match="GrammarTrigger.token"):
        GrammarTrigger("token", "<x>")


@pytest.mark.parametrize(
    ("cls", "wrong", "meant"),
    [
        (GenerationParams, "temp", "temperature"),
        (GenerationParams, "maxTokens", "max_tokens"),
        (GenerationParams, "topP", "top_p"),
        (GenerationParams, "penalty", "repeat_penalty"),
        (GenerationParams, "stopSequences", "stop"),
        (GenerationParams, "temprature", "temperature"),
        (GenerationParams, "minP", "min_p"),
        (ModelParams, "contextSize", "n_ctx"),
        (ModelParams, "gpuLayers", "n_gpu_layers"),
    ],
)
def test_a_wrong_or_seed_name_says_which_field_was_meant(cls, wrong, meant):
    with pytest.raises(TypeError) as info:
        cls(**{wrong: 1})
    message = str(info.value)
    assert f"{cls.__name__}() got an unexpected keyword argument {wrong!r}" in message
    assert f"did you mean {meant}?" in message
    assert "it takes: " in message and "max_tokens" in message or "n_ctx" in message


def test_an_unrelated_name_lists_the_fields_without_a_guess():
    with pytest.raises(TypeError, match="'banana' \\(it takes: max_tokens, temperature") as info:
        GenerationParams(banana=1)
    assert "did you mean" not in str(info.value)
    # replace() goes through the same check.
    with pytest.raises(TypeError, match="did you mean top_k"):
        GenerationParams().replace(topK=3)


def test_kv_unified_is_off_by_default_and_must_be_a_bool():
    assert ModelParams(n_parallel=4).context_kwargs(8192)["kv_unified"] is False
    assert ModelParams(n_parallel=4, kv_unified=True).context_kwargs(8192)["kv_unified"] is True
    with pytest.raises(ValueError, match="kv_unified"):
        ModelParams(kv_unified="yes")  # type: ignore[arg-type]
