"""``kiln compile FILE:FN`` (graph, schedule, timings) and ``kiln draw FILE:FN -o graph.svg``."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from kiln.cli.target import INPUTS, TARGET, example_inputs, load_target, median_time


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}" if seconds < 1 else f"{seconds * 1e3:.0f}"


def _trace(target: str, inputs: tuple[str, ...]) -> tuple[Any, tuple, Any, float]:
    import kiln

    fn = load_target(target)
    args = example_inputs(inputs)
    start = time.perf_counter()
    with kiln.no_grad():
        gm = kiln.trace(fn, *args)
    return fn, args, gm, time.perf_counter() - start


def schedule_table(plan: dict) -> Table:
    """The C backend's kernels in call order: kind, what they compute, loops and passes."""
    table = Table(title="schedule (C kernels in call order)", title_justify="left")
    for col in ("#", "kind", "nodes", "kernel"):
        table.add_column(col, justify="right" if col in ("#", "nodes") else "left")
    by_id = {k["id"]: k for k in plan["kernels"]}
    for i, kid in enumerate(plan["calls"]):
        k = by_id[kid]
        extra = f" [{k['loops']} loops, {k['passes']} passes]" if k["kind"] == "rows" else ""
        table.add_row(str(i), k["kind"], str(len(k["nodes"])), k["comment"] + extra)
    return table


@click.command("compile")
@TARGET
@INPUTS
@click.option("--backend", type=click.Choice(["c", "interpret"]), default="c", show_default=True)
@click.option("--runs", type=click.IntRange(1), default=20, show_default=True,
              help="Calls timed after the first (median reported).")
@click.option("--show-c", is_flag=True, help="Print the generated C source too.")
def compile_command(target: str, inputs: tuple[str, ...], backend: str, runs: int,
                    show_c: bool) -> None:
    """Trace FN from FILE on example inputs, compile it, and print the graph, the schedule
    and timings (trace, compile, first call, per call against eager)."""
    import kiln
    from kiln.backends import get_backend

    console = Console()
    err = Console(stderr=True)
    with err.status("tracing", spinner="dots"):
        fn, args, gm, t_trace = _trace(target, inputs)
    console.rule("graph")
    console.print(str(gm.graph), markup=False, highlight=False)
    with err.status(f"compiling with the {backend} backend", spinner="dots"):
        start = time.perf_counter()
        compiled = get_backend(backend)(gm, None)
        t_compile = time.perf_counter() - start
    plan = getattr(compiled, "plan", None)
    if plan is not None:
        console.print(schedule_table(plan))
        gemm = (plan.get("gemm") or {}).get("backend", "none")
        console.print(f"GEMM: {gemm}; flags: {' '.join(plan.get('flags', []))}",
                      markup=False, highlight=False)
        if show_c:
            console.rule("generated C")
            console.print(plan["source"], markup=False, highlight=False)
    flat = gm.signature.flatten_inputs(args, {})
    with kiln.no_grad():
        start = time.perf_counter()
        compiled(*flat)
        t_first = time.perf_counter() - start
        t_call = median_time(lambda: compiled(*flat), runs)
        t_eager = median_time(lambda: fn(*args), max(1, min(runs, 5)))
    table = Table(title="timings (ms)", title_justify="left")
    table.add_column("stage")
    table.add_column("ms", justify="right")
    for stage, seconds in (("trace", t_trace), (f"compile ({backend})", t_compile),
                           ("first call", t_first), (f"per call (median of {runs})", t_call),
                           ("eager per call", t_eager)):
        table.add_row(stage, _ms(seconds))
    console.print(table)


@click.command("draw")
@TARGET
@INPUTS
@click.option("-o", "--output", default="graph.svg", show_default=True,
              type=click.Path(dir_okay=False),
              help="Where to draw: .svg, .png, .pdf (Graphviz) or .dot (its source).")
def draw_command(target: str, inputs: tuple[str, ...], output: str) -> None:
    """Trace FN from FILE and draw its graph (Graphviz; without `dot`, the .dot source)."""
    from kiln.aot.compilers import draw_graph

    _, _, gm, _ = _trace(target, inputs)
    written = draw_graph(gm, output)
    click.echo(f"wrote {written} ({len(list(gm.graph.calls()))} ops)", file=sys.stdout)


COMMANDS = [compile_command, draw_command]
