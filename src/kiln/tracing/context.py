"""The trace context: the graph being built while a function runs on tracer tensors."""

from __future__ import annotations

from typing import Any

from kiln.core.prims.registry import OpDef, TensorMeta
from kiln.core.tensor import Tensor
from kiln.core.trace_state import _STACK, current, stale_tracer_error  # noqa: F401
from kiln.core.views import VIEW_OPS, maybe_strided
from kiln.errors import TraceError
from kiln.graph.graph import Graph
from kiln.graph.node import Node
from kiln.symbolic.guards import ShapeEnv


class TraceContext:
    """Collects nodes for one ``kiln.trace`` call.

    Eager tensors that meet tracers (closures, module parameters) are lifted as constant
    nodes; ``constant_names`` gives them readable keys (``fc1.weight``). In-place writes to
    such tensors are recorded in ``mutations`` instead of touching their data.
    """

    def __init__(self, graph: Graph | None = None) -> None:
        self.graph = graph or Graph()
        self.constants: dict[str, Tensor] = {}
        self.constant_names: dict[int, str] = {}
        self._lifted: dict[int, Node] = {}
        # id(eager tensor) -> (eager tensor, tracer holding its new value)
        self.mutations: dict[int, tuple[Tensor, Tensor]] = {}
        # Decides comparisons on symbolic sizes from the graph's hints, recording guards.
        self.shape_env = ShapeEnv(graph=self.graph)
        # Nodes whose eager value may not be C-contiguous (NumPy kernels keep their inputs'
        # layout): a reshape of them may copy, so it is not taken as a view (kiln.core.views).
        self.strided: set[Node] = set()

    def __enter__(self) -> TraceContext:
        _STACK.append(self)
        self.shape_env.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shape_env.__exit__()
        _STACK.remove(self)

    def lift(self, t: Tensor) -> Node:
        """The constant node for eager tensor ``t`` (one per tensor object).

        An eager view is derived in the graph from its root's node, so that in-place writes
        to the root (or through another view) recorded in this trace reach it, and the
        GraphModule keeps one constant per buffer.
        """
        if t._view is not None:
            from kiln.core.views import replay

            root, steps = t._view[:2]
            node = self.lift(root)
            return replay(Tensor._tracer(node, node.meta), steps)._node  # type: ignore
        mutated = self.mutations.get(id(t))
        if mutated is not None:
            return mutated[1]._node  # type: ignore[return-value]
        node = self._lifted.get(id(t))
        if node is None:
            key = self.constant_names.get(id(t)) or f"_tensor_constant{len(self.constants)}"
            base, n = key, 0
            while key in self.constants:
                n += 1
                key = f"{base}_{n}"
            self.constants[key] = t
            node = self.graph.constant(key, t.meta)
            self._lifted[id(t)] = node
        return node

    def node_of(self, value: Tensor) -> Node:
        if value._view is not None:
            from kiln.core.views import sync

            sync(value)
        if value._node is not None:
            if value._node.graph is not self.graph:
                raise TraceError(
                    f"tracer {value._node.name} belongs to another trace; do not mix tensors "
                    "from nested or earlier kiln.trace calls"
                )
            return value._node
        return self.lift(value)

    def record(self, op: OpDef, args: tuple, attrs: dict, meta: TensorMeta) -> Tensor:
        node_args = tuple(self.node_of(a) if isinstance(a, Tensor) else a for a in args)
        node = self.graph.call(op.name, node_args, attrs, meta)
        if op.name not in VIEW_OPS and any(isinstance(a, Tensor) and maybe_strided(self, a)
                                           for a in args):
            self.strided.add(node)
        return Tensor._tracer(node, meta)

    def record_mutation(self, target: Tensor, value: Tensor) -> None:
        """An in-place write of tracer ``value`` into eager tensor ``target``."""
        if id(target) not in self.mutations:
            self.lift(target)  # gives the written tensor a constant key to write back to
        self.mutations[id(target)] = (target, value)

    def constant_key(self, t: Tensor) -> str:
        return self._lifted[id(t)].target

    def placeholder(self, name: str, meta: TensorMeta) -> Tensor:
        return Tensor._tracer(self.graph.placeholder(name, meta), meta)


def lifted_value(ctx: TraceContext, t: Tensor) -> Any:
    return ctx.mutations.get(id(t), (None, t))[1]
