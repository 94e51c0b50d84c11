#!/usr/bin/env bash
# The damaged checkpoints of tests/corpus/checkpoints/ (see make-ckpt-corpus.sh):
# each given to --resume on 1 and 2 ranks exits with code 2, printing exactly
# one line that names the file and what is wrong (the substring expect.txt
# lists), never a crash or a sanitizer report, leaving the file byte for byte
# as it was and writing nothing. good.h5, the positive control, resumes.
# Then --resume auto over directories mixing sound and damaged files.
# tests/run.sh runs this script again with MTRAIN_BIN pointing at the
# AddressSanitizer build.
source "$(dirname "$0")/common.sh"
MT_TIMEOUT=120
# mpirun waits odls_base_sigkill_timeout (1 s) twice after a non-zero exit
# before it returns; every run here exits 2 on purpose.
export OMPI_MCA_odls_base_sigkill_timeout=0
corpus="${MTRAIN_SOURCE_DIR:-$(dirname "$0")/../..}/tests/corpus/checkpoints"
mapfile -t args <"$corpus/corpus-args.txt"
ranks=${MTRAIN_CORPUS_RANKS:-"1 2"}

# The data set the corpus was written for: the first 512 / 128 images.
mkdir -p "$WORK/data"
head -c $((3073 * 512)) "$CIFAR/data_batch_1.bin" >"$WORK/data/data_batch_1.bin"
head -c $((3073 * 128)) "$CIFAR/test_batch.bin" >"$WORK/data/test_batch.bin"

crashed() { grep -qE 'Segmentation|AddressSanitizer|runtime error|Aborted|core dumped' "$1"; }

# check NP FILE WANT_CODE WANT_TEXT
check() {
    local np=$1 file=$2 want=$3 text=$4 out="$WORK/out" code
    local copy="$WORK/pristine.h5"
    cp "$file" "$copy"
    rm -rf "$WORK/run" "$WORK/ck"
    mt "$np" --data "$WORK/data" "${args[@]}" --steps 4 --resume "$file" \
        --run-dir "$WORK/run" --checkpoint-dir "$WORK/ck" >"$out" 2>&1
    code=$?
    local name=${file##*/}
    if crashed "$out" || [ "$code" -ge 124 ]; then
        fail "np=$np $name: crashed or hung (exit $code)"; sed 's/^/    /' "$out"; return
    fi
    if [ "$code" -ne "$want" ]; then
        fail "np=$np $name: exit $code, expected $want"; sed 's/^/    /' "$out"; return
    fi
    if ! cmp -s "$file" "$copy"; then
        fail "np=$np $name: the file was modified"; return
    fi
    if [ "$want" -eq 0 ]; then
        pass "np=$np $name resumes (exit 0)"; return
    fi
    local line
    line=$(grep 'mtrain:' "$out")
    if [ "$(grep -c 'mtrain:' "$out")" -ne 1 ] || [[ "$line" != *"$name"* ]] ||
            [[ "$line" != *"$text"* ]]; then
        fail "np=$np $name: expected one line naming the file and '$text'"
        sed 's/^/    /' "$out"; return
    fi
    if [ -e "$WORK/ck" ] || [ -e "$WORK/run" ]; then
        fail "np=$np $name: files were written"; return
    fi
    pass "np=$np $name -> exit 2: ${line#mtrain: }"
}

n_files=0
while IFS=$'\t' read -r -u 3 name text; do
    n_files=$((n_files + 1))
    want=2
    [ "$name" = good.h5 ] && want=0
    for np in $ranks; do check "$np" "$corpus/$name" "$want" "$text"; done
done 3<"$corpus/expect.txt"
[ "$n_files" -ge 25 ] || fail "expect.txt lists only $n_files files"

# --resume auto: the newest sound checkpoint wins; damaged newer ones are
# named in a warning; a file whose step differs from its name is refused.
auto() {
    local dir=$1; shift
    mt 2 --data "$WORK/data" "${args[@]}" --steps 4 --resume auto \
        --run-dir "$WORK/run-auto" --checkpoint-dir "$dir" "$@" >"$WORK/out" 2>&1
}
mkdir -p "$WORK/auto"
cp "$corpus/good.h5" "$WORK/auto/convnet-step00000002.h5"
cp "$corpus/flip-data.h5" "$WORK/auto/convnet-step00000003.h5"
cp "$corpus/good.h5" "$WORK/auto/convnet-step00000005.h5"   # holds step 2
touch "$WORK/auto/convnet-step00000009.h5.tmp"              # a writer killed midway
auto "$WORK/auto"
code=$?
if [ $code -eq 0 ] && grep -q 'skipping checkpoint .*step00000005.h5: .*named for step 5' "$WORK/out" &&
        grep -q 'skipping checkpoint .*step00000003.h5: .*CRC-32' "$WORK/out" &&
        grep -q 'resumed from .*step00000002.h5 at step 2' "$WORK/out" && ! crashed "$WORK/out"; then
    pass "--resume auto skips the damaged newer files with a warning and resumes step 2"
else
    fail "--resume auto over a mixed directory (exit $code)"; sed 's/^/    /' "$WORK/out"
fi

mkdir -p "$WORK/bad-only"
cp "$corpus/truncated-half.h5" "$WORK/bad-only/convnet-step00000002.h5"
auto "$WORK/bad-only"
code=$?
if [ $code -eq 2 ] && grep -q 'none of the 1 checkpoints' "$WORK/out" &&
        cmp -s "$corpus/truncated-half.h5" "$WORK/bad-only/convnet-step00000002.h5"; then
    pass "--resume auto with only a damaged checkpoint: exit 2, file kept"
else
    fail "--resume auto with only a damaged checkpoint (exit $code)"; sed 's/^/    /' "$WORK/out"
fi

mkdir -p "$WORK/other"
cp "$corpus/other-net.h5" "$WORK/other/convnet-step00000002.h5"
auto "$WORK/other"
code=$?
if [ $code -eq 2 ] && grep -q "checkpoint is for net 'mlp'" "$WORK/out"; then
    pass "--resume auto refuses a checkpoint of another run (exit 2)"
else
    fail "--resume auto over another run's checkpoint (exit $code)"; sed 's/^/    /' "$WORK/out"
fi

auto "$WORK/empty-dir" --steps 1
code=$?
if [ $code -eq 0 ] && grep -q 'no checkpoint of convnet in .*empty-dir, starting fresh' "$WORK/out"; then
    pass "--resume auto without checkpoints starts fresh and says so"
else
    fail "--resume auto on an empty directory (exit $code)"; sed 's/^/    /' "$WORK/out"
fi
finish
