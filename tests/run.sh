#!/usr/bin/env bash
# tests/run.sh - install what the tests need, build, and run the whole suite
# (CUnit unit tests, MPI tests at 1, 2 and 4 ranks, integration runs, and the
# data readers again under AddressSanitizer). Run from anywhere as root on
# Debian 12; exits non-zero when anything fails.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

bash jobs/setup.sh

jobs=${MTRAIN_BUILD_JOBS:-2}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
status=0
(cd build && ctest --output-on-failure --timeout 1200) || status=1

# The readers of untrusted files once more, under AddressSanitizer and UBSan:
# the data readers' unit test, and the mtrain executable given every damaged
# checkpoint of tests/corpus/checkpoints/ (MPI's own allocations are not
# freed at exit, hence detect_leaks=0).
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMTRAIN_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs" --target test_data mtrain
(cd build-asan && ASAN_OPTIONS=detect_leaks=0 ctest --output-on-failure -R 'unit/test_data') \
    || status=1
echo "integration/test_ckpt_corpus under AddressSanitizer + UBSan:"
ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 MTRAIN_BIN="$here/build-asan/mtrain" \
    MTRAIN_SHARED_DATA="$(cd "$here/../shared/data" && pwd)" MTRAIN_SOURCE_DIR="$here" \
    bash tests/integration/test_ckpt_corpus.sh >build-asan/ckpt-corpus.log 2>&1 \
    || { cat build-asan/ckpt-corpus.log; status=1; }
tail -n 1 build-asan/ckpt-corpus.log

exit $status
