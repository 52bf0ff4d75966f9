"""``optimizer.step()`` on the W3 MLP's parameters: Kiln fused (C, OpenMP), Kiln's NumPy fast
path, and PyTorch eager, side by side.

Run from the repository root: ``python -m benchmarks.optim_step [--quick] [--no-torch] [--smoke]``.

Parameters: ``kiln.models.MLP`` 784-1024-1024-10 (6 tensors, 1.86M float32). Every step sees
fresh gradient tensors (two sets, alternating, so the optimizers re-check and re-bind their
gradients as after a real backward, without timing an allocation).

Columns, median microseconds per step:

- ``fused``: ``fused=None`` (the default: the C kernels of ``kiln.optim.fused``), 2 threads;
- ``numpy``: ``fused=False``, Kiln's in-place NumPy fast path (one thread);
- ``torch``: ``torch.optim`` with its CPU default (``foreach=False``), 2 intra-op threads;
- ``t.fused``: ``torch.optim`` with ``fused=True`` (its CPU fused kernels), 2 threads;

then speed-ups of Kiln fused over the others (> 1: fused is faster). Timing interleaves the
columns round after round (bursts of load on this shared machine hit all alike), and sleeps
~50 ms whenever it switches between Kiln and torch: each has its own OpenMP runtime, whose
idle threads spin for a while after a parallel region and would slow the other's threads.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

THREADS = 2
SIZES = (784, 1024, 1024, 10)
SMOKE_SIZES = (8, 16, 4)  # --smoke: checks that the script runs
CASES = [
    ("SGD", "SGD", {"lr": 1e-3}),
    ("SGD momentum 0.9", "SGD", {"lr": 1e-3, "momentum": 0.9}),
    ("SGD nesterov + wd", "SGD", {"lr": 1e-3, "momentum": 0.9, "nesterov": True,
                                  "weight_decay": 1e-4}),
    ("Adam", "Adam", {"lr": 1e-3}),
    ("AdamW", "AdamW", {"lr": 1e-3}),
    ("AdamW amsgrad", "AdamW", {"lr": 1e-3, "amsgrad": True}),
]


def _kiln_step(name: str, kwargs: dict, fused: bool | None, sizes: tuple = SIZES
               ) -> Callable[[], Any]:
    import kiln
    from kiln import models as km

    kiln.manual_seed(0)
    params = list(km.MLP(sizes=sizes).parameters())
    rng = np.random.default_rng(1)
    grads = [[kiln.from_numpy(rng.standard_normal(p.shape).astype(np.float32) * 1e-2)
              for p in params] for _ in range(2)]
    opt = getattr(kiln.optim, name)(params, fused=fused, **kwargs)
    return _alternating(params, grads, opt)


def _alternating(params: list, grads: list, opt: Any) -> Callable[[], None]:
    """A step that sets the gradients (two sets, in turn: no cache sees the same data twice
    in a row) and calls ``opt.step()``."""
    turn = [0]

    def step() -> None:
        gs = grads[turn[0]]
        turn[0] ^= 1
        for p, g in zip(params, gs):
            p.grad = g
        opt.step()

    return step


def _torch_step(name: str, kwargs: dict, fused: bool, sizes: tuple = SIZES
                ) -> Callable[[], Any]:
    import torch

    from benchmarks import torch_models as tm

    params = list(tm.mlp(sizes).parameters())
    rng = np.random.default_rng(1)
    grads = [[torch.from_numpy(rng.standard_normal(tuple(p.shape)).astype(np.float32) * 1e-2)
              for p in params] for _ in range(2)]
    extra = {"fused": True} if fused else {"foreach": False}
    opt = getattr(torch.optim, name)(params, **extra, **kwargs)
    return _alternating(params, grads, opt)


def measure(impls: dict[str, Callable[[], Any]], rounds: int, per_round: int,
            pause: float = 0.05) -> dict:
    """Median seconds per call of each implementation, interleaved round by round."""
    times: dict[str, list[float]] = {k: [] for k in impls}
    for fn in impls.values():
        for _ in range(3):
            fn()  # warm: the fused library, state, page faults
    last_lib = None
    for _ in range(rounds):
        for key, fn in impls.items():
            lib = "torch" if key.startswith("t") else "kiln"
            if lib != last_lib:
                time.sleep(pause)  # the other runtime's OpenMP threads stop spinning
                fn()
                last_lib = lib
            for _ in range(per_round):
                t = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.optim_step", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch columns")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny parameters, one step per cell: checks that the script runs")
    args = parser.parse_args(argv)
    sizes = SMOKE_SIZES if args.smoke else SIZES
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    from benchmarks.run import machine, torch_threads, torch_version

    use_torch = torch_threads(THREADS) if not args.no_torch else False
    from kiln.optim import fused

    print(f"machine: {machine()}; threads: {THREADS}; kiln fused kernels: "
          f"{'yes' if fused.available() else 'NO (no C compiler)'}; torch: "
          f"{torch_version() if use_torch else 'not installed'}")
    rounds, per_round = (1, 1) if args.smoke else (5, 20) if args.quick else (args.rounds, 40)
    cols = ["fused", "numpy"] + (["torch", "t.fused"] if use_torch else [])
    what = "W3 MLP (1.86M f32)" if sizes == SIZES else f"MLP {'-'.join(map(str, sizes))}"
    head = f"{'optimizer.step() on ' + what:40}" + "".join(f"{c:>10}" for c in cols)
    head += "".join(f"{c + '/f':>10}" for c in cols[1:])
    print(f"\nmedian us per step, {rounds} rounds x {per_round} steps, interleaved\n")
    print(head)
    print("-" * len(head))
    for label, name, kwargs in CASES:
        impls = {"fused": _kiln_step(name, kwargs, None, sizes),
                 "numpy": _kiln_step(name, kwargs, False, sizes)}
        if use_torch:
            impls["torch"] = _torch_step(name, kwargs, False, sizes)
            impls["t.fused"] = _torch_step(name, kwargs, True, sizes)
        med = measure(impls, rounds, per_round, 0.0 if args.smoke else 0.05)
        line = f"{label:40}" + "".join(f"{med[c] * 1e6:10.0f}" for c in cols)
        line += "".join(f"{med[c] / med['fused']:10.2f}" for c in cols[1:])
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
