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
}
