"""Graph passes. Each takes a Graph (or a GraphModule), changes it in place, lints it, and
returns how many nodes it touched.

- :func:`dce`: drop values nobody reads;
- :func:`cse`: merge calls that compute the same thing from the same inputs;
- :func:`constant_fold`: evaluate subgraphs fed only by literals and creation ops.

Random ops are never merged or folded (two ``rand`` calls are two different draws), and
constant nodes (module parameters and buffers) are never folded: they change during
training, and the GraphModule holds the live tensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kiln.core.prims.registry import get_op
from kiln.graph.graph import Graph
from kiln.graph.node import Node, map_args
from kiln.symbolic.sizes import contains_symbolic

if TYPE_CHECKING:
    from kiln.graph.module import GraphModule


def _graph(target: Graph | GraphModule) -> Graph:
    return target if isinstance(target, Graph) else target.graph


def dce(graph: Graph | GraphModule, *, lint: bool = True) -> int:
    """Dead-code elimination: drop call and constant nodes whose value nobody reads.

    Placeholders stay (they are the graph's signature). Walking backwards removes whole dead
    chains in one pass, since a node's users all come after it.

    >>> import kiln
    >>> from kiln.graph.passes import dce
    >>> gm = kiln.trace(lambda x: (x.exp(), x.sin())[0], kiln.ones(2))
    >>> dce(gm.graph), [n.target for n in gm.graph.calls()]
    (1, ['exp'])
    """
    graph = _graph(graph)
    removed = 0
    for node in reversed(list(graph.nodes)):
        if node.op in ("call", "constant", "control", "item") and not node.users:
            graph.erase(node)
            removed += 1
    if lint:
        graph.lint()
    return removed


def _key(value: Any) -> Any:
    """A hashable key for an argument or attribute that tells 1, 1.0 and True apart (they
    give different dtypes) and nodes by identity."""
    if isinstance(value, Node):
        return ("node", id(value))
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(_key(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, _key(v)) for k, v in value.items())))
    return (type(value).__name__, value)


def cse(graph: Graph | GraphModule) -> int:
    """Common-subexpression elimination: a call with the same op, arguments and attributes as
    an earlier one is replaced by it (random ops excepted). Returns the number of nodes
    removed.

    >>> import kiln
    >>> from kiln.graph.passes import cse
    >>> gm = kiln.trace(lambda x: x.exp() + x.exp(), kiln.ones(2))
    >>> cse(gm), [n.target for n in gm.graph.calls()]
    (1, ['exp', 'add'])
    """
    graph = _graph(graph)
    seen: dict[Any, Node] = {}
    removed = 0
    for node in list(graph.nodes):
        if node.op == "constant":
            key: Any = ("constant", node.target)
        elif node.op == "call" and not get_op(node.target).is_random:
            key = (node.target, _key(node.args), _key(node.kwargs))
        else:
            continue
        first = seen.get(key)
        if first is None:
            seen[key] = node
            continue
        node.replace_all_uses_with(first)
        graph.erase(node)
        removed += 1
    graph.lint()
    return removed


def _foldable(graph: Graph) -> set[Node]:
    """Call nodes computable now: no random op, no symbolic size, inputs all foldable."""
    out: set[Node] = set()
    for node in graph.nodes:
        if node.op != "call":
            continue
        op = get_op(node.target)
        if op.is_random or contains_symbolic(node.kwargs) or \
                contains_symbolic(tuple(node.meta.shape)):
            continue
        if all(inp in out for inp in node.inputs):
            out.add(node)
    return out


def replace_with_constant(gm: GraphModule, node: Node, value: Any, base: str) -> Node:
    """A new constant of ``gm`` (key ``base``, made unique) holding ``value``, placed
    before ``node``, which every user of ``node`` now reads instead."""
    graph = gm.graph
    key, n = base, 0
    while key in gm.constants:
        n += 1
        key = f"{base}_{n}"
    gm.constants[key] = value
    const = Node(graph, graph._unique(key), "constant", key, (), {}, node.meta)
    graph.nodes.insert(graph.nodes.index(node), const)
    node.replace_all_uses_with(const)
    return const


def constant_fold(gm: GraphModule) -> int:
    """Evaluate every subgraph whose inputs are all literals and creation ops (``full``,
    ``arange``, ``eye``) and replace it by a constant of ``gm``. Creation ops that nothing
    computes on stay as they are (they are cheaper than a stored constant). Returns the
    number of call nodes removed.

    >>> import kiln
    >>> from kiln.graph.passes import constant_fold
    >>> gm = kiln.trace(lambda x: x + kiln.arange(3.0).exp(), kiln.ones(3))
    >>> constant_fold(gm), [n.op for n in gm.graph.nodes]
    (2, ['placeholder', 'constant', 'call', 'output'])
    """
    from kiln.core.autograd.grad_mode import no_grad
    from kiln.core.dispatch import call

    graph = gm.graph
    foldable = _foldable(graph)
    frontier = [n for n in graph.nodes if n in foldable
                and any(u not in foldable for u in n.users)
                and not (get_op(n.target).kind == "creation")]
    if not frontier:
        return 0
    before = sum(1 for _ in graph.calls())
    values: dict[Node, Any] = {}
    last = graph.nodes.index(frontier[-1])
    with no_grad():
        for node in graph.nodes[:last + 1]:
            if node in foldable:
                args = map_args(node.args, values.__getitem__)
                values[node] = call(get_op(node.target), *args, **node.kwargs)
    for node in frontier:
        replace_with_constant(gm, node, values[node], "_folded")
    dce(graph, lint=False)
    graph.lint()
    return before - sum(1 for _ in graph.calls())
