"""Tracing for AOT autograd: the joint forward+backward graph (or the inference graph).

The forward runs on tracer tensors with grad recording ON, so dispatch attaches a
BackwardNode to every tracer it makes (exactly as in eager mode). Then the autograd engine
runs backward on those tracers, seeded with tangent placeholders, still inside the same
trace: every vjp rule is written with Kiln ops, so the backward is recorded too. One graph
therefore holds both directions:

    joint(primals_1, ..., primals_n, tangents_1, ..., tangents_k)
        -> (*forward outputs, *mutated values, *gradients of the primals that need one)

Every tensor input becomes a placeholder, module parameters and buffers included (they
are *inputs*, not constants, so the same compiled graphs serve every optimizer step).
In-place writes to inputs (BatchNorm running stats) are functionalized: the tracer is
rebound to the new value, which the graph returns as an extra output that the runtime
writes back after each call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from kiln.aot.program import TracedProgram
from kiln.base.pytree import tree_flatten
from kiln.core.autograd.engine import run_backward
from kiln.core.autograd.grad_mode import _grad_mode
from kiln.core.prims.registry import OpDef, TensorMeta, get_op
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, TraceError, describe
from kiln.graph.module import GraphModule
from kiln.graph.node import Node
from kiln.graph.passes import dce
from kiln.symbolic.sizes import Dim, SymInt
from kiln.tracing.context import TraceContext
from kiln.tracing.trace import note_hint

# Non-tensor outputs of these types stand where a differentiable value belongs (a number
# computed from data, an array): with gradients they are an error, not a constant.
_VALUE_TYPES = (float, complex, np.ndarray, np.generic)

# (result pytree, {flat input index: new value}) for inputs reassigned rather than updated
# in place (``self.buf = new`` inside a module's forward).
CallResult = tuple[Any, dict[int, Tensor]]


class AOTTraceContext(TraceContext):
    """A trace context that applies user ``decompositions`` to every op it records.

    A decomposition replaces the *recorded* op (forward and backward alike); gradients
    still follow the original op's vjp rule, whose own ops are decomposed in turn when the
    backward is traced.
    """

    def __init__(self, decompositions: dict[str, Callable] | None = None,
                 first_closure_input: int | None = None) -> None:
        super().__init__()
        self.decompositions = dict(decompositions or {})
        self._active: set[str] = set()
        # Joint graphs: a closed-over tensor that requires grad (a parameter used by a loss
        # function) becomes an input, ``primals_<first_closure_input + k>``, so its gradient
        # is a graph output and its current value is read at every call.
        self._first_closure = first_closure_input
        self.closure_inputs: list[Tensor] = []

    def lift(self, t: Tensor) -> Node:
        if (self._first_closure is None or not t.requires_grad or id(t) in self._lifted
                or id(t) in self.mutations or t._view is not None):
            return super().lift(t)
        index = self._first_closure + len(self.closure_inputs)
        node = self.graph.placeholder(f"primals_{index + 1}", t.meta)
        self._lifted[id(t)] = node
        self.closure_inputs.append(t)
        return node

    def record(self, op: OpDef, args: tuple, attrs: dict, meta: TensorMeta) -> Tensor:
        fn = self.decompositions.get(op.name)
        if fn is None or op.name in self._active:
            return super().record(op, args, attrs, meta)
        self._active.add(op.name)  # a decomposition may call the op it replaces
        try:
            with _grad_mode(False):
                out = fn(*args, **attrs)
        finally:
            self._active.discard(op.name)
        if not isinstance(out, Tensor):
            raise ArgumentError(f"decompositions[{op.name!r}] returned {describe(out)}, "
                                "expected a kiln.Tensor")
        if out.meta != meta:
            raise ArgumentError(f"decompositions[{op.name!r}] returned {out.meta}, but op "
                                f"{op.name} produces {meta} for these arguments")
        return Tensor._tracer(self.node_of(out), meta)


def check_decompositions(decompositions: Any) -> dict[str, Callable]:
    if decompositions is None:
        return {}
    if not isinstance(decompositions, dict):
        raise ArgumentError(f"decompositions: expected a dict op name -> function, got "
                            f"{type(decompositions).__name__}")
    for name, fn in decompositions.items():
        get_op(name)  # unknown names fail with close matches
        if not callable(fn):
            raise ArgumentError(f"decompositions[{name!r}]: expected a function of Kiln ops, "
                                f"got {type(fn).__name__}")
    return dict(decompositions)


def _placeholder_meta(t: Tensor, dims: dict[int, Dim], hints: dict[str, int], what: str
                      ) -> TensorMeta:
    shape = list(t.shape)
    for d, dim in dims.items():
        note_hint(hints, dim, int(shape[d]), what)
        shape[d] = SymInt.symbol(dim.name)
    return TensorMeta(tuple(shape), t.dtype)


def trace_program(
    call: Callable[[list[Tensor]], CallResult],
    inputs: list[Tensor],
    *,
    names: list[str],
    joint: bool,
    decompositions: dict[str, Callable] | None = None,
    dynamic: dict[int, dict[int, Dim]] | None = None,
    what: str = "aot_function",
) -> TracedProgram:
    """Trace ``call`` on tracers for ``inputs``; with ``joint`` also trace its backward."""
    ctx = AOTTraceContext(decompositions, len(inputs) if joint else None)
    dynamic = dynamic or {}
    hints: dict[str, int] = {}
    symbols: dict[str, Dim] = {}
    for dims in dynamic.values():
        for dim in dims.values():
            symbols[dim.name] = dim
    ctx.graph.symbols = symbols
    ctx.graph.hints = hints  # filled below; comparisons on symbolic sizes read it
    with ctx, _grad_mode(joint):
        tracers = []
        for i, t in enumerate(inputs):
            meta = _placeholder_meta(t, dynamic.get(i, {}), hints, f"{what}: input {names[i]}")
            tr = ctx.placeholder(f"primals_{i + 1}", meta)
            tr.requires_grad = joint and t.requires_grad
            tracers.append(tr)
        placeholders = [tr._node for tr in tracers]
        result, reassigned = call(tracers)
        out_leaves, out_spec = tree_flatten(result)
        outs: list[Tensor] = []
        static: dict[int, Any] = {}
        for j, leaf in enumerate(out_leaves):
            if isinstance(leaf, Tensor):
                outs.append(leaf)
            elif joint and isinstance(leaf, _VALUE_TYPES):
                raise TraceError(
                    f"{what}: output leaf {j} of {len(out_leaves)} is {describe(leaf)}, not a "
                    "kiln.Tensor; a function differentiated ahead of time returns tensors "
                    "(wrap numbers with kiln.tensor, or return them from a separate function)"
                )
            else:
                static[j] = leaf
        mutation_targets: list[Any] = []
        mutation_values: list[Tensor] = []
        for i, tr in enumerate(tracers):
            new = reassigned.get(i)
            if new is None and tr._node is not placeholders[i]:
                new = tr  # rebound by an in-place op
            if new is not None:
                _check_same_meta(new, placeholders[i].meta, names[i], what)
                mutation_targets.append(i)
                mutation_values.append(new)
        for target, value in ctx.mutations.values():
            mutation_targets.append(target)  # a closed-over eager tensor updated in place
            mutation_values.append(value)
        fwd_nodes = [ctx.node_of(t) for t in outs + mutation_values]
        diff_outputs: list[int] = []
        grad_inputs: list[int] = []
        grad_nodes: list[Node] = []
        if joint:
            diff_outputs = [j for j, t in enumerate(outs)
                            if t.requires_grad and t.dtype.is_floating]
            # Closed-over inputs are the eager tensors themselves: their tape nodes (made
            # while tracing) lead to them, so the engine returns their gradients as tracers.
            sources = tracers + ctx.closure_inputs
            wanted = [i for i, tr in enumerate(sources) if tr.requires_grad]
            if diff_outputs and wanted:
                tangents = [ctx.placeholder(f"tangents_{k + 1}", outs[j].meta)
                            for k, j in enumerate(diff_outputs)]
                grads = run_backward([outs[j] for j in diff_outputs], tangents,
                                     retain_graph=True, create_graph=False,
                                     inputs=[sources[i] for i in wanted], allow_unused=True)
                for i, g in zip(wanted, grads or (), strict=True):
                    if g is not None:
                        grad_inputs.append(i)
                        grad_nodes.append(ctx.node_of(g))
            else:
                diff_outputs = []
        ctx.graph.output(fwd_nodes + grad_nodes)
    graph = ctx.graph
    # Tangent placeholders were made after the forward; inputs read best up front.
    graph.nodes.sort(key=lambda n: n.op != "placeholder")
    dce(graph)
    graph.lint()
    gm = GraphModule(graph, dict(ctx.constants))
    closure_names = tuple(f"closure_{k}" for k in range(len(ctx.closure_inputs)))
    return TracedProgram(
        gm=gm, joint=joint, num_user_outputs=len(outs), out_spec=out_spec,
        static_outputs=static, input_names=tuple(names) + closure_names,
        mutation_targets=tuple(mutation_targets), diff_outputs=tuple(diff_outputs),
        grad_inputs=tuple(grad_inputs), symbol_hints=hints,
        closure_inputs=tuple(ctx.closure_inputs),
        trainable_constants=tuple(t for t in ctx.constants.values() if t.requires_grad),
    )


def _check_same_meta(new: Tensor, old: TensorMeta, name: str, what: str) -> None:
    if tuple(new.shape) != tuple(old.shape):
        raise TraceError(f"{what}: input {name} of shape {tuple(map(str, old.shape))} was "
                         f"replaced by a value of shape {tuple(map(str, new.shape))}; buffers "
                         "keep their shape (update them in place)")


