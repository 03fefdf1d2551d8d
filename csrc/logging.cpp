#include "logging.h"

#include <atomic>
#include <deque>
#include <mutex>

#include "ggml.h"
#include "llama.h"

namespace llamabind {
namespace {

constexpr size_t max_queued_records = 10000;

std::mutex queue_mutex;
std::deque<LogRecord> queue;
std::string partial_line;
int partial_level = 20;
std::atomic<int> threshold{30};
std::atomic<bool> pending{false};
thread_local LogCapture * active_capture = nullptr;

int python_level(enum ggml_log_level level) {
    switch (level) {
        case GGML_LOG_LEVEL_DEBUG: return 10;
        case GGML_LOG_LEVEL_INFO: return 20;
        case GGML_LOG_LEVEL_WARN: return 30;
        case GGML_LOG_LEVEL_ERROR: return 40;
        default: return 20;
    }
}

void push_line(int level, std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
        text.pop_back();
    }
    if (text.empty()) {
        return;
    }
    if (queue.size() >= max_queued_records) {
        queue.pop_front();
    }
    queue.push_back({level, std::move(text)});
    pending.store(true, std::memory_order_release);
}

void log_callback(enum ggml_log_level level, const char * text, void * /*user_data*/) {
    if (text == nullptr) {
        return;
    }
    capture_line(level == GGML_LOG_LEVEL_CONT ? -1 : python_level(level), text);
    std::lock_guard<std::mutex> lock(queue_mutex);
    // CONT continues the previous fragment at the previous level.
    int lvl = level == GGML_LOG_LEVEL_CONT ? partial_level : python_level(level);
    if (level != GGML_LOG_LEVEL_CONT && !partial_line.empty()) {
        if (partial_level >= threshold.load()) {
            push_line(partial_level, std::move(partial_line));
        }
        partial_line.clear();
    }
    partial_level = lvl;
    if (lvl < threshold.load(std::memory_order_relaxed)) {
        partial_line.clear();
        return;
    }
    partial_line += text;
    size_t newline;
    while ((newline = partial_line.find('\n')) != std::string::npos) {
        push_line(lvl, partial_line.substr(0, newline));
        partial_line.erase(0, newline + 1);
    }
}

}  // namespace

// level -1 continues the previous fragment.
void capture_line(int level, const char * text) {
    static thread_local int last_level = 0;
    LogCapture * capture = active_capture;
    if (capture == nullptr) {
        return;
    }
    if (level >= 0) {
        last_level = level;
    }
    if (last_level >= 40) {
        capture->text_ += text;
    }
}

LogCapture::LogCapture() : previous_(active_capture) { active_capture = this; }

LogCapture::~LogCapture() { active_capture = previous_; }

std::string LogCapture::errors() const {
    std::string out;
    size_t start = 0;
    while (start < text_.size()) {
        size_t end = text_.find('\n', start);
        if (end == std::string::npos) end = text_.size();
        std::string line = text_.substr(start, end - start);
        if (!line.empty()) {
            if (!out.empty()) out += "; ";
            out += line;
        }
        start = end + 1;
    }
    return out;
}

void install_log_callback() {
    llama_log_set(log_callback, nullptr);
    ggml_log_set(log_callback, nullptr);
}

void set_log_threshold(int python_level) { threshold.store(python_level); }

int log_threshold() { return threshold.load(); }

bool has_log_records() { return pending.load(std::memory_order_acquire); }

std::vector<LogRecord> take_log_records() {
    std::lock_guard<std::mutex> lock(queue_mutex);
    std::vector<LogRecord> out(std::make_move_iterator(queue.begin()),
                               std::make_move_iterator(queue.end()));
    queue.clear();
    pending.store(false, std::memory_order_release);
    return out;
}

}  // namespace llamabind
