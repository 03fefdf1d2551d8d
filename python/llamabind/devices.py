"""The compute devices of this build (ggml's backend devices): a label and the GPU memory.

In llamabind's words a "device" is what ggml computes on (CPU, a GPU); "backend" alone means
the seed's ``LlamaBackend`` API, and "backend sampling" is llama.cpp's sampling in the graph.
The seed's ``get_backend_name()`` / ``backend_name`` report ``device_label()``.
"""

from __future__ import annotations

from llamabind import _native

__all__ = ["device_label", "gpu_memory"]


def device_label() -> str:
    """The GPU devices of this build, comma-separated, or "CPU"."""
    names = [d.name for d in _native.devices() if d.type != "cpu"]
    return ", ".join(names) if names else "CPU"


def gpu_memory() -> tuple[int, int]:
    """(total, free) bytes over the GPU devices; (0, 0) on a CPU-only build."""
    gpus = [d for d in _native.devices() if d.type in ("gpu", "igpu")]
    return sum(d.memory_total_bytes for d in gpus), sum(d.memory_free_bytes for d in gpus)
