#!/usr/bin/env bash
# Faults during a run:
#  1. one of 4 ranks SIGKILLed in the middle of a step: every other rank is
#     gone within 10 s, mpirun exits non-zero, and the last checkpoint is
#     intact (h5py reads it; --resume auto on 2 ranks finishes the run and
#     removes a .tmp the kill may have left inside a write);
#  2. the checkpoint directory on a small tmpfs mounted here (two sizes: too
#     small for the metadata reserve, and full in the middle of the data),
#     on 1 and 4 ranks: exit 1 within 60 s with a line naming the file and
#     the free space, earlier checkpoints untouched and resumable, no .tmp
#     or .reserve file left (SKIP lines if mounting is not permitted);
#  3. a checkpoint directory that is not a directory (a path under a
#     regular file; root ignores permission bits): exit 2 before training;
#     and one replaced by a regular file mid-run: exit 1, the previous
#     checkpoint kept;
#  4. non-finite values (--lr 1e6 with gd; moreau): exit 1 without an
#     MPI_Abort, the message
#     names the step and the stage (op and rank), and no checkpoint holds
#     the bad state (the newest one has finite parameters and an earlier
#     step than the failing one).
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/exact_lib.sh"
small_data
base=(--data "$WORK/data" --net convnet --threads 1)

# start NP ARGS...: mpirun in the background under a 120 s guard; sets GUARD
# (the timeout process) and MPIRUN (its child).
start() {
    local np=$1 t=0; shift
    MPIRUN=
    timeout -s KILL 120 mpirun -n "$np" --oversubscribe --bind-to none "$MTRAIN_BIN" "$@" \
        >"$WORK/log" 2>&1 &
    GUARD=$!
    while [ -z "$MPIRUN" ] && [ $t -lt 100 ]; do MPIRUN=$(pgrep -P $GUARD); sleep 0.05; t=$((t + 1)); done
}

# ---- 1. a rank killed mid-step -------------------------------------------
ck="$WORK/ck-kill"
start 4 "${base[@]}" --batch 256 --oracle penalized --steps 12 --checkpoint-every 2 \
    --run-dir "$WORK/run-kill" --checkpoint-dir "$ck" --log-every 1
t=0
until grep -q 'step 3/' "$WORK/log" || [ $t -ge 1200 ]; do sleep 0.05; t=$((t + 1)); done
sleep 0.3 # inside step 4 or a little later (steps take about 0.1-0.3 s)
ranks=($(pgrep -P "$MPIRUN"))
victim=${ranks[2]}
t0=$(date +%s.%N)
kill -KILL "$victim"
alive=1
while [ $alive = 1 ]; do
    alive=0
    for r in "${ranks[@]}"; do
        [ "$r" != "$victim" ] && ps -o stat= -p "$r" 2>/dev/null | grep -qv Z && alive=1
    done
    [ "$(echo "$(date +%s.%N) - $t0 > 30" | bc)" = 1 ] && break
    sleep 0.05
done
gone=$(echo "$(date +%s.%N) - $t0" | bc)
wait $GUARD
code=$?
# the newest complete checkpoint: of step 2 or a later even step before 12
last=$(cat "$ck/latest" 2>/dev/null)
last_step=$(echo "$last" | sed -n 's/^convnet-step0*\([0-9]*\)\.h5$/\1/p')
if [ ${#ranks[@]} -eq 4 ] && [ $alive = 0 ] && [ "$(echo "$gone < 10" | bc)" = 1 ] &&
        [ $code -ne 0 ] && [ -n "$last_step" ] && [ $((last_step % 2)) = 0 ] &&
        [ "$last_step" -ge 2 ] && [ "$last_step" -lt 12 ]; then
    pass "rank 2 of 4 SIGKILLed after step 3: the others gone after ${gone%???????} s, mpirun exit $code, latest $last"
else
    fail "rank kill: ${#ranks[@]} ranks, alive=$alive after $gone s, exit $code, latest '$last'"
    tail -5 "$WORK/log"
fi
# The kill may land inside the write of step 4 and leave its .tmp behind;
# that file is never named by latest, and the resumed run's first
# checkpoint write removes it (without --keep). When the kill fell between
# writes, a half-written file of a later step stands in for one.
stale=$(ls "$ck" | grep -E '\.(tmp|reserve)$' | tr '\n' ' ')
if [ -z "$stale" ] && [ -n "$last_step" ]; then
    stale="$(printf 'convnet-step%08d.h5.tmp' $((last_step + 4))) (planted)"
    head -c 100000 /dev/urandom >"$ck/${stale% (planted)}"
fi
if ! "$EXACT_PY" -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r'); assert f.attrs['complete'] == 1" \
        "$ck/$last"; then
    fail "the last checkpoint after the kill ($ck/$last) does not read as complete"
elif mt 2 "${base[@]}" --batch 256 --oracle penalized --steps $((last_step + 2)) --resume auto \
            --run-dir "$WORK/run-kill" --checkpoint-dir "$ck" >"$WORK/log" 2>&1 &&
        grep -q "resumed from $ck/$last at step $last_step" "$WORK/log" &&
        ! ls "$ck" | grep -qE '\.(tmp|reserve)$'; then
    pass "the last checkpoint is intact: h5py reads it, resume auto on 2 ranks finishes, the stale ${stale% } removed"
else
    fail "resume after the kill (stale before: '${stale}'), now: $(ls "$ck" | tr '\n' ' ')"
    tail -5 "$WORK/log"
fi

# ---- 2. a full file system ------------------------------------------------
mnt="$WORK/mnt"
mkdir -p "$mnt"
full_fs() {
    local size=$1 np=$2 want=$3
    if ! mount -t tmpfs -o "size=$size" tmpfs "$mnt" 2>/dev/null; then
        echo "SKIP: cannot mount a tmpfs here (not permitted): full-disk case $size np=$np"
        return
    fi
    trap 'umount "$mnt" 2>/dev/null; rm -rf "$WORK"' EXIT
    mt "$np" "${base[@]}" --batch 128 --oracle gd --steps 6 --checkpoint-every 1 \
        --run-dir "$WORK/run-full" --checkpoint-dir "$mnt/ck" >"$WORK/log" 2>&1
    local code=$? kept line
    kept=$(ls "$mnt/ck" 2>/dev/null | grep -c '\.h5$')
    line=$(grep 'mtrain:' "$WORK/log")
    if [ $code -eq 1 ] && [[ "$line" == *"$want"* ]] && [[ "$line" == *"KiB free"* ]] &&
            ! ls -a "$mnt/ck" 2>/dev/null | grep -qE '\.(tmp|reserve)$'; then
        pass "tmpfs of $size, $np ranks: exit 1, $kept earlier checkpoint(s): ${line#mtrain: }"
    else
        fail "tmpfs of $size, $np ranks: exit $code"; sed 's/^/    /' "$WORK/log" | tail -6
    fi
    if [ "$kept" -gt 0 ]; then
        local newest
        newest=$(ls "$mnt/ck" | grep '\.h5$' | tail -1)
        if mt "$np" "${base[@]}" --batch 128 --oracle gd --steps 6 --resume "$mnt/ck/$newest" \
                --run-dir "$WORK/run-full2" --checkpoint-dir "$WORK/ck-full2" \
                >"$WORK/log" 2>&1; then
            pass "tmpfs of $size, $np ranks: $newest resumes elsewhere"
        else
            fail "tmpfs of $size, $np ranks: $newest does not resume"; tail -3 "$WORK/log"
        fi
    fi
    umount "$mnt"
}
for np in 1 4; do
    full_fs 200k $np "cannot reserve"
    full_fs 600k $np "cannot write dataset"
done

# ---- 3. a checkpoint directory that cannot be one --------------------------
touch "$WORK/plain-file"
mt 2 "${base[@]}" --batch 128 --steps 2 --run-dir "$WORK/run-nd" \
    --checkpoint-dir "$WORK/plain-file/ck" >"$WORK/log" 2>&1
code=$?
if [ $code -eq 2 ] && grep -q "mtrain: cannot create directory $WORK/plain-file/ck" "$WORK/log" &&
        ! grep -q 'step 1/' "$WORK/log"; then
    pass "checkpoint dir under a regular file: exit 2 before training"
else
    fail "checkpoint dir under a regular file: exit $code"; tail -3 "$WORK/log"
fi

ck="$WORK/ck-gone"
start 2 "${base[@]}" --batch 128 --oracle penalized --steps 20 --checkpoint-every 3 \
    --run-dir "$WORK/run-gone" --checkpoint-dir "$ck" --log-every 1
t=0
# wait for the step-3 checkpoint to be complete: its file is renamed into place
# before `latest` names it, so the move must wait for `latest`, not the file
until [ "$(cat "$ck/latest" 2>/dev/null)" = convnet-step00000003.h5 ] || [ $t -ge 1200 ]; do
    sleep 0.05; t=$((t + 1))
done
mv "$ck" "$ck.old" && touch "$ck"
wait $GUARD
code=$?
if [ $code -eq 1 ] && grep -q 'mtrain: .*ck-gone' "$WORK/log" &&
        [ "$(cat "$ck.old/latest")" = convnet-step00000003.h5 ] &&
        "$EXACT_PY" "$EXACT_EQUAL" "$ck.old/convnet-step00000003.h5" \
            "$ck.old/convnet-step00000003.h5"; then
    pass "checkpoint dir replaced by a file mid-run: exit 1 ($(grep 'mtrain:' "$WORK/log" | cut -c1-90)...), step 3 kept"
else
    fail "checkpoint dir replaced mid-run: exit $code"; tail -4 "$WORK/log"
fi

# ---- 4. non-finite values ---------------------------------------------------
# nonfinite NP ORACLE PATTERN [NET]: a run with --lr 1e6 stops as said above.
nonfinite() {
    local np=$1 oracle=$2 pattern=$3 net=${4:-convnet} ck="$WORK/ck-nan-$1-$2-${4:-convnet}"
    mt "$np" "${base[@]}" --net "$net" --batch 128 --oracle "$oracle" --lr 1e6 --steps 8 \
        --checkpoint-every 1 --run-dir "$WORK/run-nan" --checkpoint-dir "$ck" >"$WORK/log" 2>&1
    local code=$? line step newest
    line=$(grep 'mtrain:' "$WORK/log" | head -1)
    step=$(echo "$line" | sed -n 's/.*step \([0-9]*\).*/\1/p')
    newest=$(ls "$ck" | grep '\.h5$' | tail -1)
    if [ $code -ne 0 ] && [ $code -lt 128 ] && [[ "$line" =~ $pattern ]] && [ -n "$step" ] &&
            ! grep -q MPI_ABORT "$WORK/log" &&
            [ -n "$newest" ] && [ "$newest" \< "$(printf '%s-step%08d.h5' "$net" "$step")" ] &&
            "$EXACT_PY" - "$ck/$newest" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
assert all(np.isfinite(f["model"][k][()]).all() for k in f["model"])
PY
    then
        pass "$oracle on $np ranks, --lr 1e6: exit $code, newest checkpoint $newest is finite: ${line#mtrain: }"
    else
        fail "$oracle on $np ranks, --lr 1e6: exit $code, newest '$newest'"; sed 's/^/    /' "$WORK/log" | tail -5
    fi
}
nonfinite 2 gd 'step [0-9]+: non-finite parameters in op features\.0 \(conv2d, stage of rank 0\)'
nonfinite 4 gd 'step [0-9]+: non-finite parameters in op features\.0 \(conv2d, stage of rank 0\)'
# moreau: the loss's prox meets non-finite logits mid-step; it passes NaN on,
# and the same agreed check stops every rank after the step (no MPI_Abort).
nonfinite 2 moreau '^mtrain: step [0-9]+: non-finite parameters in op .* after the update'
nonfinite 4 moreau '^mtrain: step [0-9]+: non-finite parameters in op .* after the update'
# dtp on mlp: a closed form's Cholesky factor of a non-finite Gram matrix
# fails on rank 1; a warning names the op, the result is NaN, and the same
# check stops the job.
nonfinite 2 dtp '^mtrain: step [0-9]+: non-finite parameters in op .* after the update' mlp
grep -q '^\[rank 1\] op classifier\.[0-9]: Cholesky factorisation failed .* set to NaN' "$WORK/log" &&
    pass "dtp on mlp: the failed Cholesky factor is named: $(grep -m1 Cholesky "$WORK/log")" ||
    fail "dtp on mlp: no warning naming the failed Cholesky factor"
finish
