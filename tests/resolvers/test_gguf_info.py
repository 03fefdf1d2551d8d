"""The GGUF header reader against the gguf package's writer and against llama.cpp itself."""

from __future__ import annotations

import struct
import time

import pytest
from llamabind.errors import ModelLoadError
from llamabind.resolvers import ModelInfo, read_gguf_info
from llamabind.resolvers.gguf_info import is_later_split_part, split_parts
from synthetic_gguf import write_gguf


def test_synthetic_file_facts(tmp_path):
    path = write_gguf(
        tmp_path / "m.gguf",
        arch="qwen3",
        n_ctx_train=4096,
        file_type=7,
        chat_template="{{ messages }}",
        n_elements=128,
    )
    info = read_gguf_info(path)
    assert info.architecture == "qwen3"
    assert info.n_ctx_train == 4096
    assert info.quantization == "Q8_0"
    assert info.has_chat_template
    assert info.n_tensors == 2
    assert info.n_params == 128 + 128
    assert info.metadata["tokenizer.ggml.tokens"] == 200  # a long array is kept as its length
    assert info.n_bytes_expected == path.stat().st_size
    assert info.split_count == 1


def test_missing_facts_are_none(tmp_path):
    info = read_gguf_info(write_gguf(tmp_path / "m.gguf", file_type=None))
    assert info.quantization is None
    assert not info.has_chat_template


def test_matches_llama_cpp_on_smollm2(smollm2, smollm2_path):
    started = time.perf_counter()
    info = read_gguf_info(smollm2_path)
    elapsed = time.perf_counter() - started
    assert info.architecture == smollm2.architecture == "llama"
    assert info.n_params == smollm2.n_params
    assert info.n_ctx_train == smollm2.n_ctx_train
    assert info.quantization == "Q4_1"
    assert info.has_chat_template
    assert info.metadata["tokenizer.chat_template"] == smollm2.chat_template()
    assert info.n_bytes_expected == info.path.stat().st_size
    assert elapsed < 2.0, "reading the header must not read the weights"


def test_model_info_from_file(smollm2_path):
    from pathlib import Path

    info = ModelInfo.from_file(Path(smollm2_path), name="smol", source="file")
    assert (info.architecture, info.quantization, info.n_ctx_train) == ("llama", "Q4_1", 8192)
    assert info.has_chat_template and info.problem is None
    assert info.size_bytes == Path(smollm2_path).stat().st_size
    assert info.modified is not None and info.modified.tzinfo is not None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"GGML" + b"\0" * 60, "bad magic"),
        (b"GGUF", "more bytes"),
        (b"GGUF" + struct.pack("<I", 99) + b"\0" * 16, "unsupported GGUF version 99"),
    ],
)
def test_bad_files_raise_model_load_error(tmp_path, content, message):
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=message) as caught:
        read_gguf_info(path)
    assert caught.value.path == str(path)


def test_truncated_header_and_truncated_weights(tmp_path):
    full = write_gguf(tmp_path / "full.gguf", extra_bytes=4096).read_bytes()
    cut_header = tmp_path / "cut-header.gguf"
    cut_header.write_bytes(full[:200])
    with pytest.raises(ModelLoadError, match="truncated"):
        read_gguf_info(cut_header)
    cut_weights = tmp_path / "cut-weights.gguf"
    cut_weights.write_bytes(full[:-1000])
    info = ModelInfo.from_file(cut_weights, name="cut", source="file")
    assert info.problem is not None and "truncated" in info.problem
    assert info.architecture == "llama"  # the header itself is whole


def test_huge_string_length_is_rejected_not_allocated(tmp_path):
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 60)
    path = tmp_path / "evil.gguf"
    path.write_bytes(header + b"x" * 64)
    with pytest.raises(ModelLoadError, match="more bytes"):
        read_gguf_info(path)


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="cannot read"):
        read_gguf_info(tmp_path / "absent.gguf")


def test_split_names(tmp_path):
    first = tmp_path / "big-00001-of-00003.gguf"
    assert [p.name for p in split_parts(first)] == [
        "big-00001-of-00003.gguf",
        "big-00002-of-00003.gguf",
        "big-00003-of-00003.gguf",
    ]
    assert split_parts(tmp_path / "plain.gguf") == [tmp_path / "plain.gguf"]
    assert is_later_split_part(tmp_path / "big-00002-of-00003.gguf")
    assert not is_later_split_part(first)


def test_split_model_info_sums_parts(tmp_path):
    for number in (1, 2):
        write_gguf(tmp_path / f"m-{number:05d}-of-00002.gguf", split=(number - 1, 2))
    info = ModelInfo.from_file(tmp_path / "m-00001-of-00002.gguf", name="m", source="file")
    assert info.n_split == 2
    assert info.n_params == 2 * 128
    assert info.problem is None
    (tmp_path / "m-00002-of-00002.gguf").unlink()
    info = ModelInfo.from_file(tmp_path / "m-00001-of-00002.gguf", name="m", source="file")
    assert info.problem == "1 of 2 split parts missing"
