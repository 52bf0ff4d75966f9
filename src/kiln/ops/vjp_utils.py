"""Helpers the vjp rules share, written with Kiln ops so they also run on tracers."""

from __future__ import annotations

from typing import Any


def sum_to(g: Any, shape: tuple) -> Any:
    """Sum a broadcast gradient ``g`` back down to ``shape`` (undoing NumPy broadcasting)."""
    if g is None:
        return None
    gshape = tuple(g.shape)
    if gshape == tuple(shape):
        return g
    from kiln import ops

    lead = len(gshape) - len(shape)
    dims = list(range(lead))
    for i, d in enumerate(shape):
        if d == 1 and gshape[lead + i] != 1:
            dims.append(lead + i)
    out = ops.sum(g, dims=tuple(dims), keepdim=True) if dims else g
    if tuple(out.shape) != tuple(shape):
        out = ops.reshape(out, shape=tuple(shape))
    return out


def unsqueeze_reduced(g: Any, in_shape: tuple, dims: tuple, keepdim: bool) -> Any:
    """Put reduced dims back as size 1 so ``g`` broadcasts against the reduction's input."""
    if keepdim:
        return g
    from kiln import ops

    shape = tuple(1 if i in dims else d for i, d in enumerate(in_shape))
    return ops.reshape(g, shape=shape)
