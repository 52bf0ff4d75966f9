"""torch's power-average pooling ``F.lp_pool1d/2d/3d``: (sum over the window of x^p)^(1/p),
computed as torch does, from an average pool of x^p scaled by the window size (p = inf is
a max pool of |x|).

>>> import kiln, kiln.nn.functional as F
>>> F.lp_pool1d(kiln.tensor([[[3.0, 4.0]]]), 2, 2).tolist()
[[[5.0]]]
"""

from __future__ import annotations

import math
from typing import Any

from kiln import ops
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError
from kiln.nn.checks import want_tensor
from kiln.nn.pool_nd import ntuple

__all__ = ["lp_pool1d", "lp_pool2d", "lp_pool3d"]


def _lp_pool(fn: str, n: int, input: Tensor, norm_type: float, kernel_size: Any,
             stride: Any, ceil_mode: bool) -> Tensor:
    from kiln.nn import functional as F

    want_tensor(fn, "input", input)
    if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float)):
        raise ArgumentError(f"{fn}: norm_type must be a number, got {norm_type!r}")
    k = ntuple(kernel_size, n, "kernel_size", fn)
    maxpool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[n - 1]
    avgpool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[n - 1]
    kk = k[0] if n == 1 else k
    if norm_type == math.inf:
        return maxpool(ops.abs(input), kk, stride, 0, 1, ceil_mode)
    if norm_type == -math.inf:
        return -maxpool(-ops.abs(input), kk, stride, 0, 1, ceil_mode)
    out = avgpool(input ** float(norm_type), kk, stride, 0, ceil_mode)
    return (ops.sign(out) * ops.relu(ops.abs(out)) * math.prod(k)) ** (1.0 / norm_type)


def lp_pool1d(input: Tensor, norm_type: float, kernel_size: Any, stride: Any = None,
              ceil_mode: bool = False) -> Tensor:
    """The p-norm of each window of (N, C, L) input.

    >>> import kiln, kiln.nn.functional as F
    >>> F.lp_pool1d(kiln.ones(1, 1, 4), 1, 2).tolist()
    [[[2.0, 2.0]]]
    """
    return _lp_pool("lp_pool1d", 1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input: Tensor, norm_type: float, kernel_size: Any, stride: Any = None,
              ceil_mode: bool = False) -> Tensor:
    """The p-norm of each window of (N, C, H, W) input.

    >>> import kiln, kiln.nn.functional as F
    >>> F.lp_pool2d(kiln.ones(1, 1, 2, 2), 2, 2).tolist()
    [[[[2.0]]]]
    """
    return _lp_pool("lp_pool2d", 2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input: Tensor, norm_type: float, kernel_size: Any, stride: Any = None,
              ceil_mode: bool = False) -> Tensor:
    """The p-norm of each window of (N, C, D, H, W) input.

    >>> import kiln, kiln.nn.functional as F
    >>> F.lp_pool3d(kiln.ones(1, 1, 2, 2, 2), 1, 2).flatten().tolist()
    [8.0]
    """
    return _lp_pool("lp_pool3d", 3, input, norm_type, kernel_size, stride, ceil_mode)
