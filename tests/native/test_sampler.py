import json

import pytest

from llamabind import _native
from llamabind.errors import GrammarError


def generate(model, sampler, text="Write a number:", n=16):
    with _native.Context(model, n_ctx=256) as ctx:
        tokens = model.tokenize(text, add_special=True)
        gen = ctx.generate(tokens, sampler, max_tokens=n)
        return b"".join(piece for _, piece in gen), gen.finish_reason


def test_chain_names(smollm2):
    assert _native.Sampler(smollm2, temperature=0).names == ["greedy"]
    names = _native.Sampler(smollm2, seed=1, repeat_penalty=1.1, dry_multiplier=0.8, xtc_probability=0.5).names
    assert names[0] == "penalties" and names[-1] == "dist"
    assert any("dry" in n for n in names) and "top-k" in names and "xtc" in names
    assert _native.Sampler(smollm2, mirostat=2, seed=1).names[-1] == "mirostat-v2"


def test_seeded_sampling_is_reproducible(smollm2):
    a = generate(smollm2, _native.Sampler(smollm2, seed=42, temperature=1.0))
    b = generate(smollm2, _native.Sampler(smollm2, seed=42, temperature=1.0))
    c = generate(smollm2, _native.Sampler(smollm2, seed=7, temperature=1.5, top_k=0, top_p=1.0, min_p=0.0))
    assert a == b
    assert a != c


def test_grammar_constrains_output(smollm2):
    sampler = _native.Sampler(smollm2, temperature=0, grammar='root ::= "yes" | "no"')
    text, reason = generate(smollm2, sampler, "Is the sky blue?")
    assert text in (b"yes", b"no")
    assert reason == "eog"


def test_json_schema_grammar_gives_parseable_json(smollm2):
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    grammar = _native.json_schema_to_grammar(json.dumps(schema))
    assert "root ::=" in grammar
    sampler = _native.Sampler(smollm2, temperature=0, grammar=grammar)
    text, reason = generate(smollm2, sampler, "Give the age as JSON:", n=64)
    assert reason == "eog", text
    assert isinstance(json.loads(text)["age"], int)


@pytest.mark.parametrize("grammar", ["root ::= foo", 'root ::= "unterminated', "root ::= root"])
def test_invalid_grammar_raises(smollm2, grammar):
    with pytest.raises(GrammarError):
        _native.Sampler(smollm2, grammar=grammar)


def test_grammar_without_root(smollm2):
    with pytest.raises(GrammarError):
        _native.Sampler(smollm2, grammar='start ::= "a"')
    assert _native.Sampler(smollm2, grammar='start ::= "a"', grammar_root="start").has_grammar


def test_lazy_grammar(smollm2):
    with pytest.raises(ValueError, match="trigger"):
        _native.Sampler(smollm2, grammar='root ::= "x"', grammar_lazy=True)
    with pytest.raises(GrammarError, match="trigger pattern"):
        _native.Sampler(smollm2, grammar='root ::= "x"', grammar_lazy=True, trigger_patterns=["(unclosed"])
    sampler = _native.Sampler(smollm2, temperature=0, grammar='root ::= "<tool>" [a-z]+', grammar_lazy=True,
                              trigger_words=["<tool>"])
    text, _ = generate(smollm2, sampler, "Say hello:")
    assert text  # unconstrained until the trigger appears


def test_invalid_json_schema(smollm2):
    with pytest.raises(GrammarError, match="not valid JSON"):
        _native.json_schema_to_grammar("{not json")


def test_bad_values(smollm2):
    with pytest.raises(ValueError, match="top_p"):
        _native.Sampler(smollm2, top_p=2.0)
    with pytest.raises(ValueError, match="logit_bias"):
        _native.Sampler(smollm2, logit_bias={10**7: 1.0})
    with pytest.raises(TypeError, match="temprature"):
        _native.Sampler(smollm2, temprature=0.5)


def test_logit_bias_bans_a_token(smollm2):
    plain, _ = generate(smollm2, _native.Sampler(smollm2, temperature=0), "The capital of France is")
    assert plain.startswith(b" Paris")
    paris = smollm2.tokenize(" Paris", add_special=False)[0]
    banned, _ = generate(smollm2, _native.Sampler(smollm2, temperature=0, logit_bias={paris: float("-inf")}),
                         "The capital of France is")
    assert not banned.startswith(b" Paris")


def test_clone_accept_reset(smollm2):
    sampler = _native.Sampler(smollm2, seed=3, temperature=1.0, repeat_penalty=1.3)
    sampler.accept(5)
    copy = sampler.clone()
    assert copy.names == sampler.names
    sampler.reset()
    with pytest.raises(ValueError):
        sampler.accept(-1)
    sampler.close()
    with pytest.raises(Exception, match="closed"):
        sampler.reset()


@pytest.mark.parametrize("model_name", ["smollm2", "gemma3"])
def test_greedy_picks_the_first_highest_logit(request, model_name):
    # the greedy chain reads the argmax straight from the logits (csrc/sampler.cpp)
    import numpy as np

    if model_name == "smollm2":
        model, owned = request.getfixturevalue("smollm2"), None
    else:
        model = owned = _native.Model(request.getfixturevalue("gemma3_path"))
    try:
        with _native.Context(model, n_ctx=256) as ctx:
            tokens = model.tokenize("The quick brown fox jumps over the lazy dog", add_special=True)
            ctx.decode(tokens, 0, "all")
            for i in range(len(tokens)):
                logits = ctx.logits(i)
                assert _native.Sampler(model, temperature=0).sample(ctx, i) == int(np.argmax(logits))
    finally:
        if owned is not None:
            owned.close()


def test_a_sampler_of_another_model_is_refused(smollm2_path, gemma3_path):
    from isolated import run_cases

    outcomes = run_cases(
        """
        smol, gemma = _native.Model(sys.argv[1]), _native.Model(sys.argv[2])
        ctx = _native.Context(smol, n_ctx=128, n_threads=2)
        tokens = smol.tokenize("Hello", add_special=True)
        ctx.decode(tokens)
        for name, params in [("greedy", dict(temperature=0)), ("dist", dict(seed=1)),
                             ("grammar", dict(temperature=0, grammar='root ::= "a"+'))]:
            sampler = _native.Sampler(gemma, **params)
            case("sample_" + name, lambda: sampler.sample(ctx))
            case("generate_" + name, lambda: list(ctx.generate(tokens, sampler, max_tokens=2)))
        case("still_usable", lambda: _native.Sampler(smol, temperature=0).sample(ctx) >= 0)
        """,
        smollm2_path, gemma3_path,
    )
    assert outcomes.pop("still_usable") == (None, "True")
    assert len(outcomes) == 6
    for name, (cls, message) in outcomes.items():
        assert cls == "ValueError" and "another model" in message, (name, cls, message)
