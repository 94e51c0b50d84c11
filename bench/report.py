#!/usr/bin/python3
"""report.py - turn the raw logs of bench/run.sh into the markdown report.

usage: report.py RAW_DIR > bench/results/<date>.md

Conventions (printed with the tables):
  step time     median over the timed steps; mtrain: differences of
                metrics.csv's elapsed_s between consecutive rows (the first
                WARMUP steps and the last, logged, step left out); PyTorch:
                perf_counter around zero_grad, forward, loss, backward, step.
  GFLOP/s       3 x forward FLOPs x batch / step time: forward, input
                gradient and weight gradient each counted as one forward
                (conv and dense multiply-adds x 2, pooling adds; ReLU, loss
                and the update not counted). For penalized this is the
                gd-equivalent rate (its subproblems do more work).
  % of peak     GFLOP/s over the best OpenBLAS sgemm (2048^3) at the same
                thread count, measured in the same run.
  memory        peak resident set (/usr/bin/time -v) against an analytic need:
                weights + directions + momentum (3 x 4 bytes per parameter),
                stored activations, adjoints, data set, kernel workspaces
                (mtrain); weights + gradients + momentum, the batch, the
                tensors autograd saved for backward (torch, measured through
                saved_tensors_hooks).
"""
import csv
import glob
import math
import os
import re
import statistics
import sys

BATCH = 128
NETS = ("mlp", "convnet", "allcnn")
ORACLES = ("gd", "penalized", "moreau", "proxprop", "dtp")


def read(path):
    with open(path) as f:
        return f.read()


def kv(line):
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S+)", line))


def cpu_pct(text):
    m = re.search(r"Percent of CPU this job got: (\d+)%", text)
    return int(m.group(1)) if m else None


def others_cores(raw, name, text):
    """Cores' worth of CPU that other processes used during a run: the
    machine's busy time (/proc/stat, before and after) minus this process's
    user + system time, over the wall time."""
    try:
        b0, t0, b1, t1 = map(int, read(os.path.join(raw, name + ".cpu")).split())
        user = float(re.search(r"User time \(seconds\): ([\d.]+)", text).group(1))
        syst = float(re.search(r"System time \(seconds\): ([\d.]+)", text).group(1))
        wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
    except (OSError, ValueError, AttributeError):
        return None
    secs = 0.0
    for part in wall.split(":"):
        secs = 60 * secs + float(part)
    n_cpu = os.cpu_count() or 1
    busy = (b1 - b0) / max(t1 - t0, 1) * n_cpu  # cores busy on average
    return max(busy - (user + syst) / max(secs, 1e-9), 0.0)


def maxrss_kb(text):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return int(m.group(1)) if m else None


# ---- mtrain logs ---------------------------------------------------------------

def model_table(text):
    """[(name, kind, out_shape(c,h,w), params, mflop)] from mtrain's start log."""
    rows = []
    for m in re.finditer(r"^\s+(\S+)\s+(\w+)\s+\d+\s+(\d+)x(\d+)x(\d+)\s+(\d+)\s+([\d.]+)$",
                         text, re.M):
        rows.append((m.group(1), m.group(2), tuple(int(m.group(i)) for i in (3, 4, 5)),
                     int(m.group(6)), float(m.group(7))))
    return rows


def mtrain_need(text, threads, opt_states=1):
    """Analytic bytes of a gd step in mtrain and its parts."""
    rows = model_table(text)
    sizes = [3 * 32 * 32] + [c * h * w for _, _, (c, h, w), _, _ in rows]
    params = sum(r[3] for r in rows)
    parts = {
        "weights+dirs+momentum": 4 * params * (2 + opt_states),
        "activations": 4 * BATCH * sum(sizes),
        "adjoints": 4 * BATCH * sum(sizes[1:]),
    }
    m = re.search(r"\((\d+) training, (\d+) test images\)", text)
    parts["data set"] = (int(m.group(1)) + int(m.group(2))) * (3072 + 4) if m else 0
    ws = 0
    for i, (_, kind, (c, h, w), p, _) in enumerate(rows):
        if kind == "dense":
            ws = max(ws, 4 * BATCH * (sizes[i] + c))
        elif kind == "conv2d":
            kk = p // c - 1                           # c_in k k
            ws += 4 * (kk * c * (BATCH // 32 + 1))    # packed weights + block partials
            ws += 4 * threads * 3 * 256 * 1024        # chunk buffers (~1 MiB each)
    parts["workspaces (est.)"] = ws
    return sum(parts.values()), parts


def solver_need(text, threads):
    """Analytic bytes the penalized oracle's default solvers add to a gd step:
    the dense input problems' cached factors (weights copy and K's Cholesky
    factor, kept while the weights do not change) and the largest transient
    of a step: a dense weight problem's double-precision buffers (dual side,
    batch < inputs), cg:3's vectors on a conv input or weight problem (r, p,
    J^T J p, J p, and z - y with its residual in a step that reports them),
    or a reporting step's penalty (one op's trial weights, shifted inputs
    and outputs). The first stage's first op with parameters has no input
    problem (its input is the data)."""
    rows = model_table(text)
    sizes = [3 * 32 * 32] + [c * h * w for _, _, (c, h, w), _, _ in rows]
    first = next(i for i, r in enumerate(rows) if r[3] > 0)
    cached, transient = 0, 0
    for i, (_, kind, _, p, _) in enumerate(rows):
        d_in, d_out = sizes[i], sizes[i + 1]
        if kind == "dense":
            if i > first:
                dim = min(d_in, d_out)
                cached += 4 * d_in * d_out + 8 * dim * dim
                transient = max(transient, 12 * BATCH * dim)
            transient = max(transient, 8 * BATCH * BATCH + 8 * BATCH * d_in +
                            12 * BATCH * d_out + threads * 8 * 64 * d_in)
        elif kind == "conv2d":
            if i > first:
                transient = max(transient, 4 * BATCH * (4 * d_in + 2 * d_out))
            transient = max(transient, 4 * (3 * p + 2 * BATCH * d_out))
    penalty = max(4 * r[3] + 4 * BATCH * (sizes[i] + sizes[i + 1]) for i, r in enumerate(rows))
    return cached + max(transient, penalty), {"factors": cached,
                                              "largest transient": max(transient, penalty)}


def step_times(run_dir, warmup):
    """Per-step seconds of the timed steps from metrics.csv."""
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        el = [float(r["elapsed_s"]) for r in csv.DictReader(f) if r["kind"] == "train"]
    dt = [b - a for a, b in zip([0.0] + el, el)]
    return dt[warmup:-1]


def mtrain_result(raw, name):
    log = os.path.join(raw, name + ".log")
    if not os.path.exists(log):
        return None
    text = read(log)
    timed, warm = map(int, read(os.path.join(raw, name + ".steps")).split()[1::2])
    try:
        dt = step_times(os.path.join(raw, "run-" + name), warm)
    except (OSError, KeyError, ValueError):
        return {"error": text.strip().splitlines()[-1:] or ["no output"]}
    mflop = sum(r[4] for r in model_table(text))
    threads = int(re.search(r"x (\d+) threads?", text).group(1))
    need, parts = mtrain_need(text, threads)
    if "oracle=penalized" in text:
        extra, more = solver_need(text, threads)
        need += extra
        parts.update(more)
    return {"step": statistics.median(dt), "n": len(dt), "warmup": warm, "mflop": mflop,
            "rss": maxrss_kb(text), "need": need, "parts": parts, "times": dt,
            "cpu": cpu_pct(text), "others": others_cores(raw, name, text)}


def torch_result(raw, name):
    path = os.path.join(raw, name + ".log")
    if not os.path.exists(path):
        return None
    text = read(path)
    line = next((ln for ln in text.splitlines() if ln.startswith("torch ")
                 and "median_s=" in ln), None)
    if not line:
        return {"error": text.strip().splitlines()[-1:]}
    d = kv(line)
    return {"step": float(d["median_s"]), "n": int(d["steps"]), "rss": maxrss_kb(text),
            "need": int(d["need_bytes"]), "base": int(d["base_kb"]), "text": text,
            "cpu": cpu_pct(text), "others": others_cores(raw, name, text)}


# ---- formatting -------------------------------------------------------------------

def fmt(x, spec=".0f"):
    return "-" if x is None else format(x, spec)


def peaks(raw):
    """{threads: (best, median)} of the better of the sgemm runs (start, end)."""
    out = {}
    for t in (1, 2):
        p = os.path.join(raw, f"sgemm-t{t}.txt")
        if os.path.exists(p):
            runs = [kv(ln) for ln in read(p).splitlines() if ln.startswith("sgemm ")]
            best = max(runs, key=lambda d: float(d["best_gflops"]))
            out[t] = (float(best["best_gflops"]), float(best["median_gflops"]),
                      [float(d["best_gflops"]) for d in runs])
    return out


def header(raw, pk):
    ctx = read(os.path.join(raw, "context.txt")).splitlines()
    print(f"# Benchmark {ctx[0].split(' ', 1)[1]}\n")
    print("Generated by `bench/run.sh` (raw logs in `bench/results/<date>.tmp/`, not kept).\n")
    for line in ctx[1:]:
        print(f"- {line}")
    cfg = read(os.path.join(raw, "sgemm-t1.txt")).splitlines()[0]
    print(f"- {cfg}")
    t = glob.glob(os.path.join(raw, "torch-convnet-t2.log"))
    if t:
        for ln in read(t[0]).splitlines():
            if ln.startswith("torch ops") or ln.startswith("torch libraries"):
                print(f"- {ln}")
    print("\n## sgemm peak (OpenBLAS, 2048^3, wall clock, 9 runs at the start and 9 at "
          "the end; the peak is the better)\n")
    print("| threads | peak (best) GFLOP/s | median of that set | best of each set |\n"
          "|---|---|---|---|")
    for t, (b, m, each) in sorted(pk.items()):
        print(f"| {t} | {b:.1f} | {m:.1f} | {', '.join(f'{v:.1f}' for v in each)} |")


def main_table(raw, pk):
    print("\n## Training step, batch 128, float32 (images/s, higher is better)\n")
    print("Step time: median of the timed steps (count in brackets). GFLOP/s = 3 x forward "
          "FLOPs x batch / step time; % = of the sgemm peak at the same thread count. "
          "cpu = the process's CPU time over its wall time (/usr/bin/time; 100% = one core, "
          "whole process including start-up), then the cores' worth of CPU that other "
          "processes took meanwhile (/proc/stat): a 2-thread row with others > 0.2 ran on "
          "cores shared with other jobs.\n")
    print("| net | threads | torch img/s (cpu, others) | mtrain gd img/s (cpu, others) | "
          "gd / torch | mtrain "
          "penalized img/s | penalized / torch | gd GFLOP/s (% peak) | torch GFLOP/s (% peak) |")
    print("|---|---|---|---|---|---|---|---|---|")
    results = {}
    for net in NETS:
        for t in (1, 2):
            tr = torch_result(raw, f"torch-{net}-t{t}")
            gd = mtrain_result(raw, f"gd-{net}-t{t}")
            pen = mtrain_result(raw, f"penalized-{net}-t{t}")
            if not (tr or gd or pen):
                continue
            results[(net, t)] = (tr, gd, pen)
            peak = pk.get(t, (None,))[0]

            def ips(r):
                return BATCH / r["step"] if r and "step" in r else None

            def gf(r, mflop):
                return 3 * mflop * BATCH / 1e3 / r["step"] if r and "step" in r else None

            mflop = gd["mflop"] if gd and "mflop" in gd else None
            g_gf = gf(gd, mflop) if mflop else None
            t_gf = gf(tr, mflop) if mflop else None

            def ratio(a, b):
                return f"{a / b:.2f}" if a and b else "-"

            def pct(x):
                return f"{fmt(x, '.0f')} ({100 * x / peak:.0f}%)" if x and peak else "-"

            def n(r):
                return f" [{r['n']}]" if r and "n" in r else ""

            def c(r):
                if not r or r.get("cpu") is None:
                    return ""
                o = r.get("others")
                return f" ({r['cpu']}%" + (f", others {o:.1f})" if o is not None else ")")

            print(f"| {net} | {t} | {fmt(ips(tr))}{n(tr)}{c(tr)} | {fmt(ips(gd))}{n(gd)}{c(gd)} | "
                  f"{ratio(ips(gd), ips(tr))} | {fmt(ips(pen), '.1f')}{n(pen)} | "
                  f"{ratio(ips(pen), ips(tr))} | {pct(g_gf)} | {pct(t_gf)} |")
    return results


def memory_table(raw, results):
    base_file = os.path.join(raw, "mtrain-base.log")
    base_kb = maxrss_kb(read(base_file)) if os.path.exists(base_file) else None
    print("\n## Peak resident memory per process (MB)\n")
    print("Need: mtrain = weights + directions + momentum + stored activations (inputs of "
          "every op and the output) + adjoints (kept for the weight phase) + data set + "
          "kernel workspaces (estimate); torch = weights + gradients + momentum + batch + "
          "tensors saved by autograd. torch's RSS includes ~`base` MB of interpreter and "
          "libraries before the model exists. penalized: the need of gd plus its solvers' "
          "workspaces (`solver_need` in bench/report.py: the dense input problems' cached "
          "factors, and the largest transient buffer of a step). mtrain's RSS includes ~"
          "`base` MB of executable and libraries (MPI, HDF5, OpenBLAS; `mtrain --version`).\n")
    print("| net | threads | process | peak RSS | analytic need | RSS / need | note |")
    print("|---|---|---|---|---|---|---|")
    mb = 1024 * 1024
    for (net, t), (tr, gd, pen) in results.items():
        for label, r in (("mtrain gd", gd), ("mtrain penalized", pen), ("torch", tr)):
            if not r or "rss" not in r or not r["rss"]:
                continue
            rss = r["rss"] * 1024
            note = ""
            if label == "torch":
                note = f"base {r['base'] / 1024:.0f} MB"
            else:
                note = ", ".join(f"{k} {v / mb:.0f}" for k, v in r["parts"].items())
                if base_kb:
                    note += f"; base {base_kb / 1024:.0f} MB"
            print(f"| {net} | {t} | {label} | {rss / mb:.0f} | {r['need'] / mb:.0f} | "
                  f"{rss / r['need']:.2f} | {note} |")


def oracle_table(raw):
    print("\n## Oracles: step time relative to gd (2 threads, batch 128)\n")
    print("Default solvers of each oracle; `*`: other processes took more than a quarter "
          "of a core during that run (not repeated: these runs are long).\n")
    print("| net | " + " | ".join(ORACLES) + " |")
    print("|---|" + "---|" * len(ORACLES))
    for net in NETS:
        res = {o: mtrain_result(raw, f"{o}-{net}-t2") for o in ORACLES}
        base = res["gd"]["step"] if res["gd"] and "step" in res["gd"] else None
        cells = []
        for o in ORACLES:
            r = res[o]
            if not r or "step" not in r or not base:
                cells.append("-")
            else:
                busy = " *" if (r.get("others") or 0) > 0.25 else ""
                cells.append(f"{r['step'] / base:.1f}x ({r['step']:.2f} s, {r['n']} steps){busy}")
        print(f"| {net} | " + " | ".join(cells) + " |")


def pipeline_table(raw):
    print("\n## Pipeline: 2 ranks x 1 thread vs 1 rank x 2 threads (gd, 4 micro-batches)\n")
    print("From `bench_pipeline` (the executable's mt_pipeline_train_step on random data; "
          "mtrain's metrics.csv holds rank 0's figures only). Medians over the timed steps.\n")
    print("| net | layout | step s | img/s | rank: ops, compute / wait / weights s | others |")
    print("|---|---|---|---|---|---|")
    for net in ("mlp", "allcnn"):
        for r, label in (("r1", "1 rank x 2 threads"), ("r2", "2 ranks x 1 thread")):
            p = os.path.join(raw, f"pipe-{net}-{r}.txt")
            if not os.path.exists(p):
                continue
            lines = read(p).splitlines()
            head = kv(next(ln for ln in lines if ln.startswith("pipeline")))
            ranks = []
            for ln in lines:
                if ln.startswith("rank "):
                    d = kv(ln)
                    ops = ln.split()[3]
                    ranks.append(f"{ln.split()[1]}: {ops}, {float(d['compute_s']):.3f} / "
                                 f"{float(d['wait_s']):.3f} / {float(d['weights_s']):.3f}")
            others = "-"
            cl = [ln for ln in lines if ln.startswith("cpu ")]
            if cl:
                b0, t0, b1, t1 = map(int, cl[0].split()[1:])
                busy = (b1 - b0) / max(t1 - t0, 1) * (os.cpu_count() or 1)
                others = f"machine busy {busy:.1f} cores"
            print(f"| {net} | {label} | {float(head['step_s']):.3f} | "
                  f"{float(head['images_per_s']):.0f} | {'; '.join(ranks)} | {others} |")


def targets(raw, results, pk):
    print("\n## Targets (2 threads)\n")
    goals = {"mlp": 1.5, "convnet": 1.5, "allcnn": 1.25}
    for net, goal in goals.items():
        tr, gd, _ = results.get((net, 2), (None, None, None))
        if not tr or not gd or "step" not in tr or "step" not in gd:
            print(f"- {net}: gd >= {goal}x torch: not measured")
            continue
        r = tr["step"] / gd["step"]
        busy = max(tr.get("others") or 0, gd.get("others") or 0)
        note = (f" (other processes took {busy:.1f} cores meanwhile: not a fair comparison)"
                if busy > 0.25 else "")
        print(f"- {net}: gd >= {goal}x torch: {r:.2f}x, {'met' if r >= goal else 'NOT met'}{note}")
    for net in ("mlp", "allcnn"):
        tr, gd, _ = results.get((net, 2), (None, None, None))
        if gd and "step" in gd and 2 in pk:
            f = 3 * gd["mflop"] * BATCH / 1e3 / gd["step"] / pk[2][0]
            print(f"- {net}: gd >= 75% of sgemm peak: {100 * f:.0f}%, "
                  f"{'met' if f >= 0.75 else 'NOT met'}")
    for net, goal in (("mlp", 2.0), ("allcnn", 3.0)):
        _, gd, pen = results.get((net, 2), (None, None, None))
        if gd and pen and "step" in gd and "step" in pen:
            r = pen["step"] / gd["step"]
            print(f"- {net}: penalized step <= {goal:.0f}x the gd step: {r:.1f}x, "
                  f"{'met' if r <= goal else 'NOT met'}")
    for net in ("mlp", "allcnn"):
        steps = {}
        for r in ("r1", "r2"):
            p = os.path.join(raw, f"pipe-{net}-{r}.txt")
            if os.path.exists(p):
                steps[r] = float(kv(next(ln for ln in read(p).splitlines()
                                         if ln.startswith("pipeline")))["step_s"])
        if len(steps) == 2:
            f = steps["r1"] / steps["r2"]
            print(f"- {net}: 2 ranks x 1 thread >= 90% of 1 rank x 2 threads (4 micro-batches): "
                  f"{100 * f:.0f}%, {'met' if f >= 0.9 else 'NOT met'}")
    worst = {}
    for (net, t), (_, gd, pen) in results.items():
        for label, r in (("gd", gd), ("penalized", pen)):
            if r and r.get("rss") and r.get("need"):
                q = r["rss"] * 1024 / r["need"]
                if q > worst.get(label, (0, ""))[0]:
                    worst[label] = (q, f"{net}, {t} thread{'s' if t > 1 else ''}")
    for label, (q, where) in worst.items():
        print(f"- memory, mtrain {label}: peak RSS <= 1.3x the analytic need: worst {q:.2f}x "
              f"({where}), {'met' if q <= 1.3 else 'NOT met'}")


def ops_table(raw):
    print("\n## Per-op costs, 1 thread, batch 128 (`bench_ops`: thread CPU time, median of 3)\n")
    print("ms per pass and GFLOP/s (op FLOPs x batch / time); ops without parameters "
          "only where they take over 0.5 ms; the first op's input gradient is never "
          "needed in training.\n")
    print("| net | op | kind | forward | input grad | weight grad |\n|---|---|---|---|---|---|")
    for net in NETS:
        p = os.path.join(raw, f"ops-{net}.txt")
        if not os.path.exists(p):
            continue
        for ln in read(p).splitlines():
            if ln.startswith("op "):
                t = ln.split()
                d = dict(zip(t[3::2], t[4::2]))
                gf = t[t.index("GF/s") + 1:t.index("GF/s") + 4]
                f, b, w = float(d["fwd"]), float(d["vjp_x"]), float(d["vjp_w"])
                if int(d["params"]) == 0 and max(f, b) < 0.5:
                    continue
                cell = lambda ms, g: f"{ms:.2f} ({float(g):.0f})" if float(g) > 0 else f"{ms:.2f}"
                print(f"| {net} | {t[1]} | {t[2]} | {cell(f, gf[0])} | {cell(b, gf[1])} | "
                      f"{cell(w, gf[2]) if int(d['params']) else '-'} |")
            elif ln.startswith("total"):
                t = ln.split()
                print(f"| {net} | total | | {t[5]} | {t[7]} | {t[9]} |")


def main():
    raw = sys.argv[1]
    pk = peaks(raw)
    header(raw, pk)
    results = main_table(raw, pk)
    targets(raw, results, pk)
    memory_table(raw, results)
    oracle_table(raw)
    pipeline_table(raw)
    ops_table(raw)


if __name__ == "__main__":
    main()
