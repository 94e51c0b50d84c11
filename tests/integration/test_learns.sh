#!/usr/bin/env bash
# Training works: convnet on the 4000-image CIFAR-10 subset for 2 epochs on
# 4 ranks lowers the training loss and reaches a test accuracy above 30%
# (chance is 10%) with the penalized oracle and with gd.
source "$(dirname "$0")/common.sh"

for oracle in penalized gd; do
    mt 4 --data "$CIFAR" --net convnet --oracle "$oracle" --epochs 2 \
        --run-dir "$WORK/$oracle" --checkpoint-dir "$WORK/ck-$oracle" >"$WORK/log" 2>&1 \
        || { fail "$oracle run"; cat "$WORK/log"; continue; }
    csv="$WORK/$oracle/metrics.csv"
    # mean training loss of the first and of the last 10 steps
    read -r first last < <(awk -F, '$1 == "train" { l[n++] = $4 }
        END { for (i = 0; i < 10; i++) { a += l[i]; b += l[n - 1 - i] } print a / 10, b / 10 }' \
        "$csv")
    acc=$(awk -F, '$1 == "test" { a = $5 } END { print a }' "$csv")
    if awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.1) }'; then
        pass "$oracle: training loss $first -> $last"
    else
        fail "$oracle: training loss did not fall ($first -> $last)"
    fi
    if awk -v a="$acc" 'BEGIN { exit !(a > 0.30) }'; then
        pass "$oracle: test accuracy $acc > 0.30 after 2 epochs"
    else
        fail "$oracle: test accuracy $acc <= 0.30 after 2 epochs"
    fi
done
finish
