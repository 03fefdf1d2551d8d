"""Facts about a GGUF file read from its header, without loading (or reading) the weights.

The reader walks the key/value section and the tensor table at the front of the file through a
read-only memory map, so only the header pages are touched: a few milliseconds for a model with
a 50k-token vocabulary, regardless of the file size. It needs neither llama.cpp nor the ``gguf``
package. Large arrays (the tokenizer's vocabulary) are skipped and kept as their lengths only.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamabind.errors import ModelLoadError

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
# Arrays longer than this are summarized by their length (the vocabulary is 50k-260k strings).
MAX_ARRAY_KEPT = 64

# fmt: off
# llama_ftype from llama.h: the quantization a file was "mostly" written in.
FILE_TYPE_NAMES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0", 41: "Q2_0",
}

# ggml_type -> (elements per block, bytes per block), from ggml.c's type traits.
TENSOR_TYPE_SIZES: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 40), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
    15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18),
    21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4),
    27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66),
    39: (32, 17), 40: (64, 36), 41: (128, 18), 42: (64, 18),
}

# GGUF value types: id -> struct format of a scalar (strings and arrays are handled apart).
_SCALAR_FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q",
                   11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
# fmt: on

SPLIT_PATTERN = re.compile(
    r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class GGUFInfo:
    """What a GGUF header says about a model.

    Attributes:
        path: The file read.
        version: GGUF format version (1, 2 or 3).
        n_tensors: Tensors in this file (one part of a split model holds only some).
        metadata: Every key/value pair; arrays longer than ``MAX_ARRAY_KEPT`` are replaced
            by their length (an ``int``) so the vocabulary is not copied.
        n_params: Parameters (tensor elements) in this file, as llama.cpp counts them.
        data_offset: Byte offset where tensor data starts.
        n_bytes_expected: The file size the tensor table implies: a file shorter than this is
            truncated (writers may pad the end up to ``alignment`` bytes more).
        alignment: Alignment of the tensor data (``general.alignment``, default 32).
    """

    path: Path
    version: int
    n_tensors: int
    metadata: dict[str, Any] = field(repr=False)
    n_params: int
    data_offset: int
    n_bytes_expected: int
    alignment: int = DEFAULT_ALIGNMENT

    def size_problem(self, n_bytes: int) -> str | None:
        """Why ``n_bytes`` cannot be this model's file size (``None`` if it can).

        Args:
            n_bytes: A file size (or the total size of its chunks).
        """
        if n_bytes < self.n_bytes_expected:
            return f"truncated: {n_bytes} of {self.n_bytes_expected} bytes"
        if n_bytes >= self.n_bytes_expected + self.alignment:
            return f"{n_bytes} bytes where the header implies {self.n_bytes_expected}"
        return None

    @property
    def architecture(self) -> str | None:
        """``general.architecture`` (``"llama"``, ``"gemma3"``, ...)."""
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    @property
    def model_name(self) -> str | None:
        """``general.name`` as the converter wrote it, if any."""
        value = self.metadata.get("general.name")
        return value if isinstance(value, str) else None

    @property
    def quantization(self) -> str | None:
        """The file type from ``general.file_type`` (``"Q4_K_M"``), ``None`` when absent."""
        file_type = self.metadata.get("general.file_type")
        if not isinstance(file_type, int):
            return None
        return FILE_TYPE_NAMES.get(file_type, f"unknown file type {file_type}")

    @property
    def n_ctx_train(self) -> int | None:
        """The context length the model was trained with (``<arch>.context_length``)."""
        value = self.metadata.get(f"{self.architecture}.context_length")
        return value if isinstance(value, int) else None

    @property
    def has_chat_template(self) -> bool:
        """Whether the file carries a chat template (``tokenizer.chat_template``)."""
        return isinstance(self.metadata.get("tokenizer.chat_template"), str)

    @property
    def split_count(self) -> int:
        """How many files the model is split into (1 for an ordinary file)."""
        value = self.metadata.get("split.count")
        return value if isinstance(value, int) and value > 0 else 1


class _Reader:
    """Sequential little- or big-endian reads from a buffer, with bounds checks."""

    def __init__(self, buffer: mmap.mmap | bytes, path: Path) -> None:
        self.buffer = buffer
        self.size = len(buffer)
        self.offset = 0
        self.path = path
        self.order = "<"

    def fail(self, what: str) -> ModelLoadError:
        return ModelLoadError(
            f"[read_gguf_info] {self.path}: {what} (at byte {self.offset} of {self.size}); "
            "the file is truncated or not a GGUF model",
            path=str(self.path),
        )

    def take(self, n: int) -> int:
        start = self.offset
        if n < 0 or start + n > self.size:
            raise self.fail(f"header needs {n} more bytes")
        self.offset = start + n
        return start

    def scalar(self, fmt: str) -> Any:
        full = self.order + fmt
        return struct.unpack_from(full, self.buffer, self.take(struct.calcsize(full)))[0]

    def string(self) -> str:
        n = self.scalar("Q")
        start = self.take(n)
        return bytes(self.buffer[start : start + n]).decode("utf-8", errors="replace")

    def skip_strings(self, count: int) -> None:
        # The hot loop of the reader: 50k-260k vocabulary entries.
        buffer, offset, size = self.buffer, self.offset, self.size
        unpack = struct.Struct(self.order + "Q").unpack_from
        for _ in range(count):
            if offset + 8 > size:
                self.offset = offset
                raise self.fail("string array runs past the end of the file")
            offset += 8 + unpack(buffer, offset)[0]
        if offset > size:
            raise self.fail("string array runs past the end of the file")
        self.offset = offset

    def value(self, value_type: int) -> Any:
        if value_type == _STRING:
            return self.string()
        if value_type == _ARRAY:
            element_type, count = self.scalar("I"), self.scalar("Q")
            return self.array(element_type, count)
        fmt = _SCALAR_FORMATS.get(value_type)
        if fmt is None:
            raise self.fail(f"unknown GGUF value type {value_type}")
        return self.scalar(fmt)

    def array(self, element_type: int, count: int) -> Any:
        if count <= MAX_ARRAY_KEPT:
            return [self.value(element_type) for _ in range(count)]
        if element_type == _STRING:
            self.skip_strings(count)
        elif element_type in _SCALAR_FORMATS:
            self.take(count * struct.calcsize(_SCALAR_FORMATS[element_type]))
        else:
            for _ in range(count):
                self.value(element_type)
        return count


def _parse(reader: _Reader) -> GGUFInfo:
    start = reader.take(4)
    if bytes(reader.buffer[start : start + 4]) != GGUF_MAGIC:
        raise reader.fail("bad magic, not a GGUF file")
    version = reader.scalar("I")
    if version & 0xFFFF == 0:  # a big-endian file read as little-endian
        reader.order = ">"
        version = struct.unpack(">I", struct.pack("<I", version))[0]
    if version not in (1, 2, 3):
        raise reader.fail(f"unsupported GGUF version {version}")
    count_format = "I" if version == 1 else "Q"
    n_tensors, n_kv = reader.scalar(count_format), reader.scalar(count_format)

    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = reader.string()
        metadata[key] = reader.value(reader.scalar("I"))

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0:
        raise reader.fail(f"invalid general.alignment {alignment!r}")
    n_params, data_end = 0, 0
    for _ in range(n_tensors):
        reader.string()
        n_dims = reader.scalar("I")
        n_elements = 1
        for _ in range(n_dims):
            n_elements *= reader.scalar(count_format)
        tensor_type, offset = reader.scalar("I"), reader.scalar("Q")
        n_params += n_elements
        block, type_size = TENSOR_TYPE_SIZES.get(tensor_type, (0, 0))
        if block:  # an unknown type leaves the expected size a lower bound
            data_end = max(data_end, offset + n_elements // block * type_size)
    data_offset = -(-reader.offset // alignment) * alignment
    return GGUFInfo(
        path=reader.path,
        version=version,
        n_tensors=n_tensors,
        metadata=metadata,
        n_params=n_params,
        data_offset=data_offset,
        n_bytes_expected=data_offset + data_end,
        alignment=alignment,
    )


def read_gguf_info(path: str | os.PathLike[str]) -> GGUFInfo:
    """Reads the header of a GGUF file.

    Args:
        path: The ``.gguf`` file (for a split model, any part; each part has its own header).

    Returns:
        The header's facts; the weights are not read.

    Raises:
        ModelLoadError: The file is missing, unreadable, empty, not GGUF or its header is cut
            short.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            if os.fstat(file.fileno()).st_size == 0:
                raise ModelLoadError(f"[read_gguf_info] {path}: the file is empty", path=str(path))
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
                return _parse(_Reader(buffer, path))
    except OSError as exc:
        raise ModelLoadError(f"[read_gguf_info] cannot read {path}: {exc}", path=str(path)) from exc


def split_parts(path: Path) -> list[Path]:
    """All files of the split model whose part ``path`` is, in order (``[path]`` if not split).

    Args:
        path: Any file; split files are named ``<prefix>-00001-of-00003.gguf``.

    Returns:
        The paths of parts 1..N next to ``path`` (they may not all exist).
    """
    match = SPLIT_PATTERN.match(path.name)
    if not match:
        return [path]
    prefix, count = match["prefix"], int(match["count"])
    return [path.with_name(f"{prefix}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]


def is_later_split_part(path: Path) -> bool:
    """Whether ``path`` is part 2 or later of a split model (listings show part 1 only)."""
    match = SPLIT_PATTERN.match(path.name)
    return match is not None and int(match["no"]) > 1
