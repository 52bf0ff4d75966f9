"""Group realized values into kernels (fusion), in graph order.

A kernel iterates over a *domain* and computes several realized values in it:

- ``pointwise``: a loop nest over a shape; every value has that shape and is stored at the
  loop index (horizontal fusion of same-shaped results);
- ``rows``: reductions whose innermost dim is reduced, with their prologue inlined. For each
  kept index ("row") the kernel runs *phases*: loops over the reduced dims that accumulate
  reductions which may read the results of earlier phases (softmax: max, then sum of
  exp(x - max)); then per-row scalar values (kept shape) and a final loop that stores values
  of the full row shape (the epilogue: exp(x - max) / sum). A pointwise kernel becomes a
  rows kernel when a reduction over its domain joins it;
- ``cols``: reductions whose innermost dim is kept (sum over the batch): vector
  accumulators over the trailing kept dims, plus per-element values of the kept shape;
- ``matmul``: a GEMM call (transposes absorbed from strided operand views) followed by an
  epilogue of pointwise values of the product's shape (bias add, activation);
- ``scatter``: scatter_add and scatter (a copy, then serial accumulation or overwriting along
  the scattered dim);
- ``conv`` / ``pool``: calls into ``kiln_conv.h``.

A value joins an existing kernel when the domains match and every load it makes of a value
computed in that kernel is at the kernel's own index for it (so the value is available in a
register); otherwise it starts a new kernel. Values whose buffer nobody reads afterwards
stay kernel-local and are never stored.
"""

from __future__ import annotations

import dataclasses

from kiln.backends.c.expr import Builder, Expr, walk
from kiln.backends.c.ix import IX, flat_index, lift
from kiln.backends.c.lower import SCATTERS, Buffer, Lowering, is_one
from kiln.core import dtypes as dt
from kiln.core.dtypes import DType
from kiln.core.prims.registry import get_op
from kiln.core.prims.shapes import norm_dims
from kiln.errors import BackendError
from kiln.graph.node import Node


@dataclasses.dataclass(eq=False)
class Reduction:
    """One reduction computed in a rows/cols kernel."""

    node: Node
    kind: str  # sum | prod | max | min | argmax | argmin
    expr: Expr  # the value reduced, over the full domain index
    phase: int
    acc: DType  # accumulator dtype
    out_dtype: DType
    offset: IX  # store offset (kept vars)
    name: str  # row-scalar name
    pos: IX | None = None  # argmax/argmin: position within the reduced dims
    # float max/min: track NaN beside the comparisons (they skip it); a rows kernel clears it
    # when a later sum makes every result NaN anyway (rows_rewrite.nan_free_reductions)
    nan_flag: bool = True

    @property
    def tracks_nan(self) -> bool:
        return self.kind in ("max", "min") and self.acc.is_floating and self.nan_flag


@dataclasses.dataclass(eq=False)
class Kernel:
    id: int
    kind: str
    shape: tuple[IX, ...]
    reduced: tuple[int, ...] = ()
    vars: tuple[IX, ...] = ()
    full: list = dataclasses.field(default_factory=list)  # (node, expr)
    reductions: list = dataclasses.field(default_factory=list)
    rows: list = dataclasses.field(default_factory=list)  # (node, expr, phase, offset, name)
    checks: dict = dataclasses.field(default_factory=dict)  # expr id -> (expr, message)
    loads: set = dataclasses.field(default_factory=set)
    local: dict = dataclasses.field(default_factory=dict)  # buffer id -> (offset, expr)
    extern: dict = dataclasses.field(default_factory=dict)
    nodes: list = dataclasses.field(default_factory=list)
    stores: set = dataclasses.field(default_factory=set)  # buffer ids written

    @property
    def kept(self) -> tuple[int, ...]:
        return tuple(d for d in range(len(self.shape)) if d not in self.reduced)

    def phase_of(self, e: Expr) -> int:
        names = {r.name: r.phase for r in self.reductions}
        names.update({name: ph for _, _, ph, _, name in self.rows})
        return max((names.get(n.data, 0) for n in walk([e]) if n.kind == "row"), default=0)

    def describe(self) -> str:
        return f"kernel {self.id} ({self.kind}): " + ", ".join(n.name for n in self.nodes)


def _same_shape(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(x == y for x, y in zip(a, b, strict=True))


def _acc_dtype(kind: str, dtype: DType, out: DType) -> DType:
    if kind == "sum":
        return dt.float64 if dtype.is_floating else dt.int64
    if kind == "prod" and not dtype.is_floating:
        return dt.int64  # like NumPy's prod(dtype=int64): an int32 product must not wrap
    return dtype


class Scheduler:
    def __init__(self, lw: Lowering) -> None:
        self.lw = lw
        self.b = Builder()
        self.kernels: list[Kernel] = []
        self.kernel_of: dict[int, Kernel] = {}  # buffer id -> producing kernel
        for node in lw.graph.nodes:
            if node.op == "call" and node in lw.realized:
                buf = lw.realized[node]
                if buf.kind == "random":
                    continue
                self._place(node, buf)
        self._finish()

    # placement -----------------------------------------------------------------------------
    def _deps(self, node: Node) -> set[int]:
        """Buffers the node's own computation reads (no kernel-local substitution)."""
        op = get_op(node.target)
        ids: set[int] = set()
        for a in node.inputs:
            lazy = self.lw.lazy[a]
            idx = tuple(IX.var(f"z{d}", s) for d, s in enumerate(lazy.shape))
            self.b.begin_kernel()
            lazy.load(self.b, idx)
            ids |= self.b.loads
        _ = op
        return ids

    def _place(self, node: Node, buf: Buffer) -> None:
        if buf.id in self.kernel_of:
            return  # computed by another node's kernel (a transposed matmul output)
        op = get_op(node.target)
        deps = self._deps(node)
        lo = max((self.kernel_of[i].id for i in deps if i in self.kernel_of), default=-1)
        if op.kind in ("pointwise", "movement", "creation", "gather") and node.target not in \
                SCATTERS or op.kind == "reduction":
            for k in reversed(self.kernels[lo if lo >= 0 else 0:]):
                if k.id < lo:
                    break
                if self._try_join(k, node, buf):
                    return
        self._new_kernel(node, buf)

    def _new_kernel(self, node: Node, buf: Buffer) -> None:
        op = get_op(node.target)
        kid = len(self.kernels)
        if op.kind == "reduction":
            kernel = self._reduction_kernel(kid, node)
            if kernel is None:
                kernel = Kernel(kid, "pointwise", buf.shape, (), self._vars(buf.shape))
        elif op.kind in ("pointwise", "movement", "creation", "gather") and \
                node.target not in SCATTERS:
            kernel = Kernel(kid, "pointwise", buf.shape, (), self._vars(buf.shape))
        elif op.kind == "matmul" and not buf.dtype.is_floating:
            kernel = self._int_matmul(kid, node, buf)
            self.kernels.append(kernel)
            kernel.nodes.append(node)
            self.kernel_of[buf.id] = kernel
            return
        elif op.kind == "matmul":
            kernel = Kernel(kid, "matmul", buf.shape, (), self._vars(buf.shape))
            self._matmul(kernel, node, buf)
        elif node.target in SCATTERS:
            kernel = Kernel(kid, "scatter", buf.shape, (), self._vars(buf.shape))
            self._scatter(kernel, node, buf)
        elif op.kind in ("conv", "pool"):
            from kiln.backends.c.conv import conv_kernel

            kernel = conv_kernel(self, kid, node, buf)
        else:
            raise BackendError(f"c backend: cannot schedule op {node.target} ({op.kind})")
        self.kernels.append(kernel)
        if kernel.kind in ("matmul", "scatter", "conv", "pool"):
            kernel.nodes.append(node)
            kernel.stores.add(buf.id)
            self.kernel_of[buf.id] = kernel
            return
        if not self._try_join(kernel, node, buf):
            raise BackendError(f"c backend: internal error: {node.name} rejected by its own "
                               "kernel")

    @staticmethod
    def _vars(shape: tuple) -> tuple[IX, ...]:
        return tuple(IX.var(f"i{d}", s) for d, s in enumerate(shape))

    def _reduction_info(self, node: Node) -> tuple[Node, tuple[IX, ...], tuple[int, ...]]:
        x = node.args[0]
        shape = tuple(lift(s) for s in x.meta.shape)
        if node.target in ("argmax", "argmin"):
            dim = node.kwargs.get("dim")
            dims = tuple(range(len(shape))) if dim is None else (dim % max(len(shape), 1),)
            dims = dims if shape else ()
        else:
            dims = norm_dims(node.target, node.kwargs.get("dims"), len(shape))
        return x, shape, dims

    def _reduction_kernel(self, kid: int, node: Node) -> Kernel | None:
        _, shape, dims = self._reduction_info(node)
        nontrivial = [d for d in range(len(shape)) if not is_one(shape[d])]
        inner = bool(nontrivial) and nontrivial[-1] in dims
        if not dims or not nontrivial or all(d in dims for d in nontrivial) or inner:
            kind = "rows"
        else:
            kind = "cols"
        return Kernel(kid, kind, shape, dims, self._vars(shape))

    # joining -------------------------------------------------------------------------------
    def _kept_index(self, k: Kernel, shape: tuple) -> tuple | None:
        """The index of a kept-shape value in kernel ``k``'s variables, if ``shape`` is the
        kept shape (with reduced dims as 1, or dropped)."""
        keep1 = tuple(IX.const(1) if d in k.reduced else s for d, s in enumerate(k.shape))
        if _same_shape(shape, keep1):
            return tuple(IX.const(0) if d in k.reduced else k.vars[d]
                         for d in range(len(k.shape)))
        dropped = tuple(s for d, s in enumerate(k.shape) if d not in k.reduced)
        if _same_shape(shape, dropped):
            return tuple(k.vars[d] for d in k.kept)
        return None

    def _build(self, k: Kernel, node: Node, idx: tuple) -> Expr | None:
        self.b.begin_kernel(k.local)
        e = self.lw.inline[node].load(self.b, idx) if node in self.lw.inline else None
        return e

    def _loads_ok(self, k: Kernel) -> bool:
        if self.b.foreign:
            return False
        for i in self.b.loads:
            prod = self.kernel_of.get(i)
            if prod is not None and (prod.id > k.id or prod is k):
                return False
        return True

    def _commit(self, k: Kernel, node: Node, buf: Buffer, offset: IX, value: Expr) -> None:
        k.loads |= self.b.loads
        k.checks.update(self.b.checks)
        k.local[buf.id] = (offset, value)
        k.nodes.append(node)
        self.kernel_of[buf.id] = k

    def _try_join(self, k: Kernel, node: Node, buf: Buffer) -> bool:
        op = get_op(node.target)
        if op.kind == "reduction":
            return self._join_reduction(k, node, buf)
        if k.kind == "scatter":
            return False
        if _same_shape(buf.shape, k.shape) and k.kind in ("pointwise", "rows", "matmul", "conv",
                                                          "pool"):
            e = self._build(k, node, k.vars)
            if e is None or not self._loads_ok(k):
                return False
            k.full.append((node, e))
            self._commit(k, node, buf, flat_index(k.vars, k.shape), e)
            return True
        if k.kind in ("rows", "cols"):
            idx = self._kept_index(k, buf.shape)
            if idx is None:
                return False
            e = self._build(k, node, idx)
            if e is None or not self._loads_ok(k):
                return False
            name = f"v{buf.id}"
            phase = k.phase_of(e)
            offset = flat_index(idx, buf.shape)
            k.rows.append((node, e, phase, offset, name))
            self._commit(k, node, buf, offset, self.b.row(name, buf.dtype))
            return True
        return False

    def _join_reduction(self, k: Kernel, node: Node, buf: Buffer) -> bool:
        x, shape, dims = self._reduction_info(node)
        if k.kind == "pointwise" and not k.reductions and not k.rows:
            probe = self._reduction_kernel(-1, node)
            if probe is None or probe.kind != "rows" or not _same_shape(shape, k.shape):
                return False
            reduced = tuple(dims)
        elif k.kind in ("rows", "cols"):
            if not _same_shape(shape, k.shape) or tuple(dims) != tuple(k.reduced):
                return False
            reduced = k.reduced
        else:
            return False
        self.b.begin_kernel(k.local)
        value = self.lw.load(self.b, x, k.vars)
        if not self._loads_ok(k):
            return False
        kind = node.target
        saved = k.reduced
        k.reduced = reduced
        phase = k.phase_of(value) + 1
        if k.kind == "cols" and phase > 1:
            k.reduced = saved
            return False
        if k.kind == "pointwise":
            k.kind = "rows"
        keepdim = bool(node.kwargs.get("keepdim", False))
        out_idx = []
        for d in range(len(shape)):
            if d in dims:
                if keepdim:
                    out_idx.append(IX.const(0))
            else:
                out_idx.append(k.vars[d])
        offset = flat_index(tuple(out_idx), buf.shape)
        name = f"v{buf.id}"
        pos = None
        if kind in ("argmax", "argmin"):
            pos = flat_index(tuple(k.vars[d] for d in dims), tuple(shape[d] for d in dims))
        red = Reduction(node, kind, value, phase, _acc_dtype(kind, value.dtype, buf.dtype),
                        buf.dtype, offset, name, pos)
        k.reductions.append(red)
        self._commit(k, node, buf, offset, self.b.row(name, buf.dtype))
        return True

    # extern kernels ------------------------------------------------------------------------
    def _matmul(self, k: Kernel, node: Node, buf: Buffer) -> None:
        from kiln.backends.c.matmul import plan_matmul

        t = self.lw.transposed.get(node)
        if t is not None:
            tbuf = self.lw.realized[t]
            k.extern = plan_matmul(self.lw, node, tbuf, transposed=True)
            k.shape, k.vars = tbuf.shape, self._vars(tbuf.shape)
            k.nodes.append(t)
            k.stores.add(tbuf.id)
            self.kernel_of[tbuf.id] = k
            buf = tbuf
        else:
            k.extern = plan_matmul(self.lw, node, buf)
        for key in ("a", "b"):
            k.loads.add(k.extern[key][0].id)
        # the epilogue reads the product where the GEMM wrote it
        off = flat_index(k.vars, k.shape)
        k.local[buf.id] = (off, self.b.raw_load(buf.id, off, buf.dtype))

    def _int_matmul(self, kid: int, node: Node, buf: Buffer) -> Kernel:
        """Integer matmul (no BLAS): a row reduction over K of a[..., m, k] * b[..., k, n]."""
        from kiln.backends.c.lower import broadcast_index

        a, bb = node.args
        kdim = lift(a.meta.shape[-1])
        shape = buf.shape + (kdim,)
        k = Kernel(kid, "rows", shape, (len(shape) - 1,), self._vars(shape))
        v = k.vars
        out_batch = buf.shape[:-2]
        ash = tuple(lift(s) for s in a.meta.shape)
        bsh = tuple(lift(s) for s in bb.meta.shape)
        a_idx = broadcast_index(v[:len(out_batch)], out_batch, ash[:-2]) + (v[-3], v[-1])
        b_idx = broadcast_index(v[:len(out_batch)], out_batch, bsh[:-2]) + (v[-1], v[-2])
        self.b.begin_kernel()
        prod = self.b.op("mul", [self.lw.load(self.b, a, a_idx), self.lw.load(self.b, bb, b_idx)],
                         buf.dtype)
        k.loads |= self.b.loads
        offset = flat_index(v[:-1], buf.shape)
        name = f"v{buf.id}"
        k.reductions.append(Reduction(node, "sum", prod, 1, dt.int64, buf.dtype, offset, name))
        k.local[buf.id] = (offset, self.b.row(name, buf.dtype))
        return k

    def _scatter(self, k: Kernel, node: Node, buf: Buffer) -> None:
        x, index, src = node.args[:3]
        dim = node.kwargs["dim"] % len(k.shape)
        self.b.begin_kernel()
        base = self.lw.load(self.b, x, k.vars)
        ishape = tuple(lift(s) for s in index.meta.shape)
        ivars = tuple(IX.var(f"j{d}", s) for d, s in enumerate(ishape))
        iv = self.b.cast(self.lw.load(self.b, index, ivars), dt.int64)
        sv = self.lw.load(self.b, src, ivars)
        k.loads |= self.b.loads
        k.checks.update(self.b.checks)
        k.extern = {"base": base, "index": iv, "src": sv, "dim": dim, "ivars": ivars,
                    "ishape": ishape, "node": node}

    # finishing -----------------------------------------------------------------------------
    def _finish(self) -> None:
        read: set[int] = set()
        for k in self.kernels:
            read |= k.loads
        outputs = {b.id for b in self.lw.buffers if b.kind == "output"}
        for k in self.kernels:
            for node, *_ in k.full:
                bid = self.lw.realized[node].id
                if bid in read or bid in outputs:
                    k.stores.add(bid)
            for node, *_ in k.rows:
                bid = self.lw.realized[node].id
                if bid in read or bid in outputs:
                    k.stores.add(bid)
            for r in k.reductions:
                bid = self.lw.realized[r.node].id
                if bid in read or bid in outputs:
                    k.stores.add(bid)
        self.read = read


def schedule(lw: Lowering) -> tuple[list[Kernel], Builder]:
    s = Scheduler(lw)
    return s.kernels, s.b


def reduced_extent(node: Node) -> object | None:
    """The number of elements one max/min/argmax/argmin result reduces over, when it is
    symbolic (it could be 0 at run time, where these reductions have no value)."""
    from kiln.symbolic.sizes import SymInt

    x = node.args[0]
    shape = tuple(x.meta.shape)
    if node.target in ("argmax", "argmin"):
        dim = node.kwargs.get("dim")
        dims = tuple(range(len(shape))) if dim is None else (dim % max(len(shape), 1),)
    else:
        dims = norm_dims(node.target, node.kwargs.get("dims"), len(shape))
    size: object = 1
    for d in dims:
        if d < len(shape):
            size = size * shape[d]  # type: ignore[operator]
    return size if isinstance(size, SymInt) else None
