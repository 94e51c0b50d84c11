# exact_lib.sh - helpers for the exact-resume tests (sourced after common.sh).
#
# exact_resume ORACLE ARGS...: on a 512-image training set with batch 128 (4
# steps per epoch), 6 steps straight on 1 and on 4 ranks, then 3 steps, a
# stop, and 3 more steps resumed from the step-3 checkpoint, for every pair
# (first half on 1, 2, 4 ranks) x (second half on the same or another number
# of ranks). The second half crosses the epoch boundary at step 4. Everything
# must be equal bit for bit: the training losses and the test evaluations in
# metrics.csv (printed with 17 significant digits) and every tensor of the
# final checkpoints (tests/integration/ckpt_equal.py). No tolerance: the
# run is deterministic, so any difference is a bug.
EXACT_PY=/usr/bin/python3
EXACT_EQUAL="$(dirname "${BASH_SOURCE[0]}")/ckpt_equal.py"

small_data() {
    mkdir -p "$WORK/data"
    head -c $((3073 * 512)) "$CIFAR/data_batch_1.bin" >"$WORK/data/data_batch_1.bin"
    head -c $((3073 * 128)) "$CIFAR/test_batch.bin" >"$WORK/data/test_batch.bin"
}

# rows CSV HALF: training rows, and test rows other than the first half's
# closing evaluation (the straight run has none at that step).
rows() { awk -F, -v h="$2" '$1 == "train" || ($1 == "test" && $2 != h) { print $1, $2, $4, $5 }' "$1"; }

# same_run WHAT RUN_DIR CKPT: compare with the 1-rank straight run.
same_run() {
    local what=$1 dir=$2 ck=$3 diffs
    if ! cmp -s <(rows "$EXACT_REF/metrics.csv" 3) <(rows "$dir/metrics.csv" 3); then
        fail "$what: metrics differ from the straight run"
        diff <(rows "$EXACT_REF/metrics.csv" 3) <(rows "$dir/metrics.csv" 3) | head -8 | sed 's/^/    /'
        return
    fi
    if ! diffs=$("$EXACT_PY" "$EXACT_EQUAL" "$EXACT_REF_CK" "$ck" 2>&1); then
        fail "$what: final checkpoint differs: $diffs"; return
    fi
    pass "$what: losses, evaluations and final tensors equal the straight run"
}

exact_resume() {
    local oracle=$1; shift
    local a=(--data "$WORK/data" --net convnet --batch 128 --threads 1 --log-every 100
             --oracle "$oracle" "$@")
    local w="$WORK/$oracle" final=convnet-step00000006.h5 np from to
    mkdir -p "$w"
    for np in 1 4; do
        mt $np "${a[@]}" --steps 6 --run-dir "$w/s$np" --checkpoint-dir "$w/cs$np" \
            >"$w/log" 2>&1 || { fail "$oracle: straight run on $np ranks"; cat "$w/log"; return; }
    done
    EXACT_REF="$w/s1" EXACT_REF_CK="$w/cs1/$final"
    [ "$(rows "$w/s1/metrics.csv" 3 | grep -c '^train')" -eq 6 ] \
        || { fail "$oracle: the straight run logged no 6 steps"; return; }
    same_run "$oracle: straight on 4 ranks" "$w/s4" "$w/cs4/$final"
    for np in 1 2 4; do
        mt $np "${a[@]}" --steps 3 --run-dir "$w/h$np" --checkpoint-dir "$w/ch$np" \
            >"$w/log" 2>&1 || { fail "$oracle: first half on $np ranks"; cat "$w/log"; return; }
    done
    for pair in "1 1" "1 2" "2 2" "2 4" "4 4" "4 1"; do
        read -r from to <<<"$pair"
        rm -rf "$w/r"
        mkdir -p "$w/r"
        cp "$w/h$from/metrics.csv" "$w/r/"
        if ! mt "$to" "${a[@]}" --steps 6 --resume "$w/ch$from/convnet-step00000003.h5" \
                --run-dir "$w/r" --checkpoint-dir "$w/cr" >"$w/log" 2>&1; then
            fail "$oracle: resume $from -> $to ranks"; cat "$w/log"; continue
        fi
        same_run "$oracle: 3 steps on $from + 3 resumed on $to ranks" "$w/r" "$w/cr/$final"
    done
}
