"""``Tensor.unfold(dimension, size, step)``: the sliding windows of one dim as a new last dim
(torch's view; here a copy made of strided slices, so autograd, tracing and the backends need
nothing new).

The windows are taken by whichever loop is shorter: one strided slice per offset inside the
window (``size`` slices, each holding every window's element at that offset), or one plain
slice per window (``n`` slices). Framing audio (few long windows) and im2col-like uses (many
short windows) both stay a handful of movement ops.
"""

from __future__ import annotations

from kiln.core import functional as F
from kiln.core import prims as ops
from kiln.core.prims.shapes import fmt_shape, norm_dim
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError


def unfold(self: Tensor, dimension: int, size: int, step: int) -> Tensor:
    """Every window of ``size`` elements along ``dimension``, ``step`` apart, as a new last
    dim: the result has ``(L - size) // step + 1`` in place of ``dimension``'s size ``L``.

    >>> import kiln
    >>> kiln.arange(6).unfold(0, 3, 2).tolist()
    [[0, 1, 2], [2, 3, 4]]
    """
    for arg, v in (("size", size), ("step", step)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ArgumentError(f"unfold: {arg} must be an int, got {type(v).__name__}")
    if step <= 0:
        raise ArgumentError(f"unfold: step must be positive, got {step}")
    if size < 0:
        raise ArgumentError(f"unfold: size must be >= 0, got {size}")
    d = norm_dim("unfold", dimension, self.ndim, "dimension")
    x = self if self.ndim else F.reshape(self, 1)
    length = x.shape[d]
    if not isinstance(length, int):
        raise ArgumentError(f"unfold: dimension {d} has the symbolic size {length}; windows "
                            "need a static size")
    if size > length:
        raise ShapeError(f"unfold: size {size} is larger than dimension {d} of shape "
                         f"{fmt_shape(self.shape)} (at most {length})")
    n = (length - size) // step + 1
    if self.ndim == 0:  # torch: a 0-d tensor's only window is itself, shape (size,)
        return F.reshape(x, size)
    if size == 0:  # n empty windows: no elements, reshaped from an empty slice
        shape = (*x.shape[:d], n, *x.shape[d + 1:], 0)
        return F.reshape(ops.slice(x, dim=d, start=0, stop=0, step=1), *shape)
    if size <= n:
        pieces = [ops.slice(x, dim=d, start=j, stop=j + step * (n - 1) + 1, step=step)
                  for j in range(size)]
        return F.stack(pieces, x.ndim)
    windows = [ops.slice(x, dim=d, start=i * step, stop=i * step + size, step=1)
               for i in range(n)]
    out = F.stack(windows, d)  # (..., n, size, ...): move the window dim to the end
    order = [a for a in range(x.ndim + 1) if a != d + 1] + [d + 1]
    return F.permute(out, *order)


def install(cls: type) -> None:
    """Attach ``Tensor.unfold``."""
    cls.unfold = unfold  # type: ignore[attr-defined]

