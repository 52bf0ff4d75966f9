"""``gm.code``: a graph printed as a Python ``def forward`` that runs and frees dead values."""

from __future__ import annotations

import math
from typing import Any

from kiln.core.dtypes import DType
from kiln.graph.graph import Graph
from kiln.graph.interpreter import last_uses
from kiln.graph.node import Node
from kiln.symbolic.sizes import SymInt


def py_literal(value: Any) -> str:
    """Python source for an argument or attribute value."""
    if isinstance(value, Node):
        return value.name
    if isinstance(value, SymInt):
        return f"({value})"
    if isinstance(value, DType):
        return f"kiln.{value.name}"
    if isinstance(value, float):
        if math.isnan(value):
            return "float('nan')"
        if math.isinf(value):
            return "float('inf')" if value > 0 else "float('-inf')"
        return repr(value)
    if isinstance(value, tuple):
        inner = ", ".join(py_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    return repr(value)


def python_code(graph: Graph) -> str:
    """The module source: its imports (so ``exec(code, {})`` works) and ``def forward``."""
    placeholders = graph.placeholders
    params = ", ".join(["self"] + [p.name for p in placeholders])
    header = ["import kiln", "from kiln import ops"]
    if graph.guards:
        header.append("from kiln.errors import GuardError")
    lines = header + ["", "", f"def forward({params}):"]
    bound: set[str] = set()
    for p in placeholders:
        for d, size in enumerate(p.meta.shape):
            sym = size.plain_symbol if isinstance(size, SymInt) else None
            if sym is not None and sym not in bound:
                bound.add(sym)
                lines.append(f"    {sym} = {p.name}.shape[{d}]")
    for g in graph.guards:  # what tracing assumed about the sizes (kiln.symbolic.guards)
        values = ", ".join(f"{s}={{{s}}}" for s in sorted(g.free_symbols))
        lines.append(f"    if not ({g}):")
        lines.append(f"        raise GuardError(f{f'traced assuming {g}; got {values}'!r})")
    frees = last_uses(graph)
    for node in graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            outs = ", ".join(n.name for n in node.args[0])
            lines.append(f"    return [{outs}]")
            break
        if node.op == "constant":
            stmt = f"{node.name} = self.constants[{node.target!r}]"
        else:
            parts = [py_literal(a) for a in node.args]
            parts += [f"{k}={py_literal(v)}" for k, v in node.kwargs.items()]
            stmt = f"{node.name} = ops.{node.target}({', '.join(parts)})"
        dead = [n.name for n in frees.get(node, ()) if n is not node]
        if dead:
            stmt += ";  " + " = ".join(dead) + " = None"
        lines.append(f"    {stmt}  # {node.meta}")
    return "\n".join(lines) + "\n"
