"""``kiln.max_pool2d_with_indices_backward``: torch's aten op of that name as a composite.

The gradient of ``max_pool2d`` with respect to its input, given the ``indices`` that
``max_pool2d(..., return_indices=True)`` returned: each output gradient is added at the flat
input position (``row * W + col``) its window's maximum came from (windows that share a
maximum accumulate). A scatter-add, so it is itself differentiable (in ``grad_output``).

>>> import kiln, kiln.nn.functional as F
>>> x = kiln.arange(16.0).reshape(1, 1, 4, 4)
>>> out, idx = F.max_pool2d(x, 2, return_indices=True)
>>> g = kiln.max_pool2d_with_indices_backward(kiln.ones_like(out), x, 2, 2, 0, 1, False, idx)
>>> g[0, 0].tolist()
[[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0]]
"""

from __future__ import annotations

from typing import Any

from kiln import ops
from kiln.core import dtypes as dt
from kiln.core.functional import reshape
from kiln.core.prims.shapes import fmt_shape
from kiln.core.tensor import Tensor
from kiln.errors import ShapeError
from kiln.nn.checks import want_tensor


def max_pool2d_with_indices_backward(grad_output: Tensor, input: Tensor, kernel_size: Any,
                                     stride: Any, padding: Any, dilation: Any, ceil_mode: bool,
                                     indices: Tensor) -> Tensor:
    """The input gradient of ``max_pool2d``: ``grad_output`` scattered (added) into a zero
    tensor of ``input``'s shape at ``indices``. ``kernel_size``, ``stride``, ``padding``,
    ``dilation`` and ``ceil_mode`` are the forward's (the indices already encode them).

    >>> import kiln
    >>> x = kiln.tensor([[[[1.0, 3.0], [2.0, 0.0]]]])
    >>> idx = kiln.tensor([[[[1]]]])
    >>> kiln.max_pool2d_with_indices_backward(kiln.ones(1, 1, 1, 1), x, 2, 2, 0, 1, False,
    ...                                       idx).tolist()
    [[[[0.0, 1.0], [0.0, 0.0]]]]
    """
    fn = "max_pool2d_with_indices_backward"
    want_tensor(fn, "grad_output", grad_output)
    want_tensor(fn, "input", input)
    want_tensor(fn, "indices", indices)
    if input.ndim not in (3, 4):
        raise ShapeError(f"{fn}: input must be 3-D (C, H, W) or 4-D (N, C, H, W), got "
                         f"{fmt_shape(input.shape)}")
    if tuple(indices.shape) != tuple(grad_output.shape) or grad_output.ndim != input.ndim or \
            tuple(grad_output.shape[:-2]) != tuple(input.shape[:-2]):
        raise ShapeError(f"{fn}: grad_output and indices must have the pooled shape of input "
                         f"(same leading dims), got {fmt_shape(grad_output.shape)}, "
                         f"{fmt_shape(indices.shape)} for input {fmt_shape(input.shape)}")
    lead = tuple(input.shape[:-2])
    plane = input.shape[-2] * input.shape[-1]
    from kiln.core.creation import zeros

    out = zeros(*lead, plane, dtype=grad_output.dtype)
    n_out = grad_output.shape[-2] * grad_output.shape[-1]
    if n_out == 0 or plane == 0:
        return reshape(out, *input.shape)
    idx = reshape(indices.to(dt.int64), *lead, n_out)
    out = ops.scatter_add(out, idx, reshape(grad_output, *lead, n_out), dim=input.ndim - 2)
    return reshape(out, *input.shape)
