#pragma once

#include <string>
#include <utility>
#include <vector>

namespace llamabind {

// Python logging levels (DEBUG=10 ... ERROR=40); llama.cpp's levels are mapped onto them.
struct LogRecord {
    int level;
    std::string text;
};

// Routes llama.cpp and ggml logs into a queue. Lines are never printed and never passed to
// Python from the thread that logged them; the binding layer drains the queue when a call
// returns to Python (see take_log_records).
void install_log_callback();

// Records below this Python level are dropped at the source (cheap; default WARNING).
void set_log_threshold(int python_level);
int log_threshold();

// Moves the queued records out. Thread-safe.
std::vector<LogRecord> take_log_records();
bool has_log_records();

// Feeds a log fragment to this thread's LogCapture, if any (level -1: continuation).
void capture_line(int level, const char * text);

// While alive, collects the error lines llama.cpp logs on this thread (whatever the
// threshold), so a failing call can put llama.cpp's own reason into its exception.
class LogCapture {
  public:
    LogCapture();
    ~LogCapture();
    LogCapture(const LogCapture &) = delete;
    LogCapture & operator=(const LogCapture &) = delete;
    // The captured error text, lines joined by "; ".
    std::string errors() const;

  private:
    std::string text_;
    LogCapture * previous_;
    friend void capture_line(int level, const char * text);
};

}  // namespace llamabind
