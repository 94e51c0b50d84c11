#!/usr/bin/env bash
# make-ckpt-corpus.sh - write the damaged checkpoints of tests/corpus/checkpoints/
# from one small real checkpoint (convnet, --optim plain, 2 steps on the first
# 512 CIFAR-10 training images, batch 128).
#
# tests/integration/test_ckpt_corpus.sh gives every file to --resume with the
# options in corpus-args.txt and expects exit 2 with one line naming the file
# and the substring listed in expect.txt (good.h5, the positive control, must
# resume with exit 0). Rerun after changing the checkpoint format and commit
# the files:
#   MTRAIN_BIN=build/mtrain MTRAIN_SHARED_DATA=../shared/data tests/corpus/make-ckpt-corpus.sh
set -euo pipefail
: "${MTRAIN_BIN:?path of the mtrain executable}"
: "${MTRAIN_SHARED_DATA:?directory holding cifar10/}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

out="$(cd "$(dirname "$0")" && pwd)/checkpoints"
work=$(mktemp -d /tmp/mt-ckpt-corpus.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The small data set the corpus belongs to (the test makes the same one).
mkdir -p "$work/data"
head -c $((3073 * 512)) "$MTRAIN_SHARED_DATA/cifar10/data_batch_1.bin" >"$work/data/data_batch_1.bin"
head -c $((3073 * 128)) "$MTRAIN_SHARED_DATA/cifar10/test_batch.bin" >"$work/data/test_batch.bin"
args=(--net convnet --optim plain --oracle gd --batch 128 --threads 1 --seed 1)
mpirun -n 1 "$MTRAIN_BIN" --data "$work/data" "${args[@]}" --steps 2 \
    --run-dir "$work/run" --checkpoint-dir "$work/ck" >"$work/log" 2>&1 \
    || { cat "$work/log"; exit 1; }

rm -rf "$out"
mkdir -p "$out"
cp "$work/ck/convnet-step00000002.h5" "$out/good.h5"
printf '%s\n' "${args[@]}" >"$out/corpus-args.txt"

/usr/bin/python3 - "$out" <<'PY'
import os, shutil, sys, zlib
import h5py, numpy as np

out = sys.argv[1]
good = os.path.join(out, "good.h5")
expect = []

def derive(name, why):
    path = os.path.join(out, name)
    shutil.copyfile(good, path)
    expect.append((name, why))
    return path

def write_bytes(name, why, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    expect.append((name, why))

def flip(path, offset, bit=0x10):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ bit]))

def digest(f):
    # The same canonical text as snapshot.c: name=value lines in name order.
    crc = 0
    for k in sorted(f.attrs):
        if k in ("attrs_digest", "complete"):
            continue
        v = f.attrs[k]
        v = v.decode() if isinstance(v, bytes) else str(v) if not isinstance(v, str) else v
        crc = zlib.crc32(f"{k}={v}\n".encode(), crc)
    return crc

def set_attrs(name, why, **values):
    """Sound but for the given attribute values; the digest is recomputed."""
    with h5py.File(derive(name, why), "r+") as f:
        for k, v in values.items():
            del f.attrs[k]
            f.attrs[k] = v
        f.attrs.modify("attrs_digest", np.int64(digest(f)))

def replace_dataset(name, why, key, data, **kw):
    with h5py.File(derive(name, why), "r+") as f:
        del f[key]
        d = f.create_dataset(key, data=data, **kw)
        if data is not None:
            d.attrs["crc32"] = np.int64(zlib.crc32(np.asarray(data).tobytes()))

raw = open(good, "rb").read()
w0 = "model/features.0.weight"

# Not HDF5 at all, or cut short.
write_bytes("empty.h5", "not an HDF5 file", b"")
write_bytes("text.h5", "not an HDF5 file", b"step=2\nnet=convnet\n" * 40)
write_bytes("truncated-half.h5", "truncated or damaged", raw[: len(raw) // 2])
write_bytes("truncated-1k.h5", "truncated or damaged", raw[:1024])
write_bytes("truncated-last-byte.h5", "truncated or damaged", raw[:-1])

# Bit flips: in the data (CRC-32), in checksummed metadata (superblock,
# object header), in a string attribute kept in the global heap (digest).
with h5py.File(good, "r") as f:
    data_at = f[w0].id.get_offset()
    header_at = h5py.h5o.get_info(f[w0].id).addr
flip(derive("flip-data.h5", "CRC-32"), data_at + 101)
flip(derive("flip-superblock.h5", "truncated or damaged"), 13)
flip(derive("flip-object-header.h5", w0), header_at + 12)
flip(derive("flip-config-text.h5", "do not match their digest"), raw.index(b"dataset=cifar10") + 9)
set_attrs("changed-step.h5", "do not match their digest", step=np.int64(3))
with h5py.File(os.path.join(out, "changed-step.h5"), "r+") as f:
    f.attrs.modify("attrs_digest", np.int64(12345))

# Sound HDF5, wrong content.
replace_dataset("wrong-shape.h5", "has shape [16,3,3,3], expected [16,3,5,5]", w0,
                np.zeros((16, 3, 3, 3), np.float32))
replace_dataset("wrong-dtype.h5", "expected float32", w0, np.zeros((16, 3, 5, 5), np.float64))
replace_dataset("huge-dims.h5", "has shape [16,3,5,1099511627776]", w0, None,
                shape=(16, 3, 5, 2**40), dtype=np.float32, chunks=(1, 1, 1, 1024))
nan = np.zeros((16, 3, 5, 5), np.float32)
nan[3, 1, 2, 2] = np.nan
replace_dataset("nan-params.h5", "non-finite parameters in op features.0", w0, nan)
with h5py.File(derive("dataset-is-group.h5", "is not a dataset"), "r+") as f:
    del f[w0]
    f.create_group(w0)
with h5py.File(derive("missing-dataset.h5", "model/classifier.0.bias is missing"), "r+") as f:
    del f["model/classifier.0.bias"]
with h5py.File(derive("missing-crc.h5", "has no crc32 checksum"), "r+") as f:
    del f[w0].attrs["crc32"]
with h5py.File(derive("no-marker.h5", "incomplete checkpoint"), "r+") as f:
    del f.attrs["complete"]
with h5py.File(derive("marker-zero.h5", "incomplete checkpoint"), "r+") as f:
    f.attrs.modify("complete", np.int64(0))
with h5py.File(derive("step-is-text.h5", "attribute step is not an integer"), "r+") as f:
    del f.attrs["step"]
    f.attrs["step"] = "2"
with h5py.File(derive("config-too-long.h5", "attribute config is 5000 bytes long"), "r+") as f:
    f.attrs["config"] = "x" * 5000

# Sound checkpoints of another format or run (digest recomputed).
set_attrs("version-99.h5", "format version 99", format_version=np.int64(99))
set_attrs("version-1.h5", "format version 1", format_version=np.int64(1))
set_attrs("other-net.h5", "checkpoint is for net 'mlp'", net="mlp")
with h5py.File(good, "r") as f:
    layout = f.attrs["model"].replace("conv2d features.0 3x32x32>16x32x32",
                                      "conv2d features.0 3x32x32>32x32x32")
set_attrs("other-layout.h5", "another layout of net convnet", model=layout)
set_attrs("other-batch.h5", "--batch 64", batch=np.int64(64))
set_attrs("other-seed.h5", "--seed 7", seed=np.int64(7))
set_attrs("bad-position.h5", "inconsistent position", epoch=np.int64(5))

with open(os.path.join(out, "expect.txt"), "w") as f:
    f.write("good.h5\t\n")
    for name, why in expect:
        f.write(f"{name}\t{why}\n")
PY
echo "wrote $(ls "$out" | wc -l) files to $out"
