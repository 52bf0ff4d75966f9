"""3-D convolution and adaptive pooling of ``kiln.nn.functional`` as composites over the 2-D
primitives: ``conv3d`` sums one ``conv2d`` per depth tap of the kernel (the depth positions
folded into the batch), ``conv_transpose3d`` places one ``conv_transpose2d`` per depth tap at
its strided offset (an interior-padded ``pad``), and ``adaptive_avg_pool3d`` /
``adaptive_max_pool3d`` pool H and W, then D (adaptive bins are separable).

>>> import kiln, kiln.nn.functional as F
>>> F.conv3d(kiln.ones(1, 1, 3, 3, 3), kiln.ones(1, 1, 2, 2, 2)).shape
(1, 1, 2, 2, 2)
"""

from __future__ import annotations

from typing import Any

from kiln import ops
from kiln.core.functional import reshape, stack
from kiln.core.prims.shapes import fmt_shape
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError
from kiln.nn.checks import want_shape, want_tensor
from kiln.nn.conv import _bins, adaptive_avg_pool2d, adaptive_max_pool2d, conv2d, pad
from kiln.nn.conv_transpose import conv_transpose2d, transposed_args, transposed_out_size
from kiln.nn.pool_nd import ntuple

__all__ = ["conv3d", "conv_transpose3d", "adaptive_avg_pool3d", "adaptive_max_pool3d"]


def _five(fn: str, input: Tensor, weight: Tensor) -> tuple[Tensor, bool]:
    x = want_tensor(fn, "input", input)
    w = want_tensor(fn, "weight", weight)
    if x.ndim not in (4, 5) or w.ndim != 5:
        raise ShapeError(f"{fn}: expected 4-D (C, D, H, W) or 5-D (N, C, D, H, W) input and a "
                         f"5-D weight, got input {fmt_shape(x.shape)} and weight "
                         f"{fmt_shape(w.shape)}")
    if weight.dtype != x.dtype:
        raise ArgumentError(f"{fn}: input dtype {x.dtype} and weight dtype {weight.dtype} "
                            "differ")
    return (x.unsqueeze(0), True) if x.ndim == 4 else (x, False)


def conv3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
    """3-D convolution (cross-correlation) as ``torch.nn.functional.conv3d``; weight
    (out_channels, in_channels // groups, kD, kH, kW), ``padding`` an int, a triple,
    ``"valid"`` or ``"same"``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.conv3d(kiln.ones(1, 2, 4, 4, 4), kiln.ones(3, 2, 3, 3, 3), stride=2,
    ...          padding=1).shape
    (1, 3, 2, 2, 2)
    """
    fn = "conv3d"
    x, unbatched = _five(fn, input, weight)
    s = ntuple(stride, 3, "stride", fn)
    d = ntuple(dilation, 3, "dilation", fn)
    k = tuple(weight.shape[2:])
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ArgumentError(f"{fn}: padding must be an int, a triple, 'valid' or 'same', "
                                f"got {padding!r}")
        p = (0, 0, 0)
        if padding == "same":
            if s != (1, 1, 1):
                raise ArgumentError(f"{fn}: padding='same' is not supported for strided "
                                    "convolutions")
            lo_hi = []
            for i in (2, 1, 0):  # F.pad's order: last dim first
                total = d[i] * (k[i] - 1)
                lo_hi += [total // 2, total - total // 2]
            x = pad(x, tuple(lo_hi))
    else:
        p = ntuple(padding, 3, "padding", fn)
    if p[0]:
        x = pad(x, (0, 0, 0, 0, p[0], p[0]))
    n, c, depth, h, w = x.shape
    if isinstance(c, int) and c != weight.shape[1] * groups:
        raise ShapeError(f"{fn}: input has {c} channels, weight {fmt_shape(weight.shape)} "
                         f"with groups={groups} expects {weight.shape[1] * groups}")
    od = (depth - d[0] * (k[0] - 1) - 1) // s[0] + 1
    if od < 1:
        raise ShapeError(f"{fn}: the kernel (depth {k[0]}, dilation {d[0]}) is larger than "
                         f"the padded input depth {depth}")
    out = None
    for t in range(k[0]):
        start = t * d[0]
        sl = x[:, :, start:start + (od - 1) * s[0] + 1:s[0]]  # (N, C, oD, H, W)
        sl = reshape(sl.transpose(1, 2), n * od, c, h, w)
        y = conv2d(sl, weight[:, :, t], None, s[1:], p[1:], d[1:], groups)
        out = y if out is None else out + y
    o, oh, ow = out.shape[1], out.shape[2], out.shape[3]
    out = reshape(out, n, od, o, oh, ow).transpose(1, 2)
    if bias is not None:
        want_shape(fn, "bias", bias, (weight.shape[0],), "one per output channel")
        out = out + bias.reshape(1, -1, 1, 1, 1)
    return out[0] if unbatched else out


def conv_transpose3d(input: Tensor, weight: Tensor, bias: Tensor | None = None,
                     stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                     groups: int = 1, dilation: Any = 1) -> Tensor:
    """3-D transposed convolution as ``torch.nn.functional.conv_transpose3d``; weight
    (in_channels, out_channels // groups, kD, kH, kW).

    >>> import kiln, kiln.nn.functional as F
    >>> F.conv_transpose3d(kiln.ones(1, 1, 2, 2, 2), kiln.ones(1, 1, 2, 2, 2), stride=2).shape
    (1, 1, 4, 4, 4)
    """
    fn = "conv_transpose3d"
    x, unbatched = _five(fn, input, weight)
    s, p, op, d = transposed_args(fn, 3, stride, padding, output_padding, dilation)
    n, c, depth, h, w = x.shape
    k0 = weight.shape[2]
    out_d = transposed_out_size(depth, k0, s[0], p[0], d[0], op[0])
    if out_d < 1:
        raise ShapeError(f"{fn}: the output depth would be {out_d} for input "
                         f"{fmt_shape(x.shape)}")
    full = (depth - 1) * s[0] + d[0] * (k0 - 1) + 1 + op[0]  # before cropping the padding
    planes = reshape(x.transpose(1, 2), n * depth, c, h, w)
    out = None
    for t in range(k0):
        y = conv_transpose2d(planes, weight[:, :, t], None, s[1:], p[1:], op[1:], groups,
                             d[1:])
        o, oh, ow = y.shape[1], y.shape[2], y.shape[3]
        y = reshape(y, n, depth, o, oh, ow).transpose(1, 2)  # (N, O, D, oH, oW)
        lo = t * d[0]
        hi = full - lo - ((depth - 1) * s[0] + 1)
        y = ops.pad(y, pads=((0, 0, 0), (0, 0, 0), (lo, hi, s[0] - 1), (0, 0, 0), (0, 0, 0)),
                    value=0.0)
        out = y if out is None else out + y
    out = out[:, :, p[0]:p[0] + out_d]
    if bias is not None:
        want_shape(fn, "bias", bias, (weight.shape[1] * groups,), "one per output channel")
        out = out + bias.reshape(1, -1, 1, 1, 1)
    return out[0] if unbatched else out


def _sizes3(fn: str, x: Tensor, output_size: Any) -> tuple:
    if isinstance(output_size, int) or output_size is None:
        output_size = (output_size,) * 3
    if len(tuple(output_size)) != 3:
        raise ArgumentError(f"{fn}: output_size must be an int or a triple, got "
                            f"{output_size!r}")
    return tuple(x.shape[-3 + i] if v is None else v for i, v in enumerate(output_size))


def _adaptive3d(fn: str, input: Tensor, output_size: Any, pool2d: Any) -> Tensor:
    x = want_tensor(fn, "input", input)
    if x.ndim not in (4, 5):
        raise ShapeError(f"{fn}: expected 4-D (C, D, H, W) or 5-D (N, C, D, H, W) input, got "
                         f"shape {fmt_shape(x.shape)}")
    od, oh, ow = _sizes3(fn, x, output_size)
    *lead, depth, h, w = x.shape
    m = 1
    for v in lead:
        m *= v
    y = pool2d(reshape(x, m * depth, 1, h, w), (oh, ow))  # H and W
    y = reshape(y, m, depth, oh * ow).unsqueeze(1)
    z = pool2d(y, (od, oh * ow))  # D
    return reshape(z, *lead, od, oh, ow)


def adaptive_avg_pool3d(input: Tensor, output_size: Any) -> Tensor:
    """Average over torch's adaptive bins of D, H and W.

    >>> import kiln, kiln.nn.functional as F
    >>> F.adaptive_avg_pool3d(kiln.ones(1, 2, 5, 4, 3), (2, 2, 1)).shape
    (1, 2, 2, 2, 1)
    """
    return _adaptive3d("adaptive_avg_pool3d", input, output_size, adaptive_avg_pool2d)


def adaptive_max_pool3d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    """Maximum over torch's adaptive bins of D, H and W; with ``return_indices`` also the
    flat ``(d * H + h) * W + w`` position of each maximum.

    >>> import kiln, kiln.nn.functional as F
    >>> out, idx = F.adaptive_max_pool3d(kiln.arange(8.0).reshape(1, 1, 2, 2, 2), 1, True)
    >>> out.flatten().tolist(), idx.flatten().tolist()
    ([7.0], [7])
    """
    fn = "adaptive_max_pool3d"
    out = _adaptive3d(fn, input, output_size, adaptive_max_pool2d)
    if not return_indices:
        return out
    x = input if input.ndim == 5 else input.unsqueeze(0)
    n, c, depth, h, w = x.shape
    od, oh, ow = out.shape[-3:]
    if x.numel() == 0:
        from kiln.core import dtypes as dt
        from kiln.core.creation import zeros

        return out, zeros(*out.shape, dtype=dt.int64)
    cells = []
    for d0, d1 in _bins(depth, od):
        for h0, h1 in _bins(h, oh):
            for w0, w1 in _bins(w, ow):
                region = reshape(x[:, :, d0:d1, h0:h1, w0:w1], n, c, -1)
                at = ops.argmax(region, dim=2, keepdim=False)
                hw = (h1 - h0) * (w1 - w0)
                dd = ops.floor_divide(at, hw)
                rest = ops.sub(at, ops.mul(dd, hw))
                hh = ops.floor_divide(rest, w1 - w0)
                ww = ops.sub(rest, ops.mul(hh, w1 - w0))
                cells.append(((dd + d0) * h + hh + h0) * w + ww + w0)
    idx = reshape(stack(cells, 2), n, c, od, oh, ow)
    return (out, idx) if input.ndim == 5 else (out, idx[0])

