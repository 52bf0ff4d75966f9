"""Helpers the vjp rules share, written with Kiln ops so they also run on tracers."""

from __future__ import annotations

from typing import Any


def sum_to(g: Any, shape: tuple) -> Any:
    """Sum a broadcast gradient ``g`` back down to ``shape`` (undoing NumPy broadcasting)."""
    if g is None:
        return None
    from kiln.symbolic.guards import is_one, same_shape

    gshape = tuple(g.shape)
    if same_shape(gshape, shape):
        return g
    from kiln.core import prims as ops

    lead = len(gshape) - len(shape)
    dims = list(range(lead))
    for i, d in enumerate(shape):
        # A static 1 that the output stretched (a symbolic dim is never stretched).
        if is_one(d) and not is_one(gshape[lead + i]):
            dims.append(lead + i)
    out = ops.sum(g, dims=tuple(dims), keepdim=True) if dims else g
    if not same_shape(out.shape, shape):
        out = ops.reshape(out, shape=tuple(shape))
    return out


def unsqueeze_reduced(g: Any, in_shape: tuple, dims: tuple, keepdim: bool) -> Any:
    """Put reduced dims back as size 1 so ``g`` broadcasts against the reduction's input."""
    if keepdim:
        return g
    from kiln.core import prims as ops

    shape = tuple(1 if i in dims else d for i, d in enumerate(in_shape))
    return ops.reshape(g, shape=shape)
