#!/bin/bash
# bench/run.sh - mtrain's training step against PyTorch's, in one run.
#
# Builds what is missing (Release, into build/ or $MTRAIN_BUILD), then
# measures side by side on this machine, batch 128, float32:
#   - the OpenBLAS sgemm peak at 1 and 2 threads (the reference for GFLOP/s)
#   - images/s of a training step (forward, backward, update) of mlp,
#     convnet, allcnn with 1 and 2 threads, for mtrain --oracle gd and
#     --oracle penalized (default solvers), and for PyTorch 1.13 (Debian's
#     python3-torch, the torch.nn models of tests/torch/check_grads.py,
#     torch.optim.SGD with the same lr, momentum, weight decay); peak resident
#     memory of every process (/usr/bin/time -v) against an analytic need
#   - the oracle table: every oracle's step time relative to gd (2 threads)
#   - the pipeline figure: 2 ranks x 1 thread against 1 rank x 2 threads,
#     4 micro-batches, every rank's compute / wait / weight-phase seconds
#   - MPI ping-pong latency and bandwidth and per-op costs (bench/scaling.md)
# and writes bench/results/<date>.md (raw logs in bench/results/<date>.tmp/).
#
# mtrain's step times come from the executable's own metrics.csv: the time
# between consecutive rows (elapsed_s), medians over the timed steps; the
# first WARMUP steps (buffers grow, pages fault in) and the last step (it is
# a logged step, which also measures the stage figures) are not counted.
#
# Every command here runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset
# (OpenBLAS picks its kernel for this CPU) and the OpenMP build of OpenBLAS
# first on LD_LIBRARY_PATH; nothing outside this script's commands changes.
#
# Before every measurement the script waits (up to QUIET_WAIT seconds each,
# default 30, and QUIET_BUDGET seconds in all, default 240) for the machine
# to be idle (other processes using less than a quarter of a core over one
# second), and records what others used while it ran, so that a row
# measured on shared cores can be told apart.
#
# A measurement during which others still took more than a quarter of a core
# is repeated (RETRIES times at most, default 2) and the least disturbed
# attempt kept.
#
# Knobs (environment): NETS (default "mlp convnet allcnn"), STEPS (timed
# steps of the main table and the pipeline figure; default 20 for mlp, 60 for
# convnet, 10 for allcnn: at least ~1 s of steps per row), WARMUP (2),
# PEN_ALLCNN_STEPS (timed steps of allcnn penalized, default 3: ~10-20 s
# each), ORACLE_STEPS (timed steps of the oracle table's other oracles, 3),
# RESULTS_NAME (file name under bench/results/, default the date).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${MTRAIN_BUILD:-$root/build}
# Timed steps of NET in the main table and the pipeline figure.
net_steps() {
    if [ -n "${STEPS:-}" ]; then echo "$STEPS"; return; fi
    case $1 in mlp) echo 20 ;; convnet) echo 60 ;; *) echo 10 ;; esac
}
warmup=${WARMUP:-2}
pen_allcnn=${PEN_ALLCNN_STEPS:-3}
oracle_steps=${ORACLE_STEPS:-3}
nets=${NETS:-mlp convnet allcnn}
stamp=${RESULTS_NAME:-$(date +%F)}
raw=$root/bench/results/$stamp.tmp
out=$root/bench/results/$stamp.md
blas_dir=/usr/lib/x86_64-linux-gnu/openblas-openmp

# The environment of every measured command.
benv=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "LD_LIBRARY_PATH=$blas_dir")
if [ "$(id -u)" = 0 ]; then
    benv+=(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)
fi
mpirun_cmd=(mpirun --oversubscribe --bind-to none)

say() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

# Busy and total jiffies of the whole machine (/proc/stat), to tell how much
# CPU other processes took while a measurement ran.
cpu_snap() { awk '/^cpu /{t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat; }

# Wait until other processes leave the cores (busy < 0.25 core over 1 s), at
# most QUIET_WAIT seconds (and QUIET_BUDGET over the run); logged.
quiet_left=${QUIET_BUDGET:-240}
wait_quiet() {
    local t=0 a b
    while [ "$t" -lt "${QUIET_WAIT:-30}" ] && [ "$quiet_left" -gt 0 ]; do
        a=$(cpu_snap)
        sleep 1
        b=$(cpu_snap)
        if awk -v a="$a" -v b="$b" -v n="$(nproc)" 'BEGIN { split(a, x); split(b, y);
                exit !((y[1] - x[1]) / (y[2] - x[2] + 1e-9) * n < 0.25) }'; then
            break
        fi
        t=$((t + 1))
        quiet_left=$((quiet_left - 1))
    done
    [ "$t" -gt 0 ] && say "  (waited ${t} s for idle cores)"
    return 0
}

# ---- build ----------------------------------------------------------------
say "building into $build"
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" -j2 --target mtrain sgemm_peak pingpong bench_pipeline bench_ops \
    >/dev/null

rm -rf "$raw"
mkdir -p "$raw"
cd "$root" # mtrain finds CIFAR-10 from here (or through $MTRAIN_DATA)
t_begin=$(date +%s)

# ---- context ----------------------------------------------------------------
{
    echo "date $(date '+%F %T %Z')"
    echo "commit $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet || echo '+dirty')"
    echo "cpu $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
    echo "load_before $(cut -d' ' -f1-3 /proc/loadavg)"
    per_net=$(for n in mlp convnet allcnn; do printf '%s:%s,' "$n" "$(net_steps "$n")"; done)
    echo "settings steps=${per_net%,} warmup=$warmup pen_allcnn_steps=$pen_allcnn" \
        "oracle_steps=$oracle_steps"
} >"$raw/context.txt"

# ---- sgemm peak (again at the end: the peak is the better of the two) ------
sgemm_peak() {
    for t in 1 2; do
        say "sgemm peak, $t thread(s)"
        wait_quiet
        "${benv[@]}" "$build/bench/sgemm_peak" "$t" 2048 9 >>"$raw/sgemm-t$t.txt"
    done
}
sgemm_peak

# Cores' worth of CPU other processes took during measurement NAME.
others_of() {
    /usr/bin/python3 -c "import sys; sys.path.insert(0, '$root/bench'); import report
o = report.others_cores('$raw', '$1', open('$raw/$1.log').read())
print('%.2f' % (o if o is not None else 0))"
}

# Run "$@" as measurement NAME on THREADS threads (log, cpu snapshots, run
# dir) up to 1 + RETRIES (default 2) times while other processes took more
# than the free cores plus a quarter of one; the least disturbed attempt is
# kept.
measure() {
    local name=$1 threads=$2 try best=9 o before limit
    shift 2
    # others may use the cores this measurement leaves free
    limit=$(awk -v n="$(nproc)" -v t="$threads" 'BEGIN { print (n - t) + 0.25 }')
    for try in $(seq 0 "${RETRIES:-2}"); do
        wait_quiet
        before=$(cpu_snap)
        rm -rf "$raw/ckpt" # mtrain's end-of-run checkpoint: thrown away, and a
                           # fresh run refuses a directory holding its net's
        "$@" >"$raw/$name.log.try" 2>&1
        echo "$before $(cpu_snap)" >"$raw/$name.cpu.try"
        mv "$raw/$name.log.try" "$raw/$name.log.new"
        cp "$raw/$name.cpu.try" "$raw/$name.cpu"
        cp "$raw/$name.log.new" "$raw/$name.log"
        o=$(others_of "$name")
        if awk -v o="$o" -v b="$best" 'BEGIN { exit !(o < b) }'; then
            best=$o
            mv "$raw/$name.log.new" "$raw/$name.log.best"
            mv "$raw/$name.cpu.try" "$raw/$name.cpu.best"
            rm -rf "$raw/run-$name.best"
            [ -d "$raw/run-$name" ] && cp -r "$raw/run-$name" "$raw/run-$name.best"
        fi
        if awk -v o="$o" -v l="$limit" 'BEGIN { exit !(o <= l) }'; then
            break
        fi
        say "  (others took $o cores: measuring again)"
    done
    mv "$raw/$name.log.best" "$raw/$name.log"
    mv "$raw/$name.cpu.best" "$raw/$name.cpu"
    rm -f "$raw/$name.log.new" "$raw/$name.cpu.try"
    if [ -d "$raw/run-$name.best" ]; then
        rm -rf "$raw/run-$name"
        mv "$raw/run-$name.best" "$raw/run-$name"
    fi
}

# One mtrain run: NET ORACLE THREADS TIMED_STEPS WARMUP_STEPS NAME
run_mtrain() {
    local net=$1 oracle=$2 t=$3 n=$4 w=$5 name=$6
    say "mtrain $net $oracle, $t thread(s), $w + $n steps"
    echo "timed $n warmup $w" >"$raw/$name.steps"
    measure "$name" "$t" "${benv[@]}" /usr/bin/time -v "$build/mtrain" --net "$net" \
        --oracle "$oracle" --threads "$t" --batch 128 --steps $((w + n + 1)) \
        --eval-every 1000000 --log-every 1000000 --run-dir "$raw/run-$name" \
        --checkpoint-dir "$raw/ckpt"
}

run_torch() {
    local net=$1 t=$2 n=$3 w=$4 name=$5
    say "torch $net, $t thread(s), $w + $n steps"
    measure "$name" "$t" "${benv[@]}" /usr/bin/time -v /usr/bin/python3 \
        "$root/bench/torch_step.py" \
        --net "$net" --threads "$t" --steps "$n" --warmup "$w" --backends
}

# mtrain's resident memory before any model exists (executable and libraries)
"${benv[@]}" /usr/bin/time -v "$build/mtrain" --version >"$raw/mtrain-base.log" 2>&1

# ---- main table: interleaved so that both sides see the same machine ---------
for net in $nets; do
    steps=$(net_steps "$net")
    for t in 1 2; do
        run_torch "$net" "$t" "$steps" "$warmup" "torch-$net-t$t"
        run_mtrain "$net" gd "$t" "$steps" "$warmup" "gd-$net-t$t"
        if [ "$net" = allcnn ]; then
            RETRIES=0 run_mtrain "$net" penalized "$t" "$pen_allcnn" 1 "penalized-$net-t$t"
        else
            RETRIES=0 run_mtrain "$net" penalized "$t" "$steps" "$warmup" "penalized-$net-t$t"
        fi
    done
done

# ---- oracle table (gd and penalized come from the 2-thread rows above) ------
for net in $nets; do
    for oracle in moreau proxprop dtp; do
        RETRIES=0 run_mtrain "$net" "$oracle" 2 "$oracle_steps" 1 "$oracle-$net-t2"
    done
done

# ---- pipeline figure ---------------------------------------------------------
for net in $nets; do
    [ "$net" = convnet ] && continue
    say "pipeline $net: 2 ranks x 1 thread, 1 rank x 2 threads, 4 micro-batches"
    for r in 2 1; do
        wait_quiet
        before=$(cpu_snap)
        "${benv[@]}" "${mpirun_cmd[@]}" -n "$r" "$build/bench/bench_pipeline" --net "$net" \
            --oracle gd --threads $((3 - r)) --micro-batches 4 --steps "$(net_steps "$net")" \
            >"$raw/pipe-$net-r$r.txt"
        echo "cpu $before $(cpu_snap)" >>"$raw/pipe-$net-r$r.txt"
    done
done

# ---- inputs of the scaling model ------------------------------------------------
say "MPI ping-pong, per-op costs"
"${benv[@]}" "${mpirun_cmd[@]}" -n 2 "$build/bench/pingpong" 50 >"$raw/pingpong.txt"
for net in $nets; do
    "${benv[@]}" "$build/bench/bench_ops" "$net" 1 3 >"$raw/ops-$net.txt"
done

sgemm_peak
echo "load_after $(cut -d' ' -f1-3 /proc/loadavg)" >>"$raw/context.txt"
echo "wall_s $(($(date +%s) - t_begin))" >>"$raw/context.txt"
/usr/bin/python3 "$root/bench/report.py" "$raw" >"$out"
/usr/bin/python3 "$root/bench/scaling.py" "$raw" >>"$out"
rm -rf "$raw/ckpt"
say "wrote $out"
cat "$out"
