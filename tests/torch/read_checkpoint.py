#!/usr/bin/python3
"""read_checkpoint.py - open an mtrain checkpoint with h5py (no mtrain code).

Prints every dataset's name, shape and dtype (tab-separated, one a line),
then the root attributes ("@name<TAB>value"). Exits 1 when a floating-point
dataset is not float32 or there is no dataset, 2 on usage or open errors,
0 otherwise.

usage: /usr/bin/python3 read_checkpoint.py CHECKPOINT.h5
"""
import sys

import h5py
import numpy as np


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        f = h5py.File(argv[1], "r")
    except OSError as err:
        print(f"{argv[1]}: cannot open with h5py: {err}", file=sys.stderr)
        return 2

    datasets = []
    with f:
        f.visititems(lambda name, obj: datasets.append((name, obj))
                     if isinstance(obj, h5py.Dataset) else None)
        bad = 0
        for name, dset in datasets:
            print(f"{name}\t{tuple(dset.shape)}\t{dset.dtype}")
            if dset.dtype.kind == "f" and dset.dtype != np.float32:
                print(f"{name}: dtype {dset.dtype}, expected float32", file=sys.stderr)
                bad += 1
        for key in sorted(f.attrs):
            value = f.attrs[key]
            if isinstance(value, (str, bytes)) and len(value) > 40:
                value = repr(value[:40]) + f"... ({len(value)} chars)"
            print(f"@{key}\t{value}")
    if not datasets:
        print(f"{argv[1]}: no datasets", file=sys.stderr)
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
