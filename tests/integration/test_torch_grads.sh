#!/bin/bash
# test_torch_grads.sh - mtrain's back-propagation against PyTorch autograd.
# For mlp, convnet and allcnn, tests/torch/grad_dump takes one --oracle gd
# step (weight decay 1e-3) on the first 32 CIFAR-10 training samples and
# dumps parameters, directions, batch, ReLU inputs and loss to HDF5;
# tests/torch/check_grads.py loads the parameters into the equivalent
# torch.nn model (load_state_dict strict) and compares loss and gradients
# (tolerances and their reasons are in its docstring). convnet is also
# stepped twice with sgd (Nesterov; batch 48: a second, partial block of 32)
# and with adam, and torch.optim must replay both updates. Checkpoints of
# the mtrain executable (2 ranks, sgd and adam) must load into torch.nn and
# torch.optim as they are. Finally the checker must reject a dump whose conv
# gradient was corrupted (kernel axes swapped) and one whose bias gradient
# was zeroed, so that it can fail.
source "$(dirname "$0")/common.sh"
: "${MTRAIN_GRAD_DUMP:?set by ctest}" "${MTRAIN_SOURCE_DIR:?set by ctest}"
python=/usr/bin/python3
check="$MTRAIN_SOURCE_DIR/tests/torch/check_grads.py"
export OMP_NUM_THREADS=2

# case NAME NET BATCH OPTIM: dump one step (two with sgd/adam), then check it.
case_run() {
    local name=$1 net=$2 batch=$3 optim=$4
    if ! timeout -k 5 120 "$MTRAIN_GRAD_DUMP" "$net" "$WORK/$name.h5" "$batch" "$optim" \
            >"$WORK/$name.dump.log" 2>&1; then
        cat "$WORK/$name.dump.log"
        fail "$name: grad_dump failed"
        return
    fi
    echo "--- $name"
    if timeout -k 5 120 "$python" "$check" "$WORK/$name.h5"; then
        pass "$name: gradients, loss and layout match PyTorch"
    else
        fail "$name: check_grads.py found a mismatch"
    fi
}

case_run mlp mlp 32 plain
case_run convnet convnet 32 plain
case_run allcnn allcnn 32 plain
case_run convnet-sgd convnet 48 sgd
case_run convnet-adam convnet 32 adam

# A real checkpoint of each stateful optimiser, written by 2 ranks.
for optim in sgd adam; do
    if mt 2 --net convnet --oracle gd --optim "$optim" --steps 1 --batch 32 --threads 1 \
            --data "$CIFAR" --checkpoint-dir "$WORK/ckpt-$optim" --run-dir "$WORK/run-$optim" \
            >"$WORK/run-$optim.log" 2>&1 &&
        "$python" "$check" --checkpoint "$WORK/ckpt-$optim/convnet-step00000001.h5"; then
        pass "an mtrain checkpoint ($optim) loads into torch.nn and torch.optim"
    else
        tail -5 "$WORK/run-$optim.log"
        fail "the mtrain checkpoint ($optim) is not what torch expects"
    fi
done

# corrupt SRC DST TENSOR EXPR: copy a dump with grad/TENSOR replaced by EXPR(g).
corrupt() {
    cp "$WORK/$1.h5" "$WORK/$2.h5"
    "$python" - "$WORK/$2.h5" "$3" "$4" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    g = f["grad/" + sys.argv[2]]
    g[...] = eval(sys.argv[3], {"np": np, "g": g[()]})
PY
}

if [ -f "$WORK/convnet.h5" ]; then
    corrupt convnet swapped features.3.weight "np.swapaxes(g, 2, 3).copy()"
    corrupt convnet nobias features.3.bias "np.zeros_like(g)"
    for bad in swapped nobias; do
        if "$python" "$check" "$WORK/$bad.h5" >"$WORK/$bad.log" 2>&1; then
            fail "check_grads.py accepted a corrupted dump ($bad)"
        else
            pass "check_grads.py rejects a corrupted dump ($bad):" \
                "$(grep -c FAIL "$WORK/$bad.log") FAIL lines"
        fi
    done
fi
finish
