"""The reference interpreter: run a graph node by node with the eager kernels.

It calls ops through dispatch, so running a graph on tensors that require grad records the
autograd tape exactly as eager code would. Input guards (rank, dtype, static sizes, symbolic
sizes and their ranges) run first and raise a GuardError naming the input.
"""

from __future__ import annotations

from typing import Any

from kiln.core.prims.registry import get_op
from kiln.core.prims.shapes import fmt_shape
from kiln.core.tensor import Tensor
from kiln.errors import GuardError
from kiln.graph.graph import Graph
from kiln.graph.node import Node, map_args
from kiln.symbolic.guards import check_guards
from kiln.symbolic.sizes import SymInt, contains_symbolic, evaluate


def bind_symbols(graph: Graph, inputs: list[Any], names: list[str] | None = None
                 ) -> dict[str, int]:
    """Check ``inputs`` against the graph's placeholders; return symbol values."""
    placeholders = graph.placeholders
    if len(inputs) != len(placeholders):
        raise GuardError(f"expected {len(placeholders)} tensor inputs "
                         f"({', '.join(p.name for p in placeholders)}), got {len(inputs)}")
    env: dict[str, int] = {}
    deferred: list[tuple[str, int, SymInt, int]] = []
    for p, value in zip(placeholders, inputs):
        name = p.target
        if not isinstance(value, Tensor):
            raise GuardError(f"input {name}: expected a kiln.Tensor, got {type(value).__name__}")
        meta = p.meta
        shape = value.shape
        if len(shape) != len(meta.shape):
            raise GuardError(f"input {name}: expected rank {len(meta.shape)} "
                             f"(shape {fmt_shape(meta.shape)}), got shape {tuple(shape)}")
        if value.dtype != meta.dtype:
            raise GuardError(f"input {name}: expected dtype {meta.dtype}, got {value.dtype}")
        for d, (want, got) in enumerate(zip(meta.shape, shape)):
            if isinstance(want, SymInt):
                sym = want.plain_symbol
                if sym is None:
                    deferred.append((name, d, want, got))
                    continue
                if sym in env and env[sym] != got:
                    raise GuardError(f"input {name}: dim {d} is {sym}={env[sym]} from an "
                                     f"earlier input, got {got}")
                dim = graph.symbols.get(sym)
                if dim is not None and not dim.min <= got <= dim.max:
                    raise GuardError(f"input {name}: dim {d} ({sym}) must be in "
                                     f"[{dim.min}, {dim.max}], got {got}")
                env[sym] = got
            elif want != got:
                raise GuardError(f"input {name}: expected shape {fmt_shape(meta.shape)}, "
                                 f"got {tuple(shape)} (dim {d}: {want} vs {got})")
    for name, d, expr, got in deferred:
        if expr.evaluate(env) != got:
            raise GuardError(f"input {name}: dim {d} must equal {expr} = {expr.evaluate(env)}, "
                             f"got {got}")
    if graph.guards:
        check_guards(graph.guards, env)
    return env


def last_uses(graph: Graph) -> dict[Node, list[Node]]:
    """For each node, the values whose last reader it is (so they can be freed after it)."""
    seen: set[Node] = set()
    frees: dict[Node, list[Node]] = {}
    for node in reversed(graph.nodes):
        for inp in node.inputs:
            if inp not in seen:
                seen.add(inp)
                frees.setdefault(node, []).append(inp)
    return frees


def run(graph: Graph, constants: dict[str, Any], inputs: list[Any]) -> list[Any]:
    """Execute ``graph`` on ``inputs`` (one per placeholder); returns the output values."""
    from kiln.core.dispatch import call

    env = bind_symbols(graph, list(inputs))
    values: dict[Node, Any] = {}
    it = iter(inputs)
    frees = last_uses(graph)
    for node in graph.nodes:
        if node.op == "placeholder":
            values[node] = next(it)
        elif node.op == "constant":
            values[node] = constants[node.target]
        elif node.op == "call":
            args = map_args(node.args, values.__getitem__)
            kwargs = node.kwargs
            if env and contains_symbolic(kwargs):
                kwargs = evaluate(kwargs, env)
            values[node] = call(get_op(node.target), *args, **kwargs)
        elif node.op == "item":
            values[node] = values[node.args[0]][node.kwargs["index"]]
        elif node.op == "control":
            from kiln.graph.control import interpret

            args = map_args(node.args, values.__getitem__)
            if env and contains_symbolic(args):
                args = evaluate(args, env)
            values[node] = interpret(node, args)
        else:
            return [values[n] for n in node.args[0]]
        for dead in frees.get(node, ()):
            if dead is not node:
                values.pop(dead, None)
    raise GuardError("graph has no output node")
