"""Movement primitives: reshape, permute, expand, slice, pad, cat, flip.

They move data without computing on it, so backends turn them into index arithmetic. The
primitives take fully explicit attributes (no -1 in shapes, normalized slice bounds); the
user-facing forms (``view(-1, 4)``, ``x[1:-1]``) normalize before calling them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kiln.core.prims.registry import OpDef, TensorMeta, register
from kiln.core.prims.shapes import check_shape_arg, fmt_shape, norm_dim, require_tensor
from kiln.core.prims.vjp_utils import sum_to
from kiln.errors import ArgumentError, ShapeError, ValueArgumentError
from kiln.symbolic.guards import is_one, same
from kiln.symbolic.sizes import prod


def _reshape_meta(x: Any, *, shape: tuple) -> TensorMeta:
    x = require_tensor("reshape", x, "input")
    check_shape_arg("reshape", shape)
    if prod(shape) != prod(x.shape):
        raise ShapeError(f"reshape: cannot reshape {fmt_shape(x.shape)} "
                         f"({prod(x.shape)} elements) into {fmt_shape(shape)}")
    return TensorMeta(tuple(shape), x.dtype)


def _reshape_vjp(c: Any, g: Any) -> tuple:
    (x,) = c._args
    from kiln.core import prims as ops

    return (ops.reshape(g, shape=tuple(x.shape)),)


register(OpDef("reshape", _reshape_meta, lambda x, *, shape: np.reshape(x, shape),
               _reshape_vjp, "movement", "reshape(x, shape=...): same elements, new shape.",
               attrs=("shape",)))


def _permute_meta(x: Any, *, dims: tuple) -> TensorMeta:
    x = require_tensor("permute", x, "input")
    if not isinstance(dims, tuple) or sorted(dims) != list(range(x.ndim)):
        raise ValueArgumentError(f"permute: dims must be a permutation of 0..{x.ndim - 1}, "
                            f"got {dims!r}")
    return TensorMeta(tuple(x.shape[d] for d in dims), x.dtype)


def _permute_vjp(c: Any, g: Any) -> tuple:
    from kiln.core import prims as ops

    inverse = tuple(int(i) for i in np.argsort(c.attrs["dims"]))
    return (ops.permute(g, dims=inverse),)


register(OpDef("permute", _permute_meta, lambda x, *, dims: np.transpose(x, dims),
               _permute_vjp, "movement", "permute(x, dims=...): reorder dims.",
               attrs=("dims",)))


def _expand_meta(x: Any, *, shape: tuple) -> TensorMeta:
    x = require_tensor("expand", x, "input")
    check_shape_arg("expand", shape)
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ShapeError(f"expand: target {shape} has fewer dims than input {x.shape}")
    for i, d in enumerate(x.shape):
        t = shape[lead + i]
        # A static 1 stretches; anything else must equal the target (a guard if symbolic).
        if not (same(d, t) or is_one(d)) and d != t:
            raise ShapeError(f"expand: cannot expand dim {i} of size {d} to {t} "
                             f"(input {fmt_shape(x.shape)}, target "
                             f"{fmt_shape(shape)})")
    return TensorMeta(tuple(shape), x.dtype)


def _expand_eager(x: np.ndarray, *, shape: tuple) -> np.ndarray:
    if x.size == math.prod(shape):
        return x.reshape(shape)  # nothing broadcast: a writable view (broadcast_to's is not)
    return np.broadcast_to(x, shape)


register(OpDef("expand", _expand_meta, _expand_eager,
               lambda c, g: (sum_to(g, tuple(c._args[0].shape)),), "movement",
               "expand(x, shape=...): broadcast size-1 dims (and new leading dims).",
               attrs=("shape",)))


def slice_len(start: Any, stop: Any, step: int) -> Any:
    span = stop - start
    if isinstance(span, int):
        return max(0, -(-span // step))
    return span if step == 1 else (span + (step - 1)) // step


def unslice_pad(size: Any, start: Any, step: int, n: Any) -> tuple:
    """The ``(lo, hi, interior)`` padding that puts the ``n`` elements of a slice
    ``start::step`` back in place in a dim of ``size`` (zeros elsewhere)."""
    # With step 1 both forms agree for an empty slice; with a larger step a symbolic length
    # is asked whether it is 0 (a guard, see kiln.symbolic.guards).
    if (isinstance(n, int) or step > 1) and n == 0:
        return (size, 0, 0)
    return (start, size - start - (n - 1) * step - 1, step - 1)


def _slice_meta(x: Any, *, dim: int, start: Any, stop: Any, step: int) -> TensorMeta:
    x = require_tensor("slice", x, "input")
    d = norm_dim("slice", dim, x.ndim)
    if not isinstance(step, int) or step < 1:
        raise ValueArgumentError(f"slice: step must be a positive int, got {step!r}")
    size = x.shape[d]
    for name, v in (("start", start), ("stop", stop)):
        if isinstance(v, int) and isinstance(size, int) and not 0 <= v <= size:
            raise ShapeError(f"slice: {name}={v} outside 0..{size} on dim {d}")
    if isinstance(start, int) and isinstance(stop, int) and stop < start:
        raise ShapeError(f"slice: stop={stop} < start={start}")
    shape = list(x.shape)
    shape[d] = slice_len(start, stop, step)
    return TensorMeta(tuple(shape), x.dtype)


def _slice_eager(x: np.ndarray, *, dim: int, start: int, stop: int, step: int) -> np.ndarray:
    index = [slice(None)] * x.ndim
    index[dim] = slice(start, stop, step)
    return x[tuple(index)]


def _slice_vjp(c: Any, g: Any) -> tuple:
    from kiln.core import prims as ops

    (x,) = c._args
    d = c.attrs["dim"] % x.ndim
    pads = [(0, 0, 0)] * x.ndim
    pads[d] = unslice_pad(x.shape[d], c.attrs["start"], c.attrs["step"], g.shape[d])
    return (ops.pad(g, pads=tuple(pads), value=0.0),)


register(OpDef("slice", _slice_meta, _slice_eager, _slice_vjp, "movement",
               "slice(x, dim=, start=, stop=, step=): a strided range of one dim "
               "(0 <= start <= stop <= size, step >= 1).",
               attrs=("dim", "start", "stop", "step")))


def _pad_meta(x: Any, *, pads: tuple, value: float = 0.0) -> TensorMeta:
    x = require_tensor("pad", x, "input")
    if not isinstance(pads, tuple) or len(pads) != x.ndim:
        raise ArgumentError(f"pad: pads must hold one (lo, hi, interior) per dim "
                            f"({x.ndim}), got {pads!r}")
    shape = []
    for i, (p, n) in enumerate(zip(pads, x.shape)):
        if not isinstance(p, tuple) or len(p) != 3:
            raise ArgumentError(f"pad: pads[{i}] must be (lo, hi, interior), got {p!r}")
        lo, hi, interior = p
        for v in (lo, hi, interior):
            if isinstance(v, int) and v < 0:
                raise ShapeError(f"pad: pads[{i}]={p} must be non-negative")
        # Without interior padding n + (n - 1) * 0 is right for n == 0 too; with it a
        # symbolic n is asked whether it is 0 (a guard).
        inner = 0 if interior and n == 0 else n + (n - 1) * interior
        shape.append(lo + inner + hi)
    return TensorMeta(tuple(shape), x.dtype)


def _pad_eager(x: np.ndarray, *, pads: tuple, value: float = 0.0) -> np.ndarray:
    shape = []
    index = []
    for (lo, hi, interior), n in zip(pads, x.shape):
        inner = n + (n - 1) * interior if n else 0
        shape.append(lo + inner + hi)
        index.append(slice(lo, lo + inner, interior + 1))
    out = np.full(shape, value, dtype=x.dtype)
    out[tuple(index)] = x
    return out


def _pad_vjp(c: Any, g: Any) -> tuple:
    from kiln.core import prims as ops

    (x,) = c._args
    out = g
    for d, ((lo, _hi, interior), n) in enumerate(zip(c.attrs["pads"], x.shape)):
        if lo == 0 and _hi == 0 and interior == 0:
            continue
        stop = lo if interior and n == 0 else lo + (n - 1) * (interior + 1) + 1
        out = ops.slice(out, dim=d, start=lo, stop=stop, step=interior + 1)
    return (out,)


register(OpDef("pad", _pad_meta, _pad_eager, _pad_vjp, "movement",
               "pad(x, pads=((lo, hi, interior), ...), value=0.0): constant padding per dim, "
               "with `interior` values between neighbours (like lax.pad).",
               attrs=("pads", "value")))


def _cat_meta(*xs: Any, dim: int) -> TensorMeta:
    if not xs:
        raise ValueArgumentError("cat: expected at least one tensor")
    metas = [require_tensor("cat", x, f"tensors[{i}]") for i, x in enumerate(xs)]
    first = metas[0]
    d = norm_dim("cat", dim, first.ndim)
    total: Any = 0
    for i, m in enumerate(metas):
        if m.ndim != first.ndim or m.dtype != first.dtype:
            raise ShapeError(f"cat: tensors[{i}] is {m}, expected rank {first.ndim} and "
                             f"dtype {first.dtype} like tensors[0] ({first})")
        for j, (a, b) in enumerate(zip(m.shape, first.shape)):
            if j != d and a != b:
                raise ShapeError(f"cat: tensors[{i}] has size {a} in dim {j}, expected {b}")
        total = total + m.shape[d]
    shape = list(first.shape)
    shape[d] = total
    return TensorMeta(tuple(shape), first.dtype)


def _cat_vjp(c: Any, g: Any) -> tuple:
    from kiln.core import prims as ops

    d = c.attrs["dim"] % g.ndim
    grads = []
    offset: Any = 0
    for i, x in enumerate(c._args):
        n = x.shape[d]
        if c.needs_grad(i):
            grads.append(ops.slice(g, dim=d, start=offset, stop=offset + n, step=1))
        else:
            grads.append(None)
        offset = offset + n
    return tuple(grads)


register(OpDef("cat", _cat_meta, lambda *xs, dim: np.concatenate(xs, axis=dim), _cat_vjp,
               "movement", "cat(*tensors, dim=...): join along an existing dim "
               "(same dtype; promote first).", attrs=("dim",)))


def _flip_meta(x: Any, *, dims: tuple) -> TensorMeta:
    x = require_tensor("flip", x, "input")
    for d in dims:
        norm_dim("flip", d, x.ndim)
    return TensorMeta(x.shape, x.dtype)


def _flip_vjp(c: Any, g: Any) -> tuple:
    from kiln.core import prims as ops

    return (ops.flip(g, dims=c.attrs["dims"]),)


def _flip_eager(x: np.ndarray, *, dims: tuple) -> np.ndarray:
    # np.flip returns a view; a flipped tensor is a copy (as in torch), so writing into it in
    # place must not change its input.
    return np.flip(x, dims).copy()


register(OpDef("flip", _flip_meta, _flip_eager, _flip_vjp,
               "movement", "flip(x, dims=...): reverse the order along dims (a copy).",
               attrs=("dims",)))
