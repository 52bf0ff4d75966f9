"""The Graph: SSA nodes in topological order, one output node, meta on every value."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from kiln.core.prims.registry import TensorMeta
from kiln.errors import GraphError
from kiln.graph.node import Node, map_args
from kiln.symbolic.guards import Guard
from kiln.symbolic.sizes import Dim

_NOT_IDENT = r"[^0-9a-zA-Z_]+"  # compiled on first use (re's cache): not at import
_RESERVED = {"self", "ops", "kiln", "None", "True", "False", "return", "def", "lambda", "in",
             "is", "not", "and", "or", "if", "else", "for", "while", "class", "import",
             "from", "as", "with", "pass", "del", "global", "yield", "try", "except",
             "finally", "raise", "assert", "break", "continue", "elif", "nonlocal", "await",
             "async", "input", "print", "sum", "max", "min", "abs", "round", "slice", "pow",
             "float", "bool", "int", "range", "zip", "len"}


class Graph:
    """A dataflow graph.

    >>> import kiln
    >>> gm = kiln.trace(lambda x: x.exp() + 1.0, kiln.ones(3))
    >>> print(gm.graph)
    graph(x: f32[3]):
        exp: f32[3] = exp(x)
        add: f32[3] = add(exp, 1.0)
        return (add,)
    """

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self._names: set[str] = set()
        self._counters: dict[str, int] = {}
        # Named dynamic dims: symbol name -> Dim (with its range).
        self.symbols: dict[str, Dim] = {}
        # What tracing assumed about the symbols (kiln.symbolic.guards): checked on every call.
        self.guards: list[Guard] = []
        # The example sizes tracing decided comparisons with (in memory only: a reloaded
        # graph decides from its guards).
        self.hints: dict[str, int] = {}

    # building --------------------------------------------------------------------------
    def _unique(self, hint: str) -> str:
        base = re.sub(_NOT_IDENT, "_", hint).strip("_") or "v"
        if base[0].isdigit():
            base = "_" + base
        if base in _RESERVED or base in self.symbols:
            base = base + "_"
        name = base
        while name in self._names:
            n = self._counters.get(base, 0) + 1
            self._counters[base] = n
            name = f"{base}_{n}"
        self._names.add(name)
        return name

    def _append(self, node: Node) -> Node:
        if self.nodes and self.nodes[-1].op == "output":
            raise GraphError(f"cannot add node {node.name} after the output node")
        self.nodes.append(node)
        return node

    def placeholder(self, name: str, meta: TensorMeta) -> Node:
        return self._append(Node(self, self._unique(name), "placeholder", name, (), {}, meta))

    def constant(self, key: str, meta: TensorMeta) -> Node:
        return self._append(Node(self, self._unique(key), "constant", key, (), {}, meta))

    def call(self, target: str, args: tuple, kwargs: dict, meta: TensorMeta,
             name: str | None = None) -> Node:
        return self._append(Node(self, self._unique(name or target), "call", target,
                                 tuple(args), dict(kwargs), meta))

    def control(self, target: str, args: tuple, kwargs: dict, metas: tuple[TensorMeta, ...],
                name: str | None = None) -> Node:
        """A control-flow node (kiln.graph.control); read its results with :meth:`item`."""
        return self._append(Node(self, self._unique(name or target), "control", target,
                                 tuple(args), dict(kwargs), tuple(metas)))

    def item(self, source: Node, index: int) -> Node:
        """Result ``index`` of control node ``source``."""
        return self._append(Node(self, self._unique(f"{source.name}_{index}"), "item", "item",
                                 (source,), {"index": index}, source.meta[index]))

    def output(self, values: tuple | list) -> Node:
        return self._append(Node(self, "output", "output", "output", (tuple(values),), {},
                                 None))

    def insert_before(self, anchor: Node, target: str, args: tuple, kwargs: dict,
                      meta: TensorMeta) -> Node:
        """A new call node placed right before ``anchor`` (for passes)."""
        node = Node(self, self._unique(target), "call", target, tuple(args), dict(kwargs), meta)
        self.nodes.insert(self.nodes.index(anchor), node)
        return node

    def erase(self, node: Node) -> None:
        if node.users:
            raise GraphError(f"cannot erase {node.name}: still used by "
                             f"{[u.name for u in node.users]}")
        for inp in node.inputs:
            inp.users.pop(node, None)
        self.nodes.remove(node)
        self._names.discard(node.name)

    # views -----------------------------------------------------------------------------
    @property
    def placeholders(self) -> list[Node]:
        return [n for n in self.nodes if n.op == "placeholder"]

    @property
    def output_node(self) -> Node:
        if not self.nodes or self.nodes[-1].op != "output":
            raise GraphError("graph has no output node")
        return self.nodes[-1]

    @property
    def outputs(self) -> tuple[Node, ...]:
        return self.output_node.args[0]

    def calls(self) -> Iterator[Node]:
        return (n for n in self.nodes if n.op == "call")

    def __len__(self) -> int:
        return len(self.nodes)

    def __str__(self) -> str:
        ins = ", ".join(f"{n.name}: {n.meta}" for n in self.placeholders)
        lines = [f"graph({ins}):"]
        if self.guards:
            lines.append("    # assumes " + ", ".join(str(g) for g in self.guards))
        for n in self.nodes:
            if n.op != "placeholder":
                lines.append("    " + n.format())
        return "\n".join(lines)

    def lint(self) -> None:
        """Check order, names, arity and re-infer every node's meta; raise GraphError."""
        from kiln.graph.lint import lint

        lint(self)

    def copy(self) -> tuple[Graph, dict[Node, Node]]:
        """A deep copy of the graph and the old->new node map."""
        g = Graph()
        g.symbols = dict(self.symbols)
        g.guards = list(self.guards)
        g.hints = dict(self.hints)
        mapping: dict[Node, Node] = {}
        for n in self.nodes:
            args = map_args(n.args, lambda a: mapping[a])
            new = Node(g, n.name, n.op, n.target, args, dict(n.kwargs), n.meta)
            g._names.add(n.name)
            g.nodes.append(new)
            mapping[n] = new
        g._counters = dict(self._counters)
        return g, mapping

    def node_by_name(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise GraphError(f"no node named {name!r}")


def meta_of(value: Any) -> Any:
    return value.meta if isinstance(value, Node) else value
