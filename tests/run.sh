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

# The readers of untrusted files once more, under AddressSanitizer and UBSan.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMTRAIN_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs" --target test_data
(cd build-asan && ASAN_OPTIONS=detect_leaks=0 ctest --output-on-failure -R 'unit/test_data') \
    || status=1

exit $status
