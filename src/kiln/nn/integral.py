"""Integer inputs of convolution and average pooling, which torch accepts on the CPU
(``conv2d`` on int64/int32, ``avg_pool2d`` on int64, ...).

Kiln's conv and pooling primitives are floating-point kernels, so an integer call runs the
same composite on float64 copies and casts the result back to the input's dtype:

- convolution: integer products and sums are exact in float64 while every partial sum stays
  below 2**53 (torch's int64 kernel wraps around on overflow; Kiln's does not reach it);
- average pooling: the float64 mean cast to an integer truncates toward zero, which is the C
  integer division torch's integer kernel does (sum / divisor).

Integer tensors carry no gradient, so nothing is lost for autograd.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kiln.core import dtypes as dt
from kiln.core.tensor import Tensor
from kiln.errors import DTypeError


def refuse_bool(fn: str, *tensors: Any) -> None:
    """torch refuses bool convolution and pooling too; say so rather than name a kernel."""
    for t in tensors:
        if isinstance(t, Tensor) and t.dtype == dt.bool_:
            raise DTypeError(f"{fn}: bool tensors are not supported (torch refuses them too); "
                             "convert with .long() or .float() first")


def applies(input: Any, *others: Any) -> bool:
    """True when ``input`` is an integer tensor and every other tensor argument has its
    dtype (mixed dtypes go on to the floating path, which names the mismatch)."""
    if not isinstance(input, Tensor) or not input.dtype.is_integer:
        return False
    return all(o is None or not isinstance(o, Tensor) or o.dtype == input.dtype
               for o in others)


def in_float64(fn: Callable[..., Tensor], input: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    """``fn`` on float64 copies of the integer tensors among the arguments, cast back to
    ``input``'s dtype."""

    def up(v: Any) -> Any:
        return v.to(dt.float64) if isinstance(v, Tensor) and v.dtype.is_integer else v

    out = fn(up(input), *[up(a) for a in args], **{k: up(v) for k, v in kwargs.items()})
    return out.to(input.dtype)
