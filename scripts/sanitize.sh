#!/usr/bin/env bash
# Builds the extension and the vendored llama.cpp with AddressSanitizer and UndefinedBehavior-
# Sanitizer in build/sanitize, then runs the native tests (or the pytest arguments given) against
# that build. Reports go to build/sanitize/reports/ (one file per process) and are summarised at
# the end. Needs GCC or Clang on Linux.
#
#   scripts/sanitize.sh                       # tests/native
#   scripts/sanitize.sh tests/native/test_model.py -k limits
#   SANITIZE=address scripts/sanitize.sh      # one sanitizer
#   SANITIZE_VENDOR=OFF scripts/sanitize.sh   # instrument only our code (a much shorter build)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build/sanitize"
sanitize=${SANITIZE:-address,undefined}
python=${PYTHON:-python}

vendor=${SANITIZE_VENDOR:-ON}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DLLAMABIND_SANITIZE="$sanitize" -DLLAMABIND_SANITIZE_VENDOR="$vendor" \
    -DPython_EXECUTABLE="$(command -v "$python")"
nice cmake --build "$build" --target _native

# A copy of the Python package with the sanitized extension, so the working tree's own build is
# left alone.
package="$build/python/llamabind"
rm -rf "$build/python" && mkdir -p "$build/python"
cp -r "$root/python/llamabind" "$package"
rm -f "$package"/_native*.so "$package"/_native*.pyd
cp "$build"/_native*.so "$package/"

# Python is not instrumented: the runtimes are loaded first. Python's own allocations are not
# tracked, so leak checking stays off (it would report the interpreter's).
preload=""
case "$sanitize" in *address*) preload="$(${CC:-cc} -print-file-name=libasan.so)";; esac
case "$sanitize" in *undefined*) preload="$preload $(${CC:-cc} -print-file-name=libubsan.so)";; esac
reports="$build/reports"
rm -rf "$reports" && mkdir -p "$reports"

status=0
(
    cd "$root"
    # LLAMABIND_SANITIZED lets tests that size a thread's stack for a normal build step aside
    export PYTHONPATH="$build/python" LD_PRELOAD="$preload" PYTHONMALLOC=malloc LLAMABIND_SANITIZED="$sanitize"
    export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:log_path=$reports/asan"
    export UBSAN_OPTIONS="print_stacktrace=1:log_path=$reports/ubsan"
    if [ $# -eq 0 ]; then set -- tests/native; fi
    "$python" -m pytest -q -p no:cacheprovider "$@"
) || status=$?

echo
if compgen -G "$reports/*" > /dev/null; then
    echo "sanitizer reports ($(ls "$reports" | wc -l) files in $reports):"
    grep -h -E "^SUMMARY|runtime error" "$reports"/* | sed 's/^/  /' | sort | uniq -c | sort -rn | head -40
else
    echo "no sanitizer reports"
fi
exit $status
