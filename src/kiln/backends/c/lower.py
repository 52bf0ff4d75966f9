"""Lower graph nodes to index functions, and decide which values live in memory.

Every node gets a *lazy* value: its shape (IX sizes), dtype, and ``load(builder, idx)``,
the expression of its element at index vector ``idx``. Pointwise ops compose their
operands' loads; movement ops only rewrite the index (permute, expand, slice, flip are
affine maps, reshape regroups dims, pad and cat select between guarded loads); creation ops
compute from the index. A *realized* node is stored in a buffer, and its load reads memory.

Which nodes are realized (see docs/c_backend.md, "Fusion rules"):

- reductions, matmul, conv, pool, scatter/scatter_add and random draws always;
- graph outputs;
- operands an extern kernel cannot read through a strided view (GEMM needs a unit stride
  in one of the two matrix dims);
- an expensive pointwise value (a transcendental in it) read by several consumers that
  iterate over other shapes, or broadcast by a consumer onto a larger shape, since
  inlining would compute it many times;
- an expression that grew too big to inline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from kiln.backends.c.expr import Builder, Expr, op_cost, walk
from kiln.backends.c.ix import IX, contiguous_strides, flat_index, floordiv, lift, mod, simplify
from kiln.core import dtypes as dt
from kiln.core.dtypes import DType
from kiln.core.prims.registry import TensorMeta, get_op
from kiln.core.prims.shapes import promote
from kiln.errors import BackendError
from kiln.graph.graph import Graph
from kiln.graph.node import Node

# Ops executed by their own kernel (their operands must be in memory or strided views).
EXTERN_KINDS = ("matmul", "conv", "pool")
# Gather-kind ops that write (a kernel each: a copy of the base, then the writes in order).
SCATTERS = frozenset(("scatter_add", "scatter"))
_INLINE_LIMIT = 160  # expression nodes beyond which a value is realized instead of inlined
_COMPARE = {"eq", "ne", "lt", "le", "gt", "ge"}
_LOGICAL = {"logical_and", "logical_or", "logical_not"}
_INPUT_TYPED = {"signbit"}


@dataclasses.dataclass(eq=False)
class Buffer:
    """A tensor in memory: an input, a constant, a random draw, an output or a temporary."""

    id: int
    name: str
    kind: str  # "input" | "constant" | "random" | "output" | "temp"
    dtype: DType
    shape: tuple[IX, ...]
    node: Node | None
    key: Any = None  # placeholder position, constant key or output positions

    @property
    def numel(self) -> IX:
        n = IX.const(1)
        for s in self.shape:
            n = n * s
        return n


class Lazy:
    """A value as a function of its index (see the module docstring)."""

    shape: tuple[IX, ...]
    dtype: DType

    def load(self, b: Builder, idx: tuple[IX, ...]) -> Expr:
        raise NotImplementedError


class BufferLazy(Lazy):
    def __init__(self, buf: Buffer) -> None:
        self.buf = buf
        self.shape = buf.shape
        self.dtype = buf.dtype

    def load(self, b: Builder, idx: tuple[IX, ...]) -> Expr:
        return b.load(self.buf.id, flat_index(idx, self.shape), self.dtype)


class FnLazy(Lazy):
    def __init__(self, shape: tuple, dtype: DType, fn: Callable[[Builder, tuple], Expr]):
        self.shape = tuple(lift(s) for s in shape)
        self.dtype = dtype
        self.fn = fn

    def load(self, b: Builder, idx: tuple[IX, ...]) -> Expr:
        return self.fn(b, tuple(idx))


def is_one(s: IX) -> bool:
    return s.is_const and s.value == 1


def broadcast_index(idx: tuple, out_shape: tuple, in_shape: tuple) -> tuple:
    """The operand index for output index ``idx`` under NumPy broadcasting."""
    lead = len(out_shape) - len(in_shape)
    return tuple(IX.const(0) if is_one(s) and not is_one(out_shape[lead + d]) else idx[lead + d]
                 for d, s in enumerate(in_shape))


# ------------------------------------------------------------------------------------------
# reshape


def _rep(s: IX, reps: dict) -> int:
    env = {a[1]: reps.setdefault(a[1], 1009 + 16 * len(reps)) for a in s.atoms() if a[0] == "s"}
    try:
        return s.evaluate(env)
    except KeyError:
        return 1 << 20


def _product(sizes: list) -> IX:
    out = IX.const(1)
    for s in sizes:
        out = out * s
    return out


def reshape_index(idx: tuple, new: tuple, old: tuple) -> tuple:
    """Old-shape index for new-shape index ``idx`` (same elements, row-major order).

    Dims are matched in groups with equal products, so a split or a merge costs one div or
    mod per dim, and dims that keep their size keep their index unchanged.
    """
    if any(s.is_const and s.value == 0 for s in old):
        return tuple(IX.const(0) for _ in old)
    reps: dict = {}
    on = [d for d, s in enumerate(old) if not is_one(s)]
    nn = [d for d, s in enumerate(new) if not is_one(s)]
    groups: list[tuple[list, list]] = []
    i = j = 0
    ok = True
    while i < len(on) and j < len(nn):
        go, gn = [on[i]], [nn[j]]
        po, pn = _rep(old[on[i]], reps), _rep(new[nn[j]], reps)
        i += 1
        j += 1
        while po != pn:
            if po < pn and i < len(on):
                go.append(on[i])
                po *= _rep(old[on[i]], reps)
                i += 1
            elif pn < po and j < len(nn):
                gn.append(nn[j])
                pn *= _rep(new[nn[j]], reps)
                j += 1
            else:
                ok = False
                break
        if not ok or _product([old[d] for d in go]) != _product([new[d] for d in gn]):
            ok = False
            break
        groups.append((go, gn))
    if not ok or i < len(on) or j < len(nn):
        groups = [(on, nn)] if on or nn else []
    out = [IX.const(0)] * len(old)
    for go, gn in groups:
        flat = flat_index(tuple(idx[d] for d in gn), tuple(new[d] for d in gn))
        strides = contiguous_strides(tuple(old[d] for d in go))
        for k, (d, st) in enumerate(zip(go, strides, strict=True)):
            v = flat if k == 0 else mod(flat, strides[k - 1])
            out[d] = floordiv(v, st)
    return tuple(out)


# ------------------------------------------------------------------------------------------
# the lowering


class Lowering:
    """Lazy values and buffers for every node of ``graph`` (see the module docstring)."""

    def __init__(self, graph: Graph, constants_meta: dict[str, TensorMeta]) -> None:
        self.graph = graph
        self.buffers: list[Buffer] = []
        self.lazy: dict[Node, Lazy] = {}
        self.inline: dict[Node, Lazy] = {}
        self.realized: dict[Node, Buffer] = {}
        self.reasons: dict[Node, str] = {}
        self.probe = Builder()
        self._cost: dict[Node, int] = {}
        self._size: dict[Node, int] = {}
        out_nodes = list(graph.outputs)
        self.outputs = set(out_nodes)
        for i, node in enumerate(graph.placeholders):
            self._buffer(node, "input", key=i)
        for node in graph.nodes:
            if node.op == "constant":
                self._buffer(node, "constant", key=node.target)
        for node in graph.nodes:
            if node.op == "call":
                self._lower(node)
        for node in out_nodes:
            if node not in self.realized:
                self.realize(node, "graph output")
        # A matmul read only through a transpose of its last two dims (weight gradients:
        # permute(x.T @ g)) is computed transposed, straight into the transpose's buffer.
        self.transposed: dict[Node, Node] = {}
        for node in graph.calls():
            if node.target != "matmul" or node in self.outputs or not node.meta.dtype.is_floating:
                continue
            users = list(node.users)
            if len(users) == 1 and users[0].target == "permute":
                p = users[0]
                n = len(node.meta.shape)
                if tuple(p.kwargs["dims"]) == tuple(range(n - 2)) + (n - 1, n - 2):
                    self.realize(p, "transposed matmul output")
                    self.transposed[node] = p
        if self.transposed:
            # The transposed buffer has another layout than the one the matmul operands were
            # checked against (a reshape of it may no longer be a strided view): re-check.
            from kiln.backends.c.matmul import operand_ok

            for node in graph.calls():
                if node.target == "matmul":
                    for arg in node.args:
                        if isinstance(arg, Node) and not operand_ok(self, arg):
                            self.realize(arg, "matmul operand without a unit stride")

    # buffers ------------------------------------------------------------------------------
    def _buffer(self, node: Node, kind: str, key: Any = None) -> Buffer:
        buf = Buffer(len(self.buffers), node.name, kind, node.meta.dtype,
                     tuple(lift(s) for s in node.meta.shape), node, key)
        self.buffers.append(buf)
        self.realized[node] = buf
        self.lazy[node] = BufferLazy(buf)
        return buf

    def realize(self, node: Node, reason: str) -> Buffer:
        if node in self.realized:
            return self.realized[node]
        op = get_op(node.target) if node.op == "call" else None
        kind = "random" if op is not None and op.is_random else "temp"
        if node in self.outputs:
            kind = "output" if kind != "random" else "random"
        self.reasons[node] = reason
        return self._buffer(node, kind)

    def value(self, node: Any) -> Lazy | Any:
        """The lazy value of a node argument (Python scalars pass through)."""
        if isinstance(node, Node):
            return self.lazy[node]
        return node

    def load(self, b: Builder, node: Node, idx: tuple) -> Expr:
        return self.lazy[node].load(b, idx)

    # per-node lowering ---------------------------------------------------------------------
    def _lower(self, node: Node) -> None:
        op = get_op(node.target)
        kind = op.kind
        if kind == "linalg":
            raise BackendError(f"c backend: {node.target} (node {node.name}) has no C kernel: "
                               "the linear-algebra decompositions run eagerly, in traced "
                               "graphs and with AOT autograd on the interpreter; compile this "
                               "function with backend='interpret'")
        if kind in ("reduction",) + EXTERN_KINDS:
            self.realize(node, kind)
            if kind == "matmul":
                from kiln.backends.c.matmul import operand_ok

                for arg in node.args:
                    if isinstance(arg, Node) and not operand_ok(self, arg):
                        # Prefer storing the computed value under a movement chain (x.T of
                        # relu(h) stores relu(h), and the GEMM reads it transposed).
                        base = arg
                        while base.op == "call" and get_op(base.target).is_movement and \
                                base.target != "cat" and base not in self.realized:
                            base = base.args[0]
                        if base is not arg and base.op == "call" and base not in self.realized:
                            self.realize(base, "computed matmul operand")
                        if not operand_ok(self, arg):
                            self.realize(arg, "matmul operand without a unit stride")
            elif kind in ("conv", "pool"):
                for arg in node.args:
                    if isinstance(arg, Node):
                        self.realize(arg, f"{kind} operand")
            return
        if kind == "random":
            if any(isinstance(a, Node) for a in node.args):
                raise BackendError(f"c backend: random op {node.target} with tensor inputs "
                                   f"(node {node.name}) is not supported")
            self.realize(node, "random draw (evaluated in Python)")
            return
        if node.target in SCATTERS:
            self.realize(node, node.target)
            return
        lazy = self._make_lazy(node)
        self.inline[node] = lazy
        self.lazy[node] = lazy
        reason = self._needs_realize(node)
        if reason:
            self.realize(node, reason)

    def _make_lazy(self, node: Node) -> Lazy:
        op = get_op(node.target)
        meta = node.meta
        shape = tuple(lift(s) for s in meta.shape)
        if op.kind == "pointwise":
            return self._pointwise(node, shape)
        if op.kind == "movement":
            from kiln.backends.c.movement import movement_lazy

            return movement_lazy(self, node, shape)
        if op.kind == "creation":
            from kiln.backends.c.movement import creation_lazy

            return creation_lazy(node, shape)
        if node.target == "gather":
            from kiln.backends.c.movement import gather_lazy

            return gather_lazy(self, node, shape)
        raise BackendError(f"c backend: no lowering for op {node.target} ({op.kind})")

    def _pointwise(self, node: Node, shape: tuple) -> Lazy:
        name = node.target
        out_dtype = node.meta.dtype
        args = node.args
        metas = [a.meta if isinstance(a, Node) else a for a in args]
        if name in _COMPARE:
            compute = promote(name, *metas)
        elif name in _INPUT_TYPED:  # a bool result about the input's own bits
            compute = metas[0].dtype
        elif name in _LOGICAL:
            compute = dt.bool_
        else:
            compute = out_dtype
        if name == "cast":
            compute = None
        lowering = self

        def fn(b: Builder, idx: tuple) -> Expr:
            vals = []
            for a in args:
                if isinstance(a, Node):
                    sub = broadcast_index(idx, shape, tuple(lift(s) for s in a.meta.shape))
                    vals.append(lowering.load(b, a, sub))
                else:
                    vals.append(b.const(a, compute if compute is not None else out_dtype))
            if name == "cast":
                return b.cast(vals[0], out_dtype)
            if name == "floor_divide":
                zero = b.op("eq", [vals[1], b.const(0, out_dtype)], dt.bool_, out_dtype)
                b.check(zero, f"floor_divide (node {node.name}): integer division by zero "
                              "(the divisor holds a 0)")
            if name == "pow" and not out_dtype.is_floating:
                neg = b.op("lt", [vals[1], b.const(0, out_dtype)], dt.bool_, out_dtype)
                b.check(neg, f"pow (node {node.name}): integers to negative integer powers are "
                             "not allowed")
            if name == "pow" and out_dtype.is_floating and not isinstance(args[1], Node) \
                    and args[1] == 0.5:
                return b.op("sqrt", vals[:1], out_dtype)  # NumPy's scalar-exponent fast path
            return b.op(name, vals, out_dtype, compute)

        return FnLazy(shape, out_dtype, fn)

    # realization heuristics ---------------------------------------------------------------
    def cost(self, node: Node) -> int:
        """Per-element cost of computing ``node`` inline (transcendentals weigh 8)."""
        if node in self._cost:
            return self._cost[node]
        if node in self.realized or node.op != "call":
            return 1
        op = get_op(node.target)
        own = op_cost(node.target) if op.kind == "pointwise" else 0
        c = own + sum(self.cost(a) for a in node.inputs)
        self._cost[node] = c
        return c

    def _numel(self, node: Node) -> int:
        reps: dict = {}
        n = 1
        for s in node.meta.shape:
            n *= _rep(lift(s), reps)
        return n

    def _needs_realize(self, node: Node) -> str:
        users = [u for u in node.users if u.op == "call"]
        cost = self.cost(node)
        if cost >= 8:
            shape = tuple(node.meta.shape)
            n = self._numel(node)
            other_domain = [u for u in users if tuple(u.meta.shape) != shape
                            and get_op(u.target).kind != "reduction"]
            if len(users) > 1 and other_domain:
                return "expensive value read by consumers of other shapes"
            if any(self._numel(u) > 2 * n for u in users):
                return "expensive value broadcast by a consumer"
        size = self._expr_size(node)
        if size > _INLINE_LIMIT:
            return f"inline expression too big ({size} nodes)"
        return ""

    def _expr_size(self, node: Node) -> int:
        if node in self._size:
            return self._size[node]
        lazy = self.lazy[node]
        idx = tuple(IX.var(f"p{d}", s) for d, s in enumerate(lazy.shape))
        b = Builder()
        size = len(walk([lazy.load(b, idx)]))
        self._size[node] = size
        return size

    def strided_view(self, node: Node) -> tuple[Buffer, IX, tuple[IX, ...]] | None:
        """(buffer, base offset, strides) when ``node`` reads a buffer through an affine map."""
        lazy = self.lazy[node]
        names = [f"q{d}" for d in range(len(lazy.shape))]
        idx = tuple(IX.var(n, s) for n, s in zip(names, lazy.shape, strict=True))
        e = lazy.load(self.probe, idx)
        if e.kind != "load" or e.args:
            return None
        buf_id, offset = e.data
        # a reshape that merges dims reads through div/mod pairs that fold back to a line
        offset = simplify(offset)
        strides = []
        for n in names:
            c = offset.linear_coeff(n)
            if c is None or c.var_names():
                return None
            strides.append(c)
        base = offset.subs({n: IX.const(0) for n in names})
        if base.var_names():
            return None
        return self.buffers[buf_id], base, tuple(strides)
