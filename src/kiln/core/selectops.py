"""torch's selection, indexing, diagonal and statistics composites: ``logspace``, ``take``,
``take_along_dim``, ``put``, ``index_add``/``index_copy``/``index_fill``/``index_reduce``,
``scatter_reduce``, ``isin``, the ``diag`` family and ``*_scatter``, ``block_diag``,
``combinations``, ``cov``/``corrcoef``, ``cross``, ``searchsorted``/``bucketize``, the
histograms, ``constant_pad_nd`` and ``sum_to_size``.

Plain Python over primitives, so autograd, tracing and every backend need nothing new.
"""

from __future__ import annotations

import math
from typing import Any

from kiln.core import creation
from kiln.core import dtypes as dt
from kiln.core import functional as F
from kiln.core import prims as ops
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ValueArgumentError


def _t(fn: str, x: Any, arg: str = "input") -> Tensor:
    if not isinstance(x, Tensor):
        raise ArgumentError(f"{fn}: {arg} must be a kiln.Tensor, got {type(x).__name__}")
    return x


def _scalar(fn: str, arg: str, v: Any) -> float:
    if isinstance(v, Tensor):
        if v.numel() != 1:
            raise ArgumentError(f"{fn}: {arg} must be a number or a one-element tensor, got "
                                f"shape {tuple(v.shape)}")
        return v.item()
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ArgumentError(f"{fn}: {arg} must be a number, got {type(v).__name__}")
    return v


def logspace(start: Any, end: Any, steps: int, base: float = 10.0, *, dtype: Any = None,
             device: Any = None, requires_grad: bool = False) -> Tensor:
    """``steps`` values ``base ** linspace(start, end, steps)``; for an integer dtype the
    bounds are truncated first and each value after, as torch.

    >>> import kiln
    >>> kiln.logspace(0, 3, 4).tolist()
    [1.0, 10.0, 100.0, 1000.0]
    """
    start, end = _scalar("logspace", "start", start), _scalar("logspace", "end", end)
    base = _scalar("logspace", "base", base)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueArgumentError(f"logspace: steps must be an int >= 0, got {steps!r}")
    d = dt.get_dtype(dtype) if dtype is not None else dt.DEFAULT_FLOAT
    if not d.is_floating:
        start, end = int(start), int(end)
    exps = creation.linspace(float(start), float(end), steps, dtype=dt.float64)
    out = ops.pow(creation.full((), float(base), dtype=dt.float64), exps).to(d)
    return out.requires_grad_(True) if requires_grad else out


FUNCTIONS = ("logspace",)
METHODS: tuple = ()


def install(cls: type) -> None:
    """Attach the Tensor methods of this module to ``cls``."""
    glob = globals()
    for name in METHODS:
        setattr(cls, name, glob[name])
