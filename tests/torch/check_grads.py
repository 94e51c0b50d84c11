#!/usr/bin/python3
"""check_grads.py - redo an mtrain back-propagation step in PyTorch autograd.

Reads a file written by tests/torch/grad_dump (one `--oracle gd` step of a
net on a CIFAR-10 batch) and checks, with no mtrain code:
  1. layout: model/* loads into the equivalent torch.nn model with
     load_state_dict(strict=True); grad/* has the same names and shapes, and
     act/* names exactly the model's nn.ReLU modules;
  2. forward: mtrain's input of every ReLU (act/<name>) equals torch's
     float64 forward within ACT_RTOL * max |h| per layer; the loss attribute
     equals torch's float32 mean cross-entropy within LOSS_RTOL (relative);
  3. gradients: for every tensor, grad/<name> (mtrain's direction
     g = J_w^T lambda + wd w) equals torch's p.grad + wd * p in float64 and
     in float32 autograd:
         max |g_mtrain - g_torch| <= RTOL * max |g_torch| + ATOL
     with RTOL = RTOL64 against float64, RTOL32 against float32;
  4. self-test: every tensor corrupted as a plausible bug would (layout
     transposed, conv kernel flipped, bias gradient missing, weight-decay
     term missing) fails check 3 against the float64 reference;
  5. optimisers (dumps of two sgd or adam steps): torch.optim replays both
     updates from grad/* and grad2/*; its parameters must equal after/* and
     its state the tensors optim/<name>/<state>.

ReLU ties. A pre-activation within float32 rounding of 0 may land on either
side of 0 in two correct float32 programs; its unit then back-propagates in
one and not in the other, which moves a gradient row by up to ~10% (seen:
one such unit among 288k in the mlp, one in allcnn). Neither side is wrong,
so torch back-propagates through mtrain's decisions (a forward hook keeps
relu(h) as the value and takes mtrain's act > 0 as the derivative). Check 2
makes this safe: mtrain's pre-activations agree with float64 to ~1e-7 of
their scale, so a decision can differ from float64's only where |h| is
within that rounding of 0. The count of such units is printed; torch's own
float32 decisions are also compared, for information.

Tolerances (errors are measured as max |diff| / max |reference| per tensor).
  Float32 sums in different orders (mtrain's blocked kernels on OpenBLAS,
  torch's ATen/oneDNN) differ by about sqrt(K) * 2^-24 * sum |terms| for K
  terms; a weight gradient here sums up to B * H * W = 32 * 32 * 32 ~ 3e4
  products with cancellation. Largest errors measured on the three nets
  (B = 32): mtrain vs float64 2.0e-6 (mlp classifier.2.weight), mtrain vs
  torch float32 6.2e-6 (convnet features.0.bias; both sides' rounding).
  RTOL64 = 2e-5 and RTOL32 = 1e-4 leave safety factors of 10 and 16. Every
  corruption of check 4 exceeds RTOL64 several times over: each ratio
  error/tolerance is computed and the smallest printed (a missing weight
  decay on the last bias, whose wd * |b| is ~1e-4 of its gradient: ~9).
  ATOL = 1e-10 only guards tensors whose gradient is 0 (none here: the
  smallest max |g| is ~5e-5).
  ACT_RTOL = 5e-5: mtrain's float32 pre-activations measured within 2.7e-6
  of max |h| of float64 (mlp's first layer, 3072-term sums).
  LOSS_RTOL = 1e-5: the loss is a mean of 10-class log-sum-exps in double
  on float32 logits; the logits' relative error ~1e-6 bounds it.
  Optimisers: |w_mtrain - w_torch| <= 1e-6 |w| + 1e-7 elementwise: a few
  float32 operations per element, rounded in another order (Adam's sqrt and
  division); measured maxima are printed.

With --checkpoint, the file is a checkpoint written by the mtrain executable
instead: model/* must load into the torch model with strict=True, and the
optim/<name>/<state> tensors must be exactly the state torch.optim keeps for
that optimiser (same buffer names and shapes per parameter); they are loaded
into a torch.optim optimiser through its load_state_dict, which then steps.

usage: /usr/bin/python3 check_grads.py DUMP.h5
       /usr/bin/python3 check_grads.py --checkpoint CHECKPOINT.h5
Exit: 0 all checks pass, 1 a check failed, 2 usage or unreadable file.
"""
import sys
from collections import OrderedDict

import h5py
import numpy as np
import torch
from torch import nn

RTOL64, RTOL32, ATOL = 2e-5, 1e-4, 1e-10
ACT_RTOL = 5e-5
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


class ReluHooks:
    """Forward hooks on every nn.ReLU of a model: record its input h; with
    `masks`, keep relu(h) as the value but back-propagate through the mask."""

    def __init__(self, model, masks=None):
        self.inputs = {}
        self.handles = [mod.register_forward_hook(self._hook(name, masks))
                        for name, mod in model.named_modules() if isinstance(mod, nn.ReLU)]

    def _hook(self, name, masks):
        def hook(_mod, inp, out):
            h = inp[0]
            self.inputs[name] = h.detach()
            if masks is None:
                return None
            m = masks[name].reshape(h.shape).to(h.dtype)
            # value: exactly relu(h) ((a + b) - b == a when b is 0 or a);
            # derivative: m, mtrain's decision
            return out.detach() + m * h - (m * h).detach()
        return hook

    def remove(self):
        for handle in self.handles:
            handle.remove()


def autograd(net, params, x, labels, wd, dtype, masks):
    """Mean cross-entropy, {name: p.grad + wd * p} and the ReLU inputs."""
    model = build_model(net).to(dtype)
    model.load_state_dict({k: v.to(dtype) for k, v in params.items()}, strict=True)
    hooks = ReluHooks(model, masks)
    loss = nn.functional.cross_entropy(model(x.to(dtype)), labels)
    loss.backward()
    hooks.remove()
    decay = torch.tensor(wd, dtype=torch.float32).to(dtype)  # mtrain's (float)wd
    grads = {name: (p.grad + decay * p).detach() for name, p in model.named_parameters()}
    return loss.item(), grads, hooks.inputs


def grad_error(mine, ref, rtol):
    """(max abs error, max abs error / max |ref|, tolerance)."""
    diff = (mine.double() - ref.double()).abs().max().item()
    scale = ref.double().abs().max().item()
    return diff, diff / scale if scale > 0 else float("inf"), rtol * scale + ATOL


def check_layout(net, params, grads, acts):
    """Check 1 (raises nothing): the number of failures."""
    model = build_model(net)
    try:
        model.load_state_dict(params, strict=True)
    except RuntimeError as err:
        print(f"FAIL: model/* does not load into the torch model: {err}")
        return 1
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in grads.items()}
    relus = sorted(n for n, m in model.named_modules() if isinstance(m, nn.ReLU))
    bad = 0
    if got != want:
        print(f"FAIL: grad/* names or shapes differ from the state_dict: {got} vs {want}")
        bad += 1
    if sorted(acts) != relus:
        print(f"FAIL: act/* names {sorted(acts)} are not the ReLU modules {relus}")
        bad += 1
    if not bad:
        print(f"layout: {len(want)} tensors load with strict=True; grad/* and act/* match")
    return bad


def check_forward(acts, h64, h32_own):
    """Check 2 on the ReLU inputs; prints the tied units. Returns failures."""
    bad = 0
    for name in sorted(acts, key=lambda n: (n.split(".")[0], int(n.split(".")[1]))):
        h_mt = acts[name].reshape(h64[name].shape).double()
        ref = h64[name]
        err = (h_mt - ref).abs().max().item()
        scale = ref.abs().max().item()
        ok = err <= ACT_RTOL * scale
        bad += not ok
        flips = ((h_mt > 0) != (ref > 0)).sum().item()
        flips32 = ((h_mt > 0) != (h32_own[name].double() > 0)).sum().item()
        print(f"relu input {name:14s} max|h| {scale:8.3g} err {err:9.2e} rel {err / scale:8.2e}"
              f" (tol {ACT_RTOL:g}) {'ok' if ok else 'FAIL'}; ties resolved otherwise than "
              f"float64: {flips}, than torch float32: {flips32}")
    return bad


def check_loss(f, loss32, loss64):
    loss_mt = float(attr_text(f, "loss"))
    rel = abs(loss32 - loss_mt) / abs(loss32)
    ok = rel <= LOSS_RTOL
    print(f"loss: mtrain {loss_mt:.9g} torch f32 {loss32:.9g} (rel err {rel:.2e}, tol "
          f"{LOSS_RTOL:g}) f64 {loss64:.9g} (rel err {abs(loss64 - loss_mt) / loss64:.2e}) "
          f"{'ok' if ok else 'FAIL'}")
    return int(not ok)


def check_grads(grads, g64, g32, g32_own):
    """Check 3; prints a table of errors relative to max |g|. Returns failures."""
    bad = 0
    print(f"gradients: rel err = max|diff| / max|g|, tol {RTOL64:g} vs f64, {RTOL32:g} vs f32")
    print(f"{'tensor':22s} {'shape':18s} {'max|g|':>9s} {'abs err':>9s} {'vs f64':>8s} "
          f"{'vs f32':>8s}       (vs f32 with torch's own ReLU ties)")
    for name, ref in g64.items():
        diff, rel64, tol = grad_error(grads[name], ref, RTOL64)
        diff32, rel32, tol32 = grad_error(grads[name], g32[name], RTOL32)
        own = grad_error(grads[name], g32_own[name], RTOL32)[1]
        ok = diff <= tol and diff32 <= tol32
        bad += not ok
        print(f"{name:22s} {str(tuple(ref.shape)):18s} {ref.abs().max().item():9.3e} "
              f"{diff:9.2e} {rel64:8.2e} {rel32:8.2e} {'ok' if ok else 'FAIL':4s}"
              f"  ({own:.2e})")
    return bad


def corruptions(name, g, w, wd):
    """Plausible bugs, as {kind: corrupted gradient}."""
    decay = torch.tensor(wd, dtype=torch.float32) * w
    out = {}
    if name.endswith("weight"):
        # layout transposed: [out, in, ...] stored as [in, out, ...]
        out["transposed"] = g.transpose(0, 1).contiguous().reshape(g.shape)
        if g.ndim == 4 and g.shape[2] > 1:
            out["flipped kernel"] = g.flip(2, 3)
    else:
        out["bias grad missing"] = decay
    out["weight decay missing"] = g - decay
    return out


def self_test(grads, g64, params, wd):
    """Check 4: every corruption of every tensor fails check 3."""
    missed, worst = 0, (float("inf"), "")
    for name, ref in g64.items():
        for kind, wrong in corruptions(name, grads[name], params[name], wd).items():
            diff, _, tol = grad_error(wrong, ref, RTOL64)
            missed += diff <= tol
            worst = min(worst, (diff / tol, f"{name} {kind}"))
            if diff <= tol:
                print(f"FAIL: self-test: {name} with {kind} passes the tolerance")
    print(f"self-test: every corruption caught; smallest error/tolerance {worst[0]:.3g} "
          f"({worst[1]})" if not missed else f"FAIL: {missed} corruptions not caught")
    return missed


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
    bad, worst, pairs = 0, {}, {}
    for n, p in zip(names, ps):
        pairs[n] = (p.detach(), after.get(n))
        for key, value in opt.state[p].items():
            if key != "step":
                pairs[f"{n}/{key}"] = (value, state.get(f"{n}/{key}"))
    extra = set(state) - set(pairs)
    if extra:
        print(f"FAIL: optim/ holds tensors torch does not: {sorted(extra)}")
        bad += 1
    for key, (ref, mine) in pairs.items():
        if mine is None or tuple(mine.shape) != tuple(ref.shape):
            print(f"FAIL: {key} missing from the dump or of another shape")
            bad += 1
            continue
        diff = (mine.double() - ref.double()).abs()
        excess = (diff - OPT_RTOL * ref.double().abs() - OPT_ATOL).max().item()
        bad += excess > 0
        what = key.split("/")[1] if "/" in key else "param"
        worst[what] = max(worst.get(what, 0.0), diff.max().item())
        if excess > 0:
            print(f"FAIL: {key}: max abs err {diff.max().item():.3e}")
    print(f"{kind}: two steps replayed by torch.optim; max abs err: "
          + ", ".join(f"{k} {v:.2e}" for k, v in worst.items())
          + f" (tol {OPT_RTOL:g} |ref| + {OPT_ATOL:g}) {'ok' if not bad else 'FAIL'}")
    return bad


def check_checkpoint(f):
    """--checkpoint: a checkpoint of the mtrain executable in torch's terms."""
    net, kind = attr_text(f, "net"), attr_text(f, "optimizer")
    params, state = read_group(f, "model"), read_group(f, "optim")
    model = build_model(net)
    try:
        model.load_state_dict(params, strict=True)
    except RuntimeError as err:
        print(f"FAIL: model/* does not load into the torch model: {err}")
        return 1
    names = [n for n, _ in model.named_parameters()]
    make = {"plain": lambda ps: torch.optim.SGD(ps, lr=1.0),
            "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
            "adam": lambda ps: torch.optim.Adam(ps)}[kind]
    # the state torch keeps: one step of a fresh optimiser on a copy
    probe = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    opt = make(probe)
    for p in probe:
        p.grad = torch.ones_like(p)
    opt.step()
    want = {f"{n}/{k}": tuple(v.shape) for n, p in zip(names, probe)
            for k, v in opt.state[p].items() if k != "step"}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != want:
        print(f"FAIL: optim/* {sorted(got.items())} is not torch's {kind} state "
              f"{sorted(want.items())}")
        return 1
    steps = int(f.attrs["optim_steps"])
    buffers = {i: {k.split("/")[1]: v for k, v in state.items() if k.split("/")[0] == n}
               for i, n in enumerate(names)}
    for i in buffers:
        if kind == "adam":
            buffers[i]["step"] = torch.tensor(float(steps))
    opt = make(list(model.parameters()))
    sd = opt.state_dict()
    sd["state"] = {i: b for i, b in buffers.items() if b}
    opt.load_state_dict(sd)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    print(f"checkpoint: {net}, {len(params)} tensors load with strict=True; {len(state)} "
          f"{kind} state tensors are torch.optim's and load into it (step {steps})")
    print("PASS")
    return 0


def run_checks(f):
    net, wd = attr_text(f, "net"), float(attr_text(f, "wd"))
    params, grads, acts = read_group(f, "model"), read_group(f, "grad"), read_group(f, "act")
    inputs = read_group(f, "input")
    x, labels_f = inputs["x"], inputs["labels"]
    labels = labels_f.long()
    if not torch.equal(labels.float(), labels_f) or labels.min() < 0 or labels.max() > 9:
        print("FAIL: input/labels are not integers in 0..9")
        return 1
    print(f"{net}: batch {x.shape[0]}, wd {wd:g}, {sum(p.numel() for p in params.values())} "
          f"parameters, optimizer {attr_text(f, 'optimizer')}")
    if check_layout(net, params, grads, acts):
        return 1

    masks = {name: h > 0 for name, h in acts.items()}
    loss64, g64, h64 = autograd(net, params, x, labels, wd, torch.float64, masks)
    loss32, g32, _ = autograd(net, params, x, labels, wd, torch.float32, masks)
    _, g32_own, h32_own = autograd(net, params, x, labels, wd, torch.float32, None)
    bad = check_forward(acts, h64, h32_own)
    bad += check_loss(f, loss32, loss64)
    bad += check_grads(grads, g64, g32, g32_own)
    bad += self_test(grads, g64, params, wd)
    bad += check_optim(f, params)
    print("PASS" if not bad else f"FAIL: {bad} checks failed")
    return 1 if bad else 0


def main(argv):
    ckpt = len(argv) == 3 and argv[1] == "--checkpoint"
    if len(argv) != 2 + ckpt or argv[-1].startswith("--"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    torch.set_num_threads(2)
    try:
        f = h5py.File(argv[-1], "r")
    except OSError as err:
        print(f"{argv[-1]}: cannot open: {err}", file=sys.stderr)
        return 2
    with f:
        return check_checkpoint(f) if ckpt else run_checks(f)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
