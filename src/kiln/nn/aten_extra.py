"""The last of torch's nn surface as composites: ``F.hardsigmoid``, ``F.rrelu``, and the aten
ops ``kiln.constant_pad_nd``, ``kiln.native_dropout_backward`` and
``kiln._softmax_backward_data``.

>>> import kiln, kiln.nn.functional as F
>>> F.hardsigmoid(kiln.tensor([-3.0, 0.0, 3.0])).tolist()
[0.0, 0.5, 1.0]
"""

from __future__ import annotations

from typing import Any

from kiln import ops
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError
from kiln.nn.checks import want_tensor

__all__ = ["hardsigmoid", "rrelu"]
ATEN = ("constant_pad_nd", "native_dropout_backward", "_softmax_backward_data")


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """relu6(x + 3) / 6 (``inplace=True`` computes out of place).

    >>> import kiln, kiln.nn.functional as F
    >>> F.hardsigmoid(kiln.tensor([1.5])).tolist()
    [0.75]
    """
    want_tensor("hardsigmoid", "input", input)
    return ops.minimum(ops.maximum(input + 3.0, 0.0), 6.0) / 6.0


def rrelu(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3,
          training: bool = False, inplace: bool = False) -> Tensor:
    """Leaky ReLU with a random negative slope drawn from U(lower, upper) per element in
    training, the mean slope (lower + upper) / 2 in eval.

    >>> import kiln, kiln.nn.functional as F
    >>> F.rrelu(kiln.tensor([-2.0, 1.0]), 0.25, 0.75).tolist()
    [-1.0, 1.0]
    """
    want_tensor("rrelu", "input", input)
    if not lower <= upper:
        raise ArgumentError(f"rrelu: lower must not exceed upper, got {lower} and {upper}")
    if training:
        from kiln.core.creation import rand

        slope = rand(*input.shape, dtype=input.dtype) * (upper - lower) + lower
    else:
        slope = (lower + upper) / 2.0
    return ops.where(input >= 0, input, input * slope)


def constant_pad_nd(input: Tensor, pad: Any, value: float = 0.0) -> Tensor:
    """aten's constant padding: ``F.pad(input, pad, value=value)`` (negative pads crop).

    >>> import kiln
    >>> kiln.constant_pad_nd(kiln.ones(1, 2), [1, 0], 5.0).tolist()
    [[5.0, 1.0, 1.0]]
    """
    from kiln.nn.conv import pad as f_pad

    return f_pad(input, tuple(pad), mode="constant", value=value)


def native_dropout_backward(grad_output: Tensor, mask: Tensor, scale: float) -> Tensor:
    """aten's dropout gradient: ``grad_output * mask * scale``.

    >>> import kiln
    >>> kiln.native_dropout_backward(kiln.ones(2), kiln.tensor([True, False]), 2.0).tolist()
    [2.0, 0.0]
    """
    want_tensor("native_dropout_backward", "grad_output", grad_output)
    return grad_output * mask.to(grad_output.dtype) * scale


def _softmax_backward_data(grad_output: Tensor, output: Tensor, dim: int,
                           input_dtype: Any = None) -> Tensor:
    """aten's softmax gradient from the softmax ``output``: ``y * (g - sum(g * y, dim))``.

    >>> import kiln
    >>> kiln._softmax_backward_data(kiln.ones(2), kiln.tensor([0.5, 0.5]), 0).tolist()
    [0.0, 0.0]
    """
    want_tensor("_softmax_backward_data", "grad_output", grad_output)
    if output.ndim == 0:
        return grad_output * 0.0
    from kiln.core.prims.shapes import norm_dim

    d = norm_dim("_softmax_backward_data", dim, output.ndim)
    inner = ops.sum(grad_output * output, dims=(d,), keepdim=True)
    return output * (grad_output - inner)
