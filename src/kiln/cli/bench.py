"""``kiln bench``: time Kiln's C backend against eager Kiln (and torch, when installed) on a
few built-in workloads, or on ``FILE:FN`` with example inputs.

This is a quick look on the user's machine; the benchmarks/ scripts of the repository are the
careful measurements (interleaved rounds, cold and warm caches, torch.compile).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from kiln.cli.target import INPUTS, example_inputs, load_target, median_time


@dataclass
class Workload:
    name: str
    fn: Callable[..., Any]  # the Kiln function (a module or a function of tensors)
    args: tuple
    torch_fn: Callable[[], Any] | None = None  # a no-argument torch call, or None


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


def builtin_workloads(smoke: bool) -> list[Workload]:
    import kiln
    import kiln.nn.functional as F
    from kiln.models import MLP

    torch = _torch()
    rows, cols = (64, 128) if smoke else (2048, 1024)
    kiln.manual_seed(0)
    x = kiln.randn(rows, cols)
    w = kiln.ones(cols)
    b = kiln.zeros(cols)
    sizes = (32, 64, 10) if smoke else (784, 1024, 1024, 10)
    mlp = MLP(sizes).eval()
    batch = kiln.randn(8 if smoke else 128, sizes[0])
    out = [
        Workload(f"softmax {rows}x{cols}", lambda t: F.softmax(t, dim=-1), (x,)),
        Workload(f"layer_norm {rows}x{cols}", lambda t, w, b: F.layer_norm(t, (cols,), w, b),
                 (x, w, b)),
        Workload(f"MLP {'-'.join(map(str, sizes))} b{batch.shape[0]}", mlp, (batch,)),
    ]
    if torch is not None:
        tx, tw, tb = (torch.from_numpy(t.numpy().copy()) for t in (x, w, b))
        layers = [m for m in mlp.modules() if isinstance(m, kiln.nn.Linear)]
        tlayers = [(torch.from_numpy(m.weight.detach().numpy().copy()),
                    torch.from_numpy(m.bias.detach().numpy().copy())) for m in layers]
        tbatch = torch.from_numpy(batch.numpy().copy())

        def torch_mlp() -> Any:
            h = tbatch
            for i, (wt, bt) in enumerate(tlayers):
                h = torch.nn.functional.linear(h, wt, bt)
                h = torch.relu(h) if i < len(tlayers) - 1 else h
            return h

        out[0].torch_fn = lambda: torch.softmax(tx, dim=-1)
        out[1].torch_fn = lambda: torch.nn.functional.layer_norm(tx, (cols,), tw, tb)
        out[2].torch_fn = torch_mlp
    return out


def measure(work: Workload, runs: int) -> dict[str, float | None]:
    """Cold compile (trace + build + first call), then medians of eager, C and torch."""
    import kiln

    with kiln.no_grad():
        start = time.perf_counter()
        compiled = kiln.compile(work.fn, backend="c")
        compiled(*work.args)
        cold = time.perf_counter() - start
        c = median_time(lambda: compiled(*work.args), runs)
        eager = median_time(lambda: work.fn(*work.args), max(1, runs // 4))
    t = None
    torch = _torch()
    if work.torch_fn is not None and torch is not None:
        # Kiln's OpenMP threads spin for a moment after a call; let them sleep before torch's
        # own pool starts, or each slows the other.
        time.sleep(0.05)
        with torch.no_grad():
            work.torch_fn()
            t = median_time(work.torch_fn, runs)
    return {"cold": cold, "c": c, "eager": eager, "torch": t}


@click.command("bench")
@click.argument("target", metavar="[FILE:FN]", required=False)
@INPUTS
@click.option("--runs", type=click.IntRange(1), default=20, show_default=True,
              help="Timed calls per column (median reported).")
@click.option("--smoke", is_flag=True, help="Tiny sizes, 2 runs: check that it works.")
def bench_command(target: str | None, inputs: tuple[str, ...], runs: int, smoke: bool) -> None:
    """Time the C backend against eager Kiln and torch (when installed): on built-in workloads,
    or on FN from FILE with example inputs (-i 4x16 ...)."""
    runs = 2 if smoke else runs
    if target is None:
        works = builtin_workloads(smoke)
    else:
        name = target.replace("\\", "/").rsplit("/", 1)[-1]  # prog.py:forward, not the path
        works = [Workload(name, load_target(target), example_inputs(inputs))]
    results = []
    with Progress(transient=True, console=Console(stderr=True)) as progress:
        task = progress.add_task("benchmarking", total=len(works))
        for work in works:
            progress.update(task, description=work.name)
            results.append((work, measure(work, runs)))
            progress.advance(task)
    have_torch = any(r["torch"] is not None for _, r in results)
    table = Table(title=f"kiln bench (median of {runs} calls, ms)", title_justify="left")
    columns = ["workload", "Kiln C", "Kiln eager", "eager/C", "C cold s"]
    if have_torch:
        columns[4:4] = ["torch eager", "torch/C"]
    for col in columns:
        table.add_column(col, justify="left" if col == "workload" else "right")
    for work, r in results:
        row = [work.name, f"{r['c'] * 1e3:.3g}", f"{r['eager'] * 1e3:.3g}",
               f"{r['eager'] / r['c']:.2f}x"]
        if have_torch:
            t = r["torch"]
            row += ["-", "-"] if t is None else [f"{t * 1e3:.3g}", f"{t / r['c']:.2f}x"]
        row.append(f"{r['cold']:.2f}")
        table.add_row(*row)
    Console().print(table)


COMMANDS = [bench_command]
