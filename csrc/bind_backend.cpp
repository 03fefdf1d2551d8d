#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "backend.h"
#include "bind_common.h"
#include "logging.h"

namespace llamabind {

void flush_logs() {
    if (!has_log_records()) {
        return;
    }
    std::vector<LogRecord> records = take_log_records();
    try {
        nb::object logger = nb::module_::import_("logging").attr("getLogger")("llamabind.native");
        for (const LogRecord & record : records) {
            logger.attr("log")(record.level, "%s", record.text);
        }
    } catch (nb::python_error & e) {
        e.discard_as_unraisable("llamabind: emitting llama.cpp log records");
    }
}

void check_signals() {
    park_if_exiting();  // taking the GIL during finalization would end this thread badly
    nb::gil_scoped_acquire acquire;
    if (PyErr_CheckSignals() != 0) {
        throw nb::python_error();
    }
}

void bind_backend(nb::module_ & m) {
    m.def("system_info", &system_info, nb::call_guard<native_call>(),
          R"(llama.cpp's system information line: the CPU features and backends in use, ending
with the CPU variant (see cpu_variant).)");
    m.def("cpu_variant", &cpu_variant, nb::call_guard<native_call>(),
          R"(The CPU backend variant in use.

Portable builds (the wheels) carry ggml's CPU backend once per instruction-set level and load
the best one for this CPU at import: ``"haswell"``, ``"zen4"``, ``"armv8.2_2"``, ... Source
builds compile it in for the building machine: ``"builtin"``.)");
    m.def("llama_cpp_version", &llama_cpp_version,
          R"(The vendored llama.cpp build, e.g. ``"b11448-0c1e57098"``.)");
    m.def("supports_gpu_offload", &supports_gpu_offload, nb::call_guard<native_call>(),
          R"(Whether this build can offload layers to a GPU (CUDA, Metal, Vulkan, HIP, ...).)");
    m.def("supports_mmap", &supports_mmap, R"(Whether model files can be memory-mapped.)");
    m.def("supports_mlock", &supports_mlock, R"(Whether model memory can be locked in RAM.)");

    nb::class_<DeviceInfo>(m, "DeviceInfo", R"(A compute device llama.cpp can use.)")
        .def_ro("name", &DeviceInfo::name)
        .def_ro("description", &DeviceInfo::description)
        .def_ro("type", &DeviceInfo::type, R"("cpu", "gpu", "igpu" or "accel".)")
        .def_ro("memory_free_bytes", &DeviceInfo::memory_free_bytes)
        .def_ro("memory_total_bytes", &DeviceInfo::memory_total_bytes)
        .def("__repr__", [](const DeviceInfo & d) {
            return "DeviceInfo(name='" + d.name + "', type='" + d.type + "', memory_total_bytes=" +
                   std::to_string(d.memory_total_bytes) + ")";
        });
    m.def("devices", &devices, nb::call_guard<native_call>(),
          R"(The compute devices of this build, with their free and total memory in bytes.)");

    m.def("set_log_threshold", &set_log_threshold, nb::arg("level"),
          R"(Drop llama.cpp log records below this Python logging level at the source.

The records that pass go to the logger ``llamabind.native``; ``llamabind.set_log_level``
sets both this threshold and that logger's level.)");
    m.def("log_threshold", &log_threshold, R"(The current source threshold (a logging level).)");
    m.def("release_compute_threads", &release_compute_threads,
          R"(Frees the calling thread's idle CPU compute threads (ggml's OpenMP team).

libgomp counts every team still alive; once there are more such threads than cores it stops
spin-waiting at its barriers and CPU decoding gets several times slower. So a thread that
computed (Context.decode) and will not again soon, while another thread goes on computing,
should call this. Generators do it themselves when their decode-ahead thread takes over;
LlamaEngine does it after embeddings and scoring. A no-op without OpenMP.)");
    m.def("flush_logs", &flush_logs, R"(Emit queued llama.cpp log records now.)");
}

}  // namespace llamabind
