"""1-D and 3-D pooling of ``kiln.nn.functional``, as compositions of the 2-D primitives.

- 1-D pooling over (N, C, L) is 2-D pooling over (N, C, 1, L) with a unit kernel height.
- 3-D pooling is separable: the maximum (or sum) over a (kd, kh, kw) window is the maximum
  (sum) over kd planes of the (kh, kw) window of each plane. So ``max_pool3d`` pools H and W
  with ``max_pool2d`` on (N, C*D, H, W), then D with ``max_pool2d`` on (N, C, D, OH*OW) and a
  (kd, 1) kernel; gradients go to the first maximum in (d, h, w) order, as in PyTorch.
  Average pooling divides by a product of per-dim window sizes (PyTorch's divisor is one,
  with or without ``count_include_pad``), so the two stages' means compose to the 3-D mean.

>>> import kiln, kiln.nn.functional as F
>>> F.max_pool1d(kiln.tensor([[[1.0, 3.0, 2.0, 5.0]]]), 2).tolist()
[[[3.0, 5.0]]]
>>> F.avg_pool3d(kiln.ones(1, 1, 4, 4, 4), 2).shape
(1, 1, 2, 2, 2)
"""

from __future__ import annotations

from typing import Any

from kiln.core.prims.shapes import fmt_shape
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError
from kiln.nn import integral
from kiln.nn.conv import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d


def ntuple(value: Any, n: int, name: str, fn: str) -> tuple[int, ...]:
    """An int, or a list/tuple of ``n`` ints (or of one int, repeated), as an ``n``-tuple."""
    if isinstance(value, (list, tuple)) and len(value) == 1 and n > 1:
        value = value[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return (int(value),) * n
    if isinstance(value, (list, tuple)) and len(value) == n and \
            all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(int(v) for v in value)
    raise ArgumentError(f"{fn}: {name} must be an int or a tuple of {n} ints, got {value!r}")


def _stride(stride: Any, kernel: tuple, n: int, fn: str) -> tuple[int, ...]:
    if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0):
        return kernel
    return ntuple(stride, n, "stride", fn)


def _rank(x: Tensor, n: int, fn: str) -> None:
    if not isinstance(x, Tensor):
        raise ArgumentError(f"{fn}: input must be a kiln.Tensor, got {type(x).__name__}")
    if x.ndim not in (n + 1, n + 2):
        raise ShapeError(f"{fn}: expected {n + 1}-D (unbatched) or {n + 2}-D (batched) input, "
                         f"got shape {fmt_shape(x.shape)}")


# --------------------------------------------------------------------------------------
# 1-D


def max_pool1d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False
               ) -> Tensor:
    """Max pooling over (N, C, L) or (C, L), as ``torch.nn.functional.max_pool1d``; with
    ``return_indices=True`` also the position of each maximum along L (a pair, as in torch).

    >>> import kiln, kiln.nn.functional as F
    >>> F.max_pool1d(kiln.arange(6.0).reshape(1, 1, 6), 3, stride=2, padding=1).tolist()
    [[[1.0, 3.0, 5.0]]]
    >>> F.max_pool1d(kiln.tensor([[[1.0, 3.0, 2.0, 0.0]]]), 2, return_indices=True)[1].tolist()
    [[[1, 2]]]
    """
    fn = "max_pool1d"
    _rank(input, 1, fn)
    k = ntuple(kernel_size, 1, "kernel_size", fn)
    # (N, C, 1, L): a 2-D window of height 1, so 2-D's flat index h * L + w is the 1-D one
    out = max_pool2d(input.unsqueeze(-2), (1, k[0]), (1, _stride(stride, k, 1, fn)[0]),
                     (0, ntuple(padding, 1, "padding", fn)[0]),
                     (1, ntuple(dilation, 1, "dilation", fn)[0]), ceil_mode,
                     bool(return_indices))
    if return_indices:
        values, indices = out
        return values.squeeze(-2), indices.squeeze(-2)
    return out.squeeze(-2)


def avg_pool1d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    """Average pooling over (N, C, L) or (C, L), as ``torch.nn.functional.avg_pool1d``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.avg_pool1d(kiln.arange(4.0).reshape(1, 1, 4), 2).tolist()
    [[[0.5, 2.5]]]
    """
    fn = "avg_pool1d"
    _rank(input, 1, fn)
    k = ntuple(kernel_size, 1, "kernel_size", fn)
    out = avg_pool2d(input.unsqueeze(-2), (1, k[0]), (1, _stride(stride, k, 1, fn)[0]),
                     (0, ntuple(padding, 1, "padding", fn)[0]), ceil_mode, count_include_pad)
    return out.squeeze(-2)


def _adaptive_size1d(output_size: Any, fn: str) -> int:
    size = output_size[0] if isinstance(output_size, (list, tuple)) and \
        len(output_size) == 1 else output_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ArgumentError(f"{fn}: output_size must be a positive int, got {output_size!r}")
    return size


def adaptive_avg_pool1d(input: Tensor, output_size: Any) -> Tensor:
    """Average over PyTorch's adaptive bins of the last dim.

    >>> import kiln, kiln.nn.functional as F
    >>> F.adaptive_avg_pool1d(kiln.arange(6.0).reshape(1, 1, 6), 2).tolist()
    [[[1.0, 4.0]]]
    """
    fn = "adaptive_avg_pool1d"
    _rank(input, 1, fn)
    size = _adaptive_size1d(output_size, fn)
    return adaptive_avg_pool2d(input.unsqueeze(-2), (1, size)).squeeze(-2)


def adaptive_max_pool1d(input: Tensor, output_size: Any, return_indices: bool = False
                        ) -> Tensor:
    """Maximum over PyTorch's adaptive bins of the last dim.

    >>> import kiln, kiln.nn.functional as F
    >>> F.adaptive_max_pool1d(kiln.arange(6.0).reshape(1, 1, 6), 2).tolist()
    [[[2.0, 5.0]]]
    """
    fn = "adaptive_max_pool1d"
    _rank(input, 1, fn)
    size = _adaptive_size1d(output_size, fn)
    if return_indices:  # a height-1 plane's flat index is the position along L
        out, idx = adaptive_max_pool2d(input.unsqueeze(-2), (1, size), return_indices=True)
        return out.squeeze(-2), idx.squeeze(-2)
    return adaptive_max_pool2d(input.unsqueeze(-2), (1, size)).squeeze(-2)


# --------------------------------------------------------------------------------------
# 3-D


def _pool3d(input: Tensor, fn: str, plane: Any, depth: Any) -> Tensor:
    """Pool H, W with ``plane(x4d)``, then D with ``depth(x4d)``; unbatched input too."""
    _rank(input, 3, fn)
    x = input if input.ndim == 5 else input.unsqueeze(0)
    n, c, d = x.shape[0], x.shape[1], x.shape[2]
    y = plane(x.reshape(n, c * d, x.shape[3], x.shape[4]))
    oh, ow = y.shape[2], y.shape[3]
    z = depth(y.reshape(n, c, d, oh * ow))
    out = z.reshape(n, c, z.shape[2], oh, ow)
    return out if input.ndim == 5 else out.squeeze(0)


def max_pool3d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False
               ) -> Tensor:
    """Max pooling over (N, C, D, H, W) or (C, D, H, W), as
    ``torch.nn.functional.max_pool3d``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.max_pool3d(kiln.arange(8.0).reshape(1, 1, 2, 2, 2), 2).flatten().tolist()
    [7.0]
    """
    fn = "max_pool3d"
    k = ntuple(kernel_size, 3, "kernel_size", fn)
    s = _stride(stride, k, 3, fn)
    p = ntuple(padding, 3, "padding", fn)
    d = ntuple(dilation, 3, "dilation", fn)
    out = _pool3d(input, fn,
                  lambda t: max_pool2d(t, k[1:], s[1:], p[1:], d[1:], ceil_mode),
                  lambda t: max_pool2d(t, (k[0], 1), (s[0], 1), (p[0], 0), (d[0], 1),
                                       ceil_mode))
    if not return_indices:
        return out
    # The values come from the separable poolings (their gradient is the primitives'); the
    # indices from the 3-D windows read as strided slices (kiln.nn.unpool).
    from kiln.nn.unpool import max_pool_indices

    batched = input.ndim == 5
    x5, o5 = (input, out) if batched else (input.unsqueeze(0), out.unsqueeze(0))
    idx = max_pool_indices(x5, o5, k, s, p, d)
    return (out, idx) if batched else (out, idx.squeeze(0))


def avg_pool3d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:
    """Average pooling over (N, C, D, H, W) or (C, D, H, W), as
    ``torch.nn.functional.avg_pool3d``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.avg_pool3d(kiln.arange(8.0).reshape(1, 1, 2, 2, 2), 2).flatten().tolist()
    [3.5]
    """
    fn = "avg_pool3d"
    integral.refuse_bool(fn, input)
    if integral.applies(input):  # one float64 pass, truncated once (not per stage)
        return integral.in_float64(avg_pool3d, input, kernel_size, stride, padding, ceil_mode,
                                   count_include_pad, divisor_override)
    k = ntuple(kernel_size, 3, "kernel_size", fn)
    s = _stride(stride, k, 3, fn)
    p = ntuple(padding, 3, "padding", fn)
    if divisor_override is not None and (isinstance(divisor_override, bool) or
                                         not isinstance(divisor_override, int) or
                                         divisor_override < 1):
        raise ArgumentError(f"{fn}: divisor_override must be a positive int or None, got "
                            f"{divisor_override!r}")
    # With a divisor override, the first stage sums (divisor 1) and the second divides.
    first = None if divisor_override is None else 1
    return _pool3d(input, fn,
                   lambda t: avg_pool2d(t, k[1:], s[1:], p[1:], ceil_mode, count_include_pad,
                                        first),
                   lambda t: avg_pool2d(t, (k[0], 1), (s[0], 1), (p[0], 0), ceil_mode,
                                        count_include_pad, divisor_override))
