#!/usr/bin/env bash
# The control task through the mtrain executable (--task pendulum):
#  - every oracle gives the same cost sequence, bit for bit, on 1, 2 and 4
#    ranks (T = 30, 20 iterations; metrics.csv's iteration and cost columns,
#    printed with %.17g, compared as text), and the cost goes down by 10% at
#    least (T = 30: the task defaults are tuned for T >= 25);
#  - --inner pendulum=qn runs and differs from the exact solver;
#  - a run resumed from its checkpoint at iteration 10, on another number
#    of ranks, continues with the same costs; --keep 2 leaves the newest two
#    checkpoints and no stale write;
#  - bad input (horizon 0, fewer steps than ranks, non-finite or
#    non-positive hyper-parameters, 0 iterations, options of nets): one
#    clear line, exit code 2 on every rank, nothing written.
source "$(dirname "$0")/common.sh"
MT_TIMEOUT=120

# costs DIR: "iteration,cost" lines of a run's metrics.csv.
costs() { cut -d, -f1,2 "$1/metrics.csv"; }

for oracle in gd moreau penalized dtp proxprop; do
    for np in 1 2 4; do
        if ! mt $np --task pendulum --horizon 30 --iterations 20 --oracle "$oracle" \
            --run-dir "$WORK/$oracle-$np" >"$WORK/log" 2>&1; then
            fail "$oracle on $np ranks: exit $?"; sed 's/^/    /' "$WORK/log"; continue
        fi
    done
    rows=$(costs "$WORK/$oracle-1" | wc -l)
    if [ "$rows" -ne 22 ]; then # header + iterations 0..20
        fail "$oracle: $rows lines in metrics.csv, expected 22"; continue
    fi
    if cmp -s <(costs "$WORK/$oracle-1") <(costs "$WORK/$oracle-2") &&
        cmp -s <(costs "$WORK/$oracle-1") <(costs "$WORK/$oracle-4"); then
        pass "$oracle: identical costs on 1, 2 and 4 ranks"
    else
        fail "$oracle: costs differ between rank counts"
        diff <(costs "$WORK/$oracle-1") <(costs "$WORK/$oracle-4") | head -5
    fi
    first=$(costs "$WORK/$oracle-1" | awk -F, 'NR == 2 { print $2 }')
    last=$(costs "$WORK/$oracle-1" | awk -F, 'END { print $2 }')
    if awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.9 * a) }'; then
        pass "$oracle: cost $first -> $last"
    else
        fail "$oracle: cost did not go down enough ($first -> $last)"
    fi
done

# The paper's quasi-Newton inner solver for the pendulum ops.
if mt 2 --task pendulum --horizon 30 --iterations 20 --oracle moreau --inner pendulum=qn \
    --run-dir "$WORK/qn" >"$WORK/log" 2>&1 && ! cmp -s <(costs "$WORK/qn") \
    <(costs "$WORK/moreau-2"); then
    pass "moreau with --inner pendulum=qn runs and differs from the exact solver"
else
    fail "moreau with --inner pendulum=qn"; sed 's/^/    /' "$WORK/log"
fi

# Checkpoint at 10 and 20 on 2 ranks; resume from 10 on 3 ranks into a copy
# of the metrics file cut after iteration 10.
mkdir -p "$WORK/resumed"
if mt 2 --task pendulum --horizon 30 --iterations 20 --oracle moreau --checkpoint-every 10 \
        --checkpoint-dir "$WORK/ck" --run-dir "$WORK/whole" >"$WORK/log" 2>&1 &&
    head -n 12 "$WORK/whole/metrics.csv" >"$WORK/resumed/metrics.csv" &&
    mt 3 --task pendulum --horizon 30 --iterations 20 --oracle moreau \
        --resume "$WORK/ck/pendulum-step00000010.h5" --checkpoint-dir "$WORK/ck2" \
        --run-dir "$WORK/resumed" >>"$WORK/log" 2>&1 &&
    cmp -s <(costs "$WORK/whole") <(costs "$WORK/resumed"); then
    pass "resumed at iteration 10 on 3 ranks: same 21 costs as the uninterrupted run"
else
    fail "checkpoint and resume of the task"; sed 's/^/    /' "$WORK/log"
fi
rm -rf "$WORK/ck" "$WORK/ck2"

# --keep 2 with a checkpoint every 5 iterations: the files of 15 and 20 stay,
# and a stale write left by a killed job goes too.
mkdir -p "$WORK/ck"
head -c 1000 /dev/urandom >"$WORK/ck/pendulum-step00000025.h5.tmp"
if mt 2 --task pendulum --horizon 30 --iterations 20 --oracle gd --checkpoint-every 5 --keep 2 \
        --checkpoint-dir "$WORK/ck" --run-dir "$WORK/keep" >"$WORK/log" 2>&1 &&
    [ "$(ls "$WORK/ck" | tr '\n' ' ')" = "latest pendulum-step00000015.h5 pendulum-step00000020.h5 " ]
then
    pass "--keep 2: the checkpoints of iterations 15 and 20 remain, the stale .tmp is gone"
else
    fail "--keep 2 on the task leaves: $(ls "$WORK/ck" | tr '\n' ' ')"; tail -3 "$WORK/log"
fi
rm -rf "$WORK/ck"

# A long horizon (200 ops: their description exceeds the checkpoint's text
# attribute and is stored as length + CRC-32) checkpoints and resumes; a
# fresh run without --checkpoint-every (a preemption would still write one)
# refuses the directory that now holds pendulum checkpoints.
long=(--task pendulum --horizon 200 --oracle penalized --checkpoint-dir "$WORK/ck")
if mt 1 "${long[@]}" --iterations 4 --checkpoint-every 2 --run-dir "$WORK/long" \
        >"$WORK/log" 2>&1 &&
    mt 1 "${long[@]}" --iterations 6 --checkpoint-every 2 --resume auto --run-dir "$WORK/long" \
        >"$WORK/log" 2>&1 && [ -f "$WORK/ck/pendulum-step00000006.h5" ]; then
    pass "horizon 200: checkpoint at 4, resume auto to 6"
else
    fail "horizon 200 checkpoint and resume"; tail -3 "$WORK/log"
fi
mt 1 "${long[@]}" --iterations 4 --run-dir "$WORK/long2" >"$WORK/log" 2>&1
code=$?
if [ $code = 2 ] && grep -q "^mtrain: --checkpoint-dir $WORK/ck already holds checkpoints of pendulum" \
        "$WORK/log"; then
    pass "a fresh task run without --checkpoint-every refuses a directory with its checkpoints"
else
    fail "fresh task run over pendulum checkpoints: exit $code"; tail -3 "$WORK/log"
fi
rm -rf "$WORK/ck"


# Every rank must exit 2 (2 ranks); a few cases once more on 1 rank.
expect_usage 1 "--horizon '0'" --task pendulum --horizon 0
expect_usage 1 "--sigma 'nan'" --task pendulum --oracle moreau --sigma nan
expect_usage 1 "--horizon applies to control tasks only" --horizon 10
expect_usage 2 "--horizon '0'" --task pendulum --horizon 0
expect_usage 2 "--horizon '-3'" --task pendulum --horizon -3
expect_usage 2 "--horizon '2.5'" --task pendulum --horizon 2.5
expect_usage 2 "--iterations '0'" --task pendulum --iterations 0
expect_usage 2 "--sigma 'nan'" --task pendulum --oracle moreau --sigma nan
expect_usage 2 "--sigma 'inf'" --task pendulum --oracle moreau --sigma inf
expect_usage 2 "--gamma '0'" --task pendulum --oracle moreau --gamma 0
expect_usage 2 "--lr '-1'" --task pendulum --lr -1
expect_usage 2 "--kappa '-inf'" --task pendulum --oracle penalized --kappa -inf
expect_usage 2 "--task 'cartpole'" --task cartpole
expect_usage 2 "--horizon applies to control tasks only" --horizon 10
expect_usage 2 "--batch does not apply to --task" --task pendulum --batch 4
expect_usage 2 "--net does not apply to --task" --task pendulum --net mlp
expect_usage 2 "--horizon 1 on 2 ranks" --task pendulum --horizon 1
expect_usage 4 "--horizon 3 on 4 ranks" --task pendulum --horizon 3 --iterations 5
# Preemption: SIGUSR1 to mpirun mid-run gives a checkpoint and exit 3;
# --resume auto finishes the run with the costs of an uninterrupted one.
pre=(--task pendulum --horizon 40 --iterations 50000 --log-every 1000000)
mt 2 "${pre[@]}" --run-dir "$WORK/pre-ref" >"$WORK/pre-ref.log" 2>&1 \
    || { fail "preemption reference run"; tail -3 "$WORK/pre-ref.log"; }
timeout -k 5 120 mpirun -n 2 --oversubscribe --bind-to none "$MTRAIN_BIN" "${pre[@]}" \
    --run-dir "$WORK/pre-run" --checkpoint-dir "$WORK/pre-ck" >"$WORK/pre-run.log" 2>&1 &
pid=$!
# signal once the handlers are in (the start report follows their install)
for _ in $(seq 300); do grep -q "run directory:" "$WORK/pre-run.log" && break; sleep 0.1; done
mpirun_pid=$(pgrep -P "$pid" -x mpirun) # timeout's child, not timeout itself
kill -USR1 "${mpirun_pid:-$pid}"
wait "$pid"
code=$?
if [ "$code" -eq 3 ] && ls "$WORK"/pre-ck/pendulum-step*.h5 >/dev/null 2>&1; then
    pass "SIGUSR1 to mpirun: checkpoint and exit 3"
    mt 1 "${pre[@]}" --run-dir "$WORK/pre-run" --checkpoint-dir "$WORK/pre-ck" \
        --resume auto >"$WORK/pre.log" 2>&1 || fail "resume auto after preemption"
    if cmp -s <(cut -d, -f1,2 "$WORK/pre-ref/metrics.csv") \
              <(cut -d, -f1,2 "$WORK/pre-run/metrics.csv"); then
        pass "preempted + resumed on 1 rank: costs equal the uninterrupted run"
    else
        fail "preempted + resumed costs differ"
    fi
else
    fail "SIGUSR1 to mpirun: exit $code (expected 3 and a checkpoint)"; tail -5 "$WORK/pre-run.log"
fi
finish
