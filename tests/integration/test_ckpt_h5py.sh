#!/bin/bash
# test_ckpt_h5py.sh - a checkpoint written by mtrain on 2 ranks (through the
# MPI checkpoint test with MTRAIN_CKPT_KEEP) must be plain HDF5 to other
# tools: h5dump shows the groups, float32 contiguous datasets and the
# attributes, and h5py (tests/torch/read_checkpoint.py) lists exactly the
# expected datasets with dtype float32; a copy whose attributes h5py rewrote
# as fixed-length strings and int32 reads back in mtrain with equal values.
# The script itself must reject a float64 dataset, so that its check can fail.
set -euo pipefail
: "${MTRAIN_BIN:?set by ctest}" "${MTRAIN_SOURCE_DIR:?set by ctest}"

helper="$(dirname "$MTRAIN_BIN")/tests/test_checkpoint"
reader="$MTRAIN_SOURCE_DIR/tests/torch/read_checkpoint.py"
python=/usr/bin/python3
[ -x "$helper" ] || { echo "FAIL: $helper not built"; exit 1; }

dir=$(mktemp -d /tmp/mt_ckpt_h5py_XXXXXX)
trap 'rm -rf "$dir"' EXIT
ckpt="$dir/small.h5"

fail() { echo "FAIL: $*"; exit 1; }

# 1. Write the checkpoint on 2 ranks.
if ! MTRAIN_CKPT_KEEP="$ckpt" OMP_NUM_THREADS=1 mpirun -np 2 --oversubscribe --bind-to none \
        "$helper" >"$dir/helper.log" 2>&1; then
    cat "$dir/helper.log"
    fail "the MPI checkpoint test failed"
fi
[ -f "$ckpt" ] || fail "no checkpoint at $ckpt"

# 2. h5dump reads the header: groups, types, shapes, layout, attributes.
h5dump -H -p "$ckpt" >"$dir/header.txt" || fail "h5dump -H could not read $ckpt"
for want in 'GROUP "model"' 'GROUP "optim"' 'GROUP "features.0.weight"' \
        'DATASET "momentum_buffer"' 'SIMPLE { ( 8, 3, 3, 3 ) / ( 8, 3, 3, 3 ) }' \
        'SIMPLE { ( 10, 72 ) / ( 10, 72 ) }' 'CONTIGUOUS' 'ATTRIBUTE "step"' \
        'ATTRIBUTE "config"' 'CSET H5T_CSET_UTF8' 'H5T_STD_I64LE'; do
    grep -qF "$want" "$dir/header.txt" || fail "h5dump -H lacks: $want"
done
if grep -E 'DATATYPE +H5T_(IEEE_F64|STD_)' "$dir/header.txt" | grep -v I64LE >/dev/null; then
    fail "a dataset is not float32"
fi
echo "--- h5dump -H (excerpt)"
sed -n '/GROUP "optim"/,$p' "$dir/header.txt" | head -20

# 3. h5py lists exactly the expected datasets, all float32.
"$python" "$reader" "$ckpt" >"$dir/h5py.txt" || fail "read_checkpoint.py rejected $ckpt"
cat >"$dir/want.txt" <<'LIST'
extra/odd	(5, 7, 129)	float32
model/classifier.weight	(10, 72)	float32
model/features.0.bias	(8,)	float32
model/features.0.weight	(8, 3, 3, 3)	float32
optim/classifier.weight/exp_avg	(10, 72)	float32
optim/features.0.weight/momentum_buffer	(8, 3, 3, 3)	float32
LIST
grep -v '^@' "$dir/h5py.txt" | diff "$dir/want.txt" - || fail "h5py sees other datasets"
grep -qx $'@step\t1234567890123' "$dir/h5py.txt" || fail "h5py reads another step"
grep -qx $'@net\tallcnn' "$dir/h5py.txt" || fail "h5py does not read net as a str"
echo "--- h5py"
cat "$dir/h5py.txt"

# 4. A copy rewritten by h5py (fixed-length strings, int32 epoch) reads
#    back in mtrain on 4 ranks with the same values.
cp "$ckpt" "$dir/rewritten.h5"
"$python" - "$dir/rewritten.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    for key in ("net", "note", "config"):
        raw = f.attrs[key].encode()
        del f.attrs[key]
        f.attrs.create(key, raw, dtype=h5py.string_dtype("utf-8", max(len(raw), 1)))
    epoch = int(f.attrs["epoch"])
    del f.attrs["epoch"]
    f.attrs.create("epoch", epoch, dtype=np.int32)
PY
h5dump -H -a /net "$dir/rewritten.h5" | grep -q 'STRSIZE 6;' || fail "h5py did not write a fixed string"
if ! MTRAIN_CKPT_CHECK="$dir/rewritten.h5" OMP_NUM_THREADS=1 mpirun -np 4 --oversubscribe \
        --bind-to none "$helper" >"$dir/check.log" 2>&1; then
    cat "$dir/check.log"
    fail "mtrain could not read the copy rewritten by h5py"
fi

# 5. The reader's own check can fail: a float64 dataset is refused.
"$python" - "$dir/f64.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f["model/w"] = np.zeros((2, 3), dtype=np.float64)
PY
if "$python" "$reader" "$dir/f64.h5" >/dev/null 2>&1; then
    fail "read_checkpoint.py accepted a float64 dataset"
fi
echo "PASS"
