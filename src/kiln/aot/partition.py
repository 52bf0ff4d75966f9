"""Splitting a joint graph into a forward and a backward GraphModule.

Conventions (the same as functorch's, so partitioners are interchangeable):

- the joint graph's placeholders are ``primals_1..n`` then ``tangents_1..k``; its outputs are
  the ``num_fwd_outputs`` forward outputs followed by the gradients;
- the forward graph takes the primals and returns ``(*forward outputs, *saved)``;
- the backward graph takes ``(*saved, *tangents)`` (saved values keep their joint names)
  and returns the gradients.

A partitioner only decides *what is saved*; :func:`split_joint` does the extraction, DCE and
lint for every partitioner, so the halves are always valid graphs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kiln.errors import GraphError
from kiln.graph.graph import Graph
from kiln.graph.module import GraphModule
from kiln.graph.node import Node, map_args
from kiln.graph.passes import dce
from kiln.symbolic.sizes import SymInt

__all__ = ["default_partition", "split_joint", "JointInfo"]


class JointInfo:
    """The roles of a joint graph's nodes, computed once per partition call."""

    def __init__(self, joint: GraphModule, num_fwd_outputs: int) -> None:
        graph = joint.graph
        outputs = list(graph.outputs)
        if not 0 <= num_fwd_outputs <= len(outputs):
            raise GraphError(f"partition: num_fwd_outputs={num_fwd_outputs} but the joint graph "
                             f"has {len(outputs)} outputs")
        self.joint = joint
        self.graph = graph
        self.primals = [n for n in graph.placeholders if n.target.startswith("primals")]
        self.tangents = [n for n in graph.placeholders if n.target.startswith("tangents")]
        self.fwd_outputs = outputs[:num_fwd_outputs]
        self.bwd_outputs = outputs[num_fwd_outputs:]
        self.order = {n: i for i, n in enumerate(graph.nodes)}
        # Nodes the forward outputs need: the forward graph computes exactly these.
        self.forward = ancestors(self.fwd_outputs)
        # Nodes that read a tangent, directly or not: they can only run in the backward.
        self.tangent_dependent = descendants(self.tangents)

    def sorted(self, nodes: Iterable[Node]) -> list[Node]:
        return sorted(set(nodes), key=self.order.__getitem__)


def ancestors(roots: Iterable[Node], stop: set[Node] | None = None) -> set[Node]:
    """``roots`` and every node they read, not walking past nodes in ``stop``."""
    seen: set[Node] = set()
    stack = list(roots)
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if stop is not None and n in stop:
            continue
        stack.extend(n.inputs)
    return seen


def descendants(roots: Iterable[Node]) -> set[Node]:
    seen: set[Node] = set()
    stack = list(roots)
    while stack:
        n = stack.pop()
        if n in seen or n.op == "output":
            continue
        seen.add(n)
        stack.extend(n.users)
    return seen


def extract_graph(src: GraphModule, inputs: Sequence[Node], outputs: Sequence[Node],
                  what: str) -> GraphModule:
    """A new GraphModule computing ``outputs`` from ``inputs`` with ``src``'s nodes."""
    g = Graph()
    g.symbols = dict(src.graph.symbols)
    env: dict[Node, Node] = {}
    for n in inputs:
        if n not in env:
            env[n] = g.placeholder(n.name, n.meta)
    needed: set[Node] = set()
    stack = list(outputs)
    while stack:
        n = stack.pop()
        if n in env or n in needed:
            continue
        if n.op == "placeholder":
            raise GraphError(f"{what}: computing {[o.name for o in outputs][:4]} needs input "
                             f"{n.name}, which this graph does not receive (a partitioner "
                             "must save it)")
        needed.add(n)
        stack.extend(n.inputs)
    constants: dict[str, Any] = {}
    for n in src.graph.nodes:
        if n not in needed:
            continue
        if n.op == "constant":
            env[n] = g.constant(n.target, n.meta)
            constants[n.target] = src.constants[n.target]
        elif n.op == "control":  # a loop or branch (kiln.graph.control) moves whole
            env[n] = g.control(n.target, map_args(n.args, env.__getitem__), dict(n.kwargs),
                               n.meta, name=n.name)
        elif n.op == "item":
            env[n] = g.item(env[n.args[0]], n.kwargs["index"])
        else:
            env[n] = g.call(n.target, map_args(n.args, env.__getitem__), dict(n.kwargs),
                            n.meta, name=n.name)
    g.output([env[o] for o in outputs])
    # The source's guards on the symbols this graph's inputs bind (the others are checked
    # by the graph that receives those symbols).
    bound = _plain_symbols(g.placeholders)
    g.guards = [x for x in src.graph.guards if x.free_symbols <= bound]
    g.hints = dict(src.graph.hints)
    dce(g)
    g.lint()
    return GraphModule(g, constants)


def _plain_symbols(nodes: Iterable[Node]) -> set[str]:
    out: set[str] = set()
    for n in nodes:
        for d in n.meta.shape:
            if isinstance(d, SymInt) and d.plain_symbol is not None:
                out.add(d.plain_symbol)
    return out


def _free_symbols(nodes: Iterable[Node]) -> set[str]:
    out: set[str] = set()
    for n in nodes:
        metas = n.meta if isinstance(n.meta, tuple) else (n.meta,)  # a control node: several
        for meta in metas:
            for d in meta.shape if meta is not None else ():
                if isinstance(d, SymInt):
                    out |= d.free_symbols
        for d in n.args if n.op == "control" else ():  # symbolic loop bounds
            if isinstance(d, SymInt):
                out |= d.free_symbols
    return out


def _bind_symbols(info: JointInfo, saved: list[Node]) -> list[Node]:
    """Add primals to ``saved`` until the backward's inputs name every symbol it uses.

    A compiled backward learns dynamic sizes from its inputs' shapes; a symbol that only
    occurs inside expressions (``B*T``) would be unknown, so a primal carrying it is saved.
    """
    bw_nodes = ancestors(info.bwd_outputs, stop=set(saved) | set(info.tangents))
    missing = _free_symbols(bw_nodes) - _plain_symbols(saved + info.tangents)
    for sym in sorted(missing):
        for p in info.primals:
            if sym in _plain_symbols([p]):
                saved.append(p)
                break
    return saved


def split_joint(joint: GraphModule, num_fwd_outputs: int, saved: Sequence[Node],
                info: JointInfo | None = None) -> tuple[GraphModule, GraphModule]:
    """Extract the forward and backward graphs for a chosen set of ``saved`` joint nodes."""
    info = info or JointInfo(joint, num_fwd_outputs)
    saved = _bind_symbols(info, info.sorted(n for n in saved if n.op != "constant"))
    fw = extract_graph(joint, info.primals, info.fwd_outputs + saved, "forward partition")
    bw = extract_graph(joint, saved + info.tangents, info.bwd_outputs, "backward partition")
    return fw, bw


def default_saved(info: JointInfo) -> list[Node]:
    """What the backward reads from the forward, with no recomputation at all."""
    available = info.forward | set(info.primals)
    # Everything the gradients need that the forward does not already compute runs in the
    # backward, including values that depend on primals only (``sin(x)`` in cos's vjp).
    bw_only = ancestors(info.bwd_outputs, stop=available | set(info.tangents)) - available
    saved = {i for b in bw_only for i in b.inputs if i in available}
    saved |= {n for n in info.bwd_outputs if n in available}
    for n in [n for n in saved if n.op == "control"]:
        # A control node's value is a tuple no graph passes on: its results are saved.
        saved.discard(n)
        saved |= set(n.users)
    return info.sorted(n for n in saved if n.op != "constant")


def default_partition(joint: GraphModule, joint_inputs: Any = None, *,
                      num_fwd_outputs: int) -> tuple[GraphModule, GraphModule]:
    """Forward = what the forward outputs need; the backward receives every forward value
    (primals included) it reads, and recomputes nothing.

    >>> import kiln
    >>> from kiln.aot import aot_function, default_partition, nop
    >>> f = aot_function(lambda x: x.cos().cos(), nop, partition_fn=default_partition)
    >>> x = kiln.randn(3, requires_grad=True)
    >>> [e.name for e in kiln.aot.saved_activations(f, x)]
    ['primals_1', 'cos']
    """
    info = JointInfo(joint, num_fwd_outputs)
    return split_joint(joint, num_fwd_outputs, default_saved(info), info)
