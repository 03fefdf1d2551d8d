import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from isolated import run_cases
from llamabind import _native
from llamabind.errors import HandleClosedError, InvalidTextError, LlamaError, ModelLoadError


def test_metadata_and_facts(smollm2):
    assert smollm2.architecture == "llama"
    assert smollm2.metadata["general.architecture"] == "llama"
    assert smollm2.n_vocab == 49152
    assert 130_000_000 < smollm2.n_params < 140_000_000
    assert smollm2.size_bytes > 50_000_000
    assert smollm2.n_ctx_train == 8192
    assert smollm2.n_embd == 576 and smollm2.n_layer == 30 and smollm2.n_head == 9
    assert smollm2.vocab_type == 2  # BPE
    assert "Q4_1" in smollm2.description


def test_special_tokens_and_chat_template(smollm2):
    special = smollm2.special_tokens
    assert special["eos"] == 2
    assert smollm2.is_eog(special["eos"])
    assert not smollm2.is_eog(19556)
    assert smollm2.token_text(special["eos"]) == "<|im_end|>"
    assert smollm2.is_control(special["eos"])
    template = smollm2.chat_template()
    assert template is not None and "<|im_start|>" in template
    assert smollm2.chat_templates["default"] == template
    assert smollm2.chat_template("no-such-name") is None


def test_tokenize_detokenize_round_trip(smollm2):
    text = "Hello, world! Ünïcödé ✓ 你好"
    tokens = smollm2.tokenize(text, add_special=False)
    assert tokens and all(isinstance(t, int) for t in tokens)
    assert smollm2.detokenize(tokens).decode() == text
    assert b"".join(smollm2.token_to_piece(t) for t in tokens).decode() == text


def test_parse_special(smollm2):
    plain = smollm2.tokenize("<|im_end|>", add_special=False, parse_special=False)
    special = smollm2.tokenize("<|im_end|>", add_special=False, parse_special=True)
    assert special == [2]
    assert len(plain) > 1
    assert smollm2.detokenize([2], unparse_special=True) == b"<|im_end|>"
    assert smollm2.detokenize([2], unparse_special=False) == b""


def test_tokens_outside_the_vocabulary_raise(smollm2):
    for bad in (-1, smollm2.n_vocab, 10**9):
        with pytest.raises(ValueError, match="outside the vocabulary"):
            smollm2.detokenize([1, bad])
        with pytest.raises(ValueError):
            smollm2.token_to_piece(bad)
        with pytest.raises(ValueError):
            smollm2.is_eog(bad)


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file") as info:
        _native.Model(str(tmp_path / "missing.gguf"))
    assert info.value.path.endswith("missing.gguf")
    assert "llamabind.resolve_model" in str(info.value)


def test_nul_byte_in_a_path_is_refused(smollm2, smollm2_path, tmp_path):
    with pytest.raises(ValueError, match="NUL"):
        _native.Model(smollm2_path + "\0.other")
    with pytest.raises(ValueError, match="NUL"):
        _native.LoraAdapter(smollm2, smollm2_path + "\0.other")
    with _native.Context(smollm2, n_ctx=128) as ctx, pytest.raises(ValueError, match="NUL"):
        ctx.save_state_file(str(tmp_path / "state.bin") + "\0x")


def test_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="is a directory"):
        _native.Model(str(tmp_path))


def test_empty_file(tmp_path):
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="is empty"):
        _native.Model(str(path))


def test_not_gguf(tmp_path):
    path = tmp_path / "text.gguf"
    path.write_text("this is not a model\n" * 10)
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        _native.Model(str(path))


@pytest.mark.parametrize("keep", [8, 1000, 100_000, 20_000_000])
def test_truncated_gguf(tmp_path, smollm2_path, keep):
    path = tmp_path / "truncated.gguf"
    with open(smollm2_path, "rb") as f:
        path.write_bytes(f.read(keep))
    with pytest.raises(ModelLoadError, match="failed to load"):
        _native.Model(str(path))


def test_corrupt_header(tmp_path, smollm2_path):
    with open(smollm2_path, "rb") as f:
        data = bytearray(f.read(2_000_000))
    data[8:16] = b"\xff" * 8  # tensor count: absurd
    path = tmp_path / "corrupt.gguf"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError):
        _native.Model(str(path))


def test_progress_callback_sees_progress_and_can_cancel(smollm2_path):
    seen = []
    model = _native.Model(smollm2_path, progress=lambda p: seen.append(p) or True)
    model.close()
    assert seen and seen[-1] == pytest.approx(1.0)

    with pytest.raises(ModelLoadError, match="cancelled") as info:
        _native.Model(smollm2_path, progress=lambda p: False)
    assert info.value.cancelled == 1


def test_progress_callback_exception_propagates(smollm2_path):
    def boom(progress):
        raise KeyError("from callback")

    with pytest.raises(KeyError, match="from callback"):
        _native.Model(smollm2_path, progress=boom)


def test_vocab_only_load_cannot_decode(smollm2_path):
    model = _native.Model(smollm2_path, vocab_only=True)
    assert model.is_vocab_only
    assert model.tokenize("hi", add_special=False)
    with pytest.raises(LlamaError, match="vocab_only"):
        _native.Context(model)


def test_unknown_keyword_and_bad_values(smollm2_path):
    with pytest.raises(TypeError, match="n_gpu_layer"):
        _native.Model(smollm2_path, n_gpu_layer=3)
    with pytest.raises(ValueError, match="split_mode"):
        _native.Model(smollm2_path, split_mode=9)


def test_kv_overrides_apply(smollm2_path):
    model = _native.Model(smollm2_path, kv_overrides={"general.name": "renamed"}, vocab_only=True)
    assert model.n_vocab == 49152


def test_use_after_close(smollm2_path):
    model = _native.Model(smollm2_path, vocab_only=True)
    with model:
        assert model.n_vocab > 0
    assert model.is_closed
    with pytest.raises(HandleClosedError):
        model.tokenize("x")
    with pytest.raises(HandleClosedError):
        _ = model.n_vocab
    model.close()  # closing twice is fine


LOAD_AND_GENERATE = textwrap.dedent(
    """
    import logging, sys
    from llamabind import _native
    level = sys.argv[2]
    if level != "default":
        logging.basicConfig(level=logging.DEBUG, stream=sys.stdout)
        _native.set_log_threshold(getattr(logging, level))
        logging.getLogger("llamabind.native").setLevel(getattr(logging, level))
    model = _native.Model(sys.argv[1])
    ctx = _native.Context(model, n_ctx=256, n_threads=1)
    tokens = model.tokenize("Hello", add_special=True)
    list(ctx.generate(tokens, _native.Sampler(model, temperature=0), max_tokens=4))
    print("done")
    """
)


def test_load_prints_nothing_to_stderr_by_default(smollm2_path):
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_GENERATE, smollm2_path, "default"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    assert result.stderr == ""


def test_info_level_shows_llama_cpp_load_messages_through_logging(smollm2_path):
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_GENERATE, smollm2_path, "INFO"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "INFO:llamabind.native:" in result.stdout
    assert "llama_model_loader" in result.stdout or "load_tensors" in result.stdout
    assert result.stderr == ""


LIMIT_CASES = """
path, bad_file = sys.argv[1], sys.argv[2]
for name, overrides in [
    ("block_count", {"llama.block_count": 100000}),
    ("block_count_zero", {"llama.block_count": 0}),
    ("expert_count", {"llama.expert_count": 5000}),
    ("expert_used_count", {"llama.expert_count": 8, "llama.expert_used_count": 9}),
    ("expert_groups", {"llama.expert_count": 8, "llama.expert_used_count": 2, "llama.expert_group_count": 3}),
    ("nextn", {"llama.nextn_predict_layers": 1000}),
    ("rope_scaling", {"llama.rope.scaling.type": "bogus"}),
]:
    case(name, lambda: _native.Model(path, kv_overrides=overrides))
case("file", lambda: _native.Model(bad_file))
case("still_loads", lambda: _native.Model(path).n_layer)
"""


def test_hyperparameters_past_llama_cpp_limits_raise(smollm2_path, tmp_path):
    import gguf

    writer = gguf.GGUFWriter(str(tmp_path / "deep.gguf"), "llama")
    writer.add_context_length(128)
    writer.add_embedding_length(64)
    writer.add_block_count(100000)
    writer.add_head_count(4)
    writer.add_tensor("token_embd.weight", np.zeros((8, 64), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    outcomes = run_cases(LIMIT_CASES, smollm2_path, tmp_path / "deep.gguf")
    assert outcomes.pop("still_loads") == (None, "30")
    for name, (cls, message) in outcomes.items():
        assert cls == "ModelLoadError", (name, cls, message)
    assert "llama.block_count = 100000 is outside 1..512" in outcomes["block_count"][1]
    assert "llama.block_count = 100000" in outcomes["file"][1]
    assert "llama.expert_used_count = 9" in outcomes["expert_used_count"][1]
    assert "'bogus'" in outcomes["rope_scaling"][1]


def test_non_finite_load_parameters_raise(smollm2_path):
    with pytest.raises(ValueError, match="finite"):
        _native.Model(smollm2_path, kv_overrides={"llama.rope.freq_base": float("nan")})
    with pytest.raises(ValueError, match="tensor_split"):
        _native.Model(smollm2_path, tensor_split=[float("inf")])


def test_text_and_token_arguments_name_what_is_wrong(smollm2):
    with pytest.raises(InvalidTextError, match=r"\[Model.tokenize\] text is not valid Unicode text .*surrogates") as caught:
        smollm2.tokenize("a\ud800b")
    assert caught.value.field == "text"
    with pytest.raises(TypeError, match="must be token ids"):
        smollm2.detokenize(bytearray(b"abc"))
    with pytest.raises(ValueError, match=r"tokens\[0\] = 2147483648 is out of range"):
        smollm2.detokenize([2**31])
    for method in [smollm2.is_eog, smollm2.is_control, smollm2.token_attr, smollm2.token_text,
                   smollm2.token_score, smollm2.token_to_piece]:
        with pytest.raises(ValueError, match="token 2147483648 is out of range"):
            method(2**31)
    with pytest.raises(ValueError, match=r"kv_overrides\['a.b'\] = 36893488147419103232 is out of range"):
        _native.Model("unused.gguf", kv_overrides={"a.b": 2**65})
    with pytest.raises(ValueError, match=r"\[Model\] n_gpu_layers = 2147483648 is out of range"):
        _native.Model("unused.gguf", n_gpu_layers=2**31)


VOCAB = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "models" / "ggml-vocab-llama-spm.gguf"
FUZZ_DIR = Path(__file__).resolve().parents[1] / "fuzz"


def tiny_llama(path, **options) -> bytes:
    """The tiny llama model of the fuzz seeds (tests/fuzz/make_seeds.py), written to path."""
    if str(FUZZ_DIR) not in sys.path:
        sys.path.append(str(FUZZ_DIR))
    import make_seeds

    return make_seeds.tiny_llama(path, **options)


def test_paths_are_file_names_as_os_fsencode_gives_them(tmp_path):
    with pytest.raises(InvalidTextError, match=r"\[Model\] path is not valid Unicode"):
        _native.Model(str(tmp_path / "model\ud800.gguf"))
    # a file name that is not UTF-8 arrives as a str with surrogate escapes (os.fsdecode)
    path = tmp_path / os.fsdecode(b"vocab-\xff.gguf")
    try:
        shutil.copyfile(VOCAB, path)
    except OSError:
        pytest.skip("this file system takes only UTF-8 file names")
    with _native.Model(str(path), vocab_only=True) as model:
        assert model.path == str(path)
        assert repr(str(path)) in repr(model)


def test_a_vocabulary_without_its_byte_tokens_raises_model_load_error(tmp_path):
    # found by fuzzing: llama.cpp threw std::out_of_range
    tiny_llama(tmp_path / "full.gguf")
    with _native.Model(str(tmp_path / "full.gguf")) as model:
        assert model.detokenize(model.tokenize("hello, world", add_special=False)) == b"hello, world"
    tiny_llama(tmp_path / "no-bytes.gguf", byte_tokens=False)
    with _native.Model(str(tmp_path / "no-bytes.gguf")) as model:
        with pytest.raises(ModelLoadError, match=r"\[Model.tokenize\] the model's vocabulary has no token for a byte"):
            model.tokenize("hello, world")


def test_text_from_the_model_file_that_is_not_utf8_is_replaced(tmp_path):
    # found by fuzzing: metadata with bytes that are not UTF-8 raised UnicodeDecodeError
    data = tiny_llama(tmp_path / "m.gguf", chat_template="{{ 'caf\u00e9' }}{{ messages[0].content }}")
    path = tmp_path / "broken.gguf"
    path.write_bytes(data.replace("caf\u00e9".encode(), b"caf\xff\xfe"))
    with _native.Model(str(path)) as model:
        template = "{{ 'caf\ufffd\ufffd' }}{{ messages[0].content }}"
        assert model.metadata["tokenizer.chat_template"] == template
        assert model.chat_template() == template and model.chat_templates == {"default": template}
        params = _native.ChatTemplates(model).apply('[{"role": "user", "content": "!"}]')
        assert params.prompt == "caf\ufffd\ufffd!"
