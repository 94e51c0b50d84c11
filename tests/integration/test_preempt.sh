#!/usr/bin/env bash
# Preemption: a run with --resume auto is stopped four times by signals sent
# after it made progress - SIGUSR1 to mpirun (which forwards it to every
# rank), SIGTERM and SIGINT sent to the ranks themselves, and a burst of
# SIGUSR1s (later ones arrive while the checkpoint is being written) - on 2,
# 2, 2 and 4 ranks. Each time mpirun must exit with 3, having written a
# checkpoint of the step it stopped at, which `latest` names. The same
# command then runs to the end on 1 rank. The final metrics (training losses
# and evaluations, 17 digits) and every tensor of the final checkpoint must
# equal an uninterrupted run's bit for bit; the cosine schedule (over the
# whole run) and --keep 2 / --checkpoint-every 7 are active throughout.
# Last, timed checkpoints (--checkpoint-minutes) on 4 ranks.
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/exact_lib.sh"
small_data
a=(--data "$WORK/data" --net convnet --batch 128 --threads 1 --oracle gd --steps 40
   --lr-schedule cosine --checkpoint-every 7 --keep 2 --eval-every 10 --log-every 5)

mt 2 "${a[@]}" --run-dir "$WORK/straight" --checkpoint-dir "$WORK/cs" >"$WORK/log" 2>&1 \
    || { fail "uninterrupted run"; cat "$WORK/log"; }

n_train() { awk -F, '$1 == "train"' "$WORK/run/metrics.csv" 2>/dev/null | wc -l; }

# stop NP HOW: start the resumable command, wait for 3 more steps, signal it.
stop() {
    local np=$1 how=$2 before guard pid code t=0 ranks
    before=$(n_train)
    timeout -s KILL 120 mpirun -n "$np" --oversubscribe --bind-to none "$MTRAIN_BIN" "${a[@]}" \
        --resume auto --run-dir "$WORK/run" --checkpoint-dir "$WORK/ck" >"$WORK/log" 2>&1 &
    guard=$!
    while [ -z "${pid:-}" ] && [ $t -lt 100 ]; do pid=$(pgrep -P $guard); sleep 0.05; t=$((t + 1)); done
    while [ "$(n_train)" -lt $((before + 3)) ] && [ $t -lt 1200 ] && kill -0 $pid 2>/dev/null; do
        sleep 0.05; t=$((t + 1))
    done
    ranks=$(pgrep -P $pid -d ' ')
    case $how in
        usr1-mpirun) kill -USR1 $pid ;;
        term-ranks) kill -TERM $ranks ;;
        int-ranks) kill -INT $ranks ;;
        usr1-burst) for i in 1 2 3 4 5 6; do kill -USR1 $pid; sleep 0.01; done ;;
    esac
    wait $guard
    code=$?
    local step
    step=$(sed -n 's/.*stopped at step \([0-9]*\) after writing.*/\1/p' "$WORK/log")
    if [ $code -eq 3 ] && [ -n "$step" ] &&
            [ "$(cat "$WORK/ck/latest")" = "$(printf 'convnet-step%08d.h5' "$step")" ] &&
            [ "$(n_train)" -eq "$step" ] && [ "$step" -gt "$before" ] && [ "$step" -lt 40 ]; then
        pass "$how on $np ranks: exit 3 at step $step with its checkpoint, after $before"
    else
        fail "$how on $np ranks: exit $code, stopped at '${step}', $(n_train) rows"
        sed 's/^/    /' "$WORK/log" | grep -v '^     ' | tail -15
    fi
}

stop 2 usr1-mpirun
stop 2 term-ranks
stop 2 int-ranks
stop 4 usr1-burst

mt 1 "${a[@]}" --resume auto --run-dir "$WORK/run" --checkpoint-dir "$WORK/ck" >"$WORK/log" 2>&1
code=$?
grep -q 'resumed from .*step' "$WORK/log" || fail "the last attempt did not resume"
EXACT_REF="$WORK/straight" EXACT_REF_CK="$WORK/cs/convnet-step00000040.h5"
if [ $code -eq 0 ]; then
    same_run "4 preemptions + resume auto" "$WORK/run" "$WORK/ck/convnet-step00000040.h5"
else
    fail "the last attempt exited $code"; tail -5 "$WORK/log"
fi
# --checkpoint-minutes: rank 0's clock decides, every rank follows at the same
# step (4 ranks); the checkpoints change nothing in the trajectory.
mt 4 "${a[@]}" --checkpoint-every 0 --checkpoint-minutes 0.004 --keep 0 --run-dir "$WORK/timed" \
    --checkpoint-dir "$WORK/ck-timed" >"$WORK/log" 2>&1
code=$?
timed=$(ls "$WORK/ck-timed" | grep -c '\.h5$')
if [ $code -eq 0 ] && [ "$timed" -ge 3 ]; then
    same_run "--checkpoint-minutes 0.004 on 4 ranks ($timed checkpoints)" "$WORK/timed" \
        "$WORK/ck-timed/convnet-step00000040.h5"
else
    fail "--checkpoint-minutes: exit $code, $timed checkpoints"; tail -3 "$WORK/log"
fi

kept=$(ls "$WORK/ck" | grep -c '\.h5$')
[ "$kept" -eq 2 ] && pass "--keep 2 left 2 checkpoints" || fail "--keep 2 left $kept: $(ls "$WORK/ck")"
finish
