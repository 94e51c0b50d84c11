#!/usr/bin/env bash
# Resume: 6 steps straight equal 3 steps, a checkpoint, and 3 more steps
# resumed from it (losses bit for bit), also when the resumed run uses
# another number of ranks; the checkpoint is readable by h5dump and h5py
# with PyTorch's state_dict names and layouts; two nets share a directory;
# a fresh start never overwrites a directory's checkpoints of its net; two
# runs of one net never write into one directory at once.
source "$(dirname "$0")/common.sh"
common=(--data "$CIFAR" --net convnet --batch 64 --eval-every 0 --log-every 3 --threads 1)

for oracle in gd penalized; do
    mt 2 "${common[@]}" --oracle "$oracle" --steps 6 --run-dir "$WORK/straight-$oracle" \
        --checkpoint-dir "$WORK/ck-straight-$oracle" >"$WORK/log" 2>&1 \
        || { fail "$oracle straight run"; cat "$WORK/log"; continue; }
    mt 2 "${common[@]}" --oracle "$oracle" --steps 3 --run-dir "$WORK/part-$oracle" \
        --checkpoint-dir "$WORK/ck-$oracle" >"$WORK/log" 2>&1 \
        || { fail "$oracle first half"; cat "$WORK/log"; continue; }
    ck="$WORK/ck-$oracle/$(cat "$WORK/ck-$oracle/latest")"
    for np in 2 1; do
        rm -rf "$WORK/resumed-$oracle-$np"
        mkdir -p "$WORK/resumed-$oracle-$np"
        cp "$WORK/part-$oracle/metrics.csv" "$WORK/resumed-$oracle-$np/"
        mt $np "${common[@]}" --oracle "$oracle" --steps 6 --resume "$ck" \
            --run-dir "$WORK/resumed-$oracle-$np" --checkpoint-dir "$WORK/ck2-$oracle-$np" \
            >"$WORK/log" 2>&1 || { fail "$oracle resume on $np"; cat "$WORK/log"; continue; }
        if cmp -s <(train_losses "$WORK/straight-$oracle/metrics.csv") \
                  <(train_losses "$WORK/resumed-$oracle-$np/metrics.csv"); then
            pass "$oracle: 3 + 3 steps resumed on $np ranks equal 6 steps straight"
        else
            fail "$oracle: resumed losses differ (np $np)"
            paste <(train_losses "$WORK/straight-$oracle/metrics.csv") \
                  <(train_losses "$WORK/resumed-$oracle-$np/metrics.csv") | sed 's/^/    /'
        fi
    done
done

# Two nets sharing a checkpoint directory (as with the default one): resume
# auto of each picks its own newest checkpoint and leaves the other's alone.
shared="$WORK/ck-shared"
mt 1 "${common[@]}" --net mlp --steps 3 --checkpoint-every 3 --run-dir "$WORK/sh-mlp" \
    --checkpoint-dir "$shared" >"$WORK/log" 2>&1 || { fail "mlp, shared dir"; cat "$WORK/log"; }
mt 1 "${common[@]}" --steps 2 --checkpoint-every 2 --run-dir "$WORK/sh-conv" \
    --checkpoint-dir "$shared" >"$WORK/log" 2>&1 || { fail "convnet, shared dir"; cat "$WORK/log"; }
if mt 1 "${common[@]}" --steps 4 --resume auto --run-dir "$WORK/sh-conv" \
        --checkpoint-dir "$shared" >"$WORK/log" 2>&1 &&
        grep -q "resumed from $shared/convnet-step00000002.h5 at step 2" "$WORK/log" &&
        [ -f "$shared/mlp-step00000003.h5" ]; then
    pass "resume auto beside another net's checkpoints: its own step 2, the mlp's file kept"
else
    fail "resume auto beside another net's checkpoints"; tail -3 "$WORK/log"
fi

# A fresh start (no --resume) into a directory holding the net's checkpoints
# would overwrite them: exit 2 on both ranks before training, one line naming
# the directory and the newest file, every file unchanged.
sums() { (cd "$shared" && md5sum * | sort); }
before=$(sums)
mt 2 "${common[@]}" --steps 4 --run-dir "$WORK/sh-fresh" --checkpoint-dir "$shared" \
    >"$WORK/log" 2>&1
code=$?
line="mtrain: --checkpoint-dir $shared already holds checkpoints of convnet (newest convnet-step00000004.h5)"
if [ $code = 2 ] && [ "$(grep -c "^$line" "$WORK/log")" = 1 ] && [ "$(sums)" = "$before" ] &&
        ! grep -q '^step' "$WORK/log" && [ ! -e "$WORK/sh-fresh/metrics.csv" ]; then
    pass "fresh start into a directory with the net's checkpoints: exit 2, files unchanged"
else
    fail "fresh start over existing checkpoints: exit $code"; tail -3 "$WORK/log"
fi

# Two runs of one net into one directory: while a run holds it (a lock
# that dies with its process), a second one, fresh or --resume auto, exits
# 2 naming the holder before it reads or writes anything; a run of another
# net may share the directory; once the holder is SIGKILLed, --resume auto
# goes on.
ck_lock="$WORK/ck-lock"
timeout -s KILL 120 mpirun -n 1 "$MTRAIN_BIN" "${common[@]}" --steps 100000 --log-every 1 \
    --checkpoint-every 5 --run-dir "$WORK/lock-a" --checkpoint-dir "$ck_lock" \
    >"$WORK/lock-a.log" 2>&1 &
holder=$!
t=0
until [ -f "$ck_lock/latest" ] || [ $t -ge 600 ]; do sleep 0.1; t=$((t + 1)); done
pid_a=$(pgrep -P "$(pgrep -P $holder)" | head -1)
for how in fresh auto; do
    extra=(); [ $how = auto ] && extra=(--resume auto)
    mt 2 "${common[@]}" --steps 4 --run-dir "$WORK/lock-$how" --checkpoint-dir "$ck_lock" \
        "${extra[@]}" >"$WORK/log" 2>&1
    code=$?
    if [ $code = 2 ] && [ "$(grep -c '^mtrain:' "$WORK/log")" = 1 ] &&
            grep -q "^mtrain: --checkpoint-dir $ck_lock is in use by another run of convnet (pid $pid_a on .* holds $ck_lock/.convnet.lock)" "$WORK/log" &&
            [ ! -e "$WORK/lock-$how" ]; then
        pass "a second run ($how) while pid $pid_a holds the directory: exit 2, nothing written"
    else
        fail "a second run ($how) into a held directory: exit $code"; tail -3 "$WORK/log"
    fi
done
if mt 1 "${common[@]}" --net mlp --steps 1 --run-dir "$WORK/lock-mlp" \
        --checkpoint-dir "$ck_lock" >"$WORK/log" 2>&1; then
    pass "a run of another net shares the held directory"
else
    fail "a run of another net beside a held directory"; tail -3 "$WORK/log"
fi
# the rank first (its lock goes with it), then mpirun and the guard
kill -KILL "$pid_a" 2>/dev/null
kill -KILL $(pgrep -P $holder) $holder 2>/dev/null
wait $holder 2>/dev/null
if mt 2 "${common[@]}" --steps 6 --resume auto --run-dir "$WORK/lock-a" \
        --checkpoint-dir "$ck_lock" >"$WORK/log" 2>&1 && grep -q 'resumed from' "$WORK/log"; then
    pass "after the holder was SIGKILLed, --resume auto takes the directory"
else
    fail "resume after the holder was killed"; tail -3 "$WORK/log"
fi

# The checkpoint layout, as a PyTorch user reads it.
ck="$WORK/ck-gd/$(cat "$WORK/ck-gd/latest")"
h5dump -H "$ck" >"$WORK/dump.txt" 2>&1
if grep -q 'DATASET "features.0.weight"' "$WORK/dump.txt"; then
    pass "h5dump reads $ck and lists model/features.0.weight"
else
    fail "h5dump does not list features.0.weight"; head -40 "$WORK/dump.txt"
fi
if /usr/bin/python3 - "$ck" <<'PY'
import sys, h5py
f = h5py.File(sys.argv[1], "r")
shapes = {k: f["model"][k].shape for k in f["model"]}
assert shapes["features.0.weight"] == (16, 3, 5, 5), shapes
assert shapes["features.0.bias"] == (16,), shapes
assert shapes["features.3.weight"] == (20, 16, 5, 5), shapes
assert shapes["classifier.0.weight"] == (10, 320), shapes
assert f["model/features.0.weight"].dtype == "float32"
assert int(f.attrs["step"]) == 3, dict(f.attrs)
assert "momentum_buffer" in f["optim/features.0.weight"]
PY
then pass "h5py reads PyTorch state_dict names and shapes"
else fail "h5py check of the checkpoint layout"; fi
finish
