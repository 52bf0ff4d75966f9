"""Structured control flow in the IR: ``cond``, ``while_loop`` and ``fori_loop`` nodes.

A control node (``node.op == "control"``) holds its bodies as subgraphs in ``kwargs`` and
produces several values: its ``meta`` is a tuple of :class:`TensorMeta`, and each result is
read by an ``item`` node (``node.op == "item"``, ``kwargs["index"]``). Subgraphs have no
constants: every tensor a body reads from outside (a closure, a module parameter) is an
explicit input of the control node (a *capture*), so a subgraph is a closed function of its
placeholders. The layout of the inputs:

====================  ==========================================  ============================
target                args                                        subgraphs (placeholders)
====================  ==========================================  ============================
``cond``              ``pred, *operands``                         ``true_graph``,
                                                                  ``false_graph`` (operands)
``while_loop``        ``*carried, *captures``                     ``cond_graph`` -> one bool,
                                                                  ``body_graph`` -> carried
``fori_loop``         ``lower, upper, *carried, *captures``       ``body_graph``
                                                                  (i, carried, captures)
====================  ==========================================  ============================

``while_loop`` and ``fori_loop`` take ``num_carried``; ``fori_loop`` also ``save``: when
true, it returns after the final carried values the index of every iteration (shape
``(upper - lower,)``) and one stack per carried value holding its value at the start of
every iteration (shape ``(upper - lower, *shape)``), both in reverse iteration order: what
the reverse pass reads, in the order it reads them (scan style). ``lower``/``upper``
are ints, symbolic sizes or 0-d int64 nodes. This module checks, prints and interprets
control nodes; building them from Python functions (tracing the bodies) is
:mod:`kiln.tracing.control`, which registers itself in :data:`TRACE_IMPL` so the
interpreter can re-trace a control node met on tracer inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kiln.core.dtypes import bool_, int64
from kiln.core.prims.registry import TensorMeta
from kiln.errors import AutogradError, GraphError
from kiln.symbolic.sizes import SymInt

if TYPE_CHECKING:
    from kiln.graph.graph import Graph
    from kiln.graph.node import Node

# target -> the kwargs holding its subgraphs, in order.
SUBGRAPHS: dict[str, tuple[str, ...]] = {
    "cond": ("true_graph", "false_graph"),
    "while_loop": ("cond_graph", "body_graph"),
    "fori_loop": ("body_graph",),
}
# target -> its other (plain) attributes.
ATTRS: dict[str, tuple[str, ...]] = {
    "cond": (),
    "while_loop": ("num_carried",),
    "fori_loop": ("num_carried", "save"),
}
SCALAR_BOOL = TensorMeta((), bool_)
SCALAR_INT = TensorMeta((), int64)

# Set by kiln.tracing.control: runs a control node on arguments among which are tracers
# (records a new control node into the running trace). Signature: (node, args) -> tuple.
TRACE_IMPL: Callable[[Node, tuple], tuple] | None = None


def subgraphs(node: Node) -> list[Graph]:
    """The subgraphs of control node ``node``, in the order of :data:`SUBGRAPHS`."""
    return [node.kwargs[k] for k in SUBGRAPHS[node.target]]


def trip_count(lower: Any, upper: Any) -> Any:
    """``upper - lower`` for static bounds (ints or symbolic sizes), else None."""
    from kiln.graph.node import Node

    if isinstance(lower, Node) or isinstance(upper, Node):
        return None
    n = upper - lower
    if isinstance(n, int):
        return max(n, 0)
    return n  # a SymInt: the graph guards nothing here, a negative count runs no iteration


def fori_meta(lower: Any, upper: Any, carried: list[TensorMeta], save: bool
              ) -> tuple[TensorMeta, ...]:
    """The results of a fori_loop node: the carried values, then (``save``) the stack of the
    index and one stack per carried value, in reverse iteration order."""
    out = tuple(carried)
    if save:
        n = trip_count(lower, upper)
        if n is None:
            raise GraphError("fori_loop with save=True (for gradients) needs static or "
                             "symbolic bounds (ints or sizes like x.shape[0]), not tensors")
        out += (TensorMeta((n,), int64),)
        out += tuple(TensorMeta((n, *m.shape), m.dtype) for m in carried)
    return out


# ---------------------------------------------------------------------------------------
# lint


def _meta(value: Any) -> Any:
    from kiln.graph.node import Node

    return value.meta if isinstance(value, Node) else value


def _check_subgraph(g: Any, name: str, want_inputs: list[TensorMeta]) -> list[TensorMeta]:
    """Lint subgraph ``g`` and check its placeholders; returns its output metas."""
    from kiln.graph.graph import Graph

    if not isinstance(g, Graph):
        raise GraphError(f"{name} must be a Graph, got {type(g).__name__}")
    if any(n.op == "constant" for n in g.nodes):
        raise GraphError(f"{name} holds a constant node: subgraphs read outside tensors "
                         "as inputs (captures) only")
    g.lint()
    got = [p.meta for p in g.placeholders]
    if got != list(want_inputs):
        raise GraphError(f"{name} takes inputs {[str(m) for m in got]}, but the node passes "
                         f"{[str(m) for m in want_inputs]}")
    return [n.meta for n in g.outputs]


def _bound_ok(value: Any) -> bool:
    from kiln.graph.node import Node

    if isinstance(value, Node):
        return value.meta == SCALAR_INT
    return isinstance(value, (int, SymInt)) and not isinstance(value, bool)


def check_control(node: Node) -> None:
    """Check a control node (raises GraphError with the reason; lint adds the context)."""
    target = node.target
    if target not in SUBGRAPHS:
        raise GraphError(f"unknown control op {target!r} (known: {', '.join(SUBGRAPHS)})")
    want = set(SUBGRAPHS[target]) | set(ATTRS[target])
    if set(node.kwargs) != want:
        raise GraphError(f"{target} takes attributes {sorted(want)}, got {sorted(node.kwargs)}")
    meta = node.meta
    if not isinstance(meta, tuple) or not all(isinstance(m, TensorMeta) for m in meta):
        raise GraphError(f"{target}: meta must be a tuple of tensor metas")
    metas = [_meta(a) for a in node.args]
    if target == "cond":
        if not metas or metas[0] != SCALAR_BOOL:
            raise GraphError("cond: the predicate must be a 0-d bool tensor")
        ins = metas[1:]
        if not all(isinstance(m, TensorMeta) for m in ins):
            raise GraphError("cond: operands must be tensors")
        t_out = _check_subgraph(node.kwargs["true_graph"], "true_graph", ins)
        f_out = _check_subgraph(node.kwargs["false_graph"], "false_graph", ins)
        if t_out != f_out:
            raise GraphError(f"cond: the branches return different values: "
                             f"{[str(m) for m in t_out]} vs {[str(m) for m in f_out]}")
        outs = tuple(t_out)
    else:
        n = node.kwargs["num_carried"]
        first = 2 if target == "fori_loop" else 0
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= len(metas) - first:
            raise GraphError(f"{target}: num_carried must be an int in [0, "
                             f"{len(metas) - first}], got {n!r}")
        ins = metas[first:]
        if not all(isinstance(m, TensorMeta) for m in ins):
            raise GraphError(f"{target}: carried values and captures must be tensors")
        carried = ins[:n]
        if target == "while_loop":
            c_out = _check_subgraph(node.kwargs["cond_graph"], "cond_graph", ins)
            if c_out != [SCALAR_BOOL]:
                raise GraphError("while_loop: cond_graph must return one 0-d bool tensor")
            body_ins = ins
            outs = tuple(carried)
        else:
            lower, upper = node.args[0], node.args[1]
            if not (_bound_ok(lower) and _bound_ok(upper)):
                raise GraphError("fori_loop: lower and upper must be ints, sizes or 0-d "
                                 "int64 tensors")
            save = node.kwargs["save"]
            if not isinstance(save, bool):
                raise GraphError(f"fori_loop: save must be a bool, got {save!r}")
            body_ins = [SCALAR_INT, *ins]
            outs = fori_meta(lower, upper, carried, save)
        b_out = _check_subgraph(node.kwargs["body_graph"], "body_graph", body_ins)
        if b_out != carried:
            raise GraphError(f"{target}: body_graph returns {[str(m) for m in b_out]}, but "
                             f"the loop carries {[str(m) for m in carried]}")
    if outs != meta:
        raise GraphError(f"{target}: recorded results {[str(m) for m in meta]} but the "
                         f"subgraphs give {[str(m) for m in outs]}")


def check_item(node: Node) -> None:
    from kiln.graph.node import Node

    src = node.args[0] if len(node.args) == 1 else None
    if not isinstance(src, Node) or src.op != "control":
        raise GraphError("item reads one control node")
    index = node.kwargs.get("index")
    if set(node.kwargs) != {"index"} or not isinstance(index, int) or isinstance(index, bool) \
            or not 0 <= index < len(src.meta):
        raise GraphError(f"item index must be an int in [0, {len(src.meta)}), got "
                         f"{node.kwargs!r}")
    if src.meta[index] != node.meta:
        raise GraphError(f"item meta {node.meta} differs from result {index} of "
                         f"{src.name} ({src.meta[index]})")


# ---------------------------------------------------------------------------------------
# printing


def format_control(node: Node) -> str:
    """Multi-line jaxpr-style form: the node, then each subgraph indented under it."""
    from kiln.graph.node import _fmt

    metas = ", ".join(str(m) for m in node.meta)
    parts = [_fmt(a) for a in node.args]
    parts += [f"{k}={node.kwargs[k]!r}" for k in ATTRS[node.target]]
    lines = [f"{node.name}: ({metas}) = {node.target}({', '.join(parts)})"]
    for key in SUBGRAPHS[node.target]:
        sub = str(node.kwargs[key]).replace("graph(", f"{key}(", 1)
        lines += ["    " + line for line in sub.splitlines()]
    return "\n    ".join(lines)


# ---------------------------------------------------------------------------------------
# interpreting


def _is_tracer(value: Any) -> bool:
    from kiln.core.tensor import Tensor

    return isinstance(value, Tensor) and value._node is not None


def _int_bound(value: Any, what: str) -> int:
    from kiln.core.tensor import Tensor

    if isinstance(value, Tensor):
        return int(value.item())
    if isinstance(value, int):
        return value
    raise GraphError(f"fori_loop: {what} bound {value!r} is not an int")


def interpret(node: Node, args: tuple,
              runner: Callable[[Graph, list], list] | None = None) -> tuple:
    """Run control node ``node`` on ``args`` (tensors, ints). On eager tensors the bodies
    run in Python control flow, through ``runner(subgraph, inputs)`` (default: the
    interpreter, so autograd records every op of every iteration taken: eager reverse mode
    needs nothing more; the C backend passes its compiled bodies)."""
    if any(_is_tracer(a) for a in args):
        if TRACE_IMPL is None:  # kiln.tracing registers it; a tracer means it is imported
            raise GraphError("control node met tracers but kiln.tracing is not loaded")
        return TRACE_IMPL(node, args)
    if runner is None:
        from kiln.graph.interpreter import run

        def runner(g: Graph, inputs: list) -> list:
            return run(g, {}, inputs)

    target = node.target
    if target == "cond":
        branch = "true_graph" if bool(args[0].item()) else "false_graph"
        return tuple(runner(node.kwargs[branch], list(args[1:])))
    n = node.kwargs["num_carried"]
    if target == "while_loop":
        carried, caps = list(args[:n]), list(args[n:])
        while bool(runner(node.kwargs["cond_graph"], carried + caps)[0].item()):
            carried = list(runner(node.kwargs["body_graph"], carried + caps))
        check_no_grad(carried)
        return tuple(carried)
    return run_fori(node.kwargs["body_graph"], _int_bound(args[0], "lower"),
                    _int_bound(args[1], "upper"), list(args[2:2 + n]), list(args[2 + n:]),
                    node.kwargs["save"], runner)


def run_fori(body: Graph, lower: int, upper: int, carried: list, caps: list, save: bool,
             runner: Callable[[Graph, list], list] | None = None) -> tuple:
    """The eager fori_loop: ``body(i, *carried, *caps)`` for i in range(lower, upper)."""
    from kiln.core import creation
    from kiln.core.functional import stack
    from kiln.graph.interpreter import run

    history: list[list] = [[] for _ in range(len(carried) + 1)]
    for i in range(lower, upper):
        index = creation.tensor(i)
        if save:
            for h, c in zip(history, [index, *carried], strict=True):
                h.append(c)
        inputs = [index, *carried, *caps]
        carried = list(runner(body, inputs) if runner is not None else run(body, {}, inputs))
    if not save:
        return tuple(carried)
    shapes = [((), int64), *((c.shape, c.dtype) for c in carried)]
    stacks = [stack(h[::-1]) if h else creation.zeros((0, *shape), dtype=dtype)
              for h, (shape, dtype) in zip(history, shapes, strict=True)]
    return (*carried, *stacks)


def check_no_grad(values: list) -> None:
    """Reverse mode through a while_loop is refused: its trip count is unknown, so nothing
    says how many iterations to save. fori_loop saves them."""
    from kiln.core.autograd.grad_mode import is_grad_enabled

    if is_grad_enabled() and any(getattr(v, "requires_grad", False) for v in values):
        raise AutogradError(
            "while_loop: a gradient was requested through the loop (a carried value or a "
            "tensor the body reads requires grad); reverse mode through while_loop is not "
            "supported. Use kiln.fori_loop(lower, upper, body_fn, carried) with a trip "
            "count (it saves every iteration), or run the loop under kiln.no_grad()")
