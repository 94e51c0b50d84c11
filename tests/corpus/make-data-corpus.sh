#!/usr/bin/env bash
# make-data-corpus.sh - write the small damaged data files of tests/corpus/data/.
#
# tests/unit/test_data.c reads every file there and expects a clean
# MT_ERR_FORMAT naming the file (never a crash, never a large allocation):
#   cifar-*   read with mt_cifar_read
#   idx3-*    read with mt_mnist_read as images, beside good-labels-idx1-ubyte
#   idx1-*    read with mt_mnist_read as labels, beside good-images-idx3-ubyte
#   good-*    a valid 2-sample MNIST pair (the positive control)
# The output is deterministic (gzip -n); rerun after changing this script and
# commit the files (each well under 10 KB).
set -euo pipefail

out="$(cd "$(dirname "$0")" && pwd)/data"
mkdir -p "$out"
rm -f "$out"/cifar-* "$out"/idx1-* "$out"/idx3-* "$out"/good-*

# n bytes of one value (0..255).
fill() { head -c "$1" /dev/zero | tr '\0' "\\$(printf '%03o' "$2")"; }
# A 32-bit big-endian integer.
be32() { printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))"
         printf "\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"; }
# One CIFAR-10 record: label, then 3072 pixel bytes.
record() { printf "\\x$(printf %02x "$1")"; fill 3072 "$2"; }
# An IDX image header and payload of n 28x28 images.
images() { be32 2051; be32 "$1"; be32 28; be32 28; fill $(($1 * 784)) 128; }
labels() { be32 2049; be32 2; printf '\x03\x07'; }

# ---- CIFAR-10 binaries ------------------------------------------------------
: > "$out/cifar-empty.bin"
{ record 3 10; record 5 20; fill 1000 30; } > "$out/cifar-truncated.bin"
fill 3072 40 > "$out/cifar-not-multiple.bin"
{ record 3 10; record 10 20; } > "$out/cifar-bad-label.bin"
{ record 255 10; } > "$out/cifar-label-255.bin"
printf 'this is not a CIFAR-10 file\n' > "$out/cifar-text.bin"

# ---- MNIST IDX ------------------------------------------------------------------
images 2 > "$out/good-images-idx3-ubyte"
labels > "$out/good-labels-idx1-ubyte"

{ be32 2049; be32 2; be32 28; be32 28; fill 1568 128; } > "$out/idx3-wrong-magic"
{ be32 2051; be32 4294967295; be32 28; be32 28; fill 784 128; } > "$out/idx3-huge-count"
{ be32 2051; be32 1; be32 2147483647; be32 2147483647; fill 64 1; } > "$out/idx3-huge-dims"
{ be32 2051; be32 65536; be32 65536; be32 65536; } > "$out/idx3-overflow-dims"
{ be32 2051; be32 2; be32 32; be32 32; fill 2048 128; } > "$out/idx3-not-28x28"
{ be32 2051; be32 2; } > "$out/idx3-short-header"
images 3 > "$out/idx3-count-mismatch"
{ images 2; fill 5 9; } > "$out/idx3-extra-data"
{ be32 2051; be32 2; be32 28; be32 28; fill 1000 128; } > "$out/idx3-truncated"
{ be32 2051; be32 0; be32 28; be32 28; } > "$out/idx3-zero-count"

# gzip: streams cut inside the header, inside the pixels and just before the
# 8-byte trailer; a header promising more than gzip can hold; a gzip header
# followed by garbage. The pixels of the second stream are digits so that it
# does not compress to almost nothing.
images 2 | gzip -9 -n -c > "$out/tmp.gz"
head -c $(($(wc -c < "$out/tmp.gz") / 2)) "$out/tmp.gz" > "$out/idx3-truncated.gz"
head -c $(($(wc -c < "$out/tmp.gz") - 8)) "$out/tmp.gz" > "$out/idx3-no-trailer.gz"
{ be32 2051; be32 2; be32 28; be32 28; seq 1 1000 | head -c 1568; } | gzip -9 -n -c \
    > "$out/tmp.gz"
head -c $(($(wc -c < "$out/tmp.gz") * 2 / 3)) "$out/tmp.gz" > "$out/idx3-cut-pixels.gz"
rm -f "$out/tmp.gz"
{ be32 2051; be32 4294967295; be32 28; be32 28; fill 4000 128; } | gzip -9 -n -c \
    > "$out/idx3-huge-count.gz"
{ printf '\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03'; fill 200 255; } > "$out/idx3-garbage.gz"

{ be32 2051; be32 2; printf '\x03\x07'; } > "$out/idx1-wrong-magic"
{ be32 2049; be32 2; printf '\x03\xc8'; } > "$out/idx1-bad-label"
{ be32 2049; be32 2; printf '\x03'; } > "$out/idx1-truncated"
{ be32 2049; be32 4294967295; printf '\x03\x07'; } > "$out/idx1-huge-count"
labels | gzip -9 -n -c | head -c 20 > "$out/idx1-truncated.gz"

ls -l "$out"
