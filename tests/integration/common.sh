# common.sh - helpers for the integration tests (sourced).
# Needs MTRAIN_BIN and MTRAIN_SHARED_DATA from ctest's environment.
set -uo pipefail
: "${MTRAIN_BIN:?set by ctest}"
: "${MTRAIN_SHARED_DATA:?set by ctest}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
CIFAR="$MTRAIN_SHARED_DATA/cifar10"
WORK=$(mktemp -d /tmp/mtrain-it.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
failures=0
passes=0

pass() { passes=$((passes + 1)); echo "ok: $*"; }
fail() { failures=$((failures + 1)); echo "FAIL: $*"; }

# mt NP ARGS...: run mtrain on NP ranks (a time limit guards against hangs).
mt() {
    local np=$1; shift
    timeout -k 5 "${MT_TIMEOUT:-300}" mpirun -n "$np" --oversubscribe --bind-to none \
        "$MTRAIN_BIN" "$@"
}

# train_losses CSV: the loss column of the training rows.
train_losses() { awk -F, '$1 == "train" { print $2, $4 }' "$1"; }

finish() {
    echo "$passes passed, $failures failed"
    [ "$failures" -eq 0 ] && [ "$passes" -gt 0 ]
}

# expect_usage NP PATTERN ARGS...: mtrain on NP ranks with "${USAGE_ARGS[@]}"
# and ARGS exits 2 with exactly one "mtrain:" line matching PATTERN and
# writes no run directory or checkpoint.
USAGE_ARGS=()
expect_usage() {
    local np=$1 pattern=$2; shift 2
    local out="$WORK/out"
    mt "$np" "${USAGE_ARGS[@]}" --run-dir "$WORK/run" --checkpoint-dir "$WORK/ckpt" "$@" \
        >"$out" 2>&1
    local code=$?
    if [ "$code" -ne 2 ]; then
        fail "np=$np $*: exit $code, expected 2"; sed 's/^/    /' "$out"; return
    fi
    if ! grep -q -- "$pattern" "$out"; then
        fail "np=$np $*: message lacks '$pattern'"; sed 's/^/    /' "$out"; return
    fi
    if [ "$(grep -c 'mtrain:' "$out")" -ne 1 ]; then
        fail "np=$np $*: expected exactly one error line"; sed 's/^/    /' "$out"; return
    fi
    if [ -e "$WORK/run" ] || [ -e "$WORK/ckpt" ]; then
        fail "np=$np $*: files were written"; rm -rf "$WORK/run" "$WORK/ckpt"; return
    fi
    pass "np=$np $* -> exit 2: $(grep 'mtrain:' "$out")"
}
