"""Views: tensors that share memory with a base tensor, and how in-place ops reach the base.

``reshape`` (when NumPy can reshape without a copy), ``permute``, ``slice`` and ``expand``
return views, and so does everything built from them: ``x[0]``, ``x[1:, ::2]``, ``x.view``,
``x.t()``, ``squeeze``/``unsqueeze``, ``flatten``, ``narrow``, ``split``... A view remembers
its **root** (the tensor that owns the memory; views of views point at the same root) and
the **steps** that derive it from the root, so it can be replayed.

An in-place op on a view works the way PyTorch's functionalization does:

- eager data is written into the shared NumPy memory, so the root and every other view of
  it see the new values;
- under autograd and while tracing, the root's new value is rebuilt out of place (the root
  with the view's region replaced: :func:`scatter_into_root`), the root takes over its
  history (tape node, graph node, or a recorded mutation of an eager constant), and the
  view is replayed from the new root;
- views share their root's version counter, and a view whose root changed since its
  history was derived is *stale*: :func:`sync` replays it before it is used.

Writing through an expanded view (several elements share one memory location) is refused,
as in PyTorch.

Under tracing there are no arrays to ask, so tracer views carry strides: a traced input is
taken as contiguous, and a reshape is a view exactly when NumPy would reshape such an array
without copying. An op result computed from a non-contiguous value keeps that layout
eagerly (NumPy's and PyTorch's kernels do), which a trace does not follow: a reshape of it
is marked *unknown*, and writing through it, or reading it after its base changed, raises a
``TraceError`` rather than guess.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from kiln.core.tensor import Tensor
from kiln.errors import TraceError
from kiln.symbolic.guards import is_one, same
from kiln.symbolic.sizes import SymInt

VIEW_OPS = frozenset(("reshape", "permute", "slice", "expand"))


UNKNOWN_LAYOUT = (
    "whether that reshape shares memory with its input depends on a memory layout unknown "
    "while tracing (symbolic sizes, or an op result computed from a transposed or strided "
    "tensor keeps that layout eagerly, as in PyTorch). Call .contiguous() before the reshape "
    "(it then shares memory), or .clone() its result (it then does not)")


# What a view knows (``Tensor._view``; a plain tuple, since one is made for every view op):
#   (root, steps, gen, strides, broadcast, unknown)
# - root: the tensor that owns the memory; steps: ``(op name, attrs, input shape)`` from it;
# - gen: ``root._version`` when this view's history (tape or graph node) was last derived;
# - strides: element strides (tracer views only: eager views have their array's), None when
#   the root's layout is not known;
# - broadcast: an expand in the steps made several elements share memory (no writes);
# - unknown: a traced reshape whose view-ness depends on a layout unknown while tracing.


def contiguous_strides(shape: tuple) -> tuple:
    strides: list[Any] = []
    acc: Any = 1
    for n in reversed(shape):
        strides.append(acc)
        acc = acc * n
    return tuple(reversed(strides))


def _array_strides(data: np.ndarray) -> tuple:
    size = data.itemsize
    return tuple(s // size for s in data.strides)


def has_zero(shape: tuple) -> bool:
    return any(isinstance(n, int) and n == 0 for n in shape)


def _reshape_strides(shape: tuple, strides: tuple, new_shape: tuple) -> tuple | None:
    """The strides of ``reshape(new_shape)`` without a copy, or None when it needs one.

    NumPy's ``_attempt_nocopy_reshape``: dims of size 1 are ignored; runs of old dims that
    multiply to a run of new dims must be contiguous among themselves. Raises ``_Unknown``
    when a symbolic size makes the answer depend on values unknown while tracing.
    """
    # Sizes are compared structurally (kiln.symbolic.guards.same): view-ness must not add guards.
    symbolic = any(isinstance(n, SymInt) for n in tuple(shape) + tuple(new_shape))
    if has_zero(shape):
        return None
    old = [(n, s) for n, s in zip(shape, strides) if not is_one(n)]
    odims = [n for n, _ in old]
    ostr = [s for _, s in old]
    new_strides: list[Any] = [0] * len(new_shape)
    oi, oj, ni, nj = 0, 1, 0, 1
    while ni < len(new_shape) and oi < len(odims):
        np_, op = new_shape[ni], odims[oi]
        while not same(np_, op):
            if _smaller(np_, op):
                np_ = np_ * new_shape[nj]
                nj += 1
            else:
                op = op * odims[oj]
                oj += 1
        for ok in range(oi, oj - 1):
            if not same(ostr[ok], odims[ok + 1] * ostr[ok + 1]):
                if symbolic:
                    raise _Unknown  # the strides could still match for some sizes
                return None
        new_strides[nj - 1] = ostr[oj - 1]
        for nk in range(nj - 1, ni, -1):
            new_strides[nk - 1] = new_strides[nk] * new_shape[nk]
        ni, nj, oi, oj = nj, nj + 1, oj, oj + 1
    last = new_strides[ni - 1] if ni >= 1 else 1
    for nk in range(ni, len(new_shape)):
        new_strides[nk] = last
    return tuple(new_strides)


def _smaller(a: Any, b: Any) -> bool:
    """``a < b`` for products of sizes; with symbols, only when one is the other times a
    constant >= 2 (a symbol may be 1 at run time, so ``B < B*C`` is not known)."""
    if isinstance(a, int) and isinstance(b, int):
        return a < b
    for x, y, answer in ((b, a, True), (a, b, False)):
        q = x.exact_div(y) if isinstance(x, SymInt) else None
        if isinstance(q, int) and q >= 2:
            return answer
    raise _Unknown


class _Unknown(Exception):
    pass


def _tracer_strides(x: Tensor) -> tuple:
    """Element strides of ``x`` as NumPy would have them eagerly; ``_Unknown`` when the
    layout of its root is not known (an op result computed from a non-contiguous value)."""
    if x._node is None:
        return _array_strides(x._data)  # type: ignore[arg-type]
    info = x._view
    if info is not None:
        if info[3] is None:
            raise _Unknown
        return info[3]
    from kiln.core.trace_state import current

    ctx = current()
    if ctx is not None and x._node in ctx.strided:
        raise _Unknown
    return contiguous_strides(tuple(x.shape))


def _c_contiguous(shape: tuple, strides: tuple) -> bool:
    want = contiguous_strides(shape)
    return all(is_one(n) or same(s, w) for n, s, w in zip(shape, strides, want))


def maybe_strided(ctx: Any, t: Tensor) -> bool:
    """Whether ``t``'s eager value may not be C-contiguous (traced inputs are taken as
    contiguous; views say from their strides; op results from the trace context)."""
    if t._node is None:
        return not t._data.flags.c_contiguous  # type: ignore[union-attr]
    info = t._view
    if info is None:
        return t._node in ctx.strided
    return info[3] is None or not _c_contiguous(tuple(t.shape), info[3])


def _step_strides(op: str, attrs: dict, in_shape: tuple, strides: tuple, out_shape: tuple
                  ) -> tuple | None:
    """Strides of a view step's output (None: a reshape that copies)."""
    if op == "reshape":
        return _reshape_strides(in_shape, strides, out_shape)
    if op == "permute":
        return tuple(strides[d] for d in attrs["dims"])
    if op == "slice":
        d = attrs["dim"] % len(in_shape)
        out = list(strides)
        out[d] = out[d] * attrs["step"]
        return tuple(out)
    lead = len(out_shape) - len(in_shape)  # expand
    return (0,) * lead + tuple(0 if is_one(n) and not is_one(m) else s
                               for n, m, s in zip(in_shape, out_shape[lead:], strides))


def _broadcasts(in_shape: tuple, out_shape: tuple) -> bool:
    lead = len(out_shape) - len(in_shape)
    if any(not is_one(n) for n in out_shape[:lead]):
        return True
    return any(is_one(n) and not is_one(m) for n, m in zip(in_shape, out_shape[lead:]))


def track(out: Tensor, x: Tensor, op: str, attrs: dict) -> None:
    """Mark tracer ``out`` (just recorded for view op ``op`` of ``x``) as a view of ``x``'s
    root, when NumPy would have made a view eagerly."""
    shape = tuple(out.shape)
    if has_zero(shape):
        return
    in_shape = tuple(x.shape)
    strides = None
    unknown = False
    try:
        strides = _step_strides(op, attrs, in_shape, _tracer_strides(x), shape)
        if strides is None:
            return  # NumPy would copy: so does the traced program
    except _Unknown:
        # Only a reshape's view-ness depends on the layout; other steps are views anyway
        # (with strides unknown: a reshape after them is undecided in turn).
        unknown = op == "reshape"
    broadcast = op == "expand" and _broadcasts(in_shape, shape)
    _link(out, x, (op, attrs, in_shape), strides, broadcast, unknown)


def view_op(op: Any, call: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """The callable of view op ``op`` (in :mod:`kiln.core.prims`, public as ``kiln.ops``):
    ``call`` it, then mark the result as a view (:func:`track`; eager results are marked
    right here, as this runs for every such op)."""
    name = op.name
    reshape = name == "reshape"
    expand = name == "expand"

    def fn(x: Tensor, **attrs: Any) -> Tensor:
        out = call(op, x, **attrs)  # (a non-tensor x raised there)
        data = out._data
        if data is None:
            track(out, x, name, attrs)
            return out
        if not data.size:
            return out  # no memory to share (and traced empty results are not views either)
        xd = x._data
        if reshape:
            base = data.base  # NumPy points a view at the array that owns the memory
            if base is not xd and (base is None or base is not xd.base) and \
                    not np.may_share_memory(data, xd):
                return out  # NumPy had to copy
        # An expand that adds elements makes several of them share memory.
        broadcast = expand and data.size != xd.size
        if x._view is None:
            out._view = (x, ((name, attrs, xd.shape),), x._version, None, broadcast, False)
        else:
            _link(out, x, (name, attrs, xd.shape), None, broadcast, False)
        return out

    return fn


def _link(out: Tensor, x: Tensor, step: tuple, strides: tuple | None, broadcast: bool,
          unknown: bool) -> None:
    """Make ``out`` the view ``step`` of ``x`` (so of ``x``'s root, when ``x`` is a view)."""
    info = x._view
    if info is None:
        out._view = (x, (step,), x._version, strides, broadcast, unknown)
        return
    root, steps, gen, _, was_broadcast, was_unknown = info
    if step[0] == "reshape" and steps[-1][0] == "reshape":
        steps = steps[:-1] + (("reshape", step[1], steps[-1][2]),)  # one reshape does both
    else:
        steps = steps + (step,)
    out._view = (root, steps, gen, strides, broadcast or was_broadcast, unknown or was_unknown)


def replay(base: Tensor, steps: tuple) -> Tensor:
    """The view ``steps`` of ``base`` (recorded on the tape / in the graph as usual)."""
    from kiln.core import prims as ops

    out = base
    for op, attrs, _ in steps:
        out = getattr(ops, op)(out, **attrs)
    return out


def scatter_into_root(root: Tensor, steps: tuple, value: Tensor) -> Tensor:
    """``root`` with the elements that view ``steps`` selects replaced by ``value``.

    Each step is undone backwards (a slice by padding, a reshape or permute by its inverse),
    carrying the values and a mask of the covered elements; one ``where`` then merges them
    into the root. Gradients flow to ``value`` inside the region and to ``root`` outside.
    A run of slices of different dims (``x[1:, ::2]``) is undone by one pad.
    """
    from kiln.core import prims as ops
    from kiln.core.prims.movement import unslice_pad

    mask: Any = None
    pads: dict[int, tuple] = {}  # dim -> padding, for the run of slices being undone
    for op, attrs, in_shape in reversed(steps):
        if op == "slice":
            d = attrs["dim"] % len(in_shape)
            if d in pads:
                value, mask = _unpad(value, mask, pads)
                pads = {}
            pads[d] = unslice_pad(in_shape[d], attrs["start"], attrs["step"], value.shape[d])
            continue
        if pads:
            value, mask = _unpad(value, mask, pads)
            pads = {}
        if op == "permute":
            inverse = tuple(int(i) for i in np.argsort(attrs["dims"]))
            value = ops.permute(value, dims=inverse)
            mask = None if mask is None else ops.permute(mask, dims=inverse)
        else:  # reshape, or an expand that broadcasts nothing
            value = ops.reshape(value, shape=tuple(in_shape))
            mask = None if mask is None else ops.reshape(mask, shape=tuple(in_shape))
    if pads:
        value, mask = _unpad(value, mask, pads)
    return value if mask is None else ops.where(mask, value, root)


def _unpad(value: Tensor, mask: Any, pads: dict) -> tuple:
    """``value`` and its mask (None: all covered) padded by ``pads`` (dim -> padding)."""
    from kiln.core import dtypes as dt
    from kiln.core import prims as ops
    from kiln.core.creation import ones

    full = tuple(pads.get(d, (0, 0, 0)) for d in range(value.ndim))
    if all(same(v, 0) for p in full for v in p):  # structurally: no guard on a size
        return value, mask  # the slices covered their dims
    if mask is None:
        mask = ones(*value.shape, dtype=dt.bool_)
    return ops.pad(value, pads=full, value=0), ops.pad(mask, pads=full, value=False)


def sync(t: Tensor) -> None:
    """Re-derive a stale view's history (and graph node) from its root's current value
    (``t`` is a view: callers test ``t._view`` first, on paths that run for every op)."""
    root, steps, gen, strides, broadcast, unknown = t._view
    if gen == root._version:
        return
    if unknown:
        raise TraceError(f"a reshape result was used after its input changed in place; "
                         f"{UNKNOWN_LAYOUT}")
    tracer = t._node is not None
    if tracer:
        from kiln.core.trace_state import current

        if current() is None:
            return  # a stale tracer: the op that uses it says so
    t._view = (root, steps, root._version, strides, broadcast, unknown)
    if tracer:
        new = replay(root, steps)
        t._node, t._tmeta = new._node, new._tmeta
        t._grad_fn, t.requires_grad = new._grad_fn, new.requires_grad
    elif root.requires_grad:  # (eager data needs nothing: the memory is shared)
        from kiln.core.autograd.grad_mode import _grad_mode

        with _grad_mode(True):
            new = replay(root, steps)
        t._grad_fn, t.requires_grad = new._grad_fn, new.requires_grad
