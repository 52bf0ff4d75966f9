"""Python-side costs around compiled code and in eager Kiln, side by side with PyTorch.

Run from the repository root: ``python -m benchmarks.overhead [--no-torch] [--quick] [--smoke]``.

Rows (medians of CPU time per call, so that another job on this shared machine distorts
them less than wall time; everything runs single-threaded):

- the call of a compiled function: ``x + 1`` on 4 elements and a small MLP (8-16-4, batch 2)
  under ``no_grad`` (inference), and the MLP's training call ``f(x).sum().backward()``;
- eager ``F.cross_entropy`` on (128, 10) logits, forward and forward+backward;
- ``optimizer.step()`` over the W3 MLP's parameters (784-1024-1024-10, 1.86M float32) for
  SGD, SGD with Nesterov momentum and weight decay, Adam and AdamW with AMSGrad: Kiln's
  in-place fast path, Kiln's generic path (``_fast_path = False``: Kiln ops) and torch
  (``foreach=False``, one thread).

Columns: microseconds per call for ``kiln`` and ``torch`` and their ratio (> 1: Kiln slower);
for the optimizer rows also the generic path and its ratio to the fast path.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

MLP_SIZES = (784, 1024, 1024, 10)
SMOKE = False  # --smoke: one call per measurement and small optimizer parameters


def median_cpu_us(fn: Callable[[], Any], rounds: int, inner: int) -> float:
    """Median over ``rounds`` of the CPU time per call of ``inner`` back-to-back calls."""
    if SMOKE:
        inner = 1
    for _ in range(1 if SMOKE else 3):
        fn()
    times = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(inner):
            fn()
        times.append((time.process_time() - start) / inner)
    return float(np.median(times)) * 1e6


def call_rows(use_torch: bool, rounds: int) -> list[tuple[str, float, float | None]]:
    import kiln
    from kiln import models as km

    rows = []
    f = kiln.compile(lambda x: x + 1, backend="c")
    x = kiln.ones(4)
    kiln.manual_seed(0)
    mlp = km.MLP(sizes=(8, 16, 4))
    cm = kiln.compile(mlp, backend="c")
    xi = kiln.ones(2, 8)
    params = list(mlp.parameters())

    def train() -> None:
        for p in params:
            p.grad = None
        cm(xi).sum().backward()

    t_add = t_mlp = t_train = None
    if use_torch:
        import torch

        tx = torch.ones(4)
        tmlp = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(),
                                   torch.nn.Linear(16, 4))
        txi = torch.ones(2, 8)
        tparams = list(tmlp.parameters())

        def ttrain() -> None:
            for p in tparams:
                p.grad = None
            tmlp(txi).sum().backward()

        with torch.no_grad():
            t_add = median_cpu_us(lambda: tx + 1, rounds, 200)
            t_mlp = median_cpu_us(lambda: tmlp(txi), rounds, 200)
        t_train = median_cpu_us(ttrain, rounds, 50)
    with kiln.no_grad():
        rows.append(("compiled x + 1 (4 floats), no_grad", median_cpu_us(lambda: f(x), rounds,
                                                                         200), t_add))
        rows.append(("compiled MLP 8-16-4 b2, no_grad", median_cpu_us(lambda: cm(xi), rounds,
                                                                      200), t_mlp))
    rows.append(("compiled MLP: f(x).sum().backward()", median_cpu_us(train, rounds, 50),
                 t_train))
    return rows


def loss_rows(use_torch: bool, rounds: int) -> list[tuple[str, float, float | None]]:
    import kiln
    import kiln.nn.functional as F

    rng = np.random.default_rng(0)
    logits = rng.standard_normal((128, 10)).astype(np.float32)
    target = rng.integers(0, 10, 128)
    out = kiln.tensor(logits, requires_grad=True)
    labels = kiln.from_numpy(target)

    def fb() -> None:
        F.cross_entropy(out, labels).backward()
        out.grad = None

    t_fwd = t_fb = None
    if use_torch:
        import torch

        tout = torch.tensor(logits, requires_grad=True)
        tlab = torch.from_numpy(target)

        def tfb() -> None:
            torch.nn.functional.cross_entropy(tout, tlab).backward()
            tout.grad = None

        t_fwd = median_cpu_us(lambda: torch.nn.functional.cross_entropy(tout, tlab), rounds, 50)
        t_fb = median_cpu_us(tfb, rounds, 50)
    return [("eager cross_entropy (128, 10)", median_cpu_us(lambda: F.cross_entropy(out, labels),
                                                             rounds, 50), t_fwd),
            ("eager cross_entropy + backward", median_cpu_us(fb, rounds, 50), t_fb)]


OPTIMIZERS = [
    ("SGD", "SGD", {"lr": 1e-3}),
    ("SGD nesterov+wd", "SGD", {"lr": 1e-3, "momentum": 0.9, "nesterov": True,
                                "weight_decay": 1e-4}),
    ("Adam", "Adam", {"lr": 1e-3}),
    ("AdamW amsgrad", "AdamW", {"lr": 1e-3, "amsgrad": True}),
]


def optimizer_rows(use_torch: bool, rounds: int) -> list[tuple[str, float, float, float | None]]:
    import kiln

    rng = np.random.default_rng(0)
    sizes = (8, 16, 4) if SMOKE else MLP_SIZES
    shapes = [(n_out, n_in) for n_in, n_out in zip(sizes, sizes[1:])]
    shapes = [s for w in shapes for s in (w, w[:1])]
    data = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) * 1e-3 for s in shapes]
    rows = []
    for label, name, kwargs in OPTIMIZERS:
        times = []
        for fast in (True, False):
            ps = [kiln.nn.Parameter(kiln.tensor(a.copy())) for a in data]
            for p, g in zip(ps, grads, strict=True):
                p.grad = kiln.tensor(g)
            opt = getattr(kiln.optim, name)(ps, **kwargs)
            opt._fast_path = fast
            times.append(median_cpu_us(opt.step, rounds, 3))
        t_torch = None
        if use_torch:
            import torch

            tps = [torch.nn.Parameter(torch.tensor(a.copy())) for a in data]
            for p, g in zip(tps, grads, strict=True):
                p.grad = torch.tensor(g)
            topt = getattr(torch.optim, name)(tps, foreach=False, **kwargs)
            t_torch = median_cpu_us(topt.step, rounds, 3)
        n = sum(int(np.prod(s)) for s in shapes)
        count = f"{n / 1e6:.2f}M" if n >= 10**5 else str(n)
        rows.append((f"{label}.step() {count} params", times[0], times[1], t_torch))
    return rows


def _fmt(v: float | None, width: int = 11) -> str:
    return f"{'n/a':>{width}}" if v is None else f"{v:{width}.1f}"


def _ratio(a: float, b: float | None) -> str:
    return f"{a / b:11.2f}" if b else f"{'n/a':>11}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description=__doc__)
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--smoke", action="store_true",
                        help="one call per cell, tiny optimizer: checks that the script runs")
    args = parser.parse_args(argv)
    global SMOKE
    SMOKE = args.smoke
    use_torch = not args.no_torch
    if use_torch:
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:
            use_torch = False
    rounds = 1 if args.smoke else 7 if args.quick else 25
    head = f"{'us per call (CPU time, 1 thread)':44}{'kiln':>11}{'generic':>11}{'torch':>11}" \
           f"{'kiln/torch':>11}{'generic/kiln':>13}"
    print(head)
    print("-" * len(head))
    for label, kiln_us, torch_us in call_rows(use_torch, rounds) + loss_rows(use_torch, rounds):
        print(f"{label:44}{_fmt(kiln_us)}{'':>11}{_fmt(torch_us)}"
              f"{_ratio(kiln_us, torch_us)}", flush=True)
    opt_rounds = 1 if args.smoke else max(rounds // 2, 5)
    for label, fast_us, generic_us, torch_us in optimizer_rows(use_torch, opt_rounds):
        print(f"{label:44}{_fmt(fast_us)}{_fmt(generic_us)}{_fmt(torch_us)}"
              f"{_ratio(fast_us, torch_us)}{generic_us / fast_us:13.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
