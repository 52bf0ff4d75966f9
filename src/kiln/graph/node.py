"""Graph nodes: SSA values with an op, arguments, attributes and meta."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kiln.core.prims.registry import TensorMeta
    from kiln.graph.graph import Graph

# What a node is: an input, a constant living beside the graph, an op call, the output, a
# structured control-flow op whose bodies are subgraphs (kiln.graph.control; its meta is a
# tuple, one TensorMeta per result), or one result of a control node (``item``).
NODE_KINDS = ("placeholder", "constant", "call", "output", "control", "item")


class Node:
    """One value of a graph.

    ``op`` is the node kind (see ``NODE_KINDS``); ``target`` the op name for a call, the input
    name for a placeholder, the constant's key for a constant; ``args`` holds Nodes and Python
    literals (for the output node: a tuple of the returned Nodes); ``kwargs`` the op's
    attributes; ``meta`` the :class:`TensorMeta` of the value.
    """

    __slots__ = ("graph", "name", "op", "target", "args", "kwargs", "meta", "users")

    def __init__(self, graph: Graph, name: str, op: str, target: str, args: tuple,
                 kwargs: dict, meta: TensorMeta | None) -> None:
        self.graph = graph
        self.name = name
        self.op = op
        self.target = target
        self.args = args
        self.kwargs = kwargs
        self.meta = meta
        self.users: dict[Node, None] = {}
        for inp in self.inputs:
            inp.users[self] = None

    @property
    def inputs(self) -> list[Node]:
        """The nodes this node reads, in argument order."""
        out: list[Node] = []
        map_nodes(self.args, out.append)
        return out

    def replace_input(self, old: Node, new: Node) -> None:
        self.args = map_args(self.args, lambda n: new if n is old else n)
        old.users.pop(self, None)
        new.users[self] = None

    def replace_all_uses_with(self, new: Node) -> None:
        for user in list(self.users):
            user.replace_input(self, new)

    def format(self) -> str:
        """One line, jaxpr style: ``add_1: f32[4, 8] = add(x, y)``."""
        if self.op == "output":
            return f"return {_fmt(self.args[0])}"
        if self.op == "placeholder":
            return f"{self.name}: {self.meta} = input({self.target!r})"
        if self.op == "constant":
            return f"{self.name}: {self.meta} = constant({self.target!r})"
        if self.op == "item":
            return f"{self.name}: {self.meta} = {_fmt(self.args[0])}[{self.kwargs['index']}]"
        if self.op == "control":
            from kiln.graph.control import format_control

            return format_control(self)
        parts = [_fmt(a) for a in self.args]
        parts += [f"{k}={_fmt(v)}" for k, v in self.kwargs.items()]
        return f"{self.name}: {self.meta} = {self.target}({', '.join(parts)})"

    def __repr__(self) -> str:
        return self.name


def map_args(value: Any, fn: Callable[[Node], Any]) -> Any:
    """Apply ``fn`` to every Node inside nested tuples/lists of ``value``."""
    if isinstance(value, Node):
        return fn(value)
    if isinstance(value, tuple):
        return tuple(map_args(v, fn) for v in value)
    if isinstance(value, list):
        return [map_args(v, fn) for v in value]
    return value


def map_nodes(value: Any, fn: Callable[[Node], None]) -> None:
    if isinstance(value, Node):
        fn(value)
    elif isinstance(value, (tuple, list)):
        for v in value:
            map_nodes(v, fn)


def _fmt(value: Any) -> str:
    if isinstance(value, Node):
        return value.name
    if isinstance(value, tuple):
        inner = ", ".join(_fmt(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    from kiln.core.dtypes import DType

    if isinstance(value, DType):
        return f"kiln.{value.name}"
    if isinstance(value, str):
        return repr(value)
    return str(value)
