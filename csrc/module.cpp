#include "bind_common.h"
#include "logging.h"

NB_MODULE(_native, m) {
    m.doc() = "llamabind's native layer: llama.cpp handles bound with nanobind.";
    // Before anything can initialise a backend, so nothing reaches stderr unasked.
    llamabind::install_log_callback();
    llamabind::bind_errors(m);
    llamabind::bind_backend(m);
    llamabind::bind_model(m);
    llamabind::bind_sampler(m);
    llamabind::bind_context(m);
    llamabind::bind_generator(m);
    llamabind::bind_chat(m);
    // At interpreter exit, before daemon threads are stopped: native work ends first.
    nanobind::module_::import_("atexit").attr("register")(nanobind::cpp_function([] {
        // Handles held by a thread still generating are never freed: not a leak to report.
        if (llamabind::has_live_contexts()) nanobind::set_leak_warnings(false);
        nanobind::gil_scoped_release release;
        llamabind::begin_shutdown();
    }));
}
