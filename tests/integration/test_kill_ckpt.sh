#!/usr/bin/env bash
# The whole job SIGKILLed while it writes checkpoints, again and again: the
# mlp net (20 M parameters, 160 MB checkpoints with the momentum) checkpoints
# every step on 2 ranks with --resume auto and --keep 2. Each attempt waits
# for the k-th checkpoint write of the attempt to begin (k = 1..3 at random;
# a write is visible as <name>.h5.tmp), sleeps 0-250 ms more at random, and
# SIGKILLs both ranks and mpirun at once. A kill counts as "during a write"
# when the .tmp file is still there just before it. This repeats until 20
# kills landed during writes (at most 45 attempts). Every next attempt must
# resume from the newest checkpoint without a warning about a damaged file
# (the rename is atomic, so no partial file may ever be visible), from a step
# no earlier than the previous attempt's. A last attempt runs to the end,
# and its training losses and final tensors must equal an uninterrupted
# run's bit for bit. The random delays come from bash's RANDOM with a fixed
# seed, printed for a rerun.
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/exact_lib.sh"
small_data
seed=${MTRAIN_KILL_SEED:-20240601}
RANDOM=$seed
echo "RANDOM seed $seed"
steps=60
a=(--data "$WORK/data" --net mlp --batch 32 --threads 1 --oracle gd --steps $steps --keep 2
   --eval-every 0 --log-every 100)
ck="$WORK/ck"

mt 2 "${a[@]}" --run-dir "$WORK/straight" --checkpoint-dir "$WORK/cs" >"$WORK/log" 2>&1 \
    || { fail "uninterrupted run"; cat "$WORK/log"; }

# The name of a write in progress begun by this attempt, if any (a .tmp left
# by a killed attempt is older than the launch mark, until it is rewritten).
tmp_now() {
    local f
    for f in "$ck"/*.h5.tmp; do
        [ -e "$f" ] && [ "$f" -nt "$WORK/launch" ] && { echo "${f##*/}"; return; }
    done
}

hits=0 attempts=0 last_step=0
while [ $hits -lt 20 ] && [ $attempts -lt 45 ]; do
    attempts=$((attempts + 1))
    k=$((1 + RANDOM % 3)) delay_ms=$((RANDOM % 251)) seen="" t=0
    touch "$WORK/launch"
    sleep 0.01
    mpirun -n 2 --oversubscribe --bind-to none "$MTRAIN_BIN" "${a[@]}" --checkpoint-every 1 \
        --resume auto --run-dir "$WORK/run" --checkpoint-dir "$ck" >"$WORK/log.$attempts" 2>&1 &
    pid=$!
    # Wait for the k-th distinct .tmp of this attempt (or the end of the run).
    while [ "$(wc -w <<<"$seen")" -lt $k ] && kill -0 $pid 2>/dev/null && [ $t -lt 3000 ]; do
        cur=$(tmp_now)
        [ -n "$cur" ] && [[ " $seen " != *" $cur "* ]] && seen="$seen $cur"
        sleep 0.01; t=$((t + 1))
    done
    sleep "$(printf '0.%03d' $delay_ms)"
    during=$(tmp_now)
    kill -KILL $(pgrep -P $pid) $pid 2>/dev/null
    wait $pid 2>/dev/null
    [ -n "$during" ] && hits=$((hits + 1))
    log="$WORK/log.$attempts"
    if grep -q 'skipping checkpoint' "$log"; then
        fail "attempt $attempts found a damaged checkpoint"; grep skipping "$log"
    fi
    from=$(sed -n 's/.*resumed from .* at step \([0-9]*\).*/\1/p' "$log")
    if [ $attempts -gt 1 ] && [ -z "$from" ] && ls "$ck" | grep -q '\.h5$'; then
        fail "attempt $attempts did not resume"; grep -v '^  ' "$log" | tail -3
    elif [ -n "$from" ] && [ "$from" -lt "$last_step" ]; then
        fail "attempt $attempts resumed at step $from, before step $last_step"
    fi
    [ -n "$from" ] && last_step=$from
    newest=$(ls "$ck" 2>/dev/null | grep '\.h5$' | tail -1)
    echo "attempt $attempts: k=$k +${delay_ms} ms, from step ${from:-0}, killed" \
         "${during:-between writes}; newest ${newest:-none}"
done
[ $hits -ge 20 ] && pass "$hits of $attempts SIGKILLs landed during a checkpoint write" \
    || fail "only $hits of $attempts SIGKILLs landed during a write"

mt 2 "${a[@]}" --checkpoint-every 1 --resume auto --run-dir "$WORK/run" --checkpoint-dir "$ck" \
    >"$WORK/log" 2>&1
code=$?
EXACT_REF="$WORK/straight" EXACT_REF_CK="$WORK/cs/$(printf 'mlp-step%08d.h5' $steps)"
if [ $code -eq 0 ] && ! grep -q 'skipping checkpoint' "$WORK/log"; then
    same_run "after the kills, resume auto to the end" "$WORK/run" \
        "$ck/$(printf 'mlp-step%08d.h5' $steps)"
else
    fail "the last attempt: exit $code"; grep -v '^  ' "$WORK/log" | tail -5
fi
finish
