#include "backend.h"

#include <filesystem>
#include <mutex>
#include <stdexcept>

#include "ggml-backend.h"
#include "llama.h"
#include "logging.h"

#ifdef GGML_BACKEND_DL
#ifdef _WIN32
#include <windows.h>
#else
#include <dlfcn.h>
#endif
#endif

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

#ifdef GGML_BACKEND_DL
// The shared library or module that holds the code at `address`; empty if unknown.
static std::filesystem::path library_path_of(const void * address) {
#ifdef _WIN32
    HMODULE module = nullptr;
    if (!GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS |
                                GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                            static_cast<LPCWSTR>(address), &module)) {
        return {};
    }
    std::wstring name(32768, L'\0');
    const DWORD n = GetModuleFileNameW(module, name.data(), static_cast<DWORD>(name.size()));
    name.resize(n);
    return std::filesystem::path(name);
#else
    Dl_info info{};
    if (dladdr(address, &info) == 0 || info.dli_fname == nullptr) return {};
    return std::filesystem::path(info.dli_fname);
#endif
}
#endif

void ensure_backend() {
    static std::once_flag once;
    std::call_once(once, [] {
        install_log_callback();
        llama_backend_init();
#ifdef GGML_BACKEND_DL
        // Portable build: the backend modules lie next to this extension (never found through
        // LD_LIBRARY_PATH or the working directory); ggml loads the best CPU variant among them.
        const auto package_dir =
            library_path_of(reinterpret_cast<const void *>(&ensure_backend)).parent_path();
        ggml_backend_load_all_from_path(package_dir.u8string().c_str());
        if (ggml_backend_reg_by_name("CPU") == nullptr) {
            throw std::runtime_error("[llamabind] no ggml CPU backend could be loaded from " +
                                     package_dir.u8string());
        }
#else
        ggml_backend_load_all();
#endif
    });
}

std::string cpu_variant() {
    ensure_backend();
#ifdef GGML_BACKEND_DL
    ggml_backend_reg_t cpu = ggml_backend_reg_by_name("CPU");
    void * features = cpu ? ggml_backend_reg_get_proc_address(cpu, "ggml_backend_get_features")
                          : nullptr;
    // libggml-cpu-haswell.so / ggml-cpu-haswell.dll -> "haswell"
    std::string stem = features ? library_path_of(features).stem().u8string() : "";
    const std::string prefix = "ggml-cpu";
    const size_t at = stem.find(prefix);
    if (at == std::string::npos) return "unknown";
    stem = stem.substr(at + prefix.size());
    return stem.empty() ? "default" : stem.substr(1);
#else
    return "builtin";
#endif
}

std::string system_info() {
    ensure_backend();
    return std::string(llama_print_system_info()) + "CPU_VARIANT = " + cpu_variant() + " | ";
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
