"""Convolution, pooling and padding composites of ``kiln.nn.functional``.

They accept PyTorch's argument forms (ints or pairs, ``padding="same"``, unbatched CHW input,
bias) and reduce them to the NCHW primitives ``conv2d``, ``max_pool2d`` and ``avg_pool2d``,
whose attributes are always explicit pairs.

>>> import kiln, kiln.nn.functional as F
>>> F.conv2d(kiln.ones(1, 1, 4, 4), kiln.ones(1, 1, 3, 3), padding=1)[0, 0, 0].tolist()
[4.0, 6.0, 6.0, 4.0]
"""

from __future__ import annotations

from typing import Any

from kiln import ops
from kiln.core.functional import cat, flip, mean, unsqueeze
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, DTypeError, ShapeError
from kiln.nn import integral
from kiln.nn.checks import want_shape, want_tensor


def _pair(value: Any, name: str, fn: str) -> tuple[int, int]:
    if isinstance(value, bool):
        raise ArgumentError(f"{fn}: {name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = (value[0], value[0])  # torch takes [k] for (k, k)
    if isinstance(value, (tuple, list)) and len(value) == 2 and \
            all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return (int(value[0]), int(value[1]))
    raise ArgumentError(f"{fn}: {name} must be an int or a pair of ints, got {value!r}")


def _single(value: Any) -> Any:
    """torch's 1-d forms: ``k``, ``[k]`` or ``(k,)``."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        return value[0]
    return value


def _batched(x: Tensor, fn: str) -> tuple[Tensor, bool]:
    if x.ndim == 3:
        return unsqueeze(x, 0), True
    if x.ndim != 4:
        raise ShapeError(f"{fn}: expected 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape "
                         f"{tuple(x.shape)}")
    return x, False


def _same_padding(w: Tensor, dilation: tuple, stride: tuple) -> tuple[tuple, tuple]:
    """Symmetric part and extra right/bottom part of padding="same" (PyTorch's split)."""
    if stride != (1, 1):
        raise ArgumentError("conv2d: padding='same' is not supported for strided convolutions")
    sym, extra = [], []
    for i in range(2):
        total = dilation[i] * (w.shape[2 + i] - 1)
        sym.append(total // 2)
        extra.append(total - 2 * (total // 2))
    return tuple(sym), tuple(extra)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation) as ``torch.nn.functional.conv2d``.

    ``padding`` is an int, a pair, ``"valid"`` or ``"same"``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.conv2d(kiln.ones(1, 2, 5, 5), kiln.ones(3, 2, 3, 3), stride=2).shape
    (1, 3, 2, 2)
    """
    integral.refuse_bool("conv2d", input, weight, bias)
    if integral.applies(input, weight, bias):  # torch's integer conv (computed in float64)
        return integral.in_float64(conv2d, input, weight, bias, stride, padding, dilation,
                                   groups)
    x, unbatched = _batched(input, "conv2d")
    s = _pair(stride, "stride", "conv2d")
    d = _pair(dilation, "dilation", "conv2d")
    if isinstance(padding, str):
        if padding == "valid":
            p: tuple = (0, 0)
        elif padding == "same":
            p, extra = _same_padding(weight, d, s)
            if extra != (0, 0):
                x = pad(x, (0, extra[1], 0, extra[0]))
        else:
            raise ArgumentError(f"conv2d: padding must be an int, a pair, 'valid' or 'same', "
                                f"got {padding!r}")
    else:
        p = _pair(padding, "padding", "conv2d")
    if weight.dtype != x.dtype:
        raise ArgumentError(f"conv2d: input dtype {x.dtype} and weight dtype {weight.dtype} "
                            "differ")
    out = ops.conv2d(x, weight, stride=s, padding=p, dilation=d, groups=groups)
    if bias is not None:
        want_shape("conv2d", "bias", bias, (weight.shape[0],), "one per output channel")
        out = out + bias.reshape(1, -1, 1, 1)
    return out[0] if unbatched else out


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int = 1,
           padding: Any = 0, dilation: int = 1, groups: int = 1) -> Tensor:
    """1-D convolution over (N, C, L) input, computed as a conv2d of height 1.

    >>> import kiln, kiln.nn.functional as F
    >>> F.conv1d(kiln.ones(1, 1, 5), kiln.ones(1, 1, 3)).tolist()
    [[[3.0, 3.0, 3.0]]]
    """
    unbatched = input.ndim == 2
    x = unsqueeze(input, 0) if unbatched else input
    if x.ndim != 3:
        raise ShapeError(f"conv1d: expected 2-D or 3-D input, got shape {tuple(input.shape)}")
    if want_tensor("conv1d", "weight", weight).ndim != 3 or \
            x.shape[1] != weight.shape[1] * groups:
        raise ShapeError(f"conv1d: input {tuple(input.shape)} and weight "
                         f"{tuple(weight.shape)} do not fit: expected weight (out_channels, "
                         f"in_channels / groups, kernel) with in_channels = {x.shape[1]} and "
                         f"groups = {groups}")
    want_shape("conv1d", "bias", bias, (weight.shape[0],), "one per output channel")
    stride, dilation = _single(stride), _single(dilation)
    if isinstance(padding, str):
        pad2: Any = padding
    else:
        pad2 = (0, _single(padding))
    out = conv2d(unsqueeze(x, 2), unsqueeze(weight, 2), bias, (1, stride), pad2,
                 (1, dilation), groups)
    out = out.reshape(out.shape[0], out.shape[1], out.shape[3])
    return out[0] if unbatched else out


def max_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False
               ) -> Tensor:
    """Max pooling as ``torch.nn.functional.max_pool2d`` (``stride`` defaults to the kernel).

    >>> import kiln, kiln.nn.functional as F
    >>> F.max_pool2d(kiln.arange(16.0).reshape(1, 1, 4, 4), 2).tolist()
    [[[[5.0, 7.0], [13.0, 15.0]]]]
    """
    x, unbatched = _batched(input, "max_pool2d")
    k = _pair(kernel_size, "kernel_size", "max_pool2d")
    s = k if stride is None or stride in ([], ()) else _pair(stride, "stride", "max_pool2d")
    p, d = _pair(padding, "padding", "max_pool2d"), _pair(dilation, "dilation", "max_pool2d")
    out = ops.max_pool2d(x, kernel=k, stride=s, padding=p, dilation=d, ceil_mode=bool(ceil_mode))
    if return_indices:
        from kiln.nn.unpool import max_pool2d_indices

        idx = max_pool2d_indices(x, out, k, s, p, d)
        return (out[0], idx[0]) if unbatched else (out, idx)
    return out[0] if unbatched else out


def avg_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:
    """Average pooling as ``torch.nn.functional.avg_pool2d``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.avg_pool2d(kiln.arange(16.0).reshape(1, 1, 4, 4), 2).tolist()
    [[[[2.5, 4.5], [10.5, 12.5]]]]
    """
    integral.refuse_bool("avg_pool2d", input)
    if integral.applies(input):  # torch's integer pooling: the mean truncated toward zero
        return integral.in_float64(avg_pool2d, input, kernel_size, stride, padding, ceil_mode,
                                   count_include_pad, divisor_override)
    x, unbatched = _batched(input, "avg_pool2d")
    k = _pair(kernel_size, "kernel_size", "avg_pool2d")
    s = k if stride is None or stride in ([], ()) else _pair(stride, "stride", "avg_pool2d")
    out = ops.avg_pool2d(x, kernel=k, stride=s, padding=_pair(padding, "padding", "avg_pool2d"),
                         ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad),
                         divisor_override=divisor_override)
    return out[0] if unbatched else out


def _bins(size: int, out: int) -> list[tuple[int, int]]:
    # PyTorch's adaptive bins: [floor(i*size/out), ceil((i+1)*size/out)).
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def _adaptive(x: Tensor, output_size: Any, fn: str, reduce: Any, pool: Any) -> Tensor:
    x, unbatched = _batched(x, fn)
    if isinstance(output_size, int) or output_size is None:
        output_size = (output_size, output_size)
    oh, ow = (x.shape[2 + i] if output_size[i] is None else output_size[i] for i in range(2))
    h, w = x.shape[2], x.shape[3]
    if (oh, ow) == (1, 1):
        out = reduce(x, (2, 3))
    elif isinstance(h, int) and isinstance(w, int) and h % oh == 0 and w % ow == 0:
        out = pool(x, (h // oh, w // ow))
    else:
        if not (isinstance(h, int) and isinstance(w, int)):
            raise ShapeError(f"{fn}: a symbolic input size must be a multiple of the output "
                             "size")
        rows = [cat([reduce(x[:, :, r0:r1, c0:c1], (2, 3)) for c0, c1 in _bins(w, ow)], 3)
                for r0, r1 in _bins(h, oh)]
        out = cat(rows, 2)
    return out[0] if unbatched else out


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """Average over PyTorch's adaptive bins; (1, 1) is a plain mean over H and W.

    >>> import kiln, kiln.nn.functional as F
    >>> F.adaptive_avg_pool2d(kiln.ones(2, 3, 7, 7), 1).shape
    (2, 3, 1, 1)
    """
    if isinstance(input, Tensor) and not input.dtype.is_floating:
        raise DTypeError(f"adaptive_avg_pool2d: {input.dtype} input is not supported (torch "
                         "refuses integer and bool input too); convert with .float() first")
    return _adaptive(input, output_size, "adaptive_avg_pool2d",
                     lambda t, dims: mean(t, dims, keepdim=True),
                     lambda t, k: avg_pool2d(t, k))


def adaptive_max_pool2d(input: Tensor, output_size: Any, return_indices: bool = False) -> Tensor:
    """Maximum over PyTorch's adaptive bins.

    >>> import kiln, kiln.nn.functional as F
    >>> F.adaptive_max_pool2d(kiln.arange(16.0).reshape(1, 1, 4, 4), 1).flatten().tolist()
    [15.0]
    """
    out = _adaptive(input, output_size, "adaptive_max_pool2d",
                    lambda t, dims: ops.max(t, dims=dims, keepdim=True),
                    lambda t, k: max_pool2d(t, k))
    if not return_indices:
        return out
    from kiln.nn.unpool import adaptive_max_pool2d_indices

    x, unbatched = _batched(input, "adaptive_max_pool2d")
    idx = adaptive_max_pool2d_indices(x, out.shape[-2], out.shape[-1])
    return (out, idx[0] if unbatched else idx)


def pad(input: Tensor, pad: Any, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad the last ``len(pad) // 2`` dims, last dim first, as ``torch.nn.functional.pad``.

    Modes: ``constant`` (negative pads crop), ``reflect``, ``replicate``, ``circular``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.pad(kiln.tensor([[1.0, 2.0]]), (1, 2)).tolist()
    [[0.0, 1.0, 2.0, 0.0, 0.0]]
    >>> F.pad(kiln.tensor([[1.0, 2.0, 3.0]]), (2, 1), mode="reflect").tolist()
    [[3.0, 2.0, 1.0, 2.0, 3.0, 2.0]]
    """
    pad = tuple(pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ArgumentError(f"pad: expected an even number of pads for at most {input.ndim} "
                            f"dims, got {pad}")
    pairs = [(pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)]
    out = input
    if mode == "constant":
        fill = 0.0 if value is None else value
        widths = [(0, 0, 0)] * input.ndim
        for i, (lo, hi) in enumerate(pairs):
            d = input.ndim - 1 - i
            out = _crop(out, d, lo, hi)
            widths[d] = (max(lo, 0), max(hi, 0), 0)
        if any(w != (0, 0, 0) for w in widths):
            out = ops.pad(out, pads=tuple(widths), value=fill)
        return out
    if mode not in ("reflect", "replicate", "circular"):
        raise ArgumentError(f"pad: mode must be 'constant', 'reflect', 'replicate' or "
                            f"'circular', got {mode!r}")
    for i, (lo, hi) in enumerate(pairs):
        d = input.ndim - 1 - i
        # Negative amounts crop (torch): circular wraps around what is left after the cut;
        # reflect and replicate pad from the input as it is, then cut.
        if mode == "circular":
            out = _crop(out, d, lo, hi)
        out = _pad_edge(out, d, max(lo, 0), max(hi, 0), mode)
        if mode != "circular":
            out = _crop(out, d, lo, hi)
    return out


def _crop(x: Tensor, d: int, lo: int, hi: int) -> Tensor:
    if lo >= 0 and hi >= 0:
        return x
    size = x.shape[d]
    return ops.slice(x, dim=d, start=max(-lo, 0), stop=size - max(-hi, 0), step=1)


def _pad_edge(x: Tensor, d: int, lo: int, hi: int, mode: str) -> Tensor:
    size = x.shape[d]
    if lo < 0 or hi < 0:
        raise ArgumentError(f"pad: mode {mode!r} needs non-negative pads, got ({lo}, {hi})")
    if mode == "reflect" and (lo >= size or hi >= size):
        raise ArgumentError(f"pad: reflect padding ({lo}, {hi}) must be smaller than the dim "
                            f"size {size}")
    if mode == "circular" and (lo > size or hi > size):
        raise ArgumentError(f"pad: circular padding ({lo}, {hi}) must not exceed the dim size "
                            f"{size}")

    def part(start: int, stop: int) -> Tensor:
        return ops.slice(x, dim=d, start=start, stop=stop, step=1)

    pieces = []
    if lo:
        if mode == "reflect":
            pieces.append(flip(part(1, lo + 1), d))
        elif mode == "replicate":
            shape = list(x.shape)
            shape[d] = lo
            pieces.append(part(0, 1).expand(*shape))
        else:
            pieces.append(part(size - lo, size))
    pieces.append(x)
    if hi:
        if mode == "reflect":
            pieces.append(flip(part(size - 1 - hi, size - 1), d))
        elif mode == "replicate":
            shape = list(x.shape)
            shape[d] = hi
            pieces.append(part(size - 1, size).expand(*shape))
        else:
            pieces.append(part(0, hi))
    return cat(pieces, d) if len(pieces) > 1 else x

