"""``kiln.nn.functional.interpolate`` (and ``upsample``): resizing the spatial dims of
(N, C, *spatial) input, with PyTorch's source-index formulas.

Every mode is separable, so each spatial dim is resized on its own with source indices and
weights computed once in NumPy (they depend only on sizes) and applied with Kiln ops:

- ``nearest`` / ``nearest-exact``: one gather per dim (an integer upscale is a broadcast and
  a reshape, no gather);
- ``linear`` / ``bilinear`` / ``trilinear``: two gathers and a weighted sum per dim, with
  ``align_corners`` as in PyTorch;
- ``bicubic``: four gathers and a weighted sum per dim (PyTorch's cubic convolution with
  A = -0.75, taps clamped to the border), W before H as PyTorch's kernel sums;
- ``area``: adaptive average pooling (1-D and 2-D).

Sizes must be static (they fix the indices). Source indices are computed in float32 (float64 for
float64 linear modes) like PyTorch's CPU kernels, so the picked pixels agree exactly.

>>> import kiln, kiln.nn.functional as F
>>> F.interpolate(kiln.tensor([[[1.0, 2.0]]]), scale_factor=2).tolist()
[[[1.0, 1.0, 2.0, 2.0]]]
>>> F.interpolate(kiln.tensor([[[1.0, 2.0]]]), size=3, mode="linear", align_corners=True).tolist()
[[[1.0, 1.5, 2.0]]]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kiln.core.prims.shapes import fmt_shape
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError, ValueArgumentError

_LINEAR = {"linear": 1, "bilinear": 2, "trilinear": 3, "bicubic": 2}
_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "trilinear", "bicubic", "area")
_CUBIC_A = -0.75  # PyTorch's (and OpenCV's) cubic convolution constant


def _sizes(x: Tensor, n: int, size: Any, scale_factor: Any, recompute: bool | None,
           fn: str) -> tuple[list[int], list[float | None]]:
    """Output sizes and the scales PyTorch's kernels use (None: derive from the sizes)."""
    spatial = list(x.shape[2:])
    if not all(isinstance(v, int) for v in spatial):
        raise ShapeError(f"{fn}: the spatial sizes must be static, got {fmt_shape(x.shape)}")
    if (size is None) == (scale_factor is None):
        raise ArgumentError(f"{fn}: pass exactly one of size and scale_factor")
    if size is not None:
        sizes = list(size) if isinstance(size, (list, tuple)) else [size] * n
        if len(sizes) != n or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                                  for v in sizes):
            raise ArgumentError(f"{fn}: size must be a positive int or {n} of them for input "
                                f"of shape {fmt_shape(x.shape)}, got {size!r}")
        return sizes, [None] * n
    scales = list(scale_factor) if isinstance(scale_factor, (list, tuple)) \
        else [scale_factor] * n
    if len(scales) != n or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0
                               for v in scales):
        raise ArgumentError(f"{fn}: scale_factor must be a positive number or {n} of them, got "
                            f"{scale_factor!r}")
    sizes = [int(math.floor(float(i) * float(s))) for i, s in zip(spatial, scales)]
    if any(v < 1 for v in sizes):
        raise ValueArgumentError(f"{fn}: scale_factor {scale_factor!r} makes an empty output "
                                 f"from {fmt_shape(x.shape)}")
    return sizes, [None if recompute else float(s) for s in scales]


def _scale(in_size: int, out_size: int, scale: float | None, align_corners: bool) -> float:
    """PyTorch's ``area_pixel_compute_scale``."""
    if align_corners:
        return (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    return 1.0 / scale if scale is not None and scale > 0 else in_size / out_size


def _take(x: Tensor, dim: int, idx: np.ndarray) -> Tensor:
    """``x`` indexed by ``idx`` along ``dim`` (a broadcast for a plain integer upscale)."""
    n = x.shape[dim]
    k = len(idx) // n if n else 0
    if k >= 1 and len(idx) == n * k and np.array_equal(idx, np.repeat(np.arange(n), k)):
        shape = list(x.shape)
        y = x.unsqueeze(dim + 1).expand(*shape[:dim + 1], k, *shape[dim + 1:])
        return y.reshape(*shape[:dim], n * k, *shape[dim + 1:])
    if np.array_equal(idx, np.arange(n)):
        return x
    from kiln.core.creation import from_numpy

    return x[(slice(None),) * dim + (from_numpy(idx.astype(np.int64)),)]


def _nearest(x: Tensor, dim: int, out: int, scale: float | None, exact: bool) -> Tensor:
    n = x.shape[dim]
    s = np.float32(_scale(n, out, scale, False))
    i = np.arange(out, dtype=np.float32)
    src = np.floor((i + np.float32(0.5)) * s) if exact else np.floor(i * s)
    if not exact and out == n:
        src = i
    return _take(x, dim, np.minimum(src.astype(np.int64), n - 1))


def _linear(x: Tensor, dim: int, out: int, scale: float | None, align: bool) -> Tensor:
    n = x.shape[dim]
    # PyTorch computes source coordinates in the input's precision (float for float32).
    ct = x.dtype.np_dtype.type
    s = ct(_scale(n, out, scale, align))
    i = np.arange(out, dtype=ct)
    src = i * s if align else np.maximum((i + ct(0.5)) * s - ct(0.5), 0)
    i0 = np.minimum(src.astype(np.int64), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    l1 = np.clip(src - i0, 0, 1).astype(ct)
    shape = [1] * x.ndim
    shape[dim] = out
    from kiln.core.creation import from_numpy

    w1 = from_numpy(l1.astype(x.dtype.np_dtype).reshape(shape))
    w0 = from_numpy((1 - l1).astype(x.dtype.np_dtype).reshape(shape))
    return _take(x, dim, i0) * w0 + _take(x, dim, i1) * w1


def interpolate(input: Tensor, size: Any = None, scale_factor: Any = None,
                mode: str = "nearest", align_corners: bool | None = None,
                recompute_scale_factor: bool | None = None, antialias: bool = False) -> Tensor:
    """Resize (N, C, *spatial) input as ``torch.nn.functional.interpolate``: modes
    ``nearest``, ``nearest-exact``, ``linear`` (3-D input), ``bilinear`` and ``bicubic``
    (4-D), ``trilinear`` (5-D) and ``area``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.interpolate(kiln.ones(1, 3, 4, 4), scale_factor=2, mode="bilinear").shape
    (1, 3, 8, 8)
    """
    fn = "interpolate"
    if not isinstance(input, Tensor):
        raise ArgumentError(f"{fn}: input must be a kiln.Tensor, got {type(input).__name__}")
    if mode not in _MODES:
        raise ValueArgumentError(f"{fn}: mode must be one of {_MODES}, got {mode!r}")
    if antialias:
        raise ArgumentError(f"{fn}: antialias=True is not supported (Kiln has no antialiased "
                            "kernels); use antialias=False, or mode='area' to downsample")
    n = input.ndim - 2
    if n not in (1, 2, 3):
        raise ShapeError(f"{fn}: expected 3-D, 4-D or 5-D input (N, C, *spatial), got shape "
                         f"{fmt_shape(input.shape)}")
    if mode in _LINEAR and _LINEAR[mode] != n:
        raise ShapeError(f"{fn}: mode {mode!r} needs {_LINEAR[mode] + 2}-D input, got shape "
                         f"{fmt_shape(input.shape)}")
    if align_corners is not None and mode not in _LINEAR:
        raise ValueArgumentError(f"{fn}: align_corners only applies to linear modes, not "
                                 f"{mode!r}")
    sizes, scales = _sizes(input, n, size, scale_factor, recompute_scale_factor, fn)
    x = input
    if mode == "area":
        from kiln.nn import functional as F

        if n == 3:
            raise ArgumentError(f"{fn}: mode='area' supports 3-D and 4-D input")
        pool = F.adaptive_avg_pool1d if n == 1 else F.adaptive_avg_pool2d
        return pool(x, sizes[0] if n == 1 else tuple(sizes))
    if not x.dtype.is_floating and mode in _LINEAR:
        raise ArgumentError(f"{fn}: mode {mode!r} needs a floating input, got {x.dtype}")
    if mode == "bicubic":
        for i in reversed(range(n)):
            x = _cubic(x, 2 + i, sizes[i], scales[i], bool(align_corners))
        return x
    for i in range(n):
        dim = 2 + i
        if mode in _LINEAR:
            x = _linear(x, dim, sizes[i], scales[i], bool(align_corners))
        else:
            x = _nearest(x, dim, sizes[i], scales[i], mode == "nearest-exact")
    return x


def _cubic_weights(t: np.ndarray) -> list[np.ndarray]:
    """PyTorch's ``get_cubic_upsample_coefficients`` for the fractional offsets ``t``."""
    a = t.dtype.type(_CUBIC_A)

    def near(v: np.ndarray) -> np.ndarray:  # |v| <= 1
        return ((a + 2) * v - (a + 3)) * v * v + 1

    def far(v: np.ndarray) -> np.ndarray:  # 1 < |v| < 2
        return ((a * v - 5 * a) * v + 8 * a) * v - 4 * a

    one = t.dtype.type(1)
    return [far(t + one), near(t), near(one - t), far(one - t + one)]


def _cubic(x: Tensor, dim: int, out: int, scale: float | None, align: bool) -> Tensor:
    n = x.shape[dim]
    ct = x.dtype.np_dtype.type
    s = ct(_scale(n, out, scale, align))
    i = np.arange(out, dtype=ct)
    src = i * s if align else (i + ct(0.5)) * s - ct(0.5)  # (no clamp at 0 for cubic)
    base = np.floor(src)
    weights = _cubic_weights((src - base).astype(ct))
    shape = [1] * x.ndim
    shape[dim] = out
    from kiln.core.creation import from_numpy

    total = None
    for k, w in enumerate(weights):
        idx = np.clip(base.astype(np.int64) - 1 + k, 0, n - 1)
        term = _take(x, dim, idx) * from_numpy(w.astype(x.dtype.np_dtype).reshape(shape))
        total = term if total is None else total + term
    return total


def upsample(input: Tensor, size: Any = None, scale_factor: Any = None,
             mode: str = "nearest", align_corners: bool | None = None) -> Tensor:
    """The deprecated alias of :func:`interpolate` (kept, as in torch).

    >>> import kiln, kiln.nn.functional as F
    >>> F.upsample(kiln.ones(1, 1, 2), size=4).shape
    (1, 1, 4)
    """
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input: Tensor, size: Any = None, scale_factor: Any = None) -> Tensor:
    """The deprecated ``interpolate(..., mode="nearest")`` (kept, as in torch).

    >>> import kiln, kiln.nn.functional as F
    >>> F.upsample_nearest(kiln.tensor([[[1.0, 2.0]]]), scale_factor=2).tolist()
    [[[1.0, 1.0, 2.0, 2.0]]]
    """
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input: Tensor, size: Any = None, scale_factor: Any = None) -> Tensor:
    """The deprecated ``interpolate(..., mode="bilinear", align_corners=True)`` (kept, as in
    torch; note the corners are aligned, unlike ``interpolate``'s default).

    >>> import kiln, kiln.nn.functional as F
    >>> F.upsample_bilinear(kiln.tensor([[[[0.0, 1.0]]]]), size=(1, 3)).tolist()
    [[[[0.0, 0.5, 1.0]]]]
    """
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)
