"""In-place updates: how ``add_``, ``copy_``, ``x[i] = v`` and friends change a tensor.

Every in-place op computes its result out of place and then rebinds the target, so one
mechanism serves eager tensors, autograd and tracing:

- eager: the new values are written into the target's buffer (aliases see them, as in
  PyTorch) and its version counter moves, so a backward that saved the old values refuses
  to run instead of computing a wrong gradient;
- autograd: the target takes over the result's ``grad_fn``; in-place on a leaf that
  requires grad is refused outside ``no_grad`` (its gradient would be lost);
- tracing: a tracer target is rebound to the result's node; an eager target (a module
  buffer lifted as a constant) is left untouched and the write is recorded as a mutation
  that the traced graph returns and its caller writes back.
"""

from __future__ import annotations

import numpy as np

from kiln.autograd.grad_mode import is_grad_enabled
from kiln.errors import AutogradError, DTypeError, ShapeError
from kiln.tensor import Tensor
from kiln.tracing.context import current, stale_tracer_error


def alias(t: Tensor) -> Tensor:
    """A second Tensor object for the same value and history.

    In-place ops compute their result from an alias, so the tape nodes they record hold the
    alias (with the old value and version) rather than the target that is about to change.
    """
    if t._node is None:
        ctx = current()
        if ctx is not None:
            # An eager tensor (a module buffer, optimizer state) updated in place while
            # tracing: the update must read the tensor's graph value (including earlier
            # in-place writes) and be recorded, even when nothing else in it is a tracer
            # (`buf.mul_(m)`): run eagerly it would change the data at trace time and be
            # missing from every call of the graph.
            node = ctx.lift(t)
            return Tensor._tracer(node, node.meta)  # type: ignore[arg-type]
    a = Tensor._wrap(t._data)  # type: ignore[arg-type]
    a._node, a._tmeta = t._node, t._tmeta
    a._grad_fn, a.requires_grad = t._grad_fn, t.requires_grad
    a._accumulator = t._accumulator
    return a


def apply_inplace(target: Tensor, result: Tensor, opname: str) -> Tensor:
    if is_grad_enabled() and target.requires_grad and target.is_leaf:
        raise AutogradError(
            f"{opname}: a leaf tensor that requires grad is used in an in-place operation; "
            "wrap the update in `with kiln.no_grad():` (as optimizers do) or use the "
            "out-of-place op"
        )
    if tuple(result.shape) != tuple(target.shape):
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
    if target._node is not None:
        target._node = result._node
        target._tmeta = result._tmeta
    elif result._node is not None:
        ctx = current()
        if ctx is None:
            raise stale_tracer_error(opname)
        ctx.record_mutation(target, result)
    else:
        data = target._data
        recorded = result.requires_grad and is_grad_enabled()
        # With a tape node holding the old buffer, rebind rather than overwrite it.
        if not recorded and data is not None and data.flags.writeable:
            np.copyto(data, result._data)
        else:
            target._data = np.array(result._data, copy=True)
    target._version += 1
    if result.requires_grad and is_grad_enabled():
        target._grad_fn = result._grad_fn
        target.requires_grad = True
    return target
