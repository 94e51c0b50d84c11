#!/usr/bin/env bash
# jobs/paper/pendulum.sh - the paper's pendulum swing-up experiment
# (ALGORITHMS.md section 8; the paper's Fig. 2 and the grid searches of its
# appendix D.2) with mtrain --task pendulum, for horizons T = 50 and 100:
#   1. grid searches on powers of 2: the GD step (--oracle gd --lr), M-GD's
#      gamma (--oracle moreau --sigma 0.5), and (kappa, sigma, gamma) of
#      penalized (kappa 1 or 4). The best value is the one whose cost stays
#      below 1e-2 from the earliest iteration on; ties, and runs that never
#      get there, are ranked by the final cost; diverged runs (exit 1, a
#      non-finite cost) rank last;
#   2. the comparison: GD with the paper's steps (1 for T = 50, 0.25 for
#      T = 100) and with the grid's best step, M-GD with the paper's
#      sigma 0.5, gamma 2^7 and with the grid's best gamma, and penalized with
#      mtrain's defaults for the task;
#   3. a figure like the paper's Fig. 2 (cost against iteration, log scale,
#      one panel per horizon) and a summary (table and grid results).
# Usage: jobs/paper/pendulum.sh [OUTPUT_DIR]   (default runs/paper-pendulum)
# Environment: ITERATIONS (default 300), MTRAIN_RANKS (ranks per run,
# default 1), MTRAIN_JOBS (runs at once, default 2). About 2 minutes on
# 2 cores (154 grid runs, 10 comparison runs). Builds mtrain, and installs
# gnuplot (gnuplot-nox) through jobs/setup.sh, if needed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$here"
out=${1:-runs/paper-pendulum}
iters=${ITERATIONS:-300}
ranks=${MTRAIN_RANKS:-1}
max_jobs=${MTRAIN_JOBS:-2}
t_begin=$(date +%s)

# ---- build (and gnuplot) if needed -----------------------------------------
if ! command -v gnuplot >/dev/null || ! command -v cmake >/dev/null; then
    bash jobs/setup.sh
fi
[ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "${MTRAIN_BUILD_JOBS:-2}" --target mtrain >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ "$ranks" -gt 1 ]; then
    mt=(mpirun -n "$ranks" --oversubscribe --bind-to none build/mtrain)
else
    mt=(build/mtrain)
fi
rm -rf "$out"
mkdir -p "$out/grid" "$out/compare"

# run DIR ARGS...: one run of the task in the background (at most max_jobs
# at once); DIR/status receives its exit code, DIR/log its output.
run() {
    local dir=$1; shift
    while [ "$(jobs -rp | wc -l)" -ge "$max_jobs" ]; do wait -n || true; done
    mkdir -p "$dir"
    ( rc=0
      "${mt[@]}" --task pendulum --iterations "$iters" --log-every 100 --run-dir "$dir" \
          --checkpoint-dir "$dir/ck" "$@" >"$dir/log" 2>&1 || rc=$?
      echo "$rc" >"$dir/status" ) &
}

# summary DIR: status c10 c50 c100 cN first settle. first = first iteration
# with cost < 1e-2, settle = first iteration from which it stays below,
# "-" when never; c<k> = "-" when the run stopped before iteration k.
summary() {
    awk -F, -v st="$(cat "$1/status")" -v N="$iters" '
        NR > 1 { c[$1] = $2; last = $1
                 finite = $2 ~ /^[0-9.eE+-]+$/
                 if (finite && $2 + 0 < 1e-2) { if (first == "") first = $1
                                                if (settle == "") settle = $1 }
                 else settle = "" }
        function at(k) { return (k in c) ? sprintf("%.3g", c[k]) : "-" }
        END { if (st != 0) settle = ""
              printf "%s %s %s %s %s %s %s\n", st == 0 ? "ok" : "diverged", at(10), at(50),
                     at(100), st == 0 ? at(N) : "diverged@" last,
                     first == "" ? "-" : first, settle == "" ? "-" : settle }' \
        "$1/metrics.csv"
}

pow2() { awk -v k="$1" 'BEGIN { printf "%.17g", 2 ^ k }'; }

# ---- 1. grid searches --------------------------------------------------------
echo "== grid searches ($iters iterations per run, $max_jobs runs at once)"
for T in 50 100; do
    for k in $(seq -12 1); do
        run "$out/grid/T$T/gd/$k" --horizon "$T" --oracle gd --lr "$(pow2 "$k")"
    done
    for k in $(seq 0 12); do
        run "$out/grid/T$T/moreau/$k" --horizon "$T" --oracle moreau --sigma 0.5 \
            --gamma "$(pow2 "$k")"
    done
    for kk in 0 2; do
        for ks in $(seq 2 6); do
            for kg in $(seq 2 6); do
                run "$out/grid/T$T/penalized/$kk:$ks:$kg" --horizon "$T" --oracle penalized \
                    --kappa "$(pow2 "$kk")" --sigma "$(pow2 "$ks")" --gamma "$(pow2 "$kg")"
            done
        done
    done
done
wait

# grid.csv: T, method, exponent(s), status, costs, first and settling iteration
echo "T,method,log2_param,status,cost_10,cost_50,cost_100,cost_final,first_1e-2,stays_1e-2" \
    >"$out/grid.csv"
for dir in "$out"/grid/T*/*/*; do
    IFS=/ read -r -a part <<<"${dir#"$out"/grid/}"
    echo "${part[0]#T},${part[1]},${part[2]},$(summary "$dir" | tr ' ' ,)" >>"$out/grid.csv"
done

# best T METHOD: the exponent(s) ranked first (see the file comment).
best() {
    awk -F, -v T="$1" -v m="$2" '
        NR > 1 && $1 == T && $2 == m {
            s = ($10 == "-") ? 1e9 : $10; f = ($4 == "ok") ? $8 + 0 : 1e300
            if (best == "" || s < bs || (s == bs && f < bf)) { best = $3; bs = s; bf = f } }
        END { print best }' "$out/grid.csv"
}

# ---- 2. the comparison -------------------------------------------------------
echo "== comparison"
declare -A label
for T in 50 100; do
    paper_lr=$([ "$T" = 50 ] && echo 1 || echo 0.25)
    k_gd=$(best "$T" gd)
    k_m=$(best "$T" moreau)
    run "$out/compare/T$T/gd-paper" --horizon "$T" --oracle gd --lr "$paper_lr"
    run "$out/compare/T$T/gd-grid" --horizon "$T" --oracle gd --lr "$(pow2 "$k_gd")"
    run "$out/compare/T$T/moreau-paper" --horizon "$T" --oracle moreau --sigma 0.5 --gamma 128
    run "$out/compare/T$T/moreau-grid" --horizon "$T" --oracle moreau --sigma 0.5 \
        --gamma "$(pow2 "$k_m")"
    run "$out/compare/T$T/penalized" --horizon "$T" --oracle penalized
    label[T$T/gd-paper]="GD, paper's step $paper_lr"
    label[T$T/gd-grid]="GD, grid's step 2^{$k_gd}"
    label[T$T/moreau-paper]="M-GD, paper's sigma 0.5, gamma 2^7"
    label[T$T/moreau-grid]="M-GD, sigma 0.5, grid's gamma 2^{$k_m}"
    label[T$T/penalized]="penalized, defaults: kappa 4, sigma 4, gamma 8"
done
wait
methods=(gd-paper gd-grid moreau-paper moreau-grid penalized)

# ---- 3. figure and summary ---------------------------------------------------
# finite costs only (a diverged run ends with inf or nan), for gnuplot
for T in 50 100; do
    for m in "${methods[@]}"; do
        awk -F, 'NR > 1 && $2 + 0 == $2 && $2 + 0 < 1e30 { print $1, $2 }' \
            "$out/compare/T$T/$m/metrics.csv" >"$out/compare/T$T/$m/cost.dat"
    done
done
{
    echo "set terminal png size 1400,560 font ',11'"
    echo "set output '$out/pendulum.png'"
    echo "set multiplot layout 1,2 title 'Pendulum swing-up: cost h(x_T) against iterations'"
    echo "set logscale y; set format y '10^{%T}'; set yrange [1e-15:1e6]"
    echo "set xlabel 'iteration'; set ylabel 'cost'; set grid; set key top right"
    for T in 50 100; do
        echo "set title 'horizon T = $T'"
        plot="plot"
        for m in "${methods[@]}"; do
            plot+=" '$out/compare/T$T/$m/cost.dat' using 1:2 with lines lw 2"
            plot+=" title \"${label[T$T/$m]}\","
        done
        echo "${plot%,}"
    done
    echo "unset multiplot"
} >"$out/pendulum.gp"
gnuplot "$out/pendulum.gp"

{
    echo "# Pendulum swing-up, $iters iterations per run"
    echo
    echo "| T | method | cost after 10 | 50 | 100 | $iters | first < 1e-2 | stays < 1e-2 from |"
    echo "|---|---|---|---|---|---|---|---|"
    for T in 50 100; do
        for m in "${methods[@]}"; do
            read -r _ c10 c50 c100 cN first settle <<<"$(summary "$out/compare/T$T/$m")"
            echo "| $T | ${label[T$T/$m]} | $c10 | $c50 | $c100 | $cN | $first | $settle |" |
                tr -d '{}'
        done
    done
    echo
    echo "Grid searches (powers of 2; best = earliest to stay below 1e-2, then lowest"
    echo "final cost):"
    echo
    echo "| T | parameter | best found | paper |"
    echo "|---|---|---|---|"
    for T in 50 100; do
        echo "| $T | GD step | 2^$(best "$T" gd) | $([ "$T" = 50 ] && echo '2^0' || echo '2^-2') |"
        echo "| $T | M-GD gamma (sigma 0.5) | 2^$(best "$T" moreau) | 2^7 |"
        echo "| $T | penalized, log2 of kappa:sigma:gamma | $(best "$T" penalized) | - |"
    done
} >"$out/summary.md"

cat "$out/summary.md"
echo
echo "== figure $out/pendulum.png, grid $out/grid.csv, runs under $out/{grid,compare}"
echo "== $(($(date +%s) - t_begin)) s"
