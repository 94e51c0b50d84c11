#!/usr/bin/env bash
# Bad options and bad data: one clear line naming the value, exit code 2 on
# every rank, no hang (each run is limited to 60 s), nothing written.
source "$(dirname "$0")/common.sh"
MT_TIMEOUT=60

# every expect_usage run reads the test data set
USAGE_ARGS=(--data "$CIFAR")

for np in 1 2; do
    expect_usage $np "--lr 'abc'" --lr abc
    expect_usage $np "--lr '-1'" --lr -1
    expect_usage $np "--kappa 'nan'" --kappa nan
    expect_usage $np "--batch '0'" --batch 0
    expect_usage $np "--net 'resnet'" --net resnet
    expect_usage $np "--oracle 'sgd'" --oracle sgd
    expect_usage $np "--inner 'cg:0'" --inner cg:0
    expect_usage $np "--inner ','" --inner ,
    expect_usage $np "unknown option '--frobnicate'" --frobnicate
    expect_usage $np "needs a value" --lr
    expect_usage $np "--steps '1.5'" --steps 1.5
done
expect_usage 2 "--micro-batches 5" --net convnet --batch 128 --micro-batches 5
expect_usage 2 "--nesterov applies to --optim sgd, not adam" --optim adam --nesterov
expect_usage 1 "--momentum applies to --optim sgd, not plain" --optim plain --momentum 0.5
expect_usage 1 "--nesterov needs a momentum > 0" --nesterov --momentum 0
# hyper-parameters of other oracles than the one chosen
expect_usage 2 "--kappa applies to --oracle penalized, not gd" --oracle gd --kappa 0.5
expect_usage 1 "--gamma applies to --oracle penalized, moreau or dtp, not proxprop" \
    --oracle proxprop --gamma 2
expect_usage 1 "--inner applies to --oracle penalized, moreau, proxprop or dtp, not gd" \
    --oracle gd --inner cg:2
expect_usage 2 "--sigma-schedule applies to --oracle penalized or moreau, not dtp" \
    --oracle dtp --sigma-schedule geometric
expect_usage 1 "--dtp-rho applies to --oracle dtp, not moreau" --oracle moreau --dtp-rho 0.2
expect_usage 5 "use between 1 and 4 ranks" --net mlp --steps 1 --threads 1
expect_usage 8 "use between 1 and 4 ranks" --net convnet --steps 1 --threads 1
expect_usage 2 "does not exist" --data "$WORK/nowhere" --steps 1

# A data file whose size is not a multiple of 3073 bytes.
mkdir -p "$WORK/baddata"
head -c 5000 "$CIFAR/data_batch_1.bin" >"$WORK/baddata/data_batch_1.bin"
cp "$CIFAR/test_batch.bin" "$WORK/baddata/"
expect_usage 2 "3073" --data "$WORK/baddata" --net convnet --steps 1 --threads 1

# Named pipes where a data file or the metrics file belongs: refused at once
# (opening one would wait for a writer forever; each run is limited to
# MT_TIMEOUT seconds, so a hang fails).
mkdir -p "$WORK/fifodata"
mkfifo "$WORK/fifodata/data_batch_1.bin"
cp "$CIFAR/test_batch.bin" "$WORK/fifodata/"
expect_usage 2 "data_batch_1.bin: not a regular file" --data "$WORK/fifodata" --net convnet \
    --steps 1 --threads 1
for task in "--net convnet --steps 1 --data $CIFAR" "--task pendulum --iterations 1"; do
    mkdir -p "$WORK/fiforun"
    mkfifo "$WORK/fiforun/metrics.csv"
    mt 2 $task --threads 1 --run-dir "$WORK/fiforun" --checkpoint-dir "$WORK/fifock" \
        >"$WORK/out" 2>&1
    code=$?
    if [ $code -eq 2 ] && grep -q "metrics.csv: not a regular file" "$WORK/out"; then
        pass "${task%% --[sd]*}, metrics.csv a named pipe: exit 2: $(grep 'mtrain:' "$WORK/out")"
    else
        fail "$task, metrics.csv a named pipe: exit $code"; sed 's/^/    /' "$WORK/out"
    fi
    rm -rf "$WORK/fiforun" "$WORK/fifock"
done

# A checkpoint that is not one.
echo "not hdf5" >"$WORK/fake.h5"
expect_usage 2 "fake.h5" --net convnet --steps 1 --threads 1 --resume "$WORK/fake.h5"
rm -f "$WORK/fake.h5" "$WORK/out"
finish
