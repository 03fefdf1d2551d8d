"""Small real GGUF files written with the ``gguf`` package (a test dependency)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_gguf(
    path: Path,
    *,
    arch: str = "llama",
    n_ctx_train: int = 2048,
    file_type: int | None = 15,
    chat_template: str | None = None,
    n_elements: int = 64,
    split: tuple[int, int] | None = None,
    extra_bytes: int = 0,
) -> Path:
    """Writes a small real GGUF file with the ``gguf`` package: a few F32 tensors."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_context_length(n_ctx_train)
    if file_type is not None:
        writer.add_file_type(file_type)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    if split is not None:
        writer.add_uint16("split.no", split[0])
        writer.add_uint16("split.count", split[1])
    writer.add_array("tokenizer.ggml.tokens", [f"tok{i}" for i in range(200)])
    writer.add_tensor("token_embd.weight", np.arange(n_elements, dtype=np.float32))
    writer.add_tensor("output.weight", np.ones((4, n_elements // 4), dtype=np.float32))
    if extra_bytes:
        writer.add_tensor("padding", np.zeros(extra_bytes // 4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
