"""Shape and dtype rules shared by the meta functions of many ops."""

from __future__ import annotations

from typing import Any

from kiln.core import dtypes as dt
from kiln.core.prims.registry import TensorMeta
from kiln.errors import ArgumentError, DTypeError, ShapeError, ValueArgumentError
from kiln.symbolic.guards import is_one, same
from kiln.symbolic.sizes import Size, SymInt


def fmt_shape(shape: Any) -> str:
    """A shape for messages: ``(2, 3)``, ``(B, 4)``, ``()``, ``(5,)``."""
    dims = [str(d) for d in shape]
    return f"({dims[0]},)" if len(dims) == 1 else "(" + ", ".join(dims) + ")"


def is_meta(value: Any) -> bool:
    return isinstance(value, TensorMeta)


def broadcast_shapes(op: str, *shapes: tuple) -> tuple:
    """NumPy broadcasting over possibly symbolic dims.

    A symbolic dim meets a static 1 (it wins), an identical expression, or a size it is
    assumed equal to (a guard, see kiln.symbolic.guards). It never broadcasts as a 1 itself: a graph
    (and the backends' index arithmetic) cannot stretch a dim whose size is unknown.
    """
    ndim = max((len(s) for s in shapes), default=0)
    out: list[Size] = []
    for i in range(ndim):
        dim: Size = 1
        for s in shapes:
            j = i - (ndim - len(s))
            if j < 0:
                continue
            d = s[j]
            if is_one(d) or same(d, dim):
                continue
            if is_one(dim):
                dim = d
                continue
            symbolic = isinstance(d, SymInt) or isinstance(dim, SymInt)
            if not symbolic or dim != d:  # (symbolic: a guard that they are equal)
                hint = " (a symbolic size broadcasts against 1 or an equal size only)" \
                    if symbolic else ""
                raise ShapeError(
                    f"{op}: shapes {' and '.join(fmt_shape(x) for x in shapes)} do "
                    f"not broadcast (dim {i - ndim}: {dim} vs {d}){hint}"
                )
        out.append(dim)
    return tuple(out)


def promote(op: str, *args: Any) -> dt.DType:
    """PyTorch promotion over tensor metas and Python scalars."""
    dims, zeros, scalars = [], [], []
    for a in args:
        if isinstance(a, TensorMeta):
            (dims if a.shape else zeros).append(a.dtype)
        elif isinstance(a, (bool, int, float)):
            scalars.append(dt.scalar_dtype(a))
        else:
            raise ArgumentError(f"{op}: expected a tensor or a number, got {type(a).__name__}")
    return dt.result_type(dims, zeros, scalars)


def shape_of(a: Any) -> tuple:
    return a.shape if isinstance(a, TensorMeta) else ()


def norm_dim(op: str, dim: int, ndim: int, arg: str = "dim") -> int:
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise ArgumentError(f"{op}: {arg} must be an int, got {type(dim).__name__}")
    bound = max(ndim, 1)
    if not -bound <= dim < bound:
        raise ShapeError(f"{op}: {arg}={dim} is out of range for a tensor of rank {ndim} "
                         f"(expected {-bound} <= {arg} < {bound})")
    return dim % bound


def norm_dims(op: str, dims: Any, ndim: int) -> tuple[int, ...]:
    """Normalize a reduction's ``dims`` (None = all) to sorted, unique, non-negative ints."""
    if dims is None:
        return tuple(range(ndim))
    if isinstance(dims, int):
        dims = (dims,)
    out = sorted({norm_dim(op, d, ndim) for d in dims})
    if len(out) != len(tuple(dims)):
        raise ValueArgumentError(f"{op}: dims {tuple(dims)} repeat a dim")
    if ndim == 0:
        return ()  # a 0-d tensor takes dim 0 and -1 (torch) and has nothing to reduce
    return tuple(out)


def reduced_shape(shape: tuple, dims: tuple[int, ...], keepdim: bool) -> tuple:
    if keepdim:
        return tuple(1 if i in dims else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in dims)


def require_tensor(op: str, value: Any, arg: str) -> TensorMeta:
    if not isinstance(value, TensorMeta):
        raise ArgumentError(f"{op}: {arg} must be a tensor, got {type(value).__name__}")
    return value


def require_float(op: str, m: TensorMeta, arg: str = "input") -> None:
    if not m.dtype.is_floating:
        raise DTypeError(f"{op}: {arg} must be floating point, got {m.dtype}")


def check_shape_arg(op: str, shape: Any, arg: str = "shape") -> tuple:
    if not isinstance(shape, tuple):
        raise ArgumentError(f"{op}: {arg} must be a tuple of ints, got {type(shape).__name__}")
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, (int, SymInt)):
            raise ArgumentError(f"{op}: {arg} must hold ints, got {shape!r}")
        if isinstance(d, int) and d < 0:
            raise ShapeError(f"{op}: {arg} must be non-negative, got {shape!r}")
    return shape
