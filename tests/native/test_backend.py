import ctypes
import os
import sys
import time

import pytest

import llamabind
from llamabind import _native


def test_version_names_the_vendored_build():
    assert _native.llama_cpp_version() == "b11448-0c1e57098"
    assert llamabind.LLAMA_CPP_VERSION == "b11448-0c1e57098"


def test_system_info_lists_cpu_features():
    info = _native.system_info()
    assert "CPU" in info
    assert "AMX_INT8" not in info  # off by default, see CMakeLists.txt


def test_devices_include_the_cpu_with_memory():
    devices = _native.devices()
    cpu = [d for d in devices if d.type == "cpu"]
    assert cpu, devices
    assert cpu[0].memory_total_bytes > 0
    assert isinstance(_native.supports_gpu_offload(), bool)
    assert _native.supports_mmap() is True


def _threads():
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and ELF symbols")
def test_llama_cpp_symbols_stay_inside_the_extension():
    if _native.cpu_variant() != "builtin":
        pytest.skip("portable build: llama.cpp is in libllamabind-*.so beside the extension")
    # another llama.cpp in the process (llama-cpp-python) must not bind to ours, nor we to its
    lib = ctypes.CDLL(_native.__file__)
    for name in ("llama_decode", "ggml_graph_compute", "llama_model_load_from_file"):
        assert not hasattr(lib, name), name
    assert hasattr(lib, "PyInit__native")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_release_compute_threads_frees_this_threads_team(smollm2):
    with _native.Context(smollm2, n_ctx=128, n_threads=2) as ctx:
        _native.release_compute_threads()
        before = _threads()
        ctx.decode(smollm2.tokenize("Once upon a time", add_special=True))
        if _threads() == before:
            pytest.skip("this build computes without an OpenMP team (no OpenMP, or one thread)")
        _native.release_compute_threads()
        deadline = time.monotonic() + 5
        while _threads() > before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _threads() == before
        ctx.decode(smollm2.tokenize(" there", add_special=False))  # computing again works
