#include "shutdown.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "context.h"

namespace llamabind {
namespace {

std::atomic<bool> exiting{false};

std::mutex & contexts_mutex() {
    static std::mutex * mutex = new std::mutex();  // never destroyed: used until the very end
    return *mutex;
}

std::set<Context *> & contexts() {
    static std::set<Context *> * live = new std::set<Context *>();
    return *live;
}

}  // namespace

bool is_exiting() noexcept { return exiting.load(); }

void park_forever() noexcept {
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

void register_context(Context * context) {
    std::lock_guard<std::mutex> guard(contexts_mutex());
    contexts().insert(context);
}

void unregister_context(Context * context) {
    std::lock_guard<std::mutex> guard(contexts_mutex());
    contexts().erase(context);
}

bool has_live_contexts() {
    std::lock_guard<std::mutex> guard(contexts_mutex());
    return !contexts().empty();
}

void begin_shutdown() noexcept {
    exiting.store(true);
    std::lock_guard<std::mutex> guard(contexts_mutex());
    for (Context * context : contexts()) context->stop_for_exit();
}

}  // namespace llamabind
