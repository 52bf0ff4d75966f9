"""Inspection compilers (``nop``, ``print_compile``) and ``draw_graph``.

A compiler is ``(GraphModule, example_specs) -> callable``; these return the GraphModule
itself (it runs through the reference interpreter), after looking at it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kiln.base.atomic import write_atomic
from kiln.errors import ArgumentError, BackendError
from kiln.graph.module import GraphModule

_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}


def nop(gm: GraphModule, example_specs: Any = None) -> GraphModule:
    """The compiler that compiles nothing: the graph runs in the reference interpreter.

    >>> import kiln
    >>> from kiln.aot import aot_function, nop
    >>> f = aot_function(lambda x: x * 2.0, nop)
    >>> f(kiln.ones(2)).tolist()
    [2.0, 2.0]
    """
    return gm


def print_compile(gm: GraphModule, example_specs: Any = None) -> GraphModule:
    """Print ``gm.code`` (forward, backward or inference graph alike), then run it as is.

    >>> import kiln
    >>> from kiln.aot import aot_function, print_compile
    >>> f = aot_function(lambda x: x.exp(), print_compile)
    >>> y = f(kiln.ones(1))
    import kiln
    from kiln import ops
    <BLANKLINE>
    <BLANKLINE>
    def forward(self, primals_1):
        exp = ops.exp(primals_1);  primals_1 = None  # f32[1]
        return [exp]
    <BLANKLINE>
    """
    print(gm.code)
    return gm


def to_dot(gm: GraphModule, name: str = "graph") -> str:
    """Graphviz source for ``gm``: one box per node with its op and meta.

    >>> import kiln
    >>> from kiln.aot import to_dot
    >>> print(to_dot(kiln.trace(lambda x: x.exp(), kiln.ones(2))))  # doctest: +ELLIPSIS
    digraph "graph" {
      rankdir=TB;
      ...
      "x" -> "exp";
      ...
    }
    """
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace('"', '\\"')

    def quote(text: str) -> str:
        return f'"{escape(text)}"'

    def label(*rows: str) -> str:
        # Each row is escaped on its own: the joining "\n" is DOT's line break, and must
        # reach the file as one backslash.
        return '"' + "\\n".join(escape(r) for r in rows) + '"'

    lines = [f"digraph {quote(name)} {{", "  rankdir=TB;",
             '  node [shape=box, fontname="monospace", fontsize=10];']
    for n in gm.graph.nodes:
        if n.op == "output":
            text, style = label("output"), "shape=oval"
        elif n.op == "placeholder":
            text, style = label(n.name, str(n.meta)), "style=filled, fillcolor=lightblue"
        elif n.op == "constant":
            text, style = label(n.name, f"constant {n.target}", str(n.meta)), "style=dashed"
        else:
            attrs = ", ".join(f"{k}={v}" for k, v in n.kwargs.items())
            call = f"{n.target}({attrs})" if attrs else str(n.target)
            # A node named after its op ("sin") would show the name twice.
            rows = (call, str(n.meta)) if call == n.name else (n.name, call, str(n.meta))
            text, style = label(*rows), ""
        lines.append(f"  {quote(n.name)} [label={text}{', ' + style if style else ''}];")
        for i in n.inputs:
            lines.append(f"  {quote(i.name)} -> {quote(n.name)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw_graph(gm: GraphModule, path: str | os.PathLike) -> Path:
    """Draw ``gm`` to ``path`` (.svg, .png or .pdf; no suffix means .svg) with Graphviz.

    Without Graphviz's ``dot`` on PATH, the Graphviz source is written next to it
    (``path`` with suffix ``.dot``) and a one-line hint goes to stderr. A ``.dot`` path
    always gets the source. Returns the path written; files appear whole or not at all.

    >>> import kiln, tempfile, pathlib
    >>> from kiln.aot.compilers import draw_graph
    >>> gm = kiln.trace(lambda x: x.sin(), kiln.ones(2))
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> draw_graph(gm, d / "g.dot").read_text().startswith("digraph")
    True
    """
    if not isinstance(gm, GraphModule):
        raise ArgumentError(f"draw_graph: expected a GraphModule, got {type(gm).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentError(f"draw_graph: path must be a str or os.PathLike, got "
                            f"{type(path).__name__}; to draw the graphs aot_function compiles, "
                            "pass graph_drawer(path) as the compiler")
    target = Path(path)
    if target.suffix == "":
        target = target.with_suffix(".svg")
    source = to_dot(gm, target.stem)
    if target.suffix == ".dot":
        write_atomic(target, source.encode())
        return target
    fmt = _FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise ArgumentError(f"draw_graph: unsupported file type {target.suffix!r}; use one of "
                            f"{sorted(_FORMATS) + ['.dot']}")
    dot = shutil.which("dot")
    if dot is None:
        fallback = target.with_suffix(".dot")
        write_atomic(fallback, source.encode())
        print(f"[kiln.aot] Graphviz `dot` not found: wrote {fallback}; render it with "
              f"`dot -T{fmt} {fallback} -o {target}`", file=sys.stderr)
        return fallback
    proc = subprocess.run([dot, f"-T{fmt}"], input=source.encode(), capture_output=True,
                          check=False)
    if proc.returncode != 0:
        raise BackendError(f"draw_graph: dot failed (exit {proc.returncode}): "
                           f"{proc.stderr.decode(errors='replace').strip()[:500]}")
    write_atomic(target, proc.stdout)
    return target


def graph_drawer(path: str | os.PathLike) -> Callable[[GraphModule, Any], GraphModule]:
    """A compiler that draws each graph it gets to ``path`` and then runs it as is.

    >>> import kiln, tempfile, pathlib
    >>> from kiln.aot import aot_function, graph_drawer
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> f = aot_function(lambda x: x.sin(), graph_drawer(d / "fw.dot"))
    >>> _ = f(kiln.ones(2)); (d / "fw.dot").exists()
    True
    """
    def compiler(gm: GraphModule, example_specs: Any = None) -> GraphModule:
        draw_graph(gm, path)
        return gm

    compiler.__name__ = f"graph_drawer({os.fspath(path)!r})"
    return compiler
