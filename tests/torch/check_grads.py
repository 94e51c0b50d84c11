#!/usr/bin/python3
"""check_grads.py - redo an mtrain back-propagation step in PyTorch autograd.

Reads a file written by tests/torch/grad_dump (one `--oracle gd` step of a
net on a CIFAR-10 batch) and checks, with no mtrain code:
  1. layout: model/* loads into the equivalent torch.nn model with
     load_state_dict(strict=True), and grad/* has exactly the same names and
     shapes (the checkpoint's state_dict names and [out, in, kh, kw] layouts);
  2. loss: torch's mean cross-entropy on input/x, input/labels equals the
     `loss` attribute to 1e-5 relative;
  3. gradients: for every tensor, grad/<name> (mtrain's direction
     g = J_w^T lambda + wd w) equals torch's p.grad + wd * p within
         max |g_mtrain - g_torch| <= RTOL * max |g_torch| + ATOL
  4. self-test: the tolerance of 3 is tight enough to catch real bugs:
     every tensor corrupted as a plausible bug would (weight layout
     transposed, conv kernel flipped, bias gradient missing, weight-decay
     term missing) must fail check 3; otherwise the run fails;
  5. optimisers (files written with OPTIM sgd or adam): torch.optim replays
     the two updates from grad/* and grad2/*; its parameters must equal
     after/* and its state the optim/<name>/<state> tensors.

Tolerances (measured maxima are in the test's log; see the report):
  RTOL = 1e-4, ATOL = 1e-7 (gradients). Both sides sum in float32 in
  different orders (OpenBLAS/own kernels vs MKL-DNN/ATen): the error of a
  float32 dot product of K terms is bounded by about K * 2^-24 * sum |terms|
  and in practice behaves like sqrt(K) * 2^-24 * sum |terms|. A weight
  gradient here sums up to B * H * W = 32 * 32 * 32 ~ 3e4 products; with
  cancellation the terms' sum can exceed the result tenfold, giving relative
  errors up to ~1e-5 of max |g| (measured: <= 3e-6 on every tensor of the
  three nets). 1e-4 leaves a safety factor >= 30, while every corruption of
  check 4 gives errors >= 1e-2 of max |g| except the missing weight decay,
  whose size is wd * |w| (its ratio to the tolerance is printed).
  ATOL covers tensors whose gradient is (almost) zero.
  Optimisers: |w_mtrain - w_torch| <= 1e-6 * |w| + 1e-7 elementwise, the
  rounding of a few float32 operations per element (Adam's sqrt and division
  are rounded in a different order).

usage: /usr/bin/python3 check_grads.py DUMP.h5 [--double]
  --double  also run torch in float64 and report how far each float32 result
            (mtrain's and torch's) lies from it (diagnosis only).
Exit: 0 all checks pass, 1 a check failed, 2 usage or unreadable file.
"""
import sys
from collections import OrderedDict

import h5py
import numpy as np
import torch
from torch import nn

RTOL, ATOL = 1e-4, 1e-7
LOSS_RTOL = 1e-5
OPT_RTOL, OPT_ATOL = 1e-6, 1e-7


def build_model(net):
    """The torch.nn model of include/mtrain/model.h, with mtrain's op names:
    ops before the flatten are features.<i>, after it classifier.<i>."""
    features, classifier = [], []
    if net == "mlp":
        widths = [3 * 32 * 32, 4000, 1000, 4000]
        for a, b in zip(widths, widths[1:]):
            classifier += [nn.Linear(a, b), nn.ReLU()]
        classifier.append(nn.Linear(widths[-1], 10))
    elif net == "convnet":
        c_in = 3
        for c in (16, 20, 20):
            features += [nn.Conv2d(c_in, c, 5, padding=2), nn.ReLU(), nn.AvgPool2d(2)]
            c_in = c
        classifier.append(nn.Linear(20 * 4 * 4, 10))
    elif net == "allcnn":
        spec = [(96, 3, 1, 1), (96, 3, 1, 1), (96, 3, 2, 1), (192, 3, 1, 1), (192, 3, 1, 1),
                (192, 3, 2, 1), (192, 3, 1, 0), (192, 1, 1, 0), (10, 1, 1, 0)]
        c_in = 3
        for c, k, s, p in spec:
            features += [nn.Conv2d(c_in, c, k, stride=s, padding=p), nn.ReLU()]
            c_in = c
        features.append(nn.AdaptiveAvgPool2d(1))
    else:
        raise ValueError(f"unknown net {net!r}")
    return nn.Sequential(OrderedDict(features=nn.Sequential(*features), flatten=nn.Flatten(),
                                     classifier=nn.Sequential(*classifier)))


def read_group(f, group):
    """{name: float32 tensor} of every dataset under `group` (recursively)."""
    out = {}
    if group not in f:
        return out

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            if obj.dtype != np.float32:
                raise ValueError(f"{group}/{name}: dtype {obj.dtype}, expected float32")
            out[name] = torch.from_numpy(obj[()])
    f[group].visititems(visit)
    return out


def attr_text(f, key):
    value = f.attrs[key]
    return value.decode() if isinstance(value, bytes) else str(value)


def torch_grads(model, x, labels, wd, dtype):
    """Mean cross-entropy and {name: p.grad + wd * p} in `dtype`."""
    model = model.to(dtype)
    model.zero_grad()
    loss = nn.functional.cross_entropy(model(x.to(dtype)), labels)
    loss.backward()
    grads = {name: (p.grad + torch.tensor(wd, dtype=dtype) * p).detach()
             for name, p in model.named_parameters()}
    return loss.item(), grads


def grad_error(mine, ref):
    """(max abs error, max abs error / max |ref|, tolerance)."""
    diff = (mine.double() - ref.double()).abs().max().item()
    scale = ref.double().abs().max().item()
    return diff, diff / scale if scale > 0 else float("inf"), RTOL * scale + ATOL


def corruptions(name, g, w, wd):
    """Plausible bugs, each as the corrupted gradient (None when not applicable)."""
    out = {}
    if name.endswith("weight"):
        # layout transposed: [out, in, ...] written as [in, out, ...]
        out["transposed"] = g.transpose(0, 1).contiguous().reshape(g.shape)
        if g.ndim == 4 and g.shape[2] > 1:
            out["flipped kernel"] = g.flip(2, 3)
    else:
        out["bias grad missing"] = torch.full_like(g, wd) * w
    out["weight decay missing"] = g - torch.tensor(wd, dtype=g.dtype) * w
    return out


def self_test(grads_ref, params, wd):
    """Check 4: every corruption of every tensor fails check 3."""
    bad = 0
    for name, g in grads_ref.items():
        for kind, wrong in corruptions(name, g, params[name], wd).items():
            diff, rel, tol = grad_error(wrong, g)
            if (wrong - g).abs().max().item() == 0:
                print(f"  self-test {name} {kind}: no effect on this tensor (skipped)")
                continue
            status = "caught" if diff > tol else "MISSED"
            bad += diff <= tol
            print(f"  self-test {name:24s} {kind:21s} err/tol {diff / tol:10.3g}  {status}")
    return bad


def check_grads(f, model, grads, x, labels, wd):
    """Checks 2 and 3; returns (failures, torch's float32 gradients)."""
    loss, ref = torch_grads(model, x, labels, wd, torch.float32)
    loss_mt = float(attr_text(f, "loss"))
    loss_rel = abs(loss - loss_mt) / abs(loss)
    bad = int(not loss_rel <= LOSS_RTOL)
    print(f"loss: mtrain {loss_mt:.9g} torch {loss:.9g} rel err {loss_rel:.2e} "
          f"(tol {LOSS_RTOL:g}) {'ok' if not bad else 'FAIL'}")
    print(f"{'tensor':24s} {'shape':18s} {'max|g|':>10s} {'max abs err':>11s} "
          f"{'rel err':>9s} {'tol':>9s}")
    for name, g_ref in ref.items():
        diff, rel, tol = grad_error(grads[name], g_ref)
        ok = diff <= tol
        bad += not ok
        print(f"{name:24s} {str(tuple(g_ref.shape)):18s} {g_ref.abs().max().item():10.3e} "
              f"{diff:11.3e} {rel:9.2e} {tol:9.2e} {'ok' if ok else 'FAIL'}")
    return bad, ref


def diagnose_double(net, params, grads, ref, x, labels, wd):
    """--double: errors of both float32 results against torch in float64."""
    model = build_model(net).double()
    model.load_state_dict({k: v.double() for k, v in params.items()}, strict=True)
    loss, exact = torch_grads(model, x, labels, wd, torch.float64)
    print(f"float64 loss {loss:.12g}; errors / max|g64|:  mtrain-f32   torch-f32")
    for name, g64 in exact.items():
        scale = g64.abs().max().item()
        e_mt = (grads[name].double() - g64).abs().max().item() / scale
        e_t = (ref[name].double() - g64).abs().max().item() / scale
        print(f"  {name:24s} {e_mt:10.2e} {e_t:10.2e}")


def check_layout(net, params, grads):
    """Check 1: returns the torch model holding `params`, or None."""
    model = build_model(net)
    try:
        model.load_state_dict(params, strict=True)
    except RuntimeError as err:
        print(f"FAIL: model/* does not load into the torch model: {err}")
        return None
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in grads.items()}
    if got != want:
        print(f"FAIL: grad/* names or shapes differ from the state_dict: {got} vs {want}")
        return None
    print(f"layout: {len(want)} tensors load with strict=True; grad/* matches")
    return model


def check_optim(f, params):
    """Check 5 for dumps of two sgd or adam steps; returns failures."""
    kind = attr_text(f, "optimizer")
    if kind == "plain":
        return 0
    num = {k: float(attr_text(f, k)) for k in ("lr", "momentum", "nesterov", "beta1",
                                               "beta2", "eps")}
    names = list(params)
    ps = [params[n].clone().requires_grad_(True) for n in names]
    if kind == "sgd":
        opt = torch.optim.SGD(ps, lr=num["lr"], momentum=num["momentum"],
                              nesterov=bool(num["nesterov"]))
    else:
        opt = torch.optim.Adam(ps, lr=num["lr"], betas=(num["beta1"], num["beta2"]),
                               eps=num["eps"])
    for group in ("grad", "grad2"):
        dirs = read_group(f, group)
        for n, p in zip(names, ps):
            p.grad = dirs[n].clone()
        opt.step()
    return compare_optim(kind, names, ps, opt, read_group(f, "after"), read_group(f, "optim"))


def compare_optim(kind, names, ps, opt, after, state):
    """Parameters and optimiser state of torch.optim vs mtrain's, elementwise."""
    bad, worst = 0, {}
    torch_state = {}
    for n, p in zip(names, ps):
        torch_state[n + "/param"] = (p.detach(), after[n])
        for key, value in opt.state[p].items():
            if key != "step":
                torch_state[f"{n}/{key}"] = (value, state.get(f"{n}/{key}"))
    extra = set(state) - set(k for k in torch_state if not k.endswith("/param"))
    if extra:
        print(f"FAIL: optim/ holds tensors torch does not: {sorted(extra)}")
        bad += 1
    for key, (ref, mine) in torch_state.items():
        if mine is None or tuple(mine.shape) != tuple(ref.shape):
            print(f"FAIL: optim/{key} missing or of another shape")
            bad += 1
            continue
        diff = (mine.double() - ref.double()).abs()
        excess = (diff - OPT_RTOL * ref.double().abs() - OPT_ATOL).max().item()
        bad += excess > 0
        kind_key = key.split("/")[-1]
        worst[kind_key] = max(worst.get(kind_key, 0.0), diff.max().item())
        if excess > 0:
            print(f"FAIL: {key}: max abs err {diff.max().item():.3e}")
    print(f"{kind}: two steps replayed by torch.optim; max abs err per kind: "
          + ", ".join(f"{k} {v:.2e}" for k, v in worst.items())
          + f" (tol {OPT_RTOL:g} |w| + {OPT_ATOL:g}) {'ok' if not bad else 'FAIL'}")
    return bad


def run_checks(f, double):
    net, wd = attr_text(f, "net"), float(attr_text(f, "wd"))
    params, grads = read_group(f, "model"), read_group(f, "grad")
    inputs = read_group(f, "input")
    x, labels_f = inputs["x"], inputs["labels"]
    labels = labels_f.long()
    if not torch.equal(labels.float(), labels_f) or labels.min() < 0 or labels.max() > 9:
        print("FAIL: input/labels are not integers in 0..9")
        return 1
    print(f"{net}: batch {x.shape[0]}, wd {wd:g}, {sum(p.numel() for p in params.values())} "
          f"parameters, optimizer {attr_text(f, 'optimizer')}")

    model = check_layout(net, params, grads)
    if model is None:
        return 1
    bad, ref = check_grads(f, model, grads, x, labels, wd)
    if double:
        diagnose_double(net, params, grads, ref, x, labels, wd)
    missed = self_test(ref, params, wd)
    if missed:
        print(f"FAIL: {missed} corruptions pass the tolerance")
    bad += missed + check_optim(f, params)
    print("PASS" if not bad else f"FAIL: {bad} checks failed")
    return 1 if bad else 0


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    double = "--double" in argv[1:]
    if len(args) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    torch.set_num_threads(2)
    torch.manual_seed(0)
    try:
        f = h5py.File(args[0], "r")
    except OSError as err:
        print(f"{args[0]}: cannot open: {err}", file=sys.stderr)
        return 2
    with f:
        return run_checks(f, double)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
