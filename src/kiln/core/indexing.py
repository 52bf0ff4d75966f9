"""``x[index]`` and ``x[index] = value`` in terms of slice, pad, reshape, gather, scatter and
where.

Supported index items, for reading and writing alike: ints (negative too), slices with
positive steps, None, Ellipsis, and one integer (or bool, eagerly) tensor along one dim
(gather / scatter), as in PyTorch. ``x[index] = value`` is computed out of place (see
:func:`setitem`), so it works identically eagerly, under autograd and while tracing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kiln.core import dtypes as dt
from kiln.core import prims as ops
from kiln.core.prims.movement import slice_len
from kiln.core.tensor import Tensor
from kiln.core.views import replay, scatter_into_root
from kiln.errors import IndexError_, ShapeError, TraceError, ValueArgumentError
from kiln.symbolic.guards import same, same_shape
from kiln.symbolic.sizes import SymInt


@dataclass
class _Plan:
    slices: list = field(default_factory=list)  # (dim, start, stop, step) on the input
    squeeze: list = field(default_factory=list)  # input dims removed by int indices
    new_axes: list = field(default_factory=list)  # positions (in output order) of None
    tensor_dim: int | None = None
    tensor: Tensor | None = None
    # Output layout: a list of ("dim", input_dim) | ("new",) | ("tensor",)
    layout: list = field(default_factory=list)
    # Several index tensors (x[i, j]): every (dim, tensor) pair, read by _multi_getitem.
    tensors: list = field(default_factory=list)


def _norm_int(i: int, size: Any, d: int) -> int:
    if isinstance(size, SymInt):
        if i < 0:
            raise IndexError_(f"index {i} on symbolic dim {d} ({size}): negative indices "
                              "need a static size")
        return i
    if not -size <= i < size:
        raise IndexError_(f"index {i} is out of bounds for dim {d} with size {size}")
    return i % size


def _norm_slice(s: slice, size: Any, d: int) -> tuple:
    step = 1 if s.step is None else s.step
    if not isinstance(step, int) or step <= 0:
        raise ValueArgumentError(f"slice step must be a positive int (dim {d}), got {s.step!r}")

    def bound(v: Any, default: Any) -> Any:
        if v is None:
            return default
        if isinstance(v, Tensor):
            v = int(v)
        if isinstance(size, SymInt):
            if isinstance(v, int) and v < 0:
                return size + v
            return v
        if v < 0:
            v += size
        return min(max(v, 0), size)

    start = bound(s.start, 0)
    stop = bound(s.stop, size)
    if isinstance(start, int) and isinstance(stop, int) and stop < start:
        stop = start
    return start, stop, step


def _plan(x: Tensor, index: Any) -> _Plan:
    if not isinstance(index, tuple):
        index = (index,)
    consumed = sum(1 for i in index if i is not None and i is not Ellipsis)
    if sum(1 for i in index if i is Ellipsis) > 1:
        raise IndexError_("an index can only have a single ellipsis ('...')")
    if consumed > x.ndim:
        raise IndexError_(f"too many indices for a tensor of rank {x.ndim}: {consumed}")
    expanded: list = []
    for item in index:
        if item is Ellipsis:
            expanded.extend([slice(None)] * (x.ndim - consumed))
        else:
            expanded.append(item)
    expanded.extend([slice(None)] * (x.ndim - sum(1 for i in expanded if i is not None)))
    plan = _Plan()
    d = 0
    for item in expanded:
        if item is None:
            plan.layout.append(("new",))
            continue
        size = x.shape[d]
        if isinstance(item, bool):
            raise IndexError_("bool scalars as indices are not supported")
        if isinstance(item, int) or (isinstance(item, Tensor) and item.ndim == 0
                                     and item.dtype.is_integer and item._node is None):
            i = _norm_int(int(item), size, d)
            plan.slices.append((d, i, i + 1, 1))
            plan.squeeze.append(d)
        elif isinstance(item, slice):
            start, stop, step = _norm_slice(item, size, d)
            if not (same(start, 0) and same(stop, size) and step == 1):
                plan.slices.append((d, start, stop, step))
            plan.layout.append(("dim", d))
        elif isinstance(item, (Tensor, list)):
            t = item if isinstance(item, Tensor) else Tensor(item)
            if t.dtype.is_bool:
                t = _mask_to_index(t, d)
            if not t.dtype.is_integer:
                raise IndexError_(f"tensors used as indices must be integer or bool, got "
                                  f"{t.dtype}")
            plan.tensors.append((d, t))
            plan.tensor, plan.tensor_dim = t, d
            plan.layout.append(("tensor",))
        else:
            raise IndexError_(f"tensor index: unsupported index item of type "
                              f"{type(item).__name__} ({item!r:.40}); expected an int, slice, "
                              "None, Ellipsis or an integer/bool tensor")
        d += 1
    return plan


def _mask_to_index(mask: Tensor, d: int) -> Tensor:
    if mask._node is not None:
        raise TraceError("boolean mask indexing while tracing has a data-dependent shape; "
                         "use kiln.where(mask, x, 0) instead")
    if mask.ndim != 1:
        raise IndexError_(f"boolean mask index on dim {d} must be 1-D, got {mask.ndim}-D")
    import numpy as np

    return Tensor._wrap(np.nonzero(mask._data)[0].astype(np.int64))


def _full_index(index: Tensor, shape: Any, dim: int) -> Tensor:
    """The operand gather and scatter take along ``dim`` for an index tensor: ``index``
    flattened (negative entries wrapped by ``shape[dim]``) and expanded to ``shape`` with
    ``shape[dim]`` replaced by its length."""
    idx = (index if index.ndim == 1 else index.reshape(-1)).to(dt.int64)
    idx = ops.where(idx < 0, idx + shape[dim], idx)
    n = idx.shape[0]
    ones = [1] * len(shape)
    ones[dim] = n
    target = list(shape)
    target[dim] = n
    return ops.expand(ops.reshape(idx, shape=tuple(ones)), shape=tuple(target))


def _region(x: Tensor, slices: list) -> tuple[tuple, list]:
    """The view steps (:mod:`kiln.core.views`) that ``slices`` take from ``x``, and the shape of
    the region they select."""
    steps = []
    shape = list(x.shape)
    for d, start, stop, step in slices:
        attrs = {"dim": d, "start": start, "stop": stop, "step": step}
        steps.append(("slice", attrs, tuple(shape)))
        shape[d] = slice_len(start, stop, step)
    return tuple(steps), shape


def _indexed_shape(plan: _Plan, region: Any) -> list:
    """The shape ``x[index]`` has, from the shape of the region its slices select (where a
    tensor index's dim is not read): None adds a 1, an int drops its dim, a tensor index puts
    its own shape in place of its dim."""
    shape: list = []
    for entry in plan.layout:
        if entry[0] == "new":
            shape.append(1)
        elif entry[0] == "tensor":
            shape.extend(plan.tensor.shape)  # type: ignore[union-attr]
        else:
            shape.append(region[entry[1]])
    return shape


def getitem(x: Tensor, index: Any) -> Tensor:
    if x.ndim == 0 and index not in ((), Ellipsis, None):
        raise IndexError_("invalid index of a 0-d tensor; use tensor.item() to read it")
    plan = _plan(x, index)
    out = x
    for d, start, stop, step in plan.slices:
        out = ops.slice(out, dim=d, start=start, stop=stop, step=step)
    if len(plan.tensors) > 1:
        return _multi_getitem(out, plan)
    if plan.tensor is not None:
        d = plan.tensor_dim
        out = ops.gather(out, _full_index(plan.tensor, out.shape, d), dim=d)  # type: ignore
    final = _indexed_shape(plan, out.shape)
    if not same_shape(final, out.shape):
        out = ops.reshape(out, shape=tuple(final))
    return out


def _multi_getitem(out: Tensor, plan: _Plan) -> Tensor:
    """``x[i, j]`` with several index tensors (NumPy's advanced indexing, as torch): the
    indexed dims moved first and flattened, one gather of the broadcast linear index, then
    the result dims placed where the index tensors stood (or first, when other dims separate
    them)."""
    from kiln.core.functional import permute, reshape
    from kiln.core.mathops import index_select
    from kiln.core.prims.shapes import broadcast_shapes

    dims = [d for d, _ in plan.tensors]
    if any(isinstance(out.shape[d], SymInt) for d in dims):
        raise IndexError_("several index tensors on symbolic dims are not supported; index "
                          "one dim at a time")
    shapes = [tuple(t.shape) for _, t in plan.tensors]
    try:
        bshape = broadcast_shapes("index", *shapes)
    except ShapeError:
        raise IndexError_(f"index tensors of shapes {shapes} do not broadcast together") \
            from None
    linear: Any = 0
    for d, t in plan.tensors:
        size = out.shape[d]
        idx = t.to(dt.int64)
        idx = ops.where(idx < 0, idx + size, idx)
        linear = linear * size + idx
    others = [k for k in range(out.ndim) if k not in dims]
    moved = permute(out, *dims, *others)
    block = 1
    for d in dims:
        block *= out.shape[d]
    flat = reshape(moved, block, *[out.shape[k] for k in others])
    lin = ops.expand(linear, shape=bshape) if tuple(linear.shape) != bshape else linear
    picked = index_select(flat, 0, reshape(lin, -1))
    res = reshape(picked, *bshape, *[out.shape[k] for k in others])
    nb = len(bshape)
    where = [i for i, e in enumerate(plan.layout) if e[0] == "tensor"]
    adjacent = where == list(range(where[0], where[0] + len(where)))
    order: list[int] = [] if adjacent else list(range(nb))
    shape: list = [] if adjacent else list(bshape)
    placed = not adjacent
    for e in plan.layout:
        if e[0] == "new":
            shape.append(1)
        elif e[0] == "dim":
            order.append(nb + others.index(e[1]))
            shape.append(out.shape[e[1]])
        elif not placed:
            order.extend(range(nb))
            shape.extend(bshape)
            placed = True
    order.extend(nb + others.index(d) for d in plan.squeeze)  # int-indexed: size 1, dropped
    res = permute(res, *order)
    return reshape(res, *shape)


def setitem(x: Tensor, index: Any, value: Any) -> Tensor:
    """The tensor ``x`` would become after ``x[index] = value`` (computed out of place).

    ``value`` broadcasts to the shape ``x[index]`` has. The written region is ``x`` sliced
    (int indices keep their dim, as size 1); a tensor index scatters into that region
    (``scatter``: of repeated indices the last write wins, as in NumPy), and the region is
    put back into ``x`` the way a write through the view ``x[slices]`` is
    (:func:`kiln.core.views.scatter_into_root`).
    """
    plan = _plan(x, index)
    if len(plan.tensors) > 1:
        raise IndexError_("x[i, j] = value with several index tensors is not supported; "
                          "write through one index tensor (e.g. a flattened view with a "
                          "linear index i * n + j)")
    if not isinstance(value, (Tensor, int, float, bool)):
        value = Tensor(value, dtype=x.dtype)
    steps, region = _region(x, plan.slices)
    d = plan.tensor_dim
    full_idx = None if plan.tensor is None else _full_index(plan.tensor, region, d)  # type: ignore
    written = region if full_idx is None else list(full_idx.shape)
    if isinstance(value, Tensor):
        view_shape = _indexed_shape(plan, region)  # what value fills
        try:
            value = value.to(x.dtype).expand(*view_shape) if view_shape or value.ndim else \
                value.to(x.dtype)
        except ShapeError:
            raise ShapeError(f"setitem: value of shape {tuple(value.shape)} does not "
                             f"broadcast to the indexed region {tuple(view_shape)}") from None
        if not same_shape(value.shape, written):
            value = ops.reshape(value, shape=tuple(written))
    else:
        from kiln.core.creation import full

        value = full(tuple(written), value, dtype=x.dtype)
    if full_idx is not None:
        value = ops.scatter(replay(x, steps), full_idx, value, dim=d)
    return scatter_into_root(x, steps, value)
