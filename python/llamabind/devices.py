"""The compute devices of this build: a name for the backend and the GPU memory."""

from __future__ import annotations

from llamabind import _native

__all__ = ["backend_name", "gpu_memory"]


def backend_name() -> str:
    """The GPU devices of this build, comma-separated, or "CPU"."""
    names = [d.name for d in _native.devices() if d.type != "cpu"]
    return ", ".join(names) if names else "CPU"


def gpu_memory() -> tuple[int, int]:
    """(total, free) bytes over the GPU devices; (0, 0) on a CPU-only build."""
    gpus = [d for d in _native.devices() if d.type in ("gpu", "igpu")]
    return sum(d.memory_total_bytes for d in gpus), sum(d.memory_free_bytes for d in gpus)
