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


def _check_names(graph: Graph) -> None:
    """Every name the code will hold, in ``graph`` and its subgraphs: checked identifiers,
    none of them one of the helper names printed control flow defines, every item index an
    int (a hand-built graph has not been through lint)."""
    from kiln.errors import GraphError, SerializationError
    from kiln.graph.validate import check_name

    names: set[str] = set()
    helpers: set[str] = set()

    def visit(g: Graph, depth: int) -> None:
        from kiln.graph.control import SUBGRAPHS

        if depth > 64:
            raise GraphError("cannot print the graph as code: subgraphs nest too deeply")
        for sym in g.symbols:
            names.add(check_name(sym, "symbol name"))
        for node in g.nodes:
            if node.op != "output":
                names.add(check_name(node.name, "node name"))
            for key in node.kwargs:
                check_name(key, f"node {node.name} attribute name")
            if node.op == "item" and type(node.kwargs.get("index")) is not int:
                raise GraphError(f"cannot print the graph as code: item {node.name} has "
                                 f"index {node.kwargs.get('index')!r:.40}, not an int")
            if node.op == "control":
                if node.target not in SUBGRAPHS:
                    raise GraphError(f"cannot print the graph as code: unknown control op "
                                     f"{node.target!r:.40}")
                helpers.update((f"_{node.name}_i", f"_{node.name}_saved"))
                for key in SUBGRAPHS[node.target]:
                    helpers.add(f"_{node.name}__{key}")
                    sub = node.kwargs[key]
                    if not isinstance(sub, Graph):
                        raise GraphError(f"cannot print the graph as code: {node.name}.{key} "
                                         "is not a Graph")
                    visit(sub, depth + 1)

    try:
        visit(graph, 0)
    except SerializationError as e:
        raise GraphError(f"cannot print the graph as code: {e}") from None
    clash = names & helpers
    if clash:
        raise GraphError(f"cannot print the graph as code: the names {sorted(clash)} are the "
                         "ones printed control flow gives its own functions and variables")


def python_code(graph: Graph) -> str:
    """The module source: its imports (so ``exec(code, {})`` works) and ``def forward``.

    A control-flow node (kiln.graph.control) prints as nested ``def``s for its subgraphs and
    a Python ``if``/``while``/``for`` that calls them, so the code still runs as it reads.
    """
    _check_names(graph)  # the code never holds a name that was not checked here
    header = ["import kiln", "from kiln import ops"]
    if graph.guards:
        header.append("from kiln.errors import GuardError")
    return "\n".join(header + ["", ""] + _function(graph, "forward", True, "")) + "\n"


def _function(graph: Graph, name: str, with_self: bool, indent: str) -> list[str]:
    placeholders = graph.placeholders
    params = ", ".join((["self"] if with_self else []) + [p.name for p in placeholders])
    pad = indent + "    "
    lines = [f"{indent}def {name}({params}):"]
    bound: set[str] = set()
    for p in placeholders:
        for d, size in enumerate(p.meta.shape):
            sym = size.plain_symbol if isinstance(size, SymInt) else None
            if sym is not None and sym not in bound:
                bound.add(sym)
                lines.append(f"{pad}{sym} = {p.name}.shape[{d}]")
    for g in graph.guards:  # what tracing assumed about the sizes (kiln.symbolic.guards)
        values = ", ".join(f"{s}={{{s}}}" for s in sorted(g.free_symbols))
        lines.append(f"{pad}if not ({g}):")
        lines.append(f"{pad}    raise GuardError(f{f'traced assuming {g}; got {values}'!r})")
    frees = last_uses(graph)
    for node in graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            outs = ", ".join(n.name for n in node.args[0])
            lines.append(f"{pad}return [{outs}]")
            break
        if node.op == "constant":
            stmt = f"{node.name} = self.constants[{node.target!r}]"
        elif node.op == "item":
            stmt = f"{node.name} = {node.args[0].name}[{node.kwargs['index']}]"
        elif node.op == "control":
            lines += _control(node, pad)
            stmt = ""
        else:
            parts = [py_literal(a) for a in node.args]
            parts += [f"{k}={py_literal(v)}" for k, v in node.kwargs.items()]
            stmt = f"{node.name} = ops.{node.target}({', '.join(parts)})"
        dead = [n.name for n in frees.get(node, ()) if n is not node]
        if stmt:
            if dead:
                stmt += ";  " + " = ".join(dead) + " = None"
            lines.append(f"{pad}{stmt}  # {node.meta}")
        elif dead:
            lines.append(f"{pad}{' = '.join(dead)} = None")
    return lines


def _control(node: Node, pad: str) -> list[str]:
    """Nested defs for the subgraphs, then the statement that runs them."""
    from kiln.graph.control import SUBGRAPHS

    fn = {key: f"_{node.name}__{key}" for key in SUBGRAPHS[node.target]}
    lines: list[str] = []
    for key in SUBGRAPHS[node.target]:
        lines += _function(node.kwargs[key], fn[key], False, pad)
    name = node.name
    metas = ", ".join(str(m) for m in node.meta)
    args = [py_literal(a) for a in node.args]
    if node.target == "cond":
        ops_ = ", ".join(args[1:])
        lines += [f"{pad}if bool({args[0]}):  # ({metas})",
                  f"{pad}    {name} = {fn['true_graph']}({ops_})",
                  f"{pad}else:",
                  f"{pad}    {name} = {fn['false_graph']}({ops_})"]
        return lines
    n = node.kwargs["num_carried"]
    first = 2 if node.target == "fori_loop" else 0
    carried = args[first:first + n]
    caps = "".join(f", {a}" for a in args[first + n:])
    lines.append(f"{pad}{name} = [{', '.join(carried)}]  # ({metas})")
    if node.target == "while_loop":
        lines += [f"{pad}while bool({fn['cond_graph']}(*{name}{caps})[0]):",
                  f"{pad}    {name} = {fn['body_graph']}(*{name}{caps})"]
        return lines
    lo, hi = (f"int({a}.item())" if isinstance(v, Node) else a
              for a, v in zip(args[:2], node.args[:2], strict=True))
    save = node.kwargs["save"]
    i = f"_{name}_i"
    if save:
        lines.append(f"{pad}_{name}_saved = [[] for _ in range(len({name}) + 1)]")
    lines.append(f"{pad}for {i} in range({lo}, {hi}):")
    lines.append(f"{pad}    {i} = kiln.tensor({i})")
    if save:
        lines.append(f"{pad}    for _h, _c in zip(_{name}_saved, [{i}, *{name}]):")
        lines.append(f"{pad}        _h.append(_c)")
    lines.append(f"{pad}    {name} = {fn['body_graph']}({i}, *{name}{caps})")
    if save:  # the index and values of every iteration, in the order the reverse pass reads
        like = f"[kiln.tensor(0), *{name}]"
        lines.append(f"{pad}{name} = {name} + [kiln.stack(_h[::-1]) if _h else kiln.zeros("
                     f"(0, *_c.shape), dtype=_c.dtype) for _h, _c in zip(_{name}_saved, "
                     f"{like})]")
    return lines
