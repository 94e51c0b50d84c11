#!/usr/bin/python3
"""ckpt_equal.py A B: exit 0 when two mtrain checkpoints hold the same tensors
bit for bit (every dataset under model/ and optim/: names, shapes, dtypes and
bytes) and the same step; else print the first difference and exit 1."""
import sys

import h5py
import numpy as np


def tensors(path):
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and name.split("/")[0] in ("model", "optim"):
                out[name] = np.asarray(obj[()])
        f.visititems(visit)
        step = int(f.attrs["step"])
    return out, step


def main(a, b):
    (ta, sa), (tb, sb) = tensors(a), tensors(b)
    if sa != sb:
        print(f"step {sa} != {sb}")
        return 1
    if sorted(ta) != sorted(tb) or not ta:
        print(f"datasets differ: {sorted(set(ta) ^ set(tb))}")
        return 1
    for name in sorted(ta):
        x, y = ta[name], tb[name]
        if x.shape != y.shape or x.dtype != y.dtype or x.tobytes() != y.tobytes():
            n = int(np.sum(x != y)) if x.shape == y.shape else -1
            print(f"{name}: differs ({n} elements)")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
