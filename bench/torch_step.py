#!/usr/bin/python3
"""torch_step.py - PyTorch's CPU training step on mtrain's nets, for bench/run.sh.

Builds the torch.nn model of tests/torch/check_grads.py (the same
architectures as mtrain's mlp, convnet, allcnn), then times full training
steps (forward, cross-entropy, backward, torch.optim.SGD update with
mtrain's gd defaults: lr 0.05, momentum 0.9, weight decay 1e-6) on random
float32 CIFAR-sized batches. Prints one line per net:
  torch NET threads=T batch=B warmup=W steps=S median_s=... images_per_s=... maxrss_kb=...
and, with --backends, which kernels torch ran (profiler op names) and which
BLAS libraries the process mapped.

usage: /usr/bin/python3 torch_step.py --net NET --threads T [--steps S]
       [--warmup W] [--batch B] [--backends]
"""
import argparse
import os
import resource
import statistics
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "torch"))
from check_grads import build_model  # noqa: E402  (the one definition of the nets)


def blas_libraries():
    """Shared objects of the process whose names mention a BLAS or oneDNN."""
    names = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if any(k in path for k in ("blas", "dnnl", "mkl", "lapack")):
                names.add(os.path.realpath(path))
    return sorted(names)


def report_backends(model, x, y):
    """Print the aten ops a training step calls (which conv/linear kernels)."""
    loss_fn = nn.CrossEntropyLoss()
    with torch.autograd.profiler.profile() as prof:
        loss_fn(model(x), y).backward()
    ops = sorted({e.name for e in prof.function_events
                  if any(k in e.name for k in ("conv", "mkldnn", "addmm", "mm", "linear"))})
    print("torch ops:", ", ".join(ops))
    print("torch mkldnn enabled:", torch.backends.mkldnn.is_available() and
          torch.backends.mkldnn.enabled)
    print("torch libraries:", ", ".join(blas_libraries()))


def saved_bytes(model, x, y):
    """Bytes autograd keeps for the backward pass of one step (tensors saved
    by the graph, each storage counted once): the stored activations."""
    seen = {}

    def pack(t):
        seen[(t.data_ptr(), t.numel())] = t.numel() * t.element_size()
        return t

    loss_fn = nn.CrossEntropyLoss()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(model(x), y)
    loss.backward()
    model.zero_grad(set_to_none=False)
    return sum(seen.values())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--net", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--backends", action="store_true")
    a = ap.parse_args()

    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # interpreter + libraries
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = build_model(a.net)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-6)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(a.batch, 3, 32, 32)
    y = torch.randint(0, 10, (a.batch,))
    if a.backends:
        report_backends(model, x, y)
    n_params = sum(p.numel() for p in model.parameters())
    # analytic need: weights, gradients, momentum buffers, the batch, saved activations
    need = 4 * 3 * n_params + 4 * x.numel() + saved_bytes(model, x, y)

    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        loss.item()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"torch {a.net} threads={a.threads} batch={a.batch} warmup={a.warmup} "
          f"steps={a.steps} median_s={med:.6f} images_per_s={a.batch / med:.2f} "
          f"maxrss_kb={rss} base_kb={base_kb} params={n_params} need_bytes={need}")


if __name__ == "__main__":
    main()
