"""2-D max and average pooling (NCHW) and their backward kernels, with PyTorch's semantics.

Output size per spatial dim: ``(size + 2p - d*(k - 1) - 1) / s + 1``, rounded down, or up with
``ceil_mode`` (a last window must then start inside the input or its left padding, as in
PyTorch). Max pooling pads with -inf and, on ties, routes the gradient to the first maximum
of the window in row-major order (NaN counts as the maximum, as in PyTorch). Average pooling
follows ``torch.nn.functional.avg_pool2d``, including ``count_include_pad`` and
``divisor_override``.

``max_pool2d_backward(g, x)`` recomputes the arg-max from ``x`` (no index tensor travels
between forward and backward). It has no vjp of its own: second derivatives through max
pooling are not supported. Average pooling is linear, so its backward is its adjoint and the
two are each other's vjp.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from kiln.core.prims.conv import pair_attr
from kiln.core.prims.registry import OpDef, TensorMeta, register
from kiln.core.prims.shapes import fmt_shape, require_tensor
from kiln.errors import ArgumentError, DTypeError, ShapeError, ValueArgumentError
from kiln.symbolic.sizes import SymInt

MAX_ATTRS = ("kernel", "stride", "padding", "dilation", "ceil_mode")
AVG_ATTRS = ("kernel", "stride", "padding", "ceil_mode", "count_include_pad",
             "divisor_override")


def pool_out_size(size: Any, k: int, s: int, p: int, d: int, ceil_mode: bool) -> Any:
    span = size + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    if isinstance(span, SymInt):
        raise ShapeError("pooling with ceil_mode=True needs static spatial sizes")
    out = -(-span // s) + 1
    if (out - 1) * s >= size + p:
        out -= 1  # the last window would start in the right padding
    return out


def _check_common(op: str, x: TensorMeta, kernel: Any, stride: Any, padding: Any,
                  dilation: Any, ceil_mode: Any) -> tuple:
    if x.ndim != 4:
        raise ShapeError(f"{op}: input must be 4-D (N, C, H, W), got shape "
                         f"{fmt_shape(x.shape)}")
    k = pair_attr(op, "kernel", kernel, 1)
    s = pair_attr(op, "stride", stride, 1)
    p = pair_attr(op, "padding", padding, 0)
    d = pair_attr(op, "dilation", dilation, 1)
    if not isinstance(ceil_mode, bool):
        raise ArgumentError(f"{op}: ceil_mode must be a bool, got {ceil_mode!r}")
    for i in range(2):
        if 2 * p[i] > k[i]:
            raise ValueArgumentError(f"{op}: padding {p} must be at most half the kernel {k}")
    out = []
    for i in range(2):
        n = pool_out_size(x.shape[2 + i], k[i], s[i], p[i], d[i], ceil_mode)
        if isinstance(n, int) and n < 1:
            raise ShapeError(f"{op}: input spatial size {fmt_shape(x.shape[2:])} is too "
                             f"small for kernel {k} (padding {p}, dilation {d})")
        out.append(n)
    return tuple(out)


def _padded_windows(x: np.ndarray, out_hw: tuple, kernel: tuple, stride: tuple,
                    padding: tuple, dilation: tuple, fill: Any) -> np.ndarray:
    """(N, C, OH, OW, KH, KW) windows over ``x`` padded with ``fill`` (enough for ceil_mode)."""
    extra = []
    for i in range(2):
        need = (out_hw[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1
        extra.append(max(0, need - (x.shape[2 + i] + 2 * padding[i])))
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0], padding[0] + extra[0]),
                    (padding[1], padding[1] + extra[1])), constant_values=fill)
    s = xp.strides
    shape = x.shape[:2] + tuple(out_hw) + tuple(kernel)
    strides = (s[0], s[1], s[2] * stride[0], s[3] * stride[1], s[2] * dilation[0],
               s[3] * dilation[1])
    return as_strided(xp, shape, strides, writeable=False)


def _lowest(dtype: np.dtype) -> Any:
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


# --------------------------------------------------------------------------------------
# max pooling


def _max_meta(x: Any, *, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple,
              ceil_mode: bool) -> TensorMeta:
    x = require_tensor("max_pool2d", x, "input")
    if x.dtype.is_bool:
        raise DTypeError("max_pool2d: bool input is not supported")
    oh, ow = _check_common("max_pool2d", x, kernel, stride, padding, dilation, ceil_mode)
    return TensorMeta(x.shape[:2] + (oh, ow), x.dtype)


def _max_eager(x: np.ndarray, *, kernel: tuple, stride: tuple, padding: tuple,
               dilation: tuple, ceil_mode: bool) -> np.ndarray:
    out_hw = tuple(pool_out_size(x.shape[2 + i], kernel[i], stride[i], padding[i],
                                 dilation[i], ceil_mode) for i in range(2))
    if 0 in x.shape[:2]:
        return np.zeros(x.shape[:2] + out_hw, x.dtype)
    win = _padded_windows(x, out_hw, kernel, stride, padding, dilation, _lowest(x.dtype))
    return win.max(axis=(4, 5))


def _max_vjp(c: Any, g: Any) -> tuple:
    from kiln.core import prims as ops

    (x,) = c.args
    return (ops.max_pool2d_backward(g, x, **{k: c.attrs[k] for k in MAX_ATTRS}),)


def _max_bwd_meta(g: Any, x: Any, *, kernel: tuple, stride: tuple, padding: tuple,
                  dilation: tuple, ceil_mode: bool) -> TensorMeta:
    op = "max_pool2d_backward"
    g = require_tensor(op, g, "grad_output")
    x = require_tensor(op, x, "input")
    if not (g.dtype.is_floating and g.dtype == x.dtype):
        raise DTypeError(f"{op}: grad_output and input must share a floating dtype, got "
                         f"{g.dtype} and {x.dtype}")
    out_hw = _check_common(op, x, kernel, stride, padding, dilation, ceil_mode)
    if tuple(g.shape) != tuple(x.shape[:2]) + out_hw:
        raise ShapeError(f"{op}: grad_output shape {fmt_shape(g.shape)} does not match "
                         f"the pooled input's {fmt_shape(x.shape[:2] + out_hw)}")
    return TensorMeta(x.shape, x.dtype)


def _max_bwd_eager(g: np.ndarray, x: np.ndarray, *, kernel: tuple, stride: tuple,
                   padding: tuple, dilation: tuple, ceil_mode: bool) -> np.ndarray:
    n, c, oh, ow = g.shape
    kh, kw = kernel
    dx = np.zeros(x.shape, dtype=g.dtype)
    if g.size == 0:
        return dx
    win = _padded_windows(x, (oh, ow), kernel, stride, padding, dilation, _lowest(x.dtype))
    flat = win.reshape(n, c, oh, ow, kh * kw)
    # np.argmax picks the first maximum, and the first NaN when there is one: PyTorch's rule.
    best = np.argmax(flat, axis=-1)
    rows = np.arange(oh)[:, None] * stride[0] - padding[0] + (best // kw) * dilation[0]
    cols = np.arange(ow)[None, :] * stride[1] - padding[1] + (best % kw) * dilation[1]
    ni = np.arange(n)[:, None, None, None]
    ci = np.arange(c)[None, :, None, None]
    # A window made only of padding (possible with dilation) has no input element to feed.
    inside = (rows >= 0) & (rows < x.shape[2]) & (cols >= 0) & (cols < x.shape[3])
    np.add.at(dx, (ni, ci, np.clip(rows, 0, x.shape[2] - 1), np.clip(cols, 0, x.shape[3] - 1)),
              np.where(inside, g, 0))
    return dx


register(OpDef(
    "max_pool2d", _max_meta, _max_eager, _max_vjp, "pool",
    "max_pool2d(x, kernel=, stride=, padding=, dilation=, ceil_mode=): window maxima, NCHW.",
    attrs=MAX_ATTRS,
))
register(OpDef(
    "max_pool2d_backward", _max_bwd_meta, _max_bwd_eager, None, "pool",
    "max_pool2d_backward(g, x, ...): routes each gradient to its window's first maximum.",
    differentiable=False, attrs=MAX_ATTRS,
))


# --------------------------------------------------------------------------------------
# average pooling


def _avg_check(op: str, x: TensorMeta, kernel: Any, stride: Any, padding: Any,
               ceil_mode: Any, count_include_pad: Any, divisor_override: Any) -> tuple:
    if not x.dtype.is_floating:
        raise DTypeError(f"{op}: expected a floating tensor, got {x.dtype}")
    if not isinstance(count_include_pad, bool):
        raise ArgumentError(f"{op}: count_include_pad must be a bool, got "
                            f"{count_include_pad!r}")
    if divisor_override is not None and (not isinstance(divisor_override, int)
                                         or isinstance(divisor_override, bool)
                                         or divisor_override < 1):
        raise ValueArgumentError(f"{op}: divisor_override must be a positive int or None, got "
                            f"{divisor_override!r}")
    return _check_common(op, x, kernel, stride, padding, (1, 1), ceil_mode)


def avg_divisors(hw: tuple, out_hw: tuple, kernel: tuple, stride: tuple, padding: tuple,
                 count_include_pad: bool, divisor_override: Any) -> np.ndarray:
    """The (OH, OW) divisor of every window, exactly as PyTorch's CPU kernel computes it."""
    if divisor_override is not None:
        return np.full(out_hw, float(divisor_override))
    per_dim = []
    for i in range(2):
        start = np.arange(out_hw[i]) * stride[i] - padding[i]
        end = np.minimum(start + kernel[i], hw[i] + padding[i])
        size_with_pad = end - start
        clipped = np.minimum(end, hw[i]) - np.maximum(start, 0)
        per_dim.append(size_with_pad if count_include_pad else clipped)
    return np.maximum(np.outer(per_dim[0], per_dim[1]), 1).astype(np.float64)


def _avg_meta(x: Any, *, kernel: tuple, stride: tuple, padding: tuple, ceil_mode: bool,
              count_include_pad: bool, divisor_override: Any) -> TensorMeta:
    x = require_tensor("avg_pool2d", x, "input")
    oh, ow = _avg_check("avg_pool2d", x, kernel, stride, padding, ceil_mode,
                        count_include_pad, divisor_override)
    return TensorMeta(x.shape[:2] + (oh, ow), x.dtype)


def _avg_out_hw(hw: tuple, kernel: tuple, stride: tuple, padding: tuple,
                ceil_mode: bool) -> tuple:
    return tuple(pool_out_size(hw[i], kernel[i], stride[i], padding[i], 1, ceil_mode)
                 for i in range(2))


def _avg_eager(x: np.ndarray, *, kernel: tuple, stride: tuple, padding: tuple,
               ceil_mode: bool, count_include_pad: bool, divisor_override: Any) -> np.ndarray:
    out_hw = _avg_out_hw(x.shape[2:], kernel, stride, padding, ceil_mode)
    if 0 in x.shape[:2]:
        return np.zeros(x.shape[:2] + out_hw, x.dtype)
    win = _padded_windows(x, out_hw, kernel, stride, padding, (1, 1), 0)
    div = avg_divisors(x.shape[2:], out_hw, kernel, stride, padding, count_include_pad,
                       divisor_override)
    return (win.sum(axis=(4, 5)) / div.astype(x.dtype)).astype(x.dtype)


def _avg_attrs(c: Any) -> dict:
    return {k: c.attrs[k] for k in AVG_ATTRS}


def _avg_vjp(c: Any, g: Any) -> tuple:
    from kiln.core import prims as ops

    (x,) = c._args
    return (ops.avg_pool2d_backward(g, input_hw=tuple(x.shape[2:]), **_avg_attrs(c)),)


def _avg_bwd_meta(g: Any, *, input_hw: tuple, kernel: tuple, stride: tuple, padding: tuple,
                  ceil_mode: bool, count_include_pad: bool,
                  divisor_override: Any) -> TensorMeta:
    op = "avg_pool2d_backward"
    g = require_tensor(op, g, "grad_output")
    if not (isinstance(input_hw, tuple) and len(input_hw) == 2):
        raise ArgumentError(f"{op}: input_hw must be a pair, got {input_hw!r}")
    shape = tuple(g.shape[:2]) + tuple(input_hw)
    probe = TensorMeta(shape, g.dtype)
    out_hw = _avg_check(op, probe, kernel, stride, padding, ceil_mode, count_include_pad,
                        divisor_override)
    if g.ndim != 4 or tuple(g.shape[2:]) != out_hw:
        raise ShapeError(f"{op}: grad_output shape {fmt_shape(g.shape)} does not match "
                         f"pooling an input of spatial size {input_hw} (expected {out_hw})")
    return probe


def _avg_bwd_eager(g: np.ndarray, *, input_hw: tuple, kernel: tuple, stride: tuple,
                   padding: tuple, ceil_mode: bool, count_include_pad: bool,
                   divisor_override: Any) -> np.ndarray:
    n, c, oh, ow = g.shape
    h, w = input_hw
    ph, pw = padding
    kh, kw = kernel
    div = avg_divisors(input_hw, (oh, ow), kernel, stride, padding, count_include_pad,
                       divisor_override)
    share = (g / div.astype(g.dtype)).astype(g.dtype)
    rows = (oh - 1) * stride[0] + kh
    cols = (ow - 1) * stride[1] + kw
    dxp = np.zeros((n, c, max(rows, h + 2 * ph), max(cols, w + 2 * pw)), dtype=g.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + stride[0] * (oh - 1) + 1:stride[0],
                j:j + stride[1] * (ow - 1) + 1:stride[1]] += share
    return np.ascontiguousarray(dxp[:, :, ph:ph + h, pw:pw + w])


def _avg_bwd_vjp(c: Any, h: Any) -> tuple:
    from kiln.core import prims as ops

    return (ops.avg_pool2d(h, **_avg_attrs(c)),)


register(OpDef(
    "avg_pool2d", _avg_meta, _avg_eager, _avg_vjp, "pool",
    "avg_pool2d(x, kernel=, stride=, padding=, ceil_mode=, count_include_pad=, "
    "divisor_override=): window means, NCHW.",
    attrs=AVG_ATTRS,
))
register(OpDef(
    "avg_pool2d_backward", _avg_bwd_meta, _avg_bwd_eager, _avg_bwd_vjp, "pool",
    "avg_pool2d_backward(g, input_hw=, ...): the adjoint of avg_pool2d (spreads each "
    "gradient over its window).",
    attrs=("input_hw",) + AVG_ATTRS,
))

