"""``F.grid_sample`` (and aten's ``grid_sampler_2d`` / ``grid_sampler_3d``) and
``F.affine_grid`` as composites.

Each output point reads the input at the (x, y[, z]) position its grid entry gives, in
[-1, 1] over the input's extent: the nearest pixel, a (tri)linear blend of the 2^n neighbours
or a bicubic blend of 4 x 4 (gathers from the flattened input, weights from the fractional
parts, so the gradient reaches the input and the grid). Padding modes: zeros (outside reads
0), border (clamped), reflection (mirrored at the edges), as torch.

>>> import kiln, kiln.nn.functional as F
>>> img = kiln.arange(4.0).reshape(1, 1, 2, 2)
>>> F.grid_sample(img, kiln.zeros(1, 1, 1, 2), align_corners=True).item()
1.5
"""

from __future__ import annotations

import itertools
from typing import Any

from kiln import ops
from kiln.core import dtypes as dt
from kiln.core.functional import clamp, reshape, stack
from kiln.core.prims.shapes import fmt_shape
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError
from kiln.nn.checks import want_tensor

__all__ = ["grid_sample", "affine_grid"]
ATEN = ("grid_sampler_2d", "grid_sampler_3d")

_MODES = ("bilinear", "nearest", "bicubic")
_PADDINGS = ("zeros", "border", "reflection")


def _unnormalize(coord: Tensor, size: int, align: bool) -> Tensor:
    if align:
        return (coord + 1.0) * ((size - 1) / 2.0)
    return ((coord + 1.0) * size - 1.0) / 2.0


def _reflect(x: Tensor, twice_low: int, twice_high: int) -> Tensor:
    if twice_low == twice_high:
        return x * 0.0
    low = twice_low / 2.0
    span = (twice_high - twice_low) / 2.0
    x = ops.abs(x - low)
    flips = ops.floor(x / span)
    extra = x - flips * span  # fmod for x >= 0
    even = ops.eq(flips - ops.floor(flips / 2.0) * 2.0, 0.0)
    return ops.where(even, extra + low, span - extra + low)


def _pad_coord(x: Tensor, size: int, padding: str, align: bool) -> Tensor:
    if padding == "border":
        return clamp(x, 0.0, float(size - 1))
    if padding == "reflection":
        x = _reflect(x, 0, 2 * (size - 1)) if align else _reflect(x, -1, 2 * size - 1)
        return clamp(x, 0.0, float(size - 1))
    return x


class _Reader:
    """Reads input values (N, C, Q) at integer positions (one (N, Q) tensor per spatial dim,
    outermost first), 0 outside the input."""

    def __init__(self, x: Tensor) -> None:
        self.n, self.c = x.shape[0], x.shape[1]
        self.sizes = tuple(x.shape[2:])
        total = 1
        for s in self.sizes:
            total *= s
        self.flat = reshape(x, self.n, self.c, total)

    def read(self, pos: list[Tensor]) -> Tensor:
        valid = None
        flat = None
        for p, size in zip(pos, self.sizes, strict=True):
            ok = ops.logical_and(p >= 0, p <= size - 1)
            valid = ok if valid is None else ops.logical_and(valid, ok)
            safe = clamp(p, 0, size - 1)
            flat = safe if flat is None else flat * size + safe
        q = flat.shape[1]
        idx = reshape(flat, self.n, 1, q).expand(self.n, self.c, q)
        vals = ops.gather(self.flat, idx, dim=2)
        return ops.where(reshape(valid, self.n, 1, q), vals, 0.0)


def _cubic(t: Tensor) -> list[Tensor]:
    # torch's cubic convolution coefficients (A = -0.75) for taps at -1, 0, 1, 2
    a = -0.75

    def near(v: Tensor) -> Tensor:  # |v| <= 1
        return ((a + 2) * v - (a + 3)) * v * v + 1

    def far(v: Tensor) -> Tensor:  # 1 < |v| < 2
        return ((a * v - 5 * a) * v + 8 * a) * v - 4 * a

    return [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]


def _sample(fn: str, input: Tensor, grid: Tensor, mode: str, padding: str,
            align: bool) -> Tensor:
    want_tensor(fn, "input", input)
    want_tensor(fn, "grid", grid)
    n = input.ndim - 2
    if n not in (2, 3) or grid.ndim != n + 2 or grid.shape[-1] != n or \
            grid.shape[0] != input.shape[0]:
        raise ShapeError(f"{fn}: expected input (N, C, H, W) with grid (N, H_out, W_out, 2), or "
                         f"5-D input with grid (N, D_out, H_out, W_out, 3), got input "
                         f"{fmt_shape(input.shape)} and grid {fmt_shape(grid.shape)}")
    if mode not in _MODES:
        raise ArgumentError(f"{fn}: mode must be one of {_MODES}, got {mode!r}")
    if padding not in _PADDINGS:
        raise ArgumentError(f"{fn}: padding_mode must be one of {_PADDINGS}, got {padding!r}")
    if mode == "bicubic" and n != 2:
        raise ArgumentError(f"{fn}: mode='bicubic' needs 4-D input, got "
                            f"{fmt_shape(input.shape)}")
    b, c = input.shape[0], input.shape[1]
    outs = tuple(grid.shape[1:-1])
    q = 1
    for v in outs:
        q *= v
    g = reshape(grid, b, q, n).to(input.dtype)
    sizes = tuple(input.shape[2:])
    reader = _Reader(input)
    # grid's last dim is (x, y[, z]): x indexes the last spatial dim
    raw = [_unnormalize(g[:, :, n - 1 - i], sizes[i], align) for i in range(n)]
    if mode == "bicubic":
        starts = [ops.floor(r).detach() for r in raw]
        ws = [_cubic(r - s) for r, s in zip(raw, starts, strict=True)]
        out = None
        for i, j in itertools.product(range(4), range(4)):
            pos = [_pad_coord(starts[0] + (i - 1), sizes[0], padding, align),
                   _pad_coord(starts[1] + (j - 1), sizes[1], padding, align)]
            val = reader.read([p.detach().to(dt.int64) for p in pos])
            term = val * reshape(ws[0][i] * ws[1][j], b, 1, q)
            out = term if out is None else out + term
    else:
        coords = [_pad_coord(r, sizes[i], padding, align) for i, r in enumerate(raw)]
        if mode == "nearest":
            out = reader.read([ops.round(x).detach().to(dt.int64) for x in coords])
        else:
            lows = [ops.floor(x).detach() for x in coords]
            fracs = [x - lo for x, lo in zip(coords, lows, strict=True)]
            out = None
            for corner in itertools.product((0, 1), repeat=n):
                w = None
                pos = []
                for i, k in enumerate(corner):
                    wi = fracs[i] if k else 1.0 - fracs[i]
                    w = wi if w is None else w * wi
                    pos.append((lows[i] + k).to(dt.int64))
                term = reader.read(pos) * reshape(w, b, 1, q)
                out = term if out is None else out + term
    return reshape(out, b, c, *outs)


def grid_sample(input: Tensor, grid: Tensor, mode: str = "bilinear",
                padding_mode: str = "zeros", align_corners: bool | None = None) -> Tensor:
    """Sample ``input`` (N, C, H, W) at ``grid`` (N, H_out, W_out, 2) positions in [-1, 1]
    (or 5-D input with a (N, D_out, H_out, W_out, 3) grid); ``mode`` "bilinear", "nearest" or
    "bicubic" (4-D), ``padding_mode`` "zeros", "border" or "reflection".

    >>> import kiln, kiln.nn.functional as F
    >>> F.grid_sample(kiln.ones(1, 1, 3, 3), kiln.zeros(1, 2, 2, 2)).shape
    (1, 1, 2, 2)
    """
    return _sample("grid_sample", input, grid, mode, padding_mode, bool(align_corners))


def grid_sampler_2d(input: Tensor, grid: Tensor, interpolation_mode: int, padding_mode: int,
                    align_corners: bool) -> Tensor:
    """aten's ``grid_sampler_2d``: ``grid_sample`` with the modes as ints (0 bilinear,
    1 nearest, 2 bicubic; padding 0 zeros, 1 border, 2 reflection).

    >>> import kiln
    >>> kiln.grid_sampler_2d(kiln.ones(1, 1, 2, 2), kiln.zeros(1, 1, 1, 2), 0, 0, False).item()
    1.0
    """
    return _sample("grid_sampler_2d", input, grid, _MODES[interpolation_mode],
                   _PADDINGS[padding_mode], bool(align_corners))


def grid_sampler_3d(input: Tensor, grid: Tensor, interpolation_mode: int, padding_mode: int,
                    align_corners: bool) -> Tensor:
    """aten's ``grid_sampler_3d`` (5-D input; 0 trilinear, 1 nearest).

    >>> import kiln
    >>> kiln.grid_sampler_3d(kiln.ones(1, 1, 2, 2, 2), kiln.zeros(1, 1, 1, 1, 3), 0, 0,
    ...                      False).item()
    1.0
    """
    return _sample("grid_sampler_3d", input, grid, _MODES[interpolation_mode],
                   _PADDINGS[padding_mode], bool(align_corners))


def affine_grid(theta: Tensor, size: Any, align_corners: bool | None = None) -> Tensor:
    """The sampling grid of the affine maps ``theta`` (N, 2, 3) over an output of ``size``
    (N, C, H, W), or (N, 3, 4) over (N, C, D, H, W), for ``grid_sample``.

    >>> import kiln, kiln.nn.functional as F
    >>> eye = kiln.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    >>> F.affine_grid(eye, (1, 1, 1, 2), align_corners=True).tolist()
    [[[[-1.0, 0.0], [1.0, 0.0]]]]
    """
    from kiln.core.creation import linspace, ones

    fn = "affine_grid"
    want_tensor(fn, "theta", theta)
    size = tuple(int(v) for v in size)
    n = len(size) - 2
    if n not in (2, 3) or tuple(theta.shape[1:]) != (n, n + 1) or theta.shape[0] != size[0]:
        raise ShapeError(f"{fn}: expected theta (N, 2, 3) with size (N, C, H, W), or (N, 3, 4) "
                         f"with (N, C, D, H, W), got theta {fmt_shape(theta.shape)} and size "
                         f"{size}")
    spatial = size[2:]

    def base(steps: int) -> Tensor:
        if steps <= 1:  # torch's single step sits at 0
            return linspace(0.0, 0.0, steps, dtype=theta.dtype)
        v = linspace(-1.0, 1.0, steps, dtype=theta.dtype)
        if not align_corners:
            v = v * ((steps - 1) / steps)
        return v

    axes = [base(s) for s in reversed(spatial)]  # x (last dim) first
    grids = []
    for i, a in enumerate(axes):
        shape = [1] * n
        shape[n - 1 - i] = spatial[n - 1 - i]
        grids.append(reshape(a, *shape).expand(*spatial))
    grids.append(ones(*spatial, dtype=theta.dtype))
    coords = reshape(stack(grids, -1), 1, -1, n + 1)  # (1, P, n + 1)
    out = ops.matmul(coords.expand(size[0], coords.shape[1], n + 1), theta.transpose(1, 2))
    return reshape(out, size[0], *spatial, n)
