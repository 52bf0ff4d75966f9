"""2-D convolution and its two backward kernels.

Layout is PyTorch's: input ``(N, C, H, W)``, weight ``(O, C // groups, KH, KW)``, output
``(N, O, OH, OW)`` with ``OH = (H + 2*ph - dh*(KH - 1) - 1) // sh + 1``. Padding is symmetric
and made of zeros; ``kiln.nn.functional.conv2d`` handles "same", asymmetric padding, bias and
unbatched input on top of these primitives.

Convolution is bilinear in (input, weight), so its backward is two more primitives, each
linear in its arguments, whose own vjps are again convolutions (double backward works):

- ``conv2d_input_grad(g, w)`` = d<g, conv2d(x, w)>/dx, the adjoint in x ("transposed conv");
- ``conv2d_weight_grad(x, g)`` = d<g, conv2d(x, w)>/dw.

The NumPy kernels are the reference the C backend is tested against, written for clarity:
windows through ``as_strided`` and one ``tensordot`` per group (or per kernel tap).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from kiln.core.prims.registry import OpDef, TensorMeta, register
from kiln.core.prims.shapes import fmt_shape, require_tensor
from kiln.errors import ArgumentError, DTypeError, ShapeError, ValueArgumentError

CONV_ATTRS = ("stride", "padding", "dilation", "groups")


def pair_attr(op: str, name: str, value: Any, minimum: int) -> tuple[int, int]:
    """``value`` as a pair of ints >= ``minimum`` (attrs are always normalized pairs)."""
    if not (isinstance(value, tuple) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise ArgumentError(f"{op}: {name} must be a pair of ints, got {value!r}")
    if min(value) < minimum:
        raise ValueArgumentError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return value


def conv_out_size(size: Any, k: int, s: int, p: int, d: int) -> Any:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _check_attrs(op: str, stride: Any, padding: Any, dilation: Any, groups: Any) -> None:
    pair_attr(op, "stride", stride, 1)
    pair_attr(op, "padding", padding, 0)
    pair_attr(op, "dilation", dilation, 1)
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueArgumentError(f"{op}: groups must be a positive int, got {groups!r}")


def _check_float(op: str, *metas: TensorMeta) -> None:
    for m in metas:
        if not m.dtype.is_floating:
            raise DTypeError(f"{op}: expected floating tensors, got {m.dtype}")
    if len({m.dtype for m in metas}) != 1:
        raise DTypeError(f"{op}: operands must share one dtype, got "
                         f"{[str(m.dtype) for m in metas]}")


def _rank4(op: str, m: TensorMeta, arg: str) -> None:
    if m.ndim != 4:
        raise ShapeError(f"{op}: {arg} must be 4-D, got shape {fmt_shape(m.shape)}")


def _out_hw(op: str, hw: tuple, khw: tuple, stride: tuple, padding: tuple,
            dilation: tuple) -> tuple:
    out = []
    for size, k, s, p, d in zip(hw, khw, stride, padding, dilation):
        n = conv_out_size(size, k, s, p, d)
        if isinstance(n, int) and n < 1:
            raise ShapeError(f"{op}: input spatial size {fmt_shape(hw)} (padding "
                             f"{padding}) is too small for kernel {khw} with dilation "
                             f"{dilation}")
        out.append(n)
    return tuple(out)


def _weight_shape_check(op: str, c: Any, w: tuple, groups: int) -> None:
    o, cg = w[0], w[1]
    if isinstance(o, int) and o % groups:
        raise ShapeError(f"{op}: {o} output channels do not split into {groups} groups")
    if c != cg * groups:
        raise ShapeError(f"{op}: input has {c} channels but weight expects "
                         f"{cg} x {groups} groups = {cg * groups} (weight shape "
                         f"{fmt_shape(w)})")


# --------------------------------------------------------------------------------------
# NumPy reference kernels


def _windows(xp: np.ndarray, out_hw: tuple, khw: tuple, stride: tuple,
             dilation: tuple) -> np.ndarray:
    """(N, C, OH, OW, KH, KW) view of the padded input ``xp``."""
    n, c = xp.shape[:2]
    s = xp.strides
    shape = (n, c, out_hw[0], out_hw[1], khw[0], khw[1])
    strides = (s[0], s[1], s[2] * stride[0], s[3] * stride[1], s[2] * dilation[0],
               s[3] * dilation[1])
    return as_strided(xp, shape, strides, writeable=False)


def _pad_hw(x: np.ndarray, padding: tuple) -> np.ndarray:
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def _conv2d_eager(x: np.ndarray, w: np.ndarray, *, stride: tuple, padding: tuple,
                  dilation: tuple, groups: int) -> np.ndarray:
    n = x.shape[0]
    o, cg, kh, kw = w.shape
    oh, ow = (conv_out_size(x.shape[2 + i], w.shape[2 + i], stride[i], padding[i],
                            dilation[i]) for i in range(2))
    out = np.zeros((n, o, oh, ow), dtype=x.dtype)
    if out.size == 0 or cg == 0:
        return out
    win = _windows(_pad_hw(x, padding), (oh, ow), (kh, kw), stride, dilation)
    og = o // groups
    for g in range(groups):
        xs = win[:, g * cg:(g + 1) * cg]
        ws = w[g * og:(g + 1) * og]
        part = np.tensordot(xs, ws, axes=([1, 4, 5], [1, 2, 3]))  # (N, OH, OW, Og)
        out[:, g * og:(g + 1) * og] = part.transpose(0, 3, 1, 2)
    return out


def _conv2d_input_grad_eager(g: np.ndarray, w: np.ndarray, *, input_hw: tuple, stride: tuple,
                             padding: tuple, dilation: tuple, groups: int) -> np.ndarray:
    n, o, oh, ow = g.shape
    _, cg, kh, kw = w.shape
    h, wd = input_hw
    ph, pw = padding
    dxp = np.zeros((n, cg * groups, h + 2 * ph, wd + 2 * pw), dtype=g.dtype)
    og = o // groups
    if g.size and cg:
        for grp in range(groups):
            gs = g[:, grp * og:(grp + 1) * og]
            for i in range(kh):
                for j in range(kw):
                    tap = w[grp * og:(grp + 1) * og, :, i, j]  # (Og, Cg)
                    contrib = np.tensordot(gs, tap, axes=([1], [0]))  # (N, OH, OW, Cg)
                    r0, c0 = i * dilation[0], j * dilation[1]
                    dxp[:, grp * cg:(grp + 1) * cg,
                        r0:r0 + stride[0] * (oh - 1) + 1:stride[0],
                        c0:c0 + stride[1] * (ow - 1) + 1:stride[1]] += contrib.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(dxp[:, :, ph:ph + h, pw:pw + wd])


def _conv2d_weight_grad_eager(x: np.ndarray, g: np.ndarray, *, kernel_hw: tuple,
                              stride: tuple, padding: tuple, dilation: tuple,
                              groups: int) -> np.ndarray:
    n, c = x.shape[:2]
    o, oh, ow = g.shape[1], g.shape[2], g.shape[3]
    cg = c // groups
    kh, kw = kernel_hw
    dw = np.zeros((o, cg, kh, kw), dtype=x.dtype)
    if g.size == 0 or cg == 0:
        return dw
    win = _windows(_pad_hw(x, padding), (oh, ow), kernel_hw, stride, dilation)
    og = o // groups
    for grp in range(groups):
        gs = g[:, grp * og:(grp + 1) * og]  # (N, Og, OH, OW)
        xs = win[:, grp * cg:(grp + 1) * cg]  # (N, Cg, OH, OW, KH, KW)
        dw[grp * og:(grp + 1) * og] = np.tensordot(gs, xs, axes=([0, 2, 3], [0, 2, 3]))
    return dw


# --------------------------------------------------------------------------------------
# meta and vjp


def _conv2d_meta(x: Any, w: Any, *, stride: tuple, padding: tuple, dilation: tuple,
                 groups: int) -> TensorMeta:
    op = "conv2d"
    x = require_tensor(op, x, "input")
    w = require_tensor(op, w, "weight")
    _rank4(op, x, "input")
    _rank4(op, w, "weight")
    _check_float(op, x, w)
    _check_attrs(op, stride, padding, dilation, groups)
    _weight_shape_check(op, x.shape[1], w.shape, groups)
    oh, ow = _out_hw(op, x.shape[2:], w.shape[2:], stride, padding, dilation)
    return TensorMeta((x.shape[0], w.shape[0], oh, ow), x.dtype)


def _attrs(c: Any) -> dict:
    return {k: c.attrs[k] for k in CONV_ATTRS}


def _conv2d_vjp(c: Any, g: Any) -> tuple:
    from kiln.core import prims as ops

    x, w = c.args
    gx = ops.conv2d_input_grad(g, w, input_hw=tuple(x.shape[2:]), **_attrs(c)) \
        if c.needs_grad(0) else None
    gw = ops.conv2d_weight_grad(x, g, kernel_hw=tuple(w.shape[2:]), **_attrs(c)) \
        if c.needs_grad(1) else None
    return (gx, gw)


def _input_grad_meta(g: Any, w: Any, *, input_hw: tuple, stride: tuple, padding: tuple,
                     dilation: tuple, groups: int) -> TensorMeta:
    op = "conv2d_input_grad"
    g = require_tensor(op, g, "grad_output")
    w = require_tensor(op, w, "weight")
    _rank4(op, g, "grad_output")
    _rank4(op, w, "weight")
    _check_float(op, g, w)
    _check_attrs(op, stride, padding, dilation, groups)
    if not (isinstance(input_hw, tuple) and len(input_hw) == 2):
        raise ArgumentError(f"{op}: input_hw must be a pair, got {input_hw!r}")
    if g.shape[1] != w.shape[0]:
        raise ShapeError(f"{op}: grad_output has {g.shape[1]} channels, weight has "
                         f"{w.shape[0]} output channels")
    want = _out_hw(op, input_hw, w.shape[2:], stride, padding, dilation)
    if tuple(g.shape[2:]) != want:
        raise ShapeError(f"{op}: grad_output spatial size {fmt_shape(g.shape[2:])} does "
                         f"not match input_hw {input_hw} (expected {want})")
    return TensorMeta((g.shape[0], w.shape[1] * groups) + tuple(input_hw), g.dtype)


def _input_grad_vjp(c: Any, h: Any) -> tuple:
    from kiln.core import prims as ops

    g, w = c.args
    a = _attrs(c)
    gg = ops.conv2d(h, w, **a) if c.needs_grad(0) else None
    gw = ops.conv2d_weight_grad(h, g, kernel_hw=tuple(w.shape[2:]), **a) \
        if c.needs_grad(1) else None
    return (gg, gw)


def _weight_grad_meta(x: Any, g: Any, *, kernel_hw: tuple, stride: tuple, padding: tuple,
                      dilation: tuple, groups: int) -> TensorMeta:
    op = "conv2d_weight_grad"
    x = require_tensor(op, x, "input")
    g = require_tensor(op, g, "grad_output")
    _rank4(op, x, "input")
    _rank4(op, g, "grad_output")
    _check_float(op, x, g)
    _check_attrs(op, stride, padding, dilation, groups)
    kh, kw = pair_attr(op, "kernel_hw", kernel_hw, 1)
    if x.shape[0] != g.shape[0]:
        raise ShapeError(f"{op}: batch sizes differ: input {x.shape[0]}, grad_output "
                         f"{g.shape[0]}")
    c_in, o = x.shape[1], g.shape[1]
    if isinstance(c_in, int) and c_in % groups or isinstance(o, int) and o % groups:
        raise ShapeError(f"{op}: channels ({c_in} in, {o} out) do not split into {groups} "
                         "groups")
    want = _out_hw(op, x.shape[2:], (kh, kw), stride, padding, dilation)
    if tuple(g.shape[2:]) != want:
        raise ShapeError(f"{op}: grad_output spatial size {fmt_shape(g.shape[2:])} does "
                         f"not match the input's (expected {want})")
    return TensorMeta((o, c_in // groups, kh, kw), x.dtype)


def _weight_grad_vjp(c: Any, h: Any) -> tuple:
    from kiln.core import prims as ops

    x, g = c.args
    a = _attrs(c)
    gx = ops.conv2d_input_grad(g, h, input_hw=tuple(x.shape[2:]), **a) \
        if c.needs_grad(0) else None
    gg = ops.conv2d(x, h, **a) if c.needs_grad(1) else None
    return (gx, gg)


register(OpDef(
    "conv2d", _conv2d_meta, _conv2d_eager, _conv2d_vjp, "conv",
    "conv2d(x, w, stride=, padding=, dilation=, groups=): 2-D cross-correlation, NCHW, "
    "symmetric zero padding, no bias.",
    attrs=CONV_ATTRS,
))
register(OpDef(
    "conv2d_input_grad", _input_grad_meta, _conv2d_input_grad_eager, _input_grad_vjp, "conv",
    "conv2d_input_grad(g, w, input_hw=, stride=, ...): gradient of conv2d w.r.t. its input "
    "(a transposed convolution).",
    attrs=("input_hw",) + CONV_ATTRS,
))
register(OpDef(
    "conv2d_weight_grad", _weight_grad_meta, _conv2d_weight_grad_eager, _weight_grad_vjp,
    "conv", "conv2d_weight_grad(x, g, kernel_hw=, stride=, ...): gradient of conv2d w.r.t. its "
    "weight.",
    attrs=("kernel_hw",) + CONV_ATTRS,
))
