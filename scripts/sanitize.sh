#!/usr/bin/env bash
# Run the kernel tests against an AddressSanitizer build with Cython bounds checks on.
#
#   bash scripts/sanitize.sh [pytest args...]      (default: the kernel and property tests)
#
# The tree is copied to a temporary folder and built there (FASTNN_DEBUG_CYTHON=1 turns on
# boundscheck/wraparound/initializedcheck; -fsanitize=address instruments every access), so
# the development build is untouched. Python itself is not instrumented, so libasan is
# preloaded and leak detection (which would report the interpreter's own allocations) is off.
# Prints the pytest summary; exits non-zero on any test failure or ASan report.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

git -C "$here" ls-files -z | (cd "$here" && xargs -0 cp --parents -t "$work")
cp -r "$here/tests" "$work/"
cd "$work"
CFLAGS="-fsanitize=address -fno-omit-frame-pointer" LDFLAGS="-fsanitize=address" \
    FASTNN_DEBUG_CYTHON=1 python setup.py -q build_ext --inplace -j 2 >build.log 2>&1 \
    || { tail -30 build.log; exit 1; }

# libstdc++ is preloaded too, so ASan's C++ exception interceptors find the real functions
# (matplotlib's C++ extension throws during import otherwise trips an ASan CHECK).
libasan="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so.6)"
export FASTNN_TEST_DATA="${FASTNN_TEST_DATA:-$(cd "$here/.." && pwd)/shared/data}"
loaded="$(LD_PRELOAD="$libasan" ASAN_OPTIONS=detect_leaks=0 PYTHONPATH="$work" \
          python -c 'import fastnn_c; print(fastnn_c.__file__)')"
case "$loaded" in
    "$work"/fastnn_c/*) echo "testing the ASan build in $work" ;;
    *) echo "expected the ASan build from $work, but fastnn_c came from $loaded" >&2; exit 1 ;;
esac
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
    tests=(tests/test_dense.py tests/test_activations.py tests/test_losses.py tests/test_properties.py
           tests/test_idx.py tests/test_gradcheck.py tests/test_network.py)
    for t in tests/test_batchnorm.py tests/test_dropout.py tests/test_regularization.py \
             tests/test_optimizers.py tests/test_diagnostics.py tests/test_kernel_arguments.py \
             tests/test_prelu_rrelu.py; do
        [ -f "$t" ] && tests+=("$t")
    done
fi
set +e
# FASTNN_SIMD=generic: the debug build has the generic level only, and an editable install elsewhere
# would otherwise supply uninstrumented ones. Twice: with the generic level's rule (OpenBLAS
# trains) and with the micro-kernel training (FASTNN_MICRO_KERNEL=1), its products, their
# threads and its k-chunk scratch under ASan.
status=0
for kernel in rule 1; do
    FASTNN_MICRO_KERNEL="${kernel/rule/}" FASTNN_SIMD=generic LD_PRELOAD="$libasan" \
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1" PYTHONPATH="$work" \
        python -m pytest -q -p no:cacheprovider -m "not slow" "${tests[@]}" >> asan.log 2>&1 \
        || status=$?
    echo "FASTNN_MICRO_KERNEL=${kernel}: $(tail -1 asan.log)"
done
set -e
if grep -qE "ERROR: AddressSanitizer|Fatal Python error" asan.log; then
    grep -m3 -A12 "AddressSanitizer" asan.log
    grep -B5 -A40 -E "ERROR: AddressSanitizer|Fatal Python error" asan.log | head -60
    exit 1
fi
exit "$status"
