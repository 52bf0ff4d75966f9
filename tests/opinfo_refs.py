"""NumPy reference implementations for the op table, written independently of Kiln's kernels:
plain loops over kernel taps and windows, float64 accumulation, no ``as_strided``."""

from __future__ import annotations

import math

import numpy as np

_erf = np.vectorize(math.erf, otypes=[np.float64])


def erf(x: np.ndarray) -> np.ndarray:
    return _erf(np.asarray(x, dtype=np.float64))


def _out(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def conv2d(x: np.ndarray, w: np.ndarray, stride: tuple = (1, 1), padding: tuple = (0, 0),
           dilation: tuple = (1, 1), groups: int = 1) -> np.ndarray:
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh = _out(h, kh, stride[0], padding[0], dilation[0])
    ow = _out(wd, kw, stride[1], padding[1], dilation[1])
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = w[g * og:(g + 1) * og].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                r0, c0 = i * dilation[0], j * dilation[1]
                patch = xs[:, :, r0:r0 + stride[0] * (oh - 1) + 1:stride[0],
                           c0:c0 + stride[1] * (ow - 1) + 1:stride[1]]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    return out.astype(x.dtype)


def conv2d_input_grad(g: np.ndarray, w: np.ndarray, input_hw: tuple, stride: tuple,
                      padding: tuple, dilation: tuple, groups: int) -> np.ndarray:
    """The adjoint of conv2d in x: scatter every output gradient back over its window."""
    n, o, oh, ow = g.shape
    _, cg, kh, kw = w.shape
    h, wd = input_hw
    rows = max(h + 2 * padding[0], (oh - 1) * stride[0] + dilation[0] * (kh - 1) + 1)
    cols = max(wd + 2 * padding[1], (ow - 1) * stride[1] + dilation[1] * (kw - 1) + 1)
    dxp = np.zeros((n, cg * groups, rows, cols))
    og = o // groups
    for gi in range(groups):
        gs = g[:, gi * og:(gi + 1) * og].astype(np.float64)
        ws = w[gi * og:(gi + 1) * og].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                r0, c0 = i * dilation[0], j * dilation[1]
                dxp[:, gi * cg:(gi + 1) * cg, r0:r0 + stride[0] * (oh - 1) + 1:stride[0],
                    c0:c0 + stride[1] * (ow - 1) + 1:stride[1]] += np.einsum(
                        "nohw,oc->nchw", gs, ws[:, :, i, j])
    return dxp[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + wd].astype(g.dtype)


def conv2d_weight_grad(x: np.ndarray, g: np.ndarray, kernel_hw: tuple, stride: tuple,
                       padding: tuple, dilation: tuple, groups: int) -> np.ndarray:
    n, c, h, wd = x.shape
    _, o, oh, ow = g.shape
    kh, kw = kernel_hw
    cg, og = c // groups, o // groups
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    dw = np.zeros((o, cg, kh, kw))
    for gi in range(groups):
        xs = xp[:, gi * cg:(gi + 1) * cg]
        gs = g[:, gi * og:(gi + 1) * og].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                r0, c0 = i * dilation[0], j * dilation[1]
                patch = xs[:, :, r0:r0 + stride[0] * (oh - 1) + 1:stride[0],
                           c0:c0 + stride[1] * (ow - 1) + 1:stride[1]]
                dw[gi * og:(gi + 1) * og, :, i, j] = np.einsum("nchw,nohw->oc", patch, gs)
    return dw.astype(x.dtype)


def _pool_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    span = size + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= size + p:
        out -= 1
    return out


def _windows(h: int, w: int, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple,
             ceil_mode: bool) -> tuple:
    oh = _pool_out(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = _pool_out(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    return oh, ow


def max_pool2d(x: np.ndarray, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple,
               ceil_mode: bool) -> tuple[np.ndarray, np.ndarray]:
    """Window maxima and the flat (h*W + w) input index of each first maximum."""
    n, c, h, w = x.shape
    oh, ow = _windows(h, w, kernel, stride, padding, dilation, ceil_mode)
    out = np.zeros((n, c, oh, ow), x.dtype)
    arg = np.zeros((n, c, oh, ow), np.int64)
    for a in range(oh):
        for b in range(ow):
            best = np.full((n, c), -np.inf)
            where = np.full((n, c), -1)
            for i in range(kernel[0]):
                for j in range(kernel[1]):
                    r = a * stride[0] - padding[0] + i * dilation[0]
                    q = b * stride[1] - padding[1] + j * dilation[1]
                    if 0 <= r < h and 0 <= q < w:
                        v = x[:, :, r, q].astype(np.float64)
                        better = v > best
                        best = np.where(better, v, best)
                        where = np.where(better, r * w + q, where)
            out[:, :, a, b] = best
            arg[:, :, a, b] = where
    return out, arg


def max_pool2d_backward(g: np.ndarray, x: np.ndarray, **attrs: object) -> np.ndarray:
    n, c, h, w = x.shape
    _, arg = max_pool2d(x, **attrs)  # type: ignore[arg-type]
    dx = np.zeros((n, c, h * w))
    flat_g = g.reshape(n, c, g.shape[2] * g.shape[3]).astype(np.float64)
    flat_a = arg.reshape(flat_g.shape)
    for i in range(n):
        for j in range(c):
            ok = flat_a[i, j] >= 0
            np.add.at(dx[i, j], flat_a[i, j][ok], flat_g[i, j][ok])
    return dx.reshape(x.shape).astype(g.dtype)


def _avg_divisor(a: int, b: int, h: int, w: int, kernel: tuple, stride: tuple, padding: tuple,
                 count_include_pad: bool, divisor_override: object) -> float:
    if divisor_override is not None:
        return float(divisor_override)  # type: ignore[arg-type]
    r0, q0 = a * stride[0] - padding[0], b * stride[1] - padding[1]
    r1 = min(r0 + kernel[0], h + padding[0])
    q1 = min(q0 + kernel[1], w + padding[1])
    if count_include_pad:
        return float((r1 - r0) * (q1 - q0))
    return float(max((min(r1, h) - max(r0, 0)) * (min(q1, w) - max(q0, 0)), 1))


def avg_pool2d(x: np.ndarray, kernel: tuple, stride: tuple, padding: tuple, ceil_mode: bool,
               count_include_pad: bool, divisor_override: object) -> np.ndarray:
    n, c, h, w = x.shape
    oh, ow = _windows(h, w, kernel, stride, padding, (1, 1), ceil_mode)
    out = np.zeros((n, c, oh, ow))
    for a in range(oh):
        for b in range(ow):
            r0, q0 = a * stride[0] - padding[0], b * stride[1] - padding[1]
            win = x[:, :, max(r0, 0):max(min(r0 + kernel[0], h), 0),
                    max(q0, 0):max(min(q0 + kernel[1], w), 0)].astype(np.float64)
            div = _avg_divisor(a, b, h, w, kernel, stride, padding, count_include_pad,
                               divisor_override)
            out[:, :, a, b] = win.sum(axis=(2, 3)) / div
    return out.astype(x.dtype)


def avg_pool2d_backward(g: np.ndarray, input_hw: tuple, kernel: tuple, stride: tuple,
                        padding: tuple, ceil_mode: bool, count_include_pad: bool,
                        divisor_override: object) -> np.ndarray:
    n, c, oh, ow = g.shape
    h, w = input_hw
    dx = np.zeros((n, c, h, w))
    for a in range(oh):
        for b in range(ow):
            r0, q0 = a * stride[0] - padding[0], b * stride[1] - padding[1]
            div = _avg_divisor(a, b, h, w, kernel, stride, padding, count_include_pad,
                               divisor_override)
            dx[:, :, max(r0, 0):max(min(r0 + kernel[0], h), 0),
               max(q0, 0):max(min(q0 + kernel[1], w), 0)] += \
                g[:, :, a, b, None, None].astype(np.float64) / div
    return dx.astype(g.dtype)


def adaptive_pool2d(x: np.ndarray, output_size: object, reduce: str) -> np.ndarray:
    if isinstance(output_size, int) or output_size is None:
        output_size = (output_size, output_size)
    h, w = x.shape[-2:]
    oh = h if output_size[0] is None else output_size[0]  # type: ignore[index]
    ow = w if output_size[1] is None else output_size[1]  # type: ignore[index]
    out = np.zeros(x.shape[:-2] + (oh, ow))
    fn = np.mean if reduce == "mean" else np.max
    for a in range(oh):
        r0, r1 = a * h // oh, -(-(a + 1) * h // oh)
        for b in range(ow):
            q0, q1 = b * w // ow, -(-(b + 1) * w // ow)
            out[..., a, b] = fn(x[..., r0:r1, q0:q1].astype(np.float64), axis=(-2, -1))
    return out.astype(x.dtype)


def softmax(x: np.ndarray, dim: int) -> np.ndarray:
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(axis=dim, keepdims=True))
    return (e / e.sum(axis=dim, keepdims=True)).astype(x.dtype)


def log_softmax(x: np.ndarray, dim: int) -> np.ndarray:
    x64 = x.astype(np.float64)
    m = x64.max(axis=dim, keepdims=True)
    return (x64 - m - np.log(np.exp(x64 - m).sum(axis=dim, keepdims=True))).astype(x.dtype)


def softplus(x: np.ndarray, beta: float = 1.0, threshold: float = 20.0) -> np.ndarray:
    x64 = x.astype(np.float64)
    bx = x64 * beta
    return np.where(bx > threshold, x64, np.log1p(np.exp(np.minimum(bx, threshold))) / beta
                    ).astype(x.dtype)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(x.dtype)


def pad(x: np.ndarray, pad: tuple, mode: str = "constant", value: object = None) -> np.ndarray:
    """torch.nn.functional.pad semantics (last dim first; negative constant pads crop)."""
    pairs = [(pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)]
    widths = [(0, 0)] * x.ndim
    out = x
    for i, (lo, hi) in enumerate(pairs):
        d = x.ndim - 1 - i
        if lo < 0 or hi < 0:
            index = [slice(None)] * x.ndim
            index[d] = slice(max(-lo, 0), out.shape[d] - max(-hi, 0))
            out = out[tuple(index)]
        widths[d] = (max(lo, 0), max(hi, 0))
    np_mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge",
               "circular": "wrap"}[mode]
    if np_mode == "constant":
        return np.pad(out, widths, mode="constant", constant_values=0.0 if value is None else
                      value)
    return np.pad(out, widths, mode=np_mode)
