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
