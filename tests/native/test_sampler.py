import json

import pytest
from isolated import run_cases
from llamabind import _native
from llamabind.errors import GrammarError, HandleClosedError, InvalidTextError, TemplateError


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
    with pytest.raises(HandleClosedError, match="closed"):
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


DEEP_GRAMMAR_CASES = """
import threading
model = _native.Model(sys.argv[1], vocab_only=True)
deep_gbnf = "root ::= " + "(" * 20000 + '"a"' + ")" * 20000
deep_schema = '{"type":"array","items":' * 3000 + '{"type":"string"}' + "}" * 3000
wide_schema = json.dumps({"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(5000)}})
case("gbnf", lambda: _native.Sampler(model, grammar=deep_gbnf))
case("schema", lambda: _native.json_schema_to_grammar(deep_schema))
case("wide_schema", lambda: _native.json_schema_to_grammar(wide_schema))
in_thread = []
thread = threading.Thread(target=lambda: case("gbnf_in_thread", lambda: _native.Sampler(model, grammar=deep_gbnf)))
thread.start()
thread.join()
case("nested_but_fine", lambda: _native.Sampler(model, grammar="root ::= " + "(" * 200 + '"a"' + ")" * 200).has_grammar)
"""


def test_deep_grammars_and_schemas_raise_grammar_error(smollm2_path):
    outcomes = run_cases(DEEP_GRAMMAR_CASES, smollm2_path)
    assert outcomes.pop("nested_but_fine") == (None, "True")
    assert set(outcomes) == {"gbnf", "schema", "wide_schema", "gbnf_in_thread"}
    for name, (cls, message) in outcomes.items():
        assert cls == "GrammarError", (name, cls, message)
    assert "nests groups 20000 levels deep; the limit is 256" in outcomes["gbnf"][1]
    assert "more than 128 levels" in outcomes["schema"][1]
    assert "5000 properties; the limit is 512" in outcomes["wide_schema"][1]


def test_schema_grammar_size_is_limited():
    # each level repeats the names of the levels above it: the grammar grows with depth squared
    levels = 40
    schema = "".join(f'{{"type":"object","properties":{{"k{i}{"k" * 4000}":' for i in range(levels))
    schema += '{"type":"string"}' + "}}" * levels
    with pytest.raises(GrammarError, match="the limit is 4194304"):
        _native.json_schema_to_grammar(schema)


def test_deep_tool_schemas_raise_before_the_chat_format_converts_them():
    templates = _native.ChatTemplates(template="chatml")
    deep = '{"type":"array","items":' * 3000 + '{"type":"string"}' + "}" * 3000
    tools = '[{"type": "function", "function": {"name": "f", "parameters": ' + deep + "}}]"
    with pytest.raises(GrammarError, match="levels"):
        templates.apply(json.dumps([{"role": "user", "content": "hi"}]), tools_json=tools)


EMPTIED_GRAMMAR_CASES = """
model = _native.Model(sys.argv[1])
ctx = _native.Context(model, n_ctx=256, n_threads=2)
prompt = model.tokenize("Say a:", add_special=True)
bias = {t: float("-inf") for t in range(model.n_vocab) if model.token_to_piece(t).startswith(b"a")}
for name, params in [("dist", dict(seed=1)), ("greedy", dict(temperature=0))]:
    sampler = _native.Sampler(model, grammar='root ::= "a"+', logit_bias=bias, **params)
    case("generate_" + name, lambda: list(ctx.generate(prompt, sampler, max_tokens=4)))
    case("sample_again_" + name, lambda: sampler.sample(ctx))
plain = _native.Sampler(model, temperature=0, grammar='root ::= "a" "b"')
case("accept_eog", lambda: plain.accept(model.special_tokens["eos"]))
case("accept_other", lambda: plain.accept(model.tokenize("zzz", add_special=False)[0]))
case("after_reset", lambda: (plain.reset(), list(ctx.generate(prompt, plain, max_tokens=4)))[1] != [])
"""


def test_a_grammar_that_logit_bias_empties_raises_instead_of_aborting(smollm2_path):
    outcomes = run_cases(EMPTIED_GRAMMAR_CASES, smollm2_path)
    assert outcomes.pop("after_reset") == (None, "True")
    for name, (cls, message) in outcomes.items():
        assert cls == "GrammarError", (name, cls, message)
    assert "logit_bias" in outcomes["generate_dist"][1]
    assert "not allowed by the grammar" in outcomes["accept_eog"][1]


def test_non_finite_and_out_of_range_values(smollm2):
    for name in ["temperature", "top_p", "min_p", "repeat_penalty", "presence_penalty", "dry_base", "mirostat_tau"]:
        with pytest.raises(ValueError, match=f"{name} must be a finite number"):
            _native.Sampler(smollm2, **{name: float("nan")})
    with pytest.raises(ValueError, match="temperature must be a finite"):
        _native.Sampler(smollm2, temperature=float("inf"))
    with pytest.raises(ValueError, match=r"\[Sampler\] seed = 4294967296 is out of range"):
        _native.Sampler(smollm2, seed=2**32)
    with pytest.raises(ValueError, match=r"\[Sampler\] top_k = 1099511627776 is out of range"):
        _native.Sampler(smollm2, top_k=2**40)
    with pytest.raises(ValueError, match=r"logit_bias key\[0\] = 2147483648 is out of range"):
        _native.Sampler(smollm2, logit_bias={2**31: 1.0})
    with pytest.raises(ValueError, match="trigger_tokens"):
        _native.Sampler(smollm2, grammar='root ::= "a"', grammar_lazy=True, trigger_tokens=[2**40])
    with pytest.raises(ValueError, match="NaN"):
        _native.Sampler(smollm2, logit_bias={5: float("nan")})
    with pytest.raises(ValueError, match="bans every token"):
        _native.Sampler(smollm2, logit_bias={t: float("-inf") for t in range(smollm2.n_vocab)})
    with pytest.raises(ValueError, match="out of range for a token id"):
        _native.Sampler(smollm2).accept(2**31)
    with pytest.raises(InvalidTextError, match="grammar is not valid Unicode"):
        _native.Sampler(smollm2, grammar='root ::= "\ud800"')
    lazy = {"grammar": 'root ::= "x"', "grammar_lazy": True}
    for name in ["trigger_words", "trigger_patterns", "trigger_patterns_full"]:
        with pytest.raises(InvalidTextError, match=rf"\[Sampler\] {name} is not valid Unicode"):
            _native.Sampler(smollm2, **{name: ["a", "\udcff"]}, **lazy)
    with pytest.raises(InvalidTextError, match="dry_sequence_breakers"):
        _native.Sampler(smollm2, dry_sequence_breakers=["\ud800"])
    with pytest.raises(InvalidTextError, match="schema_json is not valid Unicode"):
        _native.json_schema_to_grammar('{"type": "string", "description": "\udcff"}')
    with pytest.raises(GrammarError, match="NUL"):
        _native.Sampler(smollm2, grammar='root ::= "a"\0 | "b"')


def first_sample(model, text, feed, **params):
    """The token a greedy chain with `params` picks after `text`, having accepted `feed` first."""
    sampler = _native.Sampler(model, temperature=0, **params)
    for token in feed:
        sampler.accept(token)
    with _native.Context(model, n_ctx=256) as ctx:
        ctx.decode(model.tokenize(text, add_special=True))
        return sampler.sample(ctx)


def test_minus_one_windows_mean_the_whole_context(smollm2):
    text = "The capital of France is"
    paris = first_sample(smollm2, text, [])
    assert smollm2.token_to_piece(paris) == b" Paris"
    # the token accepted long ago (100 tokens back) is still inside a window of -1
    feed = [paris] + smollm2.tokenize(" and" * 100, add_special=False)
    assert first_sample(smollm2, text, feed, presence_penalty=100.0, penalty_last_n=0) == paris
    assert first_sample(smollm2, text, feed, presence_penalty=100.0, penalty_last_n=64) == paris
    assert first_sample(smollm2, text, feed, presence_penalty=100.0, penalty_last_n=-1) != paris

    text = "one two three four one two three four one two three"
    four = first_sample(smollm2, text, [])
    assert smollm2.token_to_piece(four) == b" four"
    feed = smollm2.tokenize(text, add_special=True)
    dry = {"dry_multiplier": 100.0, "dry_allowed_length": 1}
    assert first_sample(smollm2, text, feed, dry_penalty_last_n=0, **dry) == four
    assert first_sample(smollm2, text, feed, **dry) != four  # the default, -1


def test_trigger_patterns_with_nested_repetition_are_refused(smollm2):
    lazy = {"grammar": 'root ::= "x"', "grammar_lazy": True}
    # a** is (a*)* to std::regex (found by fuzzing: "`" and 48 "*" stalled a lazy grammar)
    for pattern in ["a**", "`" + "*" * 48, "(a*)*b", "(x?y*)+"]:
        with pytest.raises(GrammarError, match="repeats a group that itself repeats and can match nothing"):
            _native.Sampler(smollm2, trigger_patterns=[pattern], **lazy)
    for pattern in ["(a+)+b", "(?:\\s*\\w+){2,}", "a+{2,}", "(\\d+,?)*x"]:
        with pytest.raises(GrammarError, match="can match the same text in more than one way"):
            _native.Sampler(smollm2, trigger_patterns=[pattern], **lazy)
    with pytest.raises(GrammarError, match="can match the same text in more than one way"):
        _native.Sampler(smollm2, trigger_patterns_full=["(a|b+)*"], **lazy)
    with pytest.raises(GrammarError, match="the limit is 1024"):
        _native.Sampler(smollm2, trigger_patterns=["a" * 2000], **lazy)
    # found by fuzzing: llama.cpp takes them as C strings, a NUL cut them short (std::regex_error)
    for name in ["trigger_words", "trigger_patterns", "trigger_patterns_full"]:
        with pytest.raises(GrammarError, match="NUL byte"):
            _native.Sampler(smollm2, **{name: ["a\0("]}, **lazy)
    with pytest.raises(GrammarError, match="grammar_root contains a NUL byte"):
        _native.Sampler(smollm2, grammar='root ::= "x"', grammar_root="root\0x")
    # what llama.cpp's chat formats use stays accepted: repeated groups of plain items, optional groups
    fine = ["[\\s\\S]*?(<tool_call>)[\\s\\S]*", "^<\\|channel\\|>(?:commentary|analysis)\\s+to=functions$",
            "(?:^|<\\|start\\|>assistant)( to=(?!self<\\|message\\|>)[^<]*?<\\|message\\|>)",
            "(?:<think>[\\s\\S]*?</think>\\s*)?(<tool>)", "(ab)+", "([+*])+", "(a{1})*",
            # nested repeats whose iterations are delimited: linear for a backtracking engine
            "(\\d+,)*", "(x*y)*", "((ab)*c)+", "(\\w+\\.)+com"]
    assert _native.Sampler(smollm2, trigger_patterns=fine, **lazy).has_grammar


def test_trigger_patterns_that_match_one_text_in_many_ways_are_refused(smollm2):
    lazy = {"grammar": 'root ::= "x"', "grammar_lazy": True}
    repeated = ["(a|a)*b", "(a|ab)*c", "((a|a)b)*", "(a?a)*", "(ab?|b)*", "([ab]|a)+", "(.|a)*",
                "(\\s|\\n)*x", "(\\w|\\d){2,}", "(?:x|xy)+z"]
    for pattern in repeated:
        with pytest.raises(GrammarError, match="can match the same text in more than one way"):
            _native.Sampler(smollm2, trigger_patterns=[pattern], **lazy)
    for pattern in ["(a|a)" * 12 + "c", "a?" * 20 + "a" * 20]:
        with pytest.raises(GrammarError, match="ways to split a text multiply"):
            _native.Sampler(smollm2, trigger_patterns_full=[pattern], **lazy)
    # alternatives that start differently, or whose literal prefixes differ, stay accepted
    fine = ["(x|y)*z", "(?:<tool_call>|<function=)+", "(ab|cd)*e", "(\\[|\\])*", "(ab|a)c",
            "(a|a)" * 4 + "c", "(?:^|<\\|start\\|>assistant)"]
    assert _native.Sampler(smollm2, trigger_patterns=fine, **lazy).has_grammar


def test_trigger_patterns_of_the_vendored_chat_formats_are_accepted(smollm2):
    from pathlib import Path

    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    messages = json.dumps([{"role": "user", "content": "hi"}])
    templates = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "models" / "templates"
    n_patterns = 0
    for source in sorted(templates.glob("*.jinja")):
        try:
            chat = _native.ChatTemplates(template=source.read_text(encoding="utf-8"))
            params = chat.apply(messages, tools_json=json.dumps([tool]))
        except (TemplateError, ValueError):
            continue  # templates that cannot render this request have their own tests
        kwargs = params.sampler_kwargs(smollm2)
        n_patterns += len(kwargs.get("trigger_patterns", [])) + len(kwargs.get("trigger_patterns_full", []))
        _native.Sampler(smollm2, **kwargs).close()
    assert n_patterns > 0
