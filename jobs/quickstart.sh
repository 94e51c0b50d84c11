#!/usr/bin/env bash
# jobs/quickstart.sh - from a fresh Debian 12 machine (as root): install what
# is missing, build, find CIFAR-10, train All-CNN-C for 20 steps on 8 MPI
# ranks with the penalized oracle, then resume from the checkpoint it wrote
# and train 5 more steps.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

bash jobs/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "${MTRAIN_BUILD_JOBS:-2}" --target mtrain

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ranks=${MTRAIN_RANKS:-8}
ckpt=checkpoints/quickstart
run=runs/quickstart
rm -rf "$ckpt" "$run"
# 8 ranks on a small machine: allow more ranks than cores, and let each rank
# pick its thread count (cores / ranks) instead of binding it to one core.
mpi=(mpirun -n "$ranks" --oversubscribe --bind-to none)

echo "== training allcnn for 20 steps on $ranks ranks"
"${mpi[@]}" build/mtrain --net allcnn --steps 20 --log-every 5 --eval-every 20 \
    --checkpoint-dir "$ckpt" --run-dir "$run" "$@"

latest="$ckpt/$(cat "$ckpt/latest")"
echo "== resuming from $latest for 5 more steps"
"${mpi[@]}" build/mtrain --net allcnn --steps 25 --log-every 5 --eval-every 25 \
    --checkpoint-dir "$ckpt" --run-dir "$run" --resume "$latest" "$@"

echo "== done: metrics in $run/metrics.csv, checkpoints in $ckpt/"
