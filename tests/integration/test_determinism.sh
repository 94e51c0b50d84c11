#!/usr/bin/env bash
# The training trajectory does not depend on the number of ranks, of
# micro-batches or of OpenMP threads: the losses of 5 steps of convnet are
# bit-identical (printed with 17 significant digits) for every layout, for
# the gd and penalized oracles.
source "$(dirname "$0")/common.sh"

run() { # NAME NP THREADS MICRO ORACLE [EXTRA...]
    local name=$1 np=$2 threads=$3 micro=$4 oracle=$5
    shift 5
    mt "$np" --data "$CIFAR" --net convnet --oracle "$oracle" --steps 5 --batch 64 \
        --threads "$threads" --micro-batches "$micro" --eval-every 0 --log-every 5 \
        --run-dir "$WORK/$name" --checkpoint-dir "$WORK/ckpt-$name" "$@" >"$WORK/$name.log" 2>&1 \
        || { fail "$name exited $?"; sed 's/^/    /' "$WORK/$name.log"; return 1; }
    train_losses "$WORK/$name/metrics.csv" >"$WORK/$name.losses"
}

for oracle in gd penalized; do
    run "$oracle-ref" 1 1 1 "$oracle" || continue
    if [ "$(wc -l <"$WORK/$oracle-ref.losses")" -ne 5 ]; then
        fail "$oracle: expected 5 loss rows"; continue
    fi
    for layout in "2 1 2" "4 1 2" "1 2 2" "2 1 1" "4 1 1"; do
        set -- $layout
        name="$oracle-np$1-t$2-m$3"
        run "$name" "$1" "$2" "$3" "$oracle" || continue
        if cmp -s "$WORK/$oracle-ref.losses" "$WORK/$name.losses"; then
            pass "$name: losses bit-identical to 1 rank ($(tail -1 "$WORK/$name.losses"))"
        else
            fail "$name: losses differ from 1 rank"
            paste "$WORK/$oracle-ref.losses" "$WORK/$name.losses" | sed 's/^/    /'
        fi
    done
done
# Logging every step (stage figures, solver residuals) leaves the trajectory alone.
run log5 1 1 1 penalized --inner gd:3 --log-every 5 \
    && run log1 1 1 1 penalized --inner gd:3 --log-every 1 \
    && if cmp -s "$WORK/log5.losses" "$WORK/log1.losses"; then
        pass "--log-every 1 and 5 give the same losses"
    else
        fail "--log-every changes the trajectory"
    fi
rows=$(awk -F, 'NR > 1' "$WORK/log1/stages.csv" 2>/dev/null | wc -l)
if [ "$rows" -eq 5 ]; then pass "stages.csv has one row per logged step and stage"
else fail "stages.csv has $rows rows, expected 5"; fi

# Layer granularity (conv + relu + pool as one op, generic solvers).
run layer-ref 1 1 1 penalized --granularity layer --inner cg:2 \
    && run layer-np2 2 1 2 penalized --granularity layer --inner cg:2 \
    && if cmp -s "$WORK/layer-ref.losses" "$WORK/layer-np2.losses"; then
        pass "granularity layer: 2 ranks x 2 micro-batches equal 1 rank"
    else
        fail "granularity layer: losses differ"
    fi
finish
