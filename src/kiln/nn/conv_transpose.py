"""Transposed convolution of ``kiln.nn.functional``: ``conv_transpose1d`` and
``conv_transpose2d``.

A transposed convolution is the adjoint of a convolution in its input, which is exactly the
``conv2d_input_grad`` primitive: ``conv_transpose2d(x, w)`` is the gradient that a conv2d
with weight ``w`` (laid out (in, out // groups, kH, kW), PyTorch's ConvTranspose layout)
would send back to an input of the output's size. So it has a NumPy kernel, a vjp (conv2d
and conv2d_weight_grad) and a native C kernel already; only the output size is computed
here: ``(in - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1``.

>>> import kiln, kiln.nn.functional as F
>>> F.conv_transpose2d(kiln.ones(1, 1, 2, 2), kiln.ones(1, 1, 2, 2), stride=2).shape
(1, 1, 4, 4)
"""

from __future__ import annotations

from typing import Any

from kiln import ops
from kiln.core.prims.shapes import fmt_shape
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError, ValueArgumentError
from kiln.nn import integral
from kiln.nn.checks import want_shape, want_tensor
from kiln.nn.pool_nd import ntuple


def transposed_out_size(size: Any, k: int, s: int, p: int, d: int, op: int) -> Any:
    return (size - 1) * s - 2 * p + d * (k - 1) + op + 1


def transposed_args(fn: str, n: int, stride: Any, padding: Any, output_padding: Any,
                    dilation: Any) -> tuple[tuple[int, ...], ...]:
    """(stride, padding, output_padding, dilation) as checked ``n``-tuples."""
    s = ntuple(stride, n, "stride", fn)
    p = ntuple(padding, n, "padding", fn)
    op = ntuple(output_padding, n, "output_padding", fn)
    d = ntuple(dilation, n, "dilation", fn)
    if min(s) < 1 or min(d) < 1 or min(p) < 0 or min(op) < 0:
        raise ValueArgumentError(f"{fn}: expected stride >= 1, dilation >= 1, padding >= 0 "
                                 f"and output_padding >= 0, got stride {s}, dilation {d}, "
                                 f"padding {p}, output_padding {op}")
    return s, p, op, d


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None,
                     stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                     groups: int = 1, dilation: Any = 1) -> Tensor:
    """2-D transposed convolution ("deconvolution") as
    ``torch.nn.functional.conv_transpose2d``; weight (in_channels, out_channels // groups,
    kH, kW).

    >>> import kiln, kiln.nn.functional as F
    >>> F.conv_transpose2d(kiln.ones(1, 1, 2, 2), kiln.ones(1, 1, 2, 2))[0, 0].tolist()
    [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]
    """
    fn = "conv_transpose2d"
    integral.refuse_bool(fn, input, weight, bias)
    if integral.applies(input, weight, bias):  # torch's integer kernel (computed in float64)
        return integral.in_float64(conv_transpose2d, input, weight, bias, stride, padding,
                                   output_padding, groups, dilation)
    x = want_tensor(fn, "input", input)
    w = want_tensor(fn, "weight", weight)
    if x.ndim not in (3, 4):
        raise ShapeError(f"{fn}: expected 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape "
                         f"{fmt_shape(x.shape)}")
    if w.ndim != 4:
        raise ShapeError(f"{fn}: weight must be 4-D (in_channels, out_channels // groups, kH, "
                         f"kW), got shape {fmt_shape(w.shape)}")
    unbatched = x.ndim == 3
    if unbatched:
        x = x.unsqueeze(0)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueArgumentError(f"{fn}: groups must be a positive int, got {groups!r}")
    if isinstance(x.shape[1], int) and x.shape[1] != w.shape[0]:
        raise ShapeError(f"{fn}: input has {x.shape[1]} channels but weight expects "
                         f"{w.shape[0]} (weight shape {fmt_shape(w.shape)})")
    s, p, op, d = transposed_args(fn, 2, stride, padding, output_padding, dilation)
    for i in range(2):
        if op[i] >= s[i] and op[i] >= d[i]:
            raise ValueArgumentError(f"{fn}: output_padding {op} must be smaller than the "
                                     f"stride {s} or the dilation {d}")
    if weight.dtype != x.dtype:
        raise ArgumentError(f"{fn}: input dtype {x.dtype} and weight dtype {weight.dtype} "
                            "differ")
    out_hw = tuple(transposed_out_size(x.shape[2 + i], w.shape[2 + i], s[i], p[i], d[i], op[i])
                   for i in range(2))
    if any(isinstance(v, int) and v < 1 for v in out_hw):
        raise ShapeError(f"{fn}: the output would be empty ({out_hw}) for input "
                         f"{fmt_shape(x.shape)}, kernel {fmt_shape(w.shape[2:])} and padding "
                         f"{p}")
    # With output_padding >= stride (allowed when below the dilation), a convolution of the
    # output's size has more positions than the input: they get zero gradient, so the input
    # is padded with zeros at the end to that many.
    extra = [op[i] // s[i] for i in range(2)]
    if any(extra):
        x = ops.pad(x, pads=((0, 0, 0), (0, 0, 0), (0, extra[0], 0), (0, extra[1], 0)),
                    value=0.0)
    out = ops.conv2d_input_grad(x, w, input_hw=out_hw, stride=s, padding=p, dilation=d,
                                groups=groups)
    if bias is not None:
        want_shape(fn, "bias", bias, (w.shape[1] * groups,), "one per output channel")
        out = out + bias.reshape(1, -1, 1, 1)
    return out[0] if unbatched else out


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None,
                     stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                     groups: int = 1, dilation: Any = 1) -> Tensor:
    """1-D transposed convolution over (N, C, L) or (C, L), a conv_transpose2d of height 1;
    weight (in_channels, out_channels // groups, k).

    >>> import kiln, kiln.nn.functional as F
    >>> F.conv_transpose1d(kiln.ones(1, 1, 3), kiln.ones(1, 2, 2)).shape
    (1, 2, 4)
    """
    fn = "conv_transpose1d"
    x = want_tensor(fn, "input", input)
    w = want_tensor(fn, "weight", weight)
    if x.ndim not in (2, 3) or w.ndim != 3:
        raise ShapeError(f"{fn}: expected 2-D (C, L) or 3-D (N, C, L) input and a 3-D weight, "
                         f"got input {fmt_shape(x.shape)} and weight {fmt_shape(w.shape)}")

    def one(v: Any, name: str) -> tuple[int, int]:
        return (0 if name in ("padding", "output_padding") else 1,
                ntuple(v, 1, name, fn)[0])

    out = conv_transpose2d(x.unsqueeze(-2), w.unsqueeze(-2), bias, one(stride, "stride"),
                           one(padding, "padding"), one(output_padding, "output_padding"),
                           groups, one(dilation, "dilation"))
    return out.squeeze(-2)
