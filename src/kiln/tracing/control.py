"""``kiln.cond``, ``kiln.while_loop``, ``kiln.fori_loop``: control flow a trace keeps.

Eagerly they are Python control flow (autograd records every op taken). Inside
``kiln.trace``/``kiln.compile`` (a tracer predicate or any loop) each body is traced into a
subgraph of its own (:class:`_BodyContext`): tensors it reads from outside (closures,
module parameters, earlier tracers) become explicit inputs of the control node
(*captures*), so the subgraphs are closed. The node's structure is in
:mod:`kiln.graph.control`.

Gradients: when grad mode is on and an input needs one (AOT autograd traces with grad on),
the node is recorded through a :class:`kiln.autograd.Function` whose backward records
another control node: ``cond`` differentiates into a ``cond`` of the branches' vjps;
``fori_loop`` saves the value every carried tensor had at the start of each iteration
(``save=True``, scan style) and its backward is a ``fori_loop`` over them in reverse, so
the trip count may be a symbolic size known only at run time. ``while_loop`` refuses:
nothing bounds what it would have to save.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kiln.base.pytree import TreeSpec, tree_flatten, tree_unflatten
from kiln.core import creation
from kiln.core.autograd.function import Function, FunctionCtx
from kiln.core.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad
from kiln.core.prims.registry import TensorMeta
from kiln.core.tensor import Tensor
from kiln.core.trace_state import _STACK, current
from kiln.errors import ArgumentError, AutogradError, TraceError
from kiln.graph import control as gc
from kiln.graph.graph import Graph
from kiln.graph.interpreter import run
from kiln.graph.node import Node
from kiln.symbolic.sizes import SymInt
from kiln.tracing.context import TraceContext

__all__ = ["cond", "while_loop", "fori_loop"]


class _BodyContext(TraceContext):
    """The trace of one body: outside values read inside become captured placeholders.

    Comparisons on symbolic sizes are still decided (and guarded) by the enclosing trace's
    shape environment, so guards land on the outermost graph.
    """

    def __init__(self, parent: TraceContext) -> None:
        super().__init__()
        self.parent = parent
        self.graph.symbols = dict(parent.graph.symbols)
        self.graph.hints = parent.graph.hints
        self.constant_names = parent.constant_names
        self.mutations = parent.mutations  # read by dispatch: an eager tensor's live value
        self.captures: list[Tensor] = []
        self._cap_ph: dict[int, Node] = {}

    def __enter__(self) -> _BodyContext:
        _STACK.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _STACK.remove(self)

    def _capture(self, value: Tensor, outer: Node) -> Node:
        ph = self._cap_ph.get(id(outer))
        if ph is None:
            ph = self.graph.placeholder(outer.name, outer.meta)
            self._cap_ph[id(outer)] = ph
            self.captures.append(value)
        return ph

    def lift(self, t: Tensor) -> Node:
        return self._capture(t, self.parent.node_of(t))

    def node_of(self, value: Tensor) -> Node:
        if value._view is not None:
            from kiln.core.views import sync

            sync(value)
        node = value._node
        if node is not None and node.graph is self.graph:
            return node
        return self._capture(value, self.parent.node_of(value))

    def record_mutation(self, target: Tensor, value: Tensor) -> None:
        raise TraceError("an in-place write, inside a cond/loop body, to a tensor from "
                         "outside the body is not supported: return the new value from the "
                         "body (as a carried value) instead")


def _tensors(leaves: list[Any], what: str) -> list[Tensor]:
    for i, leaf in enumerate(leaves):
        if not isinstance(leaf, Tensor):
            raise ArgumentError(f"{what}: leaf {i} must be a kiln.Tensor, got "
                                f"{type(leaf).__name__} (pass numbers as tensors)")
    return leaves


def _trace_body(fn: Callable[..., Any], metas: list[TensorMeta], names: list[str],
                what: str) -> tuple[Graph, list[Tensor], TreeSpec]:
    """Trace ``fn(*placeholders)`` into a subgraph; returns it, its captures (outside
    tensors it read, one placeholder each after the explicit ones) and the output spec."""
    parent = current()
    assert parent is not None
    ctx = _BodyContext(parent)
    with ctx, no_grad():
        phs = [ctx.placeholder(n, m) for n, m in zip(names, metas, strict=True)]
        leaves, spec = tree_flatten(fn(*phs))
        _tensors(leaves, f"{what} result")
        ctx.graph.output([ctx.node_of(v) for v in leaves])
    return ctx.graph, ctx.captures, spec


def _align(bodies: list[tuple[Graph, list[Tensor]]], n_explicit: int) -> list[Tensor]:
    """Give every body a placeholder for every capture of any body, in one order."""
    caps: list[Tensor] = []
    seen: dict[int, int] = {}
    parent = current()
    assert parent is not None
    outer = [[parent.node_of(t) for t in cs] for _, cs in bodies]
    for (_, cs), nodes in zip(bodies, outer, strict=True):
        for t, n in zip(cs, nodes, strict=True):
            if id(n) not in seen:
                seen[id(n)] = len(caps)
                caps.append(t)
    cap_nodes = [parent.node_of(t) for t in caps]
    for (g, _), nodes in zip(bodies, outer, strict=True):
        phs = g.placeholders
        explicit, mine = phs[:n_explicit], dict(zip((id(n) for n in nodes), phs[n_explicit:],
                                                    strict=True))
        ordered = []
        for n in cap_nodes:
            ph = mine.get(id(n))
            if ph is None:  # read by another body only
                ph = Node(g, g._unique(n.name), "placeholder", n.name, (), {}, n.meta)
            ordered.append(ph)
        rest = [n for n in g.nodes if n.op != "placeholder"]
        g.nodes[:] = explicit + ordered + rest
    return caps


def _emit(target: str, args: list[Any], kwargs: dict, metas: tuple) -> tuple[Tensor, ...]:
    """Record control node ``target`` in the running trace; its results as tracers."""
    ctx = current()
    assert ctx is not None
    node_args = tuple(ctx.node_of(a) if isinstance(a, Tensor) else a for a in args)
    node = ctx.graph.control(target, node_args, kwargs, metas)
    return tuple(Tensor._tracer(ctx.graph.item(node, i), m) for i, m in enumerate(metas))


def _wants_grad(tensors: list[Any]) -> bool:
    return is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad
                                     for t in tensors)


def _as_pred(pred: Any) -> Any:
    """A Python bool stays one; a tensor must hold one element and becomes 0-d bool."""
    if isinstance(pred, bool):
        return pred
    if not isinstance(pred, Tensor):
        raise ArgumentError(f"cond: pred must be a bool or a one-element kiln.Tensor, got "
                            f"{type(pred).__name__}")
    if pred.numel() != 1:
        raise ArgumentError(f"cond: pred must hold one element, got shape {tuple(pred.shape)}")
    if pred.ndim:
        pred = pred.reshape(())
    if pred.dtype.name != "bool":
        pred = pred != 0
    return pred


# ---------------------------------------------------------------------------------------
# gradients


def _vjp_graph(g: Graph, xs: tuple, cts: tuple, wanted: list[int]) -> list[Tensor]:
    """Gradients of ``g(*xs)`` seeded with ``cts`` for inputs ``wanted`` (zeros if unused)."""
    from kiln.autograd import grad

    with enable_grad():
        leaves = [x.detach().requires_grad_(True) if k in wanted else x
                  for k, x in enumerate(xs)]
        outs = run(g, {}, leaves)
        pairs = [(o, c) for o, c in zip(outs, cts, strict=True) if o.requires_grad]
        targets = [leaves[k] for k in wanted]
        got: Any = [None] * len(wanted)
        if pairs and targets:
            got = grad([o for o, _ in pairs], targets, [c for _, c in pairs],
                       allow_unused=True)
    return [r if r is not None else creation.zeros_like(t) for r, t in zip(got, targets,
                                                                           strict=True)]


def _floating(values: list[Any]) -> list[int]:
    return [k for k, v in enumerate(values) if isinstance(v, Tensor) and v.dtype.is_floating]


class _ControlFn(Function):
    """A control node as an autograd Function: forward records it, backward records the
    control node of its vjp (both on tracers)."""

    @staticmethod
    def forward(ctx: FunctionCtx, spec: dict, *args: Any) -> tuple:
        ctx.spec, ctx.args = spec, args
        ctx.outs = _emit(spec["target"], list(args), spec["kwargs"], spec["metas"])
        return ctx.outs

    @staticmethod
    def backward(ctx: FunctionCtx, *cts: Any) -> tuple:
        spec, args = ctx.spec, ctx.args
        if spec["target"] == "cond":
            return (None, None, *_cond_backward(spec["kwargs"], args, cts))
        return (None, *_fori_backward(spec["kwargs"], args, ctx.outs, cts))


def _cond_backward(kwargs: dict, args: tuple, cts: tuple) -> list:
    pred, ins = args[0], args[1:]
    wanted = _floating(list(ins))
    n = len(ins)

    def branch(g: Graph) -> Callable[..., list]:
        return lambda *v: _vjp_graph(g, v[:n], v[n:], wanted)

    grads = cond(pred, branch(kwargs["true_graph"]), branch(kwargs["false_graph"]),
                 (*ins, *cts)) if wanted else []
    out: list[Any] = [None] * n
    for k, gk in zip(wanted, grads, strict=True):
        out[k] = gk
    return out


def _fori_backward(kwargs: dict, args: tuple, outs: tuple, cts: tuple) -> list:
    lower, upper = args[0], args[1]
    n = kwargs["num_carried"]
    carried, caps = list(args[2:2 + n]), list(args[2 + n:])
    # The saved stacks, in reverse iteration order: the index i, then each carried value.
    saved_i, saved = outs[n], list(outs[n + 1:])
    body = kwargs["body_graph"]
    want_c = _floating(carried)
    want_k = [n + k for k in _floating(caps)]
    wanted = want_c + want_k
    state0 = [cts[k] for k in want_c] + [creation.zeros_like(caps[k - n]) for k in want_k]
    trips = gc.trip_count(lower, upper)

    def step(j: Tensor, state: tuple) -> tuple:
        i = saved_i[j]
        xs = (i, *(s[j] for s in saved), *caps)
        ct_c = [None] * n
        for k, c in zip(want_c, state, strict=False):
            ct_c[k] = c
        seed = tuple(c if c is not None else creation.zeros_like(x)
                     for c, x in zip(ct_c, xs[1:1 + n], strict=True))
        grads = _vjp_graph(body, xs, seed, [1 + k for k in wanted])
        g_c = grads[:len(want_c)]
        acc = [a + gk for a, gk in zip(state[len(want_c):], grads[len(want_c):], strict=True)]
        return (*g_c, *acc)

    final = fori_loop(0, trips, step, tuple(state0)) if wanted else ()
    out: list[Any] = [None, None] + [None] * (n + len(caps))
    for k, gk in zip(wanted, final, strict=True):
        out[2 + k] = gk
    return out


# ---------------------------------------------------------------------------------------
# the public ops


def cond(pred: Any, true_fn: Callable[..., Any], false_fn: Callable[..., Any],
         operands: tuple | list = ()) -> Any:
    """``true_fn(*operands)`` if ``pred`` else ``false_fn(*operands)``, kept in a trace.

    Eagerly (or with a Python bool ``pred``) this is an ``if``. Inside ``kiln.trace`` /
    ``kiln.compile`` both branches are traced; they must return the same structure of
    tensors with the same shapes and dtypes. Gradients flow through the branch taken.

    >>> import kiln
    >>> f = lambda x: kiln.cond(x.sum() > 0, lambda x: x * 2, lambda x: -x, (x,))
    >>> gm = kiln.trace(f, kiln.ones(2))
    >>> gm(kiln.ones(2)).tolist(), gm(-kiln.ones(2)).tolist()
    ([2.0, 2.0], [1.0, 1.0])
    """
    if not isinstance(operands, (tuple, list)):
        raise ArgumentError(f"cond: operands must be a tuple or list, got "
                            f"{type(operands).__name__}")
    pred = _as_pred(pred)
    if current() is None or isinstance(pred, bool):
        taken = pred if isinstance(pred, bool) else bool(pred.item())
        return (true_fn if taken else false_fn)(*operands)
    leaves, in_spec = tree_flatten(tuple(operands))
    ins = _tensors(leaves, "cond operands")
    metas = [t.meta for t in ins]
    names = [f"arg{i}" for i in range(len(ins))]
    bodies = []
    specs = []
    for fn, what in ((true_fn, "true_fn"), (false_fn, "false_fn")):
        g, cs, spec = _trace_body(lambda *xs, fn=fn: fn(*tree_unflatten(in_spec, list(xs))),
                                  metas, names, what)
        bodies.append((g, cs))
        specs.append(spec)
    t_out = [n.meta for n in bodies[0][0].outputs]
    f_out = [n.meta for n in bodies[1][0].outputs]
    if specs[0] != specs[1] or t_out != f_out:
        raise TraceError(f"cond: the branches must return the same structure, shapes and "
                         f"dtypes; true_fn returned {specs[0]} with {[str(m) for m in t_out]}, "
                         f"false_fn {specs[1]} with {[str(m) for m in f_out]}")
    caps = _align(bodies, len(ins))
    kwargs = {"true_graph": bodies[0][0], "false_graph": bodies[1][0]}
    args = [pred, *ins, *caps]
    outs = _record("cond", args, kwargs, tuple(t_out))
    return tree_unflatten(specs[0], list(outs))


def _record(target: str, args: list, kwargs: dict, metas: tuple) -> tuple:
    if _wants_grad(args):
        spec = {"target": target, "kwargs": kwargs, "metas": metas}
        return tuple(_ControlFn.apply(spec, *args))
    return _emit(target, args, kwargs, metas)


def while_loop(cond_fn: Callable[[Any], Any], body_fn: Callable[[Any], Any],
               carried: Any) -> Any:
    """``while cond_fn(carried): carried = body_fn(carried)``, kept in a trace.

    ``carried`` is a pytree of tensors; ``body_fn`` returns the same structure with the same
    shapes and dtypes, ``cond_fn`` a one-element bool tensor. Reverse-mode gradients through
    a while_loop are refused (use :func:`fori_loop`, which saves its iterations).

    >>> import kiln
    >>> f = lambda x: kiln.while_loop(lambda c: c.sum() < 10, lambda c: c * 2, x)
    >>> kiln.trace(f, kiln.ones(2))(kiln.ones(2)).tolist()
    [8.0, 8.0]
    """
    leaves, spec = tree_flatten(carried)
    _tensors(leaves, "while_loop carried")
    if current() is None:
        while _eager_bool(cond_fn(carried), "cond_fn"):
            carried = body_fn(carried)
        gc.check_no_grad(tree_flatten(carried)[0])
        return carried
    gc.check_no_grad(leaves)
    metas = [t.meta for t in leaves]
    names = [f"c{i}" for i in range(len(leaves))]
    unflat = lambda xs: tree_unflatten(spec, list(xs))  # noqa: E731
    cg, ccaps, cspec = _trace_body(lambda *xs: _as_pred(cond_fn(unflat(xs))), metas, names,
                                   "cond_fn")
    bg, bcaps, bspec = _trace_body(lambda *xs: body_fn(unflat(xs)), metas, names, "body_fn")
    _check_carried(bg, bspec, spec, metas, "while_loop")
    caps = _align([(cg, ccaps), (bg, bcaps)], len(leaves))
    gc.check_no_grad(caps)
    outs = _emit("while_loop", [*leaves, *caps],
                 {"cond_graph": cg, "body_graph": bg, "num_carried": len(leaves)},
                 tuple(metas))
    return tree_unflatten(spec, list(outs))


def _eager_bool(value: Any, what: str) -> bool:
    pred = _as_pred(value)
    return pred if isinstance(pred, bool) else bool(pred.item())


def _check_carried(g: Graph, got: TreeSpec, spec: TreeSpec, metas: list, what: str) -> None:
    out = [n.meta for n in g.outputs]
    if got != spec or out != metas:
        raise TraceError(f"{what}: body_fn must return what it is given (structure, shapes "
                         f"and dtypes): given {spec} with {[str(m) for m in metas]}, returned "
                         f"{got} with {[str(m) for m in out]}")


def _bound(value: Any, what: str) -> Any:
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.dtype.is_floating or value.dtype.name == "bool":
            raise ArgumentError(f"fori_loop: {what} must be an int, a size or a one-element "
                                f"integer tensor, got {value.dtype} of shape "
                                f"{tuple(value.shape)}")
        if value._node is None:
            return int(value.item())
        value = value.reshape(())
        return value if value.dtype.name == "int64" else value.long()
    if isinstance(value, (int, SymInt)) and not isinstance(value, bool):
        return value
    raise ArgumentError(f"fori_loop: {what} must be an int, a size or a one-element integer "
                        f"tensor, got {type(value).__name__}")


def fori_loop(lower: Any, upper: Any, body_fn: Callable[[Any, Any], Any],
              carried: Any) -> Any:
    """``for i in range(lower, upper): carried = body_fn(i, carried)``, kept in a trace.

    ``i`` is a 0-d int64 tensor (index with it: ``xs[i]``). The bounds are ints, sizes
    (``x.shape[0]``, symbolic under ``dynamic=``) or one-element integer tensors. Gradients
    flow through every iteration: the loop saves the carried values of each iteration, so
    the trip count may be known only at run time.

    >>> import kiln
    >>> def cumsum(xs):
    ...     return kiln.fori_loop(0, xs.shape[0], lambda i, acc: acc + xs[i], kiln.zeros(2))
    >>> gm = kiln.trace(cumsum, kiln.ones(3, 2), dynamic={"xs": {0: "T"}})
    >>> gm(kiln.ones(5, 2)).tolist()
    [5.0, 5.0]
    """
    leaves, spec = tree_flatten(carried)
    _tensors(leaves, "fori_loop carried")
    lower, upper = _bound(lower, "lower"), _bound(upper, "upper")
    if current() is None:
        for i in range(lower, upper):
            carried = body_fn(creation.tensor(i), carried)
        return carried
    outs = _fori(lower, upper, lambda i, xs: tree_flatten(body_fn(i, tree_unflatten(
        spec, list(xs)))), leaves, spec, None)
    return tree_unflatten(spec, list(outs[:len(leaves)]))


def _fori(lower: Any, upper: Any, body: Callable[[Any, tuple], tuple[list, TreeSpec]],
          leaves: list[Tensor], spec: TreeSpec | None, save: bool | None) -> tuple:
    """Trace a fori_loop node; ``body(i, flat carried) -> (flat leaves, spec)``."""
    metas = [t.meta for t in leaves]
    names = ["i"] + [f"c{k}" for k in range(len(leaves))]
    specs: list[TreeSpec] = []

    def flat_body(i: Tensor, *xs: Tensor) -> list:
        out, s = body(i, xs)
        specs.append(s)
        return out

    g, caps, _ = _trace_body(flat_body, [gc.SCALAR_INT, *metas], names, "body_fn")
    if spec is not None:
        _check_carried(g, specs[0], spec, metas, "fori_loop")
    caps = _align([(g, caps)], 1 + len(leaves))
    args = [lower, upper, *leaves, *caps]
    if save is None:
        save = _wants_grad(args)
    if save and (isinstance(lower, Tensor) or isinstance(upper, Tensor)):
        raise AutogradError("fori_loop: gradients through a loop whose bounds are tensors "
                            "are not supported; use ints or sizes (x.shape[0]) as bounds")
    metas_out = gc.fori_meta(_node_or(lower), _node_or(upper), metas, save)
    kwargs = {"body_graph": g, "num_carried": len(leaves), "save": save}
    if save:
        spec_ = {"target": "fori_loop", "kwargs": kwargs, "metas": metas_out}
        return tuple(_ControlFn.apply(spec_, *args))
    return _emit("fori_loop", args, kwargs, metas_out)


def _node_or(value: Any) -> Any:
    return value._node if isinstance(value, Tensor) else value


def _trace_impl(node: Node, args: tuple) -> tuple:
    """Run a control node met by the interpreter on tracers: record it again."""
    target = node.target
    kw = node.kwargs
    if target == "cond":
        return tuple(cond(args[0], lambda *xs: run(kw["true_graph"], {}, list(xs)),
                          lambda *xs: run(kw["false_graph"], {}, list(xs)), args[1:]))
    n = kw["num_carried"]
    first = 2 if target == "fori_loop" else 0
    carried, caps = list(args[first:first + n]), list(args[first + n:])
    if target == "while_loop":
        return tuple(while_loop(lambda c: run(kw["cond_graph"], {}, [*c, *caps])[0],
                                lambda c: tuple(run(kw["body_graph"], {}, [*c, *caps])),
                                tuple(carried)))
    return _fori(args[0], args[1],
                 lambda i, c: (run(kw["body_graph"], {}, [i, *c, *caps]), None),
                 carried, None, kw["save"] or None)


gc.TRACE_IMPL = _trace_impl
