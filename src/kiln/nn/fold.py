"""``F.unfold`` (im2col) and ``F.fold`` (col2im), as composites of slices, pads and adds.

unfold takes, for each of the kh * kw kernel offsets, one strided slice of the padded input
(all output positions at once) and stacks them; fold is its adjoint: each offset's block is
spread out to the stride with interior padding, shifted into place with edge padding, and
the blocks are summed. Both are movement plus pointwise ops, which every backend fuses.
"""

from __future__ import annotations

from typing import Any

from kiln import ops
from kiln.core.functional import reshape, stack
from kiln.core.prims.shapes import fmt_shape
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError


def _pair(value: Any, name: str, fn: str, positive: bool = True) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        vals = tuple(value)
        if len(vals) == 1:
            vals = vals * 2
    else:
        vals = (value, value)
    if len(vals) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in vals):
        raise ArgumentError(f"{fn}: {name} must be an int or a pair of ints, got {value!r}")
    low = 1 if positive else 0
    if any(v < low for v in vals):
        raise ArgumentError(f"{fn}: {name} must be {'positive' if positive else '>= 0'}, "
                            f"got {value!r}")
    return vals  # type: ignore[return-value]


def _out_size(fn: str, size: int, k: int, d: int, p: int, s: int, which: str) -> int:
    n = (size + 2 * p - d * (k - 1) - 1) // s + 1
    if n <= 0:
        raise ShapeError(f"{fn}: the kernel ({k}, dilation {d}) does not fit the padded "
                         f"{which} ({size} + 2 * {p})")
    return n


def unfold(input: Tensor, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
           stride: Any = 1) -> Tensor:
    """Sliding blocks of a (N, C, H, W) or (C, H, W) input as columns: (N, C*kh*kw, L), L
    the number of block positions (torch.nn.functional.unfold).

    >>> import kiln, kiln.nn.functional as F
    >>> F.unfold(kiln.arange(9.0).reshape(1, 1, 3, 3), 2).tolist()
    [[[0.0, 1.0, 3.0, 4.0], [1.0, 2.0, 4.0, 5.0], [3.0, 4.0, 6.0, 7.0], [4.0, 5.0, 7.0, 8.0]]]
    """
    fn = "unfold"
    if not isinstance(input, Tensor) or input.ndim not in (3, 4):
        got = fmt_shape(input.shape) if isinstance(input, Tensor) else type(input).__name__
        raise ShapeError(f"{fn}: input must be 3-D (C, H, W) or 4-D (N, C, H, W), got {got}")
    kh, kw = _pair(kernel_size, "kernel_size", fn)
    dh, dw = _pair(dilation, "dilation", fn)
    ph, pw = _pair(padding, "padding", fn, positive=False)
    sh, sw = _pair(stride, "stride", fn)
    x = input if input.ndim == 4 else reshape(input, 1, *input.shape)
    n, c, h, w = x.shape
    oh = _out_size(fn, h, kh, dh, ph, sh, "height")
    ow = _out_size(fn, w, kw, dw, pw, sw, "width")
    if ph or pw:
        x = ops.pad(x, pads=((0, 0, 0), (0, 0, 0), (ph, ph, 0), (pw, pw, 0)), value=0)
    blocks = []
    for i in range(kh):
        rows = ops.slice(x, dim=2, start=i * dh, stop=i * dh + sh * (oh - 1) + 1, step=sh)
        for j in range(kw):
            blocks.append(ops.slice(rows, dim=3, start=j * dw, stop=j * dw + sw * (ow - 1) + 1,
                                    step=sw))
    cols = reshape(stack(blocks, 2), n, c * kh * kw, oh * ow)
    return cols if input.ndim == 4 else reshape(cols, c * kh * kw, oh * ow)


def fold(input: Tensor, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
         stride: Any = 1) -> Tensor:
    """Sum columns (N, C*kh*kw, L) back into a (N, C, H, W) image (torch.nn.functional.fold,
    the adjoint of :func:`unfold`; overlapping blocks add up).

    >>> import kiln, kiln.nn.functional as F
    >>> F.fold(kiln.ones(1, 4, 4), (3, 3), 2).tolist()
    [[[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]]]
    """
    fn = "fold"
    if not isinstance(input, Tensor) or input.ndim not in (2, 3):
        got = fmt_shape(input.shape) if isinstance(input, Tensor) else type(input).__name__
        raise ShapeError(f"{fn}: input must be 2-D (C*kh*kw, L) or 3-D (N, C*kh*kw, L), "
                         f"got {got}")
    h, w = _pair(output_size, "output_size", fn)
    kh, kw = _pair(kernel_size, "kernel_size", fn)
    dh, dw = _pair(dilation, "dilation", fn)
    ph, pw = _pair(padding, "padding", fn, positive=False)
    sh, sw = _pair(stride, "stride", fn)
    x = input if input.ndim == 3 else reshape(input, 1, *input.shape)
    n, ckk, length = x.shape
    if ckk % (kh * kw):
        raise ShapeError(f"{fn}: input dim 1 ({ckk}) must be divisible by the kernel's "
                         f"{kh} * {kw} elements")
    oh = _out_size(fn, h, kh, dh, ph, sh, "height")
    ow = _out_size(fn, w, kw, dw, pw, sw, "width")
    if length != oh * ow:
        raise ShapeError(f"{fn}: input has {length} blocks, but output_size ({h}, {w}) with "
                         f"this kernel, padding and stride holds {oh} * {ow} = {oh * ow}")
    c = ckk // (kh * kw)
    x = reshape(x, n, c, kh, kw, oh, ow)
    hp, wp = h + 2 * ph, w + 2 * pw
    span_h, span_w = sh * (oh - 1) + 1, sw * (ow - 1) + 1
    out = None
    for i in range(kh):
        for j in range(kw):
            block = x[:, :, i, j]
            # Interior padding spreads the block to the stride; edge padding puts it at its
            # offset in the padded image (whatever lies past the last block stays zero).
            pads = ((0, 0, 0), (0, 0, 0), (i * dh, hp - i * dh - span_h, sh - 1),
                    (j * dw, wp - j * dw - span_w, sw - 1))
            placed = ops.pad(block, pads=pads, value=0)
            out = placed if out is None else out + placed
    assert out is not None
    if ph or pw:
        out = ops.slice(ops.slice(out, dim=2, start=ph, stop=ph + h, step=1), dim=3,
                        start=pw, stop=pw + w, step=1)
    return out if input.ndim == 3 else reshape(out, *out.shape[1:])


def tanhshrink(input: Tensor) -> Tensor:
    """``input - tanh(input)``.

    >>> import kiln, kiln.nn.functional as F
    >>> round(F.tanhshrink(kiln.tensor([1.0])).item(), 4)
    0.2384
    """
    return input - ops.tanh(input)
