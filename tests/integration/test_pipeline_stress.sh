#!/usr/bin/env bash
# The pipeline schedule is free of deadlock for any (stages, micro-batches)
# pair, including fewer micro-batches than stages, under random delays
# injected before every message (up to 20 ms), and the delays change
# nothing: the losses equal an undelayed single-rank run bit for bit. Each
# run is limited to 120 s, so a hang fails the test.
source "$(dirname "$0")/common.sh"
MT_TIMEOUT=120
# penalized, and gd (on several ranks it takes the conv layers' weight
# gradients micro-batch by micro-batch, as each micro-batch's lambdas come)
for oracle in penalized gd; do
    args=(--data "$CIFAR" --net convnet --oracle "$oracle" --steps 3 --batch 128 --threads 1
          --eval-every 0 --log-every 3)
    rm -rf "$WORK/ck" # each run starts fresh: its end-of-run checkpoint is not looked at
    mt 1 "${args[@]}" --run-dir "$WORK/ref" --checkpoint-dir "$WORK/ck" >"$WORK/log" 2>&1 \
        || { fail "$oracle: reference run"; cat "$WORK/log"; continue; }
    train_losses "$WORK/ref/metrics.csv" >"$WORK/ref.losses"
    for layout in "4 1" "4 2" "3 4" "2 4" "4 4" "2 1"; do
        set -- $layout
        name="$oracle-s$1-m$2"
        rm -rf "$WORK/ck"
        if ! mt "$1" "${args[@]}" --micro-batches "$2" --inject-delay 20000 \
            --run-dir "$WORK/$name" --checkpoint-dir "$WORK/ck" >"$WORK/log" 2>&1; then
            fail "$name: exit $? (hang or crash)"; tail -5 "$WORK/log"; continue
        fi
        if cmp -s "$WORK/ref.losses" <(train_losses "$WORK/$name/metrics.csv"); then
            pass "$name with random delays: same losses as 1 rank"
        else
            fail "$name: losses differ under delays"
        fi
    done
    rm -rf "$WORK/ref"
done
finish
