"""Index functions of movement, creation and gather ops (see :mod:`kiln.backends.c.lower`).

Movement never copies: permute, expand, slice and flip are affine maps of the index; a
reshape regroups dims (:func:`~kiln.backends.c.lower.reshape_index`); pad and cat select
between loads whose index is clamped into range, so no load ever reads out of bounds, even
where the select discards it. Gather reads its index tensor, checks the range (a failed
check makes the kernel return an error that Python raises as ``IndexError``) and clamps.
"""

from __future__ import annotations

from kiln.backends.c.expr import Builder, Expr
from kiln.backends.c.ix import IX, floordiv, lift, mod
from kiln.backends.c.lower import FnLazy, Lazy, Lowering, is_one, reshape_index
from kiln.core import dtypes as dt
from kiln.graph.node import Node


def _shape_of(node: Node) -> tuple[IX, ...]:
    return tuple(lift(s) for s in node.meta.shape)


def data_index(b: Builder, value: Expr, hi: IX) -> IX:
    """An index atom holding ``value`` (an int64 expression already clamped to [0, hi])."""
    key = f"t{value.id}"
    b.data_atoms[key] = value
    return IX.atom(("x", key, IX.const(0), hi))


def _all(b: Builder, conds: list[Expr]) -> Expr | None:
    out = None
    for c in conds:
        out = c if out is None else b.op("logical_and", [out, c], dt.bool_)
    return out


def movement_lazy(lw: Lowering, node: Node, shape: tuple) -> Lazy:
    name = node.target
    attrs = node.kwargs
    if name == "cat":
        return _cat(lw, node, shape)
    x = node.args[0]
    in_shape = _shape_of(x)
    dtype = node.meta.dtype

    if name == "reshape":
        def fn(b: Builder, idx: tuple) -> Expr:
            return lw.load(b, x, reshape_index(idx, shape, in_shape))
    elif name == "permute":
        dims = attrs["dims"]

        def fn(b: Builder, idx: tuple) -> Expr:
            src = [IX.const(0)] * len(in_shape)
            for j, d in enumerate(dims):
                src[d] = idx[j]
            return lw.load(b, x, tuple(src))
    elif name == "expand":
        lead = len(shape) - len(in_shape)

        def fn(b: Builder, idx: tuple) -> Expr:
            src = tuple(IX.const(0) if is_one(s) and not is_one(shape[lead + d])
                        else idx[lead + d] for d, s in enumerate(in_shape))
            return lw.load(b, x, src)
    elif name == "slice":
        dim = attrs["dim"] % max(len(in_shape), 1)
        start, step = lift(attrs["start"]), int(attrs["step"])

        def fn(b: Builder, idx: tuple) -> Expr:
            src = list(idx)
            src[dim] = start + idx[dim] * step
            return lw.load(b, x, tuple(src))
    elif name == "flip":
        dims = {d % max(len(in_shape), 1) for d in attrs["dims"]}

        def fn(b: Builder, idx: tuple) -> Expr:
            src = tuple(in_shape[d] - 1 - i if d in dims else i for d, i in enumerate(idx))
            return lw.load(b, x, src)
    elif name == "pad":
        return _pad(lw, node, shape)
    else:
        raise NotImplementedError(name)
    return FnLazy(shape, dtype, fn)


def _pad(lw: Lowering, node: Node, shape: tuple) -> Lazy:
    x = node.args[0]
    in_shape = _shape_of(x)
    pads = node.kwargs["pads"]
    dtype = node.meta.dtype
    fill = node.kwargs.get("value", 0.0)
    empty = any(s.is_const and s.value == 0 for s in in_shape)

    def fn(b: Builder, idx: tuple) -> Expr:
        fill_e = b.const(fill, dtype)
        if empty:
            return fill_e
        conds: list[Expr] = []
        src = []
        for d, (lo, hi, interior) in enumerate(pads):
            i = idx[d]
            lo = lift(lo)
            if lo == 0 and lift(hi) == 0 and interior == 0:
                src.append(i)
                continue
            k = interior + 1
            t = i - lo
            q = floordiv(t, k)
            n = in_shape[d]
            ok = [b.op("ge", [b.idx(t), b.const(0, dt.int64)], dt.bool_, dt.int64),
                  b.op("lt", [b.idx(q), b.idx(n)], dt.bool_, dt.int64)]
            if k > 1:
                ok.append(b.op("eq", [b.idx(mod(t, k)), b.const(0, dt.int64)], dt.bool_,
                               dt.int64))
            valid = _all(b, ok)
            conds.append(valid)
            safe = b.op("where", [valid, b.idx(q), b.const(0, dt.int64)], dt.int64)
            src.append(data_index(b, safe, n - 1))
        inner = lw.load(b, x, tuple(src))
        if not conds:  # no padding at all: an identity
            return inner
        return b.op("where", [_all(b, conds), inner, fill_e], dtype)

    return FnLazy(shape, dtype, fn)


def _cat(lw: Lowering, node: Node, shape: tuple) -> Lazy:
    parts = [a for a in node.args if isinstance(a, Node)]
    dim = node.kwargs["dim"] % len(shape)
    dtype = node.meta.dtype
    pieces = []
    offset = IX.const(0)
    for p in parts:
        n = _shape_of(p)[dim]
        if not (n.is_const and n.value == 0):
            pieces.append((p, offset, n))
        offset = offset + n

    def fn(b: Builder, idx: tuple) -> Expr:
        if not pieces:  # every part is empty along dim: so is the result, never loaded
            return b.const(0, dtype)
        i = idx[dim]
        out: Expr | None = None
        for p, off, n in reversed(pieces):
            t = b.idx(i - off)
            clamped = b.op("maximum", [b.op("minimum", [t, b.idx(n - 1)], dt.int64),
                                       b.const(0, dt.int64)], dt.int64)
            src = list(idx)
            src[dim] = data_index(b, clamped, n - 1)
            val = lw.load(b, p, tuple(src))
            if out is None:
                out = val
            else:
                below = b.op("lt", [b.idx(i), b.idx(off + n)], dt.bool_, dt.int64)
                out = b.op("where", [below, val, out], dtype)
        assert out is not None
        return out

    if len(pieces) == 1:
        p, off, _ = pieces[0]

        def fn(b: Builder, idx: tuple) -> Expr:  # noqa: F811  (one non-empty part: a shift)
            src = list(idx)
            src[dim] = idx[dim] - off
            return lw.load(b, p, tuple(src))

    return FnLazy(shape, dtype, fn)


def creation_lazy(node: Node, shape: tuple) -> Lazy:
    attrs = node.kwargs
    dtype = node.meta.dtype
    name = node.target
    if name == "full":
        value = attrs["value"]

        def fn(b: Builder, idx: tuple) -> Expr:
            return b.const(value, dtype)
    elif name == "arange":
        start, step = attrs["start"], attrs["step"]

        def fn(b: Builder, idx: tuple) -> Expr:
            if dtype.is_floating:
                # start + i*step in double, then rounded once (the eager kernel's formula)
                v = b.op("add", [b.const(float(start), dt.float64),
                                 b.op("mul", [b.idx(idx[0], dt.float64),
                                              b.const(float(step), dt.float64)], dt.float64)],
                         dt.float64)
                return b.cast(v, dtype)
            v = b.op("add", [b.const(int(start), dt.int64),
                             b.op("mul", [b.idx(idx[0]), b.const(int(step), dt.int64)],
                                  dt.int64)], dt.int64)
            return b.cast(v, dtype)
    elif name == "eye":
        def fn(b: Builder, idx: tuple) -> Expr:
            eq = b.op("eq", [b.idx(idx[0]), b.idx(idx[1])], dt.bool_, dt.int64)
            return b.cast(eq, dtype)
    else:
        raise NotImplementedError(name)
    return FnLazy(shape, dtype, fn)


def gather_lazy(lw: Lowering, node: Node, shape: tuple) -> Lazy:
    x, index = node.args[0], node.args[1]
    in_shape = _shape_of(x)
    dim = node.kwargs["dim"] % len(in_shape)
    n = in_shape[dim]
    dtype = node.meta.dtype
    message = (f"gather (node {node.name}): an index is out of bounds for dim {dim} "
               f"(expected 0 <= index < size of that dim)")

    def fn(b: Builder, idx: tuple) -> Expr:
        iv = b.cast(lw.load(b, index, idx), dt.int64)
        bad = b.op("logical_or", [b.op("lt", [iv, b.const(0, dt.int64)], dt.bool_, dt.int64),
                                  b.op("ge", [iv, b.idx(n)], dt.bool_, dt.int64)], dt.bool_)
        b.check(bad, message)
        safe = b.op("where", [bad, b.const(0, dt.int64), iv], dt.int64)
        src = list(idx)
        src[dim] = data_index(b, safe, n - 1)
        return lw.load(b, x, tuple(src))

    return FnLazy(shape, dtype, fn)
