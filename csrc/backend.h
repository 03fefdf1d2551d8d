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
// The CPU backend variant loaded at run time in a portable build ("haswell", "zen4", ...);
// "builtin" when the CPU backend is compiled into the extension (source builds).
std::string cpu_variant();
std::string llama_cpp_version();
bool supports_gpu_offload();
bool supports_mmap();
bool supports_mlock();
std::vector<DeviceInfo> devices();
// Whether a discrete or integrated GPU is among the devices.
bool has_gpu_device();

// Frees the calling thread's idle OpenMP team (ggml's CPU threads). libgomp counts every team
// still alive, idle ones included; once there are more such threads than cores it stops
// spin-waiting at its barriers, and CPU decoding gets ~3x slower. A thread that hands the
// computing over to another thread calls this first. Costs nothing without OpenMP; ~0.1 ms when
// there is a team to free.
void release_compute_threads() noexcept;

}  // namespace llamabind
