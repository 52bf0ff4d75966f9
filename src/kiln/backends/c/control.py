"""Graphs with control flow on the C backend, the fallback: straight-line code in C, the
control on the host.

The C code generator emits loops and branches itself (:mod:`.control_lower`: one native
call per graph). What it cannot lower (:func:`.control_lower.unsupported` says why: a random
draw inside a body) runs here instead: every maximal run of op nodes (a *segment*) is
compiled to C as a graph of its own, and so is every subgraph body (recursively); the
``if``/``while``/``for`` of each control node runs in Python between native calls (one
native call per segment, per branch taken, per loop iteration). All the arithmetic runs in
C; the interpreter runs none of it. The helpers that cut a graph into segments serve both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kiln.core.tensor import Tensor
from kiln.graph.control import interpret, subgraphs
from kiln.graph.graph import Graph
from kiln.graph.interpreter import bind_symbols
from kiln.graph.module import GraphModule
from kiln.graph.node import Node, map_args
from kiln.symbolic.sizes import SymInt, contains_symbolic, evaluate


def has_control_flow(graph: Graph) -> bool:
    return any(n.op == "control" for n in graph.nodes)


def _symbols_of(nodes: list[Node]) -> set[str]:
    out: set[str] = set()

    def visit(v: Any) -> None:
        if isinstance(v, SymInt):
            out.update(v.free_symbols)
        elif isinstance(v, (tuple, list)):
            for x in v:
                visit(x)

    for n in nodes:
        metas = n.meta if isinstance(n.meta, tuple) else (n.meta,)
        for m in metas:
            if m is not None:
                visit(tuple(m.shape))
        visit(tuple(n.kwargs.values()))
    return out


def _binds(p: Node) -> set[str]:
    return {d.plain_symbol for d in p.meta.shape
            if isinstance(d, SymInt) and d.plain_symbol is not None}


def segment_inputs(nodes: list[Node]) -> list[Node]:
    """The nodes outside ``nodes`` that they read, in order of first use."""
    inside = set(nodes)
    inputs: list[Node] = []
    for n in nodes:
        for i in n.inputs:
            if i not in inside and i not in inputs:
                inputs.append(i)
    return inputs


def segment_graph(nodes: list[Node], inputs: list[Node], constants: dict, symbols: dict
                  ) -> tuple[Graph, list[Node], dict]:
    """A graph of the op nodes ``nodes`` (a run of one graph) that reads ``inputs`` and
    returns every node used outside the run; also those nodes and the constants it reads."""
    inside = set(nodes)
    outputs = [n for n in nodes if any(u not in inside for u in n.users)]
    g = Graph()
    g.symbols = dict(symbols)
    env: dict[Node, Node] = {i: g.placeholder(i.name, i.meta) for i in inputs}
    consts = {}
    for n in nodes:
        if n.op == "constant":
            env[n] = g.constant(n.target, n.meta)
            consts[n.target] = constants[n.target]
        else:
            env[n] = g.call(n.target, map_args(n.args, env.__getitem__), dict(n.kwargs),
                            n.meta, name=n.name)
    g.output([env[o] for o in outputs])
    return g, outputs, consts


class _Segment:
    """Op nodes compiled together: reads ``inputs`` (nodes), writes ``outputs``."""

    def __init__(self, graph: Graph, gm_constants: dict, nodes: list[Node],
                 options: dict) -> None:
        from kiln.backends.c.backend import compile_c

        inputs = segment_inputs(nodes)
        # A symbol a segment computes with must be bound by one of its inputs' shapes.
        used = _symbols_of(nodes)
        missing = used - set().union(*(_binds(i) for i in inputs), set())
        for p in graph.placeholders:
            if missing & _binds(p) and p not in inputs:
                inputs.append(p)
                missing -= _binds(p)
        bound = set().union(*(_binds(i) for i in inputs), set())
        g, outputs, consts = segment_graph(
            nodes, inputs, gm_constants,
            {k: d for k, d in graph.symbols.items() if k in used | bound})
        g.guards = [x for x in graph.guards if x.free_symbols <= bound]
        g.lint()
        self.inputs, self.outputs = inputs, outputs
        self.fn = compile_c(GraphModule(g, consts), None, **options)

    def run(self, values: dict[Node, Any]) -> None:
        outs = self.fn(*[values[i] for i in self.inputs])
        values.update(zip(self.outputs, outs, strict=True))


class HostControlFunction:
    """Runs a graph with control flow: segments and bodies native, control on the host.

    >>> import kiln
    >>> gm = kiln.trace(lambda x: kiln.cond(x.sum() > 0, lambda x: x * 2, lambda x: -x, (x,)),
    ...                 kiln.ones(2))
    >>> f = HostControlFunction(gm, {})
    >>> f(kiln.ones(2))[0].tolist(), f(-kiln.ones(2))[0].tolist()
    ([2.0, 2.0], [1.0, 1.0])
    """

    def __init__(self, gm: GraphModule, options: dict) -> None:
        graph = gm.graph
        self.graph = graph
        self.steps: list[tuple[str, Any]] = []
        self.bodies: dict[int, Callable[..., list]] = {}
        run: list[Node] = []

        def flush() -> None:
            if any(n.op == "call" for n in run):
                self.steps.append(("segment", _Segment(graph, gm.constants, list(run),
                                                       options)))
            else:  # constants only: nothing to compile
                self.steps += [("constant", (n, gm.constants[n.target])) for n in run]
            run.clear()

        for node in graph.nodes:
            if node.op in ("call", "constant"):
                run.append(node)
                continue
            flush()
            if node.op == "control":
                for sub in subgraphs(node):
                    self.bodies[id(sub)] = compile_body(sub, options)
                self.steps.append(("control", node))
            elif node.op == "item":
                self.steps.append(("item", node))

    def _runner(self, g: Graph, inputs: list) -> list:
        return self.bodies[id(g)](*inputs)

    def __call__(self, *inputs: Any) -> list[Tensor]:
        env = bind_symbols(self.graph, list(inputs))
        values: dict[Node, Any] = dict(zip(self.graph.placeholders, inputs, strict=True))
        for kind, step in self.steps:
            if kind == "segment":
                step.run(values)
            elif kind == "constant":
                values[step[0]] = step[1]
            elif kind == "item":
                values[step] = values[step.args[0]][step.kwargs["index"]]
            else:
                args = map_args(step.args, values.__getitem__)
                if env and contains_symbolic(args):
                    args = evaluate(args, env)
                values[step] = interpret(step, args, self._runner)
        return [values[n] for n in self.graph.outputs]


def compile_body(g: Graph, options: dict) -> Callable[..., list]:
    """A subgraph as a native function (or, when it computes nothing, its own data flow)."""
    if has_control_flow(g):
        return HostControlFunction(GraphModule(g), options)
    if not any(n.op == "call" for n in g.nodes):
        from kiln.graph.interpreter import run

        return lambda *xs: run(g, {}, list(xs))
    from kiln.backends.c.backend import compile_c

    # A body inherits every symbol of the graph around it; the native function binds only
    # those its own inputs carry.
    g, _ = g.copy()
    keep = _symbols_of(g.nodes) | set().union(*(_binds(p) for p in g.placeholders), set())
    g.symbols = {k: d for k, d in g.symbols.items() if k in keep}
    return compile_c(GraphModule(g), None, **options)
