#!/usr/bin/python3
"""scaling.py - predict mtrain's pipeline step on S nodes from measured costs.

usage: scaling.py RAW_DIR   (files of bench/run.sh: ops-<net>.txt from
       bench_ops at 1 thread, pingpong.txt, pipe-<net>-r2.txt)

The model (bench/scaling.md explains it) follows mtrain's schedule
(src/pipeline/pipeline.c): all micro-batches forward, then all backward
(input adjoints; on several ranks also the conv layers' weight gradients,
micro-batch by micro-batch), then the weight phase (the other weight
gradients and the update, no messages), then a broadcast of the metrics.
With stage costs f_s (forward), b_s (input gradients, without those up to
the first op with parameters, which are never computed), m_s (weight
gradients taken by micro-batch), w_s + u_s (the others and the update), for
the whole batch split into M equal micro-batches, the schedule is played
event by event: a stage runs forward micro-batches in order as they arrive
(f_s / M each), then backward ones (b_s / M, the lambdas leave, then m_s /
M), then its weight phase; a message arrives one hop after it was sent; the
step ends with the last stage's weight phase and ceil(log2 S) latencies of
the metric reduction.
hop = latency + bytes of one micro-batch's activation at the cut / bandwidth.
The stages are mtrain's own cut (mt_model_partition, printed by bench_ops),
each with at least one op with parameters, so S is at most the number of
such ops; the contiguous cut minimising the largest measured stage cost is
used where bench_ops printed none.
"""
import math
import os
import re
import sys

BATCH = 128
BLOCK = 32


def read_ops(path):
    ops, update, cuts = [], 0.0, {}
    with open(path) as f:
        for ln in f:
            if ln.startswith("op "):
                t = ln.split()
                d = dict(zip(t[3::2], t[4::2]))
                ops.append({"name": t[1], "kind": t[2], "params": int(d["params"]),
                            "in": int(d["in"]), "out": int(d["out"]),
                            "f": float(d["fwd"]) / 1e3, "b": float(d["vjp_x"]) / 1e3,
                            "w": float(d["vjp_w"]) / 1e3})
            elif ln.startswith("partition"):
                head, rest = ln.split(":")
                first = [int(v) for v in rest.split()]
                cuts[int(head.split()[1])] = list(zip(first[:-1], first[1:]))
            elif ln.startswith("update"):
                t = ln.split()
                n, ms = int(t[2]), float(t[4])
                update = ms / 1e3 / n  # seconds per parameter
    for o in ops:
        o["u"] = update * o["params"]
    return ops, cuts


def read_pingpong(path):
    pts = []
    with open(path) as f:
        for ln in f:
            m = re.search(r"bytes=(\d+) one_way_us=([\d.]+)", ln)
            if m:
                pts.append((int(m.group(1)), float(m.group(2)) * 1e-6))
    lat = pts[0][1]
    # bandwidth from the largest message that fits in a core's cache (<= 4 MiB)
    big = max((p for p in pts if p[0] <= 4 << 20), key=lambda p: p[0])
    bw = big[0] / (big[1] - lat)
    return lat, bw


def partition(ops, S):
    """Contiguous cut into S stages minimising the largest f+b+w+u; None if a
    stage would have no op with parameters."""
    n = len(ops)
    cost = [o["f"] + o["b"] + o["w"] + o["u"] for o in ops]
    has_p = [1 if o["params"] else 0 for o in ops]
    pre, prep = [0.0], [0]
    for c, h in zip(cost, has_p):
        pre.append(pre[-1] + c)
        prep.append(prep[-1] + h)
    INF = float("inf")
    best = [[INF] * (n + 1) for _ in range(S + 1)]
    cut = [[-1] * (n + 1) for _ in range(S + 1)]
    best[0][0] = 0.0
    for s in range(1, S + 1):
        for j in range(1, n + 1):
            for i in range(s - 1, j):
                if best[s - 1][i] == INF or prep[j] - prep[i] == 0:
                    continue
                v = max(best[s - 1][i], pre[j] - pre[i])
                if v < best[s][j]:
                    best[s][j], cut[s][j] = v, i
    if best[S][n] == INF:
        return None
    bounds, j = [], n
    for s in range(S, 0, -1):
        i = cut[s][j]
        bounds.append((i, j))
        j = i
    return bounds[::-1]


def predict(ops, sizes, S, M, lat, bw, batch=BATCH, cuts=None):
    parts = cuts.get(S) if cuts else None
    parts = parts or partition(ops, S)
    if parts is None:
        return None
    scale = batch / BATCH
    first = next(i for i, o in enumerate(ops) if o["params"])
    # input gradients up to the first op with parameters are never computed
    b_of = [0.0 if i <= first else o["b"] for i, o in enumerate(ops)]
    # on several ranks, gd takes conv weight gradients micro-batch by
    # micro-batch during the backward pass (right after sending the lambdas)
    by_micro = [S > 1 and M > 1 and o["kind"] == "conv2d" for o in ops]
    f = [scale * sum(o["f"] for o in ops[a:b]) for a, b in parts]
    bk = [scale * sum(b_of[i] for i in range(a, b)) for a, b in parts]
    wm = [scale * sum(ops[i]["w"] for i in range(a, b) if by_micro[i]) for a, b in parts]
    w = [scale * sum(0.0 if by_micro[i] else ops[i]["w"] for i in range(a, b)) +
         sum(o["u"] for o in ops[a:b]) for a, b in parts]
    hops = [lat + 4 * sizes[b] * batch / M / bw for a, b in parts[:-1]]
    # the schedule, event by event: every stage runs its micro-batches in
    # order, forward then backward; a message arrives one hop after it left
    free = [0.0] * S
    arrive = [0.0] * M
    for st in range(S):
        for m in range(M):
            free[st] = max(free[st], arrive[m]) + f[st] / M
            arrive[m] = free[st] + (hops[st] if st < S - 1 else 0.0)
    t_f = max(free)
    arrive = [0.0] * M
    for st in reversed(range(S)):
        for m in range(M):
            sent = max(free[st], arrive[m]) + bk[st] / M
            arrive[m] = sent + (hops[st - 1] if st > 0 else 0.0)
            free[st] = sent + wm[st] / M
    t_b = max(free) - t_f
    ends = [free[st] + w[st] for st in range(S)]
    t_w = max(ends) - max(free)
    t_m = math.ceil(math.log2(S)) * lat if S > 1 else 0.0
    biggest = max(range(S), key=lambda s: f[s] + bk[s] + wm[s] + w[s])
    a, b = parts[biggest]
    return {"t": max(ends) + t_m, "f": t_f, "b": t_b, "w": t_w,
            "bubble": (S - 1) / (M + S - 1), "largest": f"{ops[a]['name']}..{ops[b - 1]['name']}",
            "largest_share": (f[biggest] + bk[biggest] + wm[biggest] + w[biggest]) /
            (sum(f) + sum(bk) + sum(wm) + sum(w))}


def main():
    raw = sys.argv[1]
    lat, bw = read_pingpong(os.path.join(raw, "pingpong.txt"))
    print("\n## Scaling model inputs\n")
    print(f"MPI one-way latency {lat * 1e6:.2f} us, bandwidth {bw / 1e9:.1f} GB/s (ping-pong "
          "on this machine, shared memory); per-op costs from bench_ops at 1 thread "
          "(one core per stage). Details and conclusions: bench/scaling.md.\n")
    print("| net | S nodes | M | batch | predicted step s | speedup vs 1 | efficiency | "
          "bubble | largest stage (share of work) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for net in ("mlp", "allcnn"):
        path = os.path.join(raw, f"ops-{net}.txt")
        if not os.path.exists(path):
            continue
        ops, cuts = read_ops(path)
        sizes = [ops[0]["in"]] + [o["out"] for o in ops]  # x_0 .. x_T per sample
        base = predict(ops, sizes, 1, 1, lat, bw, cuts=cuts)["t"]
        n_p = sum(1 for o in ops if o["params"])
        for S in (1, 2, 4, 8, 16, 32, 64):
            if S > n_p:
                print(f"| {net} | {S} | | | - (only {n_p} ops with parameters: at most "
                      f"{n_p} stages) | | | | |")
                break
            configs = [(BATCH // BLOCK, BATCH)] + ([(4 * S, BLOCK * 4 * S)] if S > 1 else [])
            for M, batch in configs:
                r = predict(ops, sizes, S, M, lat, bw, batch, cuts)
                sp = base * batch / BATCH / r["t"]
                print(f"| {net} | {S} | {M} | {batch} | {r['t']:.3f} | {sp:.2f} | "
                      f"{sp / S:.0%} | {r['bubble']:.0%} | {r['largest']} "
                      f"({r['largest_share']:.0%}) |")
        p = os.path.join(raw, f"pipe-{net}-r2.txt")
        if os.path.exists(p):
            m = re.search(r"step_s=([\d.]+)", open(p).read())
            r = predict(ops, sizes, 2, 4, lat, bw, cuts=cuts)
            print(f"| {net} | 2 (check) | 4 | 128 | predicted {r['t']:.3f}, measured "
                  f"{float(m.group(1)):.3f} (bench_pipeline, 2 ranks x 1 thread) | | | | |")


if __name__ == "__main__":
    main()
