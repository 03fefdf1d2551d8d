#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace llamabind {

// Initialises llama.cpp's backends once per process, after the log callback is installed.
void ensure_backend();

struct DeviceInfo {
    std::string name;
    std::string description;
    std::string type;  // "cpu", "gpu", "igpu" or "accel"
    size_t memory_free_bytes = 0;
    size_t memory_total_bytes = 0;
};

std::string system_info();
std::string llama_cpp_version();
bool supports_gpu_offload();
bool supports_mmap();
bool supports_mlock();
std::vector<DeviceInfo> devices();

}  // namespace llamabind
