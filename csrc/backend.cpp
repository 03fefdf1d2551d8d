#include "backend.h"

#include <mutex>

#include "ggml-backend.h"
#include "llama.h"
#include "logging.h"

#ifdef LLAMABIND_OPENMP
extern "C" int omp_pause_resource_all(int kind);  // OpenMP 5.0, in libgomp since GCC 10
#endif

namespace llamabind {

void release_compute_threads() noexcept {
#ifdef LLAMABIND_OPENMP
    constexpr int omp_pause_soft = 1;
    omp_pause_resource_all(omp_pause_soft);
#endif
}

void ensure_backend() {
    static std::once_flag once;
    std::call_once(once, [] {
        install_log_callback();
        llama_backend_init();
        ggml_backend_load_all();
    });
}

std::string system_info() {
    ensure_backend();
    return llama_print_system_info();
}

std::string llama_cpp_version() {
    return "b" + std::to_string(LLAMABIND_LLAMA_BUILD_NUMBER) + "-" + LLAMABIND_LLAMA_COMMIT;
}

bool supports_gpu_offload() {
    ensure_backend();
    return llama_supports_gpu_offload();
}

bool supports_mmap() { return llama_supports_mmap(); }

bool supports_mlock() { return llama_supports_mlock(); }

static const char * device_type_name(enum ggml_backend_dev_type type) {
    switch (type) {
        case GGML_BACKEND_DEVICE_TYPE_CPU: return "cpu";
        case GGML_BACKEND_DEVICE_TYPE_GPU: return "gpu";
        case GGML_BACKEND_DEVICE_TYPE_IGPU: return "igpu";
        default: return "accel";
    }
}

bool has_gpu_device() {
    ensure_backend();
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        const auto type = ggml_backend_dev_type(ggml_backend_dev_get(i));
        if (type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU) return true;
    }
    return false;
}

std::vector<DeviceInfo> devices() {
    ensure_backend();
    std::vector<DeviceInfo> result;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        DeviceInfo info;
        info.name = ggml_backend_dev_name(dev);
        info.description = ggml_backend_dev_description(dev);
        info.type = device_type_name(ggml_backend_dev_type(dev));
        ggml_backend_dev_memory(dev, &info.memory_free_bytes, &info.memory_total_bytes);
        result.push_back(std::move(info));
    }
    return result;
}

}  // namespace llamabind
