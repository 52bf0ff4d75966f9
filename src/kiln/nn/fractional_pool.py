"""``F.fractional_max_pool2d`` / ``F.fractional_max_pool3d`` (Graham's fractional max
pooling) as composites: torch's pseudo-random window starts are computed from
``_random_samples`` (drawn with ``kiln.rand`` when not given) by Kiln ops, and each window's
taps are gathered at those data-dependent starts, so the maximum has the gather's gradient.

>>> import kiln, kiln.nn.functional as F
>>> x = kiln.arange(16.0).reshape(1, 1, 4, 4)
>>> F.fractional_max_pool2d(x, 2, output_size=2, _random_samples=kiln.zeros(1, 1, 2)).tolist()
[[[[5.0, 7.0], [13.0, 15.0]]]]
"""

from __future__ import annotations

import itertools
from typing import Any

from kiln import ops
from kiln.core import dtypes as dt
from kiln.core.functional import cat, reshape, stack
from kiln.core.prims.shapes import fmt_shape
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError
from kiln.nn.checks import want_tensor
from kiln.nn.pool_nd import ntuple

__all__ = ["fractional_max_pool2d", "fractional_max_pool3d"]


def _starts(sample: Tensor, size: int, out: int, pool: int) -> Tensor:
    """torch's generate_intervals: (N, C) samples in [0, 1) -> (N, C, out) window starts."""
    from kiln.core.creation import arange, full

    n, c = sample.shape
    last = full((n, c, 1), size - pool, dtype=dt.int64)
    if out <= 1:
        return last[:, :, :out] if out == 0 else last
    alpha = (size - pool) / (out - 1)
    i = reshape(arange(out - 1, dtype=sample.dtype), 1, 1, out - 1)
    s = reshape(sample, n, c, 1)
    seq = ops.floor((i + s) * alpha) - ops.floor(s * alpha)
    return cat([seq.to(dt.int64), last], 2)


def _fractional(fn: str, n: int, input: Tensor, kernel_size: Any, output_size: Any,
                output_ratio: Any, return_indices: bool, samples: Tensor | None) -> Any:
    want_tensor(fn, "input", input)
    if input.ndim not in (n + 1, n + 2):
        raise ShapeError(f"{fn}: expected {n + 1}-D or {n + 2}-D input, got "
                         f"{fmt_shape(input.shape)}")
    unbatched = input.ndim == n + 1
    x = input.unsqueeze(0) if unbatched else input
    b, c = x.shape[0], x.shape[1]
    sizes = tuple(x.shape[2:])
    k = ntuple(kernel_size, n, "kernel_size", fn)
    if output_size is not None:
        outs = ntuple(output_size, n, "output_size", fn)
    elif output_ratio is not None:
        ratio = output_ratio if isinstance(output_ratio, (tuple, list)) else (output_ratio,) * n
        if len(ratio) == 1:
            ratio = tuple(ratio) * n
        outs = tuple(int(sizes[i] * float(ratio[i])) for i in range(n))
    else:
        raise ArgumentError(f"{fn}: give output_size or output_ratio")
    for i in range(n):
        if outs[i] + k[i] - 1 > sizes[i]:
            raise ShapeError(f"{fn}: output size {outs} with kernel {k} does not fit input "
                             f"{sizes}")
    if samples is None:
        from kiln.core.creation import rand

        samples = rand(b, c, n, dtype=x.dtype)
    samples = samples.to(x.dtype)
    if tuple(samples.shape) != (b, c, n):
        raise ShapeError(f"{fn}: _random_samples must have shape {(b, c, n)}, got "
                         f"{fmt_shape(samples.shape)}")
    # torch's sample order: (W, H) in 2-D, (T, H, W) in 3-D
    which = (1, 0) if n == 2 else (0, 1, 2)
    starts = [_starts(samples[:, :, which[i]], sizes[i], outs[i], k[i]) for i in range(n)]
    values, flats = [], []
    for taps in itertools.product(*[range(v) for v in k]):
        cur, flat = x, None
        for i, tap in enumerate(taps):
            pos = starts[i] + tap  # (N, C, out_i)
            view = [b, c] + [1] * n
            view[2 + i] = outs[i]
            shape = list(cur.shape)
            shape[2 + i] = outs[i]
            cur = ops.gather(cur, reshape(pos, *view).expand(*shape), dim=2 + i)
            p = reshape(pos, *view)
            flat = p if flat is None else flat * sizes[i] + p
        values.append(cur)
        flats.append(flat.expand(b, c, *outs))
    stacked = stack(values, 2)
    out = ops.max(stacked, dims=(2,), keepdim=False)
    if not return_indices:
        return out[0] if unbatched else out
    at = ops.argmax(stacked, dim=2, keepdim=True)
    idx = ops.gather(stack(flats, 2), at, dim=2)
    idx = reshape(idx, b, c, *outs)
    return (out[0], idx[0]) if unbatched else (out, idx)


def fractional_max_pool2d(input: Tensor, kernel_size: Any, output_size: Any = None,
                          output_ratio: Any = None, return_indices: bool = False,
                          _random_samples: Tensor | None = None) -> Any:
    """Fractional max pooling over (N, C, H, W) or (C, H, W): ``output_size`` (or
    ``output_ratio`` of the input) windows of ``kernel_size`` at pseudo-random starts.

    >>> import kiln, kiln.nn.functional as F
    >>> F.fractional_max_pool2d(kiln.ones(1, 2, 5, 5), 2, output_ratio=0.5).shape
    (1, 2, 2, 2)
    """
    return _fractional("fractional_max_pool2d", 2, input, kernel_size, output_size,
                       output_ratio, return_indices, _random_samples)


def fractional_max_pool3d(input: Tensor, kernel_size: Any, output_size: Any = None,
                          output_ratio: Any = None, return_indices: bool = False,
                          _random_samples: Tensor | None = None) -> Any:
    """Fractional max pooling over (N, C, T, H, W) or (C, T, H, W).

    >>> import kiln, kiln.nn.functional as F
    >>> F.fractional_max_pool3d(kiln.ones(1, 1, 4, 4, 4), 2, output_size=2).shape
    (1, 1, 2, 2, 2)
    """
    return _fractional("fractional_max_pool3d", 3, input, kernel_size, output_size,
                       output_ratio, return_indices, _random_samples)


