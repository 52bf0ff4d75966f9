"""Max pooling with ``return_indices=True`` and its inverse ``max_unpool2d``, as composites.

The values are ``max_pool2d``'s (so the gradient is the pooling primitive's); the indices
come from the same windows read as strided slices of the padded input (as in
:mod:`kiln.nn.fold`), an argmax over the window, and index arithmetic: the flat position
``row * W + col`` in each input plane, as torch returns them. ``max_unpool2d`` scatters
values back to those positions in a zero plane.
"""

from __future__ import annotations

import itertools
from typing import Any

from kiln import ops
from kiln.core import dtypes as dt
from kiln.core.functional import reshape, stack, unsqueeze
from kiln.core.prims.shapes import fmt_shape
from kiln.core.tensor import Tensor
from kiln.errors import ShapeError


def max_pool2d_indices(x: Tensor, values: Tensor, k: tuple, s: tuple, p: tuple, d: tuple
                       ) -> Tensor:
    """The int64 flat input positions (``row * W + col``) of each of ``values`` (the output of
    max_pool2d on the 4-D ``x`` with kernel ``k``, stride ``s``, padding ``p``, dilation
    ``d``): the first maximum of each window, as torch."""
    return max_pool_indices(x, values, k, s, p, d)


def max_pool_indices(x: Tensor, values: Tensor, k: tuple, s: tuple, p: tuple, d: tuple
                     ) -> Tensor:
    """:func:`max_pool2d_indices` for any number of spatial dims (``x`` is (N, C, *spatial),
    ``k``/``s``/``p``/``d`` one entry per spatial dim): flat positions in each input volume
    (``(z * H + row) * W + col`` in 3-D), the first maximum in torch's scan order."""
    from kiln.core.creation import arange

    n = len(k)
    spatial, outs = tuple(x.shape[2:]), tuple(values.shape[2:])
    # Pad with -inf (ceil_mode windows may reach past the padding: pad those too).
    extra = [max(0, (outs[i] - 1) * s[i] + d[i] * (k[i] - 1) + 1 - (spatial[i] + 2 * p[i]))
             for i in range(n)]
    low = float("-inf") if x.dtype.is_floating else int(-(2 ** 62))
    xp = ops.pad(x, pads=((0, 0, 0), (0, 0, 0)) + tuple((p[i], p[i] + extra[i], 0)
                                                        for i in range(n)), value=low)
    windows = []
    for taps in itertools.product(*[range(v) for v in k]):  # row-major: torch's scan order
        w = xp
        for i, tap in enumerate(taps):
            w = ops.slice(w, dim=2 + i, start=tap * d[i],
                          stop=tap * d[i] + s[i] * (outs[i] - 1) + 1, step=s[i])
        windows.append(w)
    which = ops.argmax(stack(windows, 2), dim=2, keepdim=False)  # (N, C, *outs)
    taps_at: list = [None] * n
    for i in reversed(range(n)):  # the last dim's tap varies fastest
        rest = ops.floor_divide(which, k[i])
        taps_at[i] = ops.sub(which, ops.mul(rest, k[i]))
        which = rest
    flat = None
    for i in range(n):
        start = reshape(arange(outs[i], dtype=dt.int64) * s[i] - p[i],
                        outs[i], *(1,) * (n - 1 - i))
        pos = start + taps_at[i] * d[i]
        flat = pos if flat is None else flat * spatial[i] + pos
    return flat


def max_unpool2d(input: Tensor, indices: Tensor, kernel_size: Any, stride: Any = None,
                 padding: Any = 0, output_size: Any = None) -> Tensor:
    """Put each value of ``input`` at its position in ``indices`` (from ``max_pool2d(...,
    return_indices=True)``) in a zero image; the rest stays 0 (torch's max_unpool2d).

    >>> import kiln, kiln.nn.functional as F
    >>> out, idx = F.max_pool2d(kiln.arange(16.0).reshape(1, 1, 4, 4), 2, return_indices=True)
    >>> F.max_unpool2d(out, idx, 2).tolist()[0][0][1]
    [0.0, 5.0, 0.0, 7.0]
    """
    from kiln.core.creation import zeros
    from kiln.nn.conv import _pair

    fn = "max_unpool2d"
    if input.ndim not in (3, 4) or tuple(indices.shape) != tuple(input.shape):
        raise ShapeError(f"{fn}: input must be 3-D or 4-D and indices of the same shape, got "
                         f"{fmt_shape(input.shape)} and {fmt_shape(indices.shape)}")
    x = input if input.ndim == 4 else unsqueeze(input, 0)
    idx = indices if indices.ndim == 4 else unsqueeze(indices, 0)
    k = _pair(kernel_size, "kernel_size", fn)
    s = k if stride is None else _pair(stride, "stride", fn)
    p = _pair(padding, "padding", fn)
    n, c, oh, ow = x.shape
    if output_size is None:
        h, w = (oh - 1) * s[0] - 2 * p[0] + k[0], (ow - 1) * s[1] - 2 * p[1] + k[1]
    else:
        h, w = tuple(output_size)[-2:]
    plane = zeros(n, c, h * w, dtype=x.dtype)
    out = ops.scatter(plane, reshape(idx.to(dt.int64), n, c, oh * ow),
                      reshape(x, n, c, oh * ow), dim=2)
    out = reshape(out, n, c, h, w)
    return out if input.ndim == 4 else reshape(out, c, h, w)


def adaptive_max_pool2d_indices(x: Tensor, oh: int, ow: int) -> Tensor:
    """The int64 flat input positions (``row * W + col``) of the first maximum of each of
    torch's adaptive bins of the 4-D ``x`` (an argmax per bin)."""
    from kiln.nn.conv import _bins

    n, c, h, w = x.shape
    rows = []
    for r0, r1 in _bins(h, oh):
        cells = []
        for c0, c1 in _bins(w, ow):
            region = reshape(x[:, :, r0:r1, c0:c1], n, c, (r1 - r0) * (c1 - c0))
            k = ops.argmax(region, dim=2, keepdim=False)
            r = ops.floor_divide(k, c1 - c0)
            col = ops.sub(k, ops.mul(r, c1 - c0))
            cells.append((r + r0) * w + col + c0)
        rows.append(stack(cells, 2))
    return stack(rows, 2)
