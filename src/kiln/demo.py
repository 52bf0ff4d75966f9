"""``make demo``: the main flow on embedded defaults.

Build a small MLP, trace it, print its graph and code, then train it a few steps eagerly and
through ``kiln.compile`` and print the losses side by side (they agree step by step).
Run with ``python -m kiln.demo [--steps N] [--backend interpret]``.
"""

from __future__ import annotations

import argparse
import time

import kiln
from kiln import nn
from kiln.nn import functional as F


def make_data(n: int = 64, features: int = 16, classes: int = 4) -> tuple:
    """A seeded toy classification problem: labels from a random linear teacher."""
    kiln.manual_seed(0)
    x = kiln.randn(n, features)
    teacher = kiln.randn(features, classes)
    y = (x @ teacher).argmax(dim=1)
    return x, y


def make_model(features: int = 16, hidden: int = 32, classes: int = 4) -> nn.Module:
    kiln.manual_seed(1)
    return nn.Sequential(nn.Linear(features, hidden), nn.GELU(), nn.Linear(hidden, classes))


def train(model: nn.Module, forward, x, y, steps: int, optimizer_cls, **opt) -> list[float]:
    optimizer = optimizer_cls(model.parameters(), **opt)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(forward(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiln.demo", description=__doc__)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--backend", default="interpret")
    args = parser.parse_args(argv)

    x, y = make_data()
    model = make_model()
    print("== model ==")
    print(model)

    gm = kiln.trace(model, x, dynamic={"input": {0: "batch"}})
    print("\n== traced graph (batch dim symbolic) ==")
    print(gm.graph)
    print("\n== gm.code ==")
    print(gm.code)

    print(f"== training {args.steps} steps: eager vs kiln.compile(backend={args.backend!r}) ==")
    for name, optimizer_cls, opt in (("SGD", kiln.optim.SGD, {"lr": 0.5, "momentum": 0.9}),
                                     ("Adam", kiln.optim.Adam, {"lr": 0.01})):
        eager_model = make_model()
        compiled_model = make_model()
        compiled = kiln.compile(compiled_model, backend=args.backend)
        t0 = time.perf_counter()
        eager = train(eager_model, eager_model, x, y, args.steps, optimizer_cls, **opt)
        t1 = time.perf_counter()
        comp = train(compiled_model, compiled, x, y, args.steps, optimizer_cls, **opt)
        t2 = time.perf_counter()
        print(f"\n{name}: step | eager loss | compiled loss")
        for i, (a, b) in enumerate(zip(eager, comp)):
            print(f"  {i:4d} | {a:10.6f} | {b:13.6f}")
        worst = max(abs(a - b) for a, b in zip(eager, comp))
        print(f"  max |difference| = {worst:.2e}; eager {t1 - t0:.2f} s, compiled "
              f"{t2 - t1:.2f} s (includes tracing)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
