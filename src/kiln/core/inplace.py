"""In-place updates: how ``add_``, ``copy_``, ``x[i] = v`` and friends change a tensor.

Every in-place op computes its result out of place, from an alias of the target, and then
makes it the target's value, so one mechanism serves eager tensors, autograd and tracing:

- eager: the new values are written into the target's memory, so the tensors it shares
  memory with (its base, other views, as in PyTorch) see them, and the version counter they
  share moves: a backward that saved the old values refuses to run instead of computing a
  wrong gradient. Tape nodes made for the update itself keep the old values;
- autograd: the target takes over the result's history. When the result has none (``fill_``,
  ``zero_``, ``copy_`` of a constant) but the target had some, the history says the old
  value gets a zero gradient, as in PyTorch. In-place on a leaf that requires grad, or on a
  view of one, is refused outside ``no_grad`` (its gradient would be lost);
- tracing: a tracer target is rebound to the result's node; an eager target (a module
  buffer lifted as a constant) is left untouched and the write is recorded as a mutation
  that the traced graph returns and its caller writes back.

A view target (``x[0].mul_(2)``) also changes its root: under autograd and tracing the root's
new value is rebuilt out of place and the view replayed from it (see :mod:`kiln.core.views`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from kiln.core.autograd.grad_mode import is_grad_enabled
from kiln.core.tensor import Tensor
from kiln.core.trace_state import current, stale_tracer_error
from kiln.core.views import UNKNOWN_LAYOUT, scatter_into_root, sync
from kiln.errors import AutogradError, DTypeError, ShapeError, TraceError, ValueArgumentError
from kiln.symbolic.guards import same_shape

if TYPE_CHECKING:
    from kiln.tracing.context import TraceContext


def alias(t: Tensor, ctx: TraceContext | None) -> Tensor:
    """A second Tensor object for the same value and history (``ctx``: the active trace).

    In-place ops compute their result from an alias, so the tape nodes they record hold the
    alias (with the old value and version) rather than the target that is about to change.
    """
    if t._node is None and ctx is not None:
        # An eager tensor (a module buffer, optimizer state) updated in place while tracing:
        # the update must read the tensor's graph value (including earlier in-place writes)
        # and be recorded, even when nothing else in it is a tracer (`buf.mul_(m)`): run
        # eagerly it would change the data at trace time and be missing from every call of
        # the graph.
        node = ctx.lift(t)
        return Tensor._tracer(node, node.meta)  # type: ignore[arg-type]
    a = Tensor._wrap(t._data)  # type: ignore[arg-type]
    a._node, a._tmeta = t._node, t._tmeta
    a._grad_fn, a.requires_grad = t._grad_fn, t.requires_grad
    a._accumulator = t._accumulator
    return a


def run_inplace(target: Tensor, fn: Callable[[Tensor], Tensor], opname: str) -> Tensor:
    """``target`` updated in place to ``fn(a)``, where ``a`` is an alias of it: the tape nodes
    made while computing the result hold ``a``, which keeps the old value."""
    if target._view is not None:
        sync(target)
    ctx = current()
    a = alias(target, ctx)
    result = fn(a)
    info = target._view
    root = target if info is None else info[0]
    grad = is_grad_enabled()
    if grad and root.requires_grad and root._grad_fn is None:
        what = "a leaf tensor" if info is None else "a view of a leaf tensor"
        raise AutogradError(
            f"{opname}: {what} that requires grad is used in an in-place operation; "
            "wrap the update in `with kiln.no_grad():` (as optimizers do) or use the "
            "out-of-place op"
        )
    if info is not None and info[4]:
        raise ShapeError(f"{opname}: cannot write in place into this view: several of its "
                         "elements share one memory location (it was expanded); call .clone() "
                         "first")
    if info is not None and info[5]:
        raise TraceError(f"{opname}: cannot write in place into this reshape result: "
                         f"{UNKNOWN_LAYOUT}")
    result = _conform(result, target, opname)
    if ctx is not None or target._node is not None or result._node is not None:
        if ctx is None:
            raise stale_tracer_error(opname)
        new = _new_value(target, root, _graph_value(ctx, result), a, grad)
        if root._node is not None:
            root._node, root._tmeta = new._node, new._tmeta
        else:
            ctx.record_mutation(root, new)
    else:
        recorded = grad and (result.requires_grad or root.requires_grad)
        _write(target, result, a, recorded)
        # The history only: eager values are in the shared memory already.
        new = _new_value(target, root, result, a, grad) if recorded else result
    if grad and new.requires_grad:
        root._grad_fn, root.requires_grad = new._grad_fn, True
    # A view target is now stale: its history (or graph node) is replayed from the root's
    # new one when it is next used (kiln.core.views.sync).
    root._version += 1
    if info is not None:
        target._version += 1
    return target


def _conform(result: Tensor, target: Tensor, opname: str) -> Tensor:
    if not same_shape(result.shape, target.shape):
        try:
            result = result.expand(*target.shape)
        except ShapeError:
            raise ShapeError(
                f"{opname}: the result has shape {tuple(result.shape)}, which cannot be "
                f"written in place into a tensor of shape {tuple(target.shape)}"
            ) from None
    if result.dtype.category > target.dtype.category:
        # As in torch: `int_tensor += 1.5` is refused rather than silently truncated.
        raise DTypeError(f"{opname}: the result has dtype {result.dtype}, which cannot be "
                         f"written in place into a {target.dtype} tensor (cast explicitly)")
    if result.dtype != target.dtype:
        result = result.to(target.dtype)
    return result


def _new_value(target: Tensor, root: Tensor, result: Tensor, a: Tensor, grad: bool) -> Tensor:
    """The root's new value: ``result``, or for a view target the root with the view's
    region replaced by it. When that has no history but the old value had one, the history
    says the old value gets a zero gradient (what PyTorch's FillBackward and friends do)."""
    info = target._view
    if info is None:
        new, old = result, a
    else:
        new, old = scatter_into_root(root, info[1], result), root
    if grad and root.requires_grad and not new.requires_grad:
        from kiln.core import dtypes as dt
        from kiln.core import prims as ops

        everywhere = ops.full(shape=(), value=True, dtype=dt.bool_)
        new = ops.where(everywhere, new, old)
    return new


def _write(target: Tensor, result: Tensor, a: Tensor, recorded: bool) -> None:
    """Eagerly write ``result`` into ``target``'s memory."""
    data = target._data
    if recorded:
        # Tape nodes made while computing the result hold the alias: keep the old values
        # there, since the shared memory is about to change.
        a._data = np.array(data, copy=True)
    if data.flags.writeable:  # type: ignore[union-attr]
        np.copyto(data, result._data)  # type: ignore[arg-type]
    elif target._view is not None:
        raise ValueArgumentError("in-place write into a view of read-only memory (a NumPy "
                                 "array that is not writeable); copy it first with .clone()")
    else:
        target._data = np.array(result._data, copy=True)


def _graph_value(ctx: TraceContext, t: Tensor) -> Tensor:
    """``t`` as a value of the graph being traced (eager tensors are lifted)."""
    if t._node is not None:
        return t
    if t.requires_grad:
        from kiln.core import prims as ops

        return ops.cast(t, dtype=t.dtype)  # recorded, with its tape node
    node = ctx.node_of(t)
    return Tensor._tracer(node, node.meta)  # type: ignore[arg-type]
