"""More of torch's numeric functions, as composites: ``logit``, ``renorm``, ``gradient``,
``scalar_tensor``, ``kiln.fft.fftshift`` / ``ifftshift`` (real
tensors: the shifts are rolls), and ``Tensor.__rdiv__``.

>>> import kiln
>>> kiln.gradient(kiln.tensor([1.0, 4.0, 9.0, 16.0]))[0].tolist()
[3.0, 4.0, 6.0, 7.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kiln.core import prims as ops
from kiln.core.prims.shapes import norm_dims
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, DTypeError, ShapeError, ValueArgumentError


def _tensor(fn: str, x: Any, arg: str = "input") -> Tensor:
    if not isinstance(x, Tensor):
        raise ArgumentError(f"{fn}: {arg} must be a kiln.Tensor, got {type(x).__name__}")
    return x


def logit(input: Tensor, eps: float | None = None) -> Tensor:
    """log(p / (1 - p)); with ``eps``, p is first clamped to [eps, 1 - eps].

    >>> import kiln
    >>> [round(v, 4) for v in kiln.logit(kiln.tensor([0.25, 0.5])).tolist()]
    [-1.0986, 0.0]
    """
    x = _tensor("logit", input)
    if not x.dtype.is_floating:
        x = x.float()
    if eps is not None:
        x = x.clamp(eps, 1.0 - eps)
    return (x / (1.0 - x)).log()


def renorm(input: Tensor, p: float, dim: int, maxnorm: float) -> Tensor:
    """Each slice along ``dim`` scaled so that its ``p``-norm is at most ``maxnorm`` (slices
    within it are unchanged; as torch, the scale is maxnorm / (norm + 1e-7)).

    >>> import kiln
    >>> kiln.renorm(kiln.tensor([[3.0, 4.0], [0.3, 0.4]]), 2, 0, 1.0)[1].tolist()
    [0.30000001192092896, 0.4000000059604645]
    """
    x = _tensor("renorm", input)
    if not x.dtype.is_floating:
        raise DTypeError(f"renorm: input must be floating point, got {x.dtype}")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or p <= 0:
        raise ValueArgumentError(f"renorm: p must be a positive number, got {p!r}")
    if x.ndim < 1:
        raise ShapeError("renorm: input must have at least 1 dim")
    (d,) = norm_dims("renorm", (dim,), x.ndim)
    others = tuple(i for i in range(x.ndim) if i != d)
    from kiln.core.linalg import vector_norm

    norms = vector_norm(x, p, others, keepdim=True) if others else x.abs()
    scale = maxnorm / (norms + 1e-7)
    one = ops.full(shape=(), value=1.0, dtype=x.dtype)
    return x * ops.where(norms > maxnorm, scale, one)


def _edge(x: Tensor, d: int, h: Any, order: int, at_start: bool) -> Tensor:
    n = x.shape[d]
    pick = lambda i: x.narrow(d, i if i >= 0 else n + i, 1)  # noqa: E731
    if order == 1:
        return (pick(1) - pick(0)) / h if at_start else (pick(-1) - pick(-2)) / h
    if at_start:
        return (-1.5 * pick(0) + 2.0 * pick(1) - 0.5 * pick(2)) / h
    return (0.5 * pick(-3) - 2.0 * pick(-2) + 1.5 * pick(-1)) / h


def gradient(input: Tensor, *, spacing: Any = 1, dim: Any = None,
             edge_order: int = 1) -> tuple[Tensor, ...]:
    """The derivative estimated by central differences inside and one-sided differences
    (first or second order) at the edges, along each of ``dim`` (all dims by default), with
    a uniform ``spacing`` (a number, or one per dim).

    >>> import kiln
    >>> kiln.gradient(kiln.tensor([1.0, 4.0, 9.0, 16.0]), spacing=2.0)[0].tolist()
    [1.5, 2.0, 3.0, 3.5]
    """
    x = _tensor("gradient", input)
    if edge_order not in (1, 2):
        raise ValueArgumentError(f"gradient: edge_order must be 1 or 2, got {edge_order!r}")
    dims = tuple(range(x.ndim)) if dim is None else \
        norm_dims("gradient", (dim,) if isinstance(dim, int) else tuple(dim), x.ndim)
    if spacing is None:
        spacing = 1
    if isinstance(spacing, (list, tuple)):
        if len(spacing) != len(dims):
            raise ValueArgumentError(f"gradient: spacing has {len(spacing)} values for "
                                     f"{len(dims)} dims")
        steps = list(spacing)
    else:
        steps = [spacing] * len(dims)
    for s in steps:
        if isinstance(s, Tensor):
            raise ArgumentError("gradient: spacing as coordinate tensors is not supported; "
                                "pass numbers (uniform spacing)")
    if not x.dtype.is_floating:
        x = x.float()
    out = []
    for d, h in zip(dims, steps, strict=True):
        n = x.shape[d]
        if n < edge_order + 1:
            raise ShapeError(f"gradient: dim {d} has {n} values; edge_order={edge_order} "
                             f"needs at least {edge_order + 1}")
        inner = (x.narrow(d, 2, n - 2) - x.narrow(d, 0, n - 2)) / (2.0 * h)
        parts = [_edge(x, d, h, edge_order, True), inner, _edge(x, d, h, edge_order, False)]
        out.append(ops.cat(*[p for p in parts if p.shape[d]], dim=d))
    return tuple(out)


def scalar_tensor(s: Any, *, dtype: Any = None, layout: Any = None, device: Any = None,
                  pin_memory: Any = None, requires_grad: bool = False) -> Tensor:
    """A 0-d tensor holding the number ``s`` (float32 by default, as torch).

    >>> import kiln
    >>> kiln.scalar_tensor(3).dtype
    kiln.float32
    """
    from kiln.core.creation import tensor
    from kiln.core.devices import check_device
    from kiln.core.dtypes import float32

    check_device("scalar_tensor", device)
    if isinstance(s, Tensor):
        s = s.item()
    return tensor(s, dtype=float32 if dtype is None else dtype, requires_grad=requires_grad)


def rdiv(self: Tensor, other: Any) -> Tensor:
    """``other / self`` (torch's ``Tensor.__rdiv__``).

    >>> import kiln
    >>> kiln.tensor([2.0, 4.0]).__rdiv__(8.0).tolist()
    [4.0, 2.0]
    """
    return self.__rtruediv__(other)


def _shift(fn: str, x: Any, dim: Any, sign: int) -> Tensor:
    x = _tensor(fn, x)
    dims = tuple(range(x.ndim)) if dim is None else \
        norm_dims(fn, (dim,) if isinstance(dim, int) else tuple(dim), x.ndim)
    if not dims:
        return x.clone()
    shifts = tuple(sign * (x.shape[d] // 2) if sign > 0 else -(x.shape[d] // 2) for d in dims)
    return x.roll(shifts, dims)


def fftshift(input: Tensor, dim: int | Sequence[int] | None = None) -> Tensor:
    """The zero-frequency term moved to the middle: a roll by n // 2 along each dim.

    >>> import kiln
    >>> kiln.fft.fftshift(kiln.arange(5)).tolist()
    [3, 4, 0, 1, 2]
    """
    return _shift("fft.fftshift", input, dim, 1)


def ifftshift(input: Tensor, dim: int | Sequence[int] | None = None) -> Tensor:
    """The inverse of :func:`fftshift`: a roll by -(n // 2) along each dim.

    >>> import kiln
    >>> kiln.fft.ifftshift(kiln.arange(5)).tolist()
    [2, 3, 4, 0, 1]
    """
    return _shift("fft.ifftshift", input, dim, -1)


FUNCTIONS = ("logit", "renorm", "gradient", "scalar_tensor")
METHODS = ("logit", "renorm")


def install(cls: type) -> None:
    """Attach the Tensor methods of this module (and ``__rdiv__``)."""
    glob = globals()
    for name in METHODS:
        setattr(cls, name, glob[name])
    cls.__rdiv__ = rdiv
