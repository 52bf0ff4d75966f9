"""``graph.lint()``: the IR verifier run after every pass (like fx ``lint``/``check_jaxpr``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kiln.core.prims.registry import REGISTRY
from kiln.errors import GraphError, KilnError
from kiln.graph.node import NODE_KINDS, Node, map_nodes
from kiln.symbolic.guards import ShapeEnv

if TYPE_CHECKING:
    from kiln.graph.graph import Graph


def _context(graph: Graph, bad: Node, radius: int = 2) -> str:
    i = graph.nodes.index(bad)
    lines = []
    for j in range(max(0, i - radius), min(len(graph.nodes), i + radius + 1)):
        mark = ">>" if j == i else "  "
        lines.append(f"  {mark} {graph.nodes[j].format()}")
    return "\n".join(lines)


def lint(graph: Graph) -> None:
    # Metas are re-inferred under the graph's own guards: the decisions tracing took on
    # symbolic sizes are taken the same way again.
    with ShapeEnv(graph=graph):
        _lint(graph)


def _lint(graph: Graph) -> None:
    seen: set[int] = set()
    names: set[str] = set()

    def fail(node: Node, why: str) -> GraphError:
        return GraphError(f"graph lint failed at node {node.name}: {why}\n"
                          f"{_context(graph, node)}")

    for idx, node in enumerate(graph.nodes):
        if node.graph is not graph:
            raise fail(node, "node belongs to another graph")
        if node.op not in NODE_KINDS:
            raise fail(node, f"unknown node kind {node.op!r}")
        if node.name in names:
            raise fail(node, "duplicate name")
        names.add(node.name)

        def check_input(inp: Node, node: Node = node) -> None:
            if id(inp) not in seen:
                raise fail(node, f"reads {inp.name}, which is not defined before it")
            if node not in inp.users:
                raise fail(node, f"missing from the users of {inp.name}")

        map_nodes(node.args, check_input)
        if node.op == "output":
            if idx != len(graph.nodes) - 1:
                raise fail(node, "output node is not last")
            if not isinstance(node.args, tuple) or len(node.args) != 1:
                raise fail(node, "output node must hold one tuple of values")
        elif node.op == "call":
            op = REGISTRY.get(node.target)
            if op is None:
                raise fail(node, f"unknown op {node.target!r}")
            metas = [a.meta if isinstance(a, Node) else a for a in node.args]
            try:
                inferred = op.meta(*metas, **node.kwargs)
            except KilnError as e:
                raise fail(node, f"meta inference failed: {e}") from None
            except TypeError as e:
                raise fail(node, f"bad arguments for {node.target}: {e}") from None
            if inferred != node.meta:
                raise fail(node, f"recorded meta {node.meta} but the op infers {inferred}")
        elif node.op in ("control", "item"):
            from kiln.graph.control import check_control, check_item

            try:
                (check_control if node.op == "control" else check_item)(node)
            except KilnError as e:
                raise fail(node, str(e)) from None
        elif node.meta is None:
            raise fail(node, "placeholder/constant without meta")
        seen.add(id(node))
    if not graph.nodes or graph.nodes[-1].op != "output":
        raise GraphError("graph lint failed: no output node")
    for node in graph.nodes:
        for user in node.users:
            if user.graph is not graph or id(user) not in seen:
                raise fail(node, f"user {user.name} is not in the graph")
