"""Python operators and methods of :class:`kiln.Tensor`, all routed through dispatch."""

from __future__ import annotations

from typing import Any

from kiln.core import functional as F
from kiln.core import prims as ops
from kiln.core.tensor import Tensor

_NUMBERS = (Tensor, bool, int, float)


def _is_tensor(x: Any) -> bool:
    return isinstance(x, Tensor)


def _binary(op: Any, reflected: bool = False) -> Any:
    """The method for a binary operator (``reflected``: ``__radd__`` and friends)."""
    if reflected:
        def method(self: Any, other: Any) -> Any:
            if not isinstance(other, _NUMBERS):
                other = _coerce(other)
                if other is None:
                    return NotImplemented
            return op(other, self)
    else:
        def method(self: Any, other: Any) -> Any:
            if not isinstance(other, _NUMBERS):
                other = _coerce(other)
                if other is None:
                    return NotImplemented
            return op(self, other)

    return method


def _rbinary(op: Any) -> Any:
    return _binary(op, reflected=True)


def _inplace(op: Any) -> Any:
    """``x.op_(other)`` / ``x op= other``: the out-of-place op written back into ``x``."""
    name = f"{op.__name__}_"

    def method(self: Any, other: Any) -> Any:
        return self._inplace(lambda s: op(s, other), name)

    return method


def _coerce(value: Any) -> Any:
    import numpy as np

    from kiln.symbolic.sizes import SymInt

    if isinstance(value, SymInt):
        return sym_tensor(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return Tensor(value)
    return None


def _is_int(x: Any) -> bool:
    return x.dtype.is_integer or x.dtype.is_bool if _is_tensor(x) else \
        isinstance(x, int)


def floor_divide(a: Any, b: Any) -> Any:
    """``a // b`` rounding toward -inf, as torch; integers stay integers (exact, in integer
    arithmetic). An integer division by zero is an error, as in torch: eagerly, and in
    compiled code (the C backend checks every divisor).

    >>> import kiln
    >>> (kiln.tensor([7, -7]) // 2).tolist(), (kiln.tensor([7.0]) // -2).tolist()
    ([3, -4], [-4.0])
    """
    if _is_int(a) and _is_int(b):
        return ops.floor_divide(a, b)
    return ops.floor(ops.div(a, b))


def remainder(a: Any, b: Any) -> Any:
    """``a % b`` with the sign of ``b`` (Python's and torch.remainder's rule)."""
    return ops.sub(a, ops.mul(floor_divide(a, b), b))


def sym_tensor(size: Any) -> Any:
    """A symbolic size as a 0-d int64 tensor computed in the graph (``x / x.shape[0]`` under a
    symbolic batch): the element count of a ``size``-long vector of ones."""
    from kiln.core import dtypes as dt
    from kiln.core.creation import ones

    return ops.sum(ones(size, dtype=dt.int64), dims=(0,), keepdim=False)


def _max_like(prim: Any, arg: Any) -> Any:
    def method(self: Any, dim: Any = None, keepdim: bool = False) -> Any:
        if isinstance(dim, Tensor):
            return ops.maximum(self, dim) if prim is ops.max else ops.minimum(self, dim)
        if dim is None:
            return prim(self, dims=tuple(range(self.ndim)), keepdim=False)
        from kiln.core.prims.shapes import norm_dim

        d = norm_dim(prim.__name__, dim, self.ndim)
        indices = arg(self, dim=d, keepdim=keepdim)
        if self.ndim:
            # The values at the returned indices: the gradient goes to that element, as in
            # torch (a reduction would share it among ties, which amax/max() do).
            at = indices if keepdim else F.unsqueeze(indices, d)
            values = ops.gather(self, at, dim=d)
            values = values if keepdim else F.squeeze(values, d)
        else:
            values = prim(self, dims=(), keepdim=keepdim)
        from kiln.core.results import MinMax

        return MinMax(values, indices)

    return method


_MAX = _max_like(ops.max, ops.argmax)
_MIN = _max_like(ops.min, ops.argmin)


# Functions under kiln.* with torch's signatures (also the Tensor methods of the same name).


def max(input: Tensor, dim: Any = None, keepdim: bool = False) -> Any:  # noqa: A001
    """``kiln.max(x)``: the maximum; ``kiln.max(x, dim)``: (values, indices) along ``dim``;
    ``kiln.max(x, other)``: the elementwise maximum, as ``torch.max``.

    >>> import kiln
    >>> x = kiln.tensor([[1.0, 5.0], [7.0, 2.0]])
    >>> kiln.max(x).item(), kiln.max(x, 1).values.tolist(), kiln.max(x, 1).indices.tolist()
    (7.0, [5.0, 7.0], [1, 0])
    """
    return _MAX(input, dim, keepdim)


def min(input: Tensor, dim: Any = None, keepdim: bool = False) -> Any:  # noqa: A001
    """``kiln.min`` with the forms of :func:`max`.

    >>> import kiln
    >>> kiln.min(kiln.tensor([[1.0, 5.0], [7.0, 2.0]]), 0).indices.tolist()
    [0, 1]
    """
    return _MIN(input, dim, keepdim)


def argmax(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the first maximum (of the flattened tensor when ``dim`` is None).

    >>> import kiln
    >>> kiln.argmax(kiln.tensor([[1, 5], [7, 2]])).item()
    2
    """
    return ops.argmax(input, dim=dim, keepdim=keepdim)


def argmin(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the first minimum (of the flattened tensor when ``dim`` is None).

    >>> import kiln
    >>> kiln.argmin(kiln.tensor([[1, 5], [7, 2]]), dim=1).tolist()
    [0, 1]
    """
    return ops.argmin(input, dim=dim, keepdim=keepdim)


def prod(input: Tensor, dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
    """Product of the elements (over ``dim``; integers give int64, as torch).

    >>> import kiln
    >>> kiln.prod(kiln.tensor([[1.0, 2.0], [3.0, 4.0]]), 1).tolist()
    [2.0, 12.0]
    """
    return F.prod_(input, dim, keepdim, dtype)


def gather(input: Tensor, dim: int, index: Tensor) -> Tensor:
    """``out[i][j] = input[i][index[i][j]]`` for ``dim=1`` (torch.gather).

    >>> import kiln
    >>> kiln.gather(kiln.tensor([[1, 2], [3, 4]]), 1, kiln.tensor([[1], [0]])).tolist()
    [[2], [3]]
    """
    return ops.gather(input, index, dim=dim)


def scatter_add(input: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """``input`` with ``src[i][j]`` added at ``[i][index[i][j]]`` for ``dim=1`` (duplicates
    accumulate), out of place, as torch.scatter_add.

    >>> import kiln
    >>> kiln.scatter_add(kiln.zeros(2, 3), 1, kiln.tensor([[0, 0], [2, 1]]),
    ...                  kiln.ones(2, 2)).tolist()
    [[2.0, 0.0, 0.0], [0.0, 1.0, 1.0]]
    """
    return _scatter_1d(ops.scatter_add, input, index, src, dim)


def _scatter_1d(prim: Any, input: Tensor, index: Tensor, src: Tensor, dim: int) -> Tensor:
    """``prim(input, index, src, dim=dim)``; a 0-d input (one element, torch takes it) goes
    through a 1-element vector, so no kernel meets a 0-d scatter."""
    if input.ndim == 0 and isinstance(index, Tensor) and index.ndim == 0 and \
            isinstance(src, Tensor) and src.ndim == 0:
        from kiln.core.prims.shapes import norm_dim

        norm_dim(prim.__name__, dim, 0)
        out = prim(ops.reshape(input, shape=(1,)), ops.reshape(index, shape=(1,)),
                   ops.reshape(src, shape=(1,)), dim=0)
        return ops.reshape(out, shape=())
    return prim(input, index, src, dim=dim)


def scatter(input: Tensor, dim: int, index: Tensor, src: Any = None, *, value: Any = None,
            reduce: str | None = None) -> Tensor:
    """``input`` with ``src[i][j]`` written at ``[i][index[i][j]]`` for ``dim=1``, out of place,
    as torch.scatter (a number ``src`` is written everywhere ``index`` points). Of several
    writes to one element the last in row-major order of ``index`` wins (NumPy's
    ``x[idx] = v``), eagerly and on every backend.

    >>> import kiln
    >>> kiln.scatter(kiln.zeros(4), 0, kiln.tensor([1, 3, 1]), kiln.tensor([5.0, 6.0, 7.0]))
    tensor([0., 7., 0., 6.])
    >>> kiln.zeros(2, 2).scatter(1, kiln.tensor([[1], [0]]), 1.5).tolist()
    [[0.0, 1.5], [1.5, 0.0]]
    """
    if src is None:
        src = value
    if reduce not in (None, "add"):
        from kiln.errors import ValueArgumentError

        raise ValueArgumentError(f"scatter: reduce={reduce!r} is not supported (torch "
                                 "deprecates it); use reduce='add' or scatter_reduce-free "
                                 "composites such as scatter_add")
    if isinstance(src, (bool, int, float)):
        from kiln.core.creation import full

        src = full(tuple(index.shape), src, dtype=input.dtype)
    elif not isinstance(src, Tensor):
        from kiln.errors import ArgumentError

        raise ArgumentError(f"scatter: src must be a kiln.Tensor or a Python number, got "
                            f"{type(src).__name__}")
    return _scatter_1d(ops.scatter_add if reduce == "add" else ops.scatter, input, index, src,
                       dim)


def install(cls: type) -> None:
    methods: dict[str, Any] = {
        "__add__": _binary(ops.add), "__radd__": _rbinary(ops.add),
        "__sub__": _binary(ops.sub), "__rsub__": _rbinary(ops.sub),
        "__mul__": _binary(ops.mul), "__rmul__": _rbinary(ops.mul),
        "__truediv__": _binary(ops.div), "__rtruediv__": _rbinary(ops.div),
        "__pow__": _binary(ops.pow), "__rpow__": _rbinary(ops.pow),
        "__matmul__": _binary(F.matmul), "__rmatmul__": _rbinary(F.matmul),
        "__eq__": _binary(ops.eq), "__ne__": _binary(ops.ne),
        "__lt__": _binary(ops.lt), "__le__": _binary(ops.le),
        "__gt__": _binary(ops.gt), "__ge__": _binary(ops.ge),
        # Bitwise, as in torch (on bool tensors the same as the logical ops).
        "__and__": _binary(ops.bitwise_and), "__rand__": _rbinary(ops.bitwise_and),
        "__or__": _binary(ops.bitwise_or), "__ror__": _rbinary(ops.bitwise_or),
        "__xor__": _binary(ops.bitwise_xor), "__rxor__": _rbinary(ops.bitwise_xor),
        "__iand__": _inplace(ops.bitwise_and), "__ior__": _inplace(ops.bitwise_or),
        "__ixor__": _inplace(ops.bitwise_xor),
        "bitwise_and_": _inplace(ops.bitwise_and), "bitwise_or_": _inplace(ops.bitwise_or),
        "bitwise_xor_": _inplace(ops.bitwise_xor),
        "bitwise_not_": lambda s: s._inplace(ops.bitwise_not, "bitwise_not_"),
        "__neg__": ops.neg, "__abs__": ops.abs, "__invert__": ops.bitwise_not,
        "__floordiv__": _binary(floor_divide), "__rfloordiv__": _rbinary(floor_divide),
        "__mod__": _binary(remainder), "__rmod__": _rbinary(remainder),
        "floor_divide": _binary(floor_divide), "remainder": _binary(remainder),
        "add": lambda s, o, alpha=1: ops.add(s, o if alpha == 1 else o * alpha),
        "sub": lambda s, o, alpha=1: ops.sub(s, o if alpha == 1 else o * alpha),
        "mul": _binary(ops.mul), "div": _binary(ops.div), "pow": _binary(ops.pow),
        "maximum": ops.maximum, "minimum": ops.minimum,
        "eq": ops.eq, "ne": ops.ne, "lt": ops.lt, "le": ops.le, "gt": ops.gt, "ge": ops.ge,
        "logical_and": ops.logical_and, "logical_or": ops.logical_or,
        "bitwise_and": _binary(ops.bitwise_and), "bitwise_or": _binary(ops.bitwise_or),
        "bitwise_xor": _binary(ops.bitwise_xor),
        "reshape": F.reshape, "view": F.view, "expand": F.expand,
        "expand_as": lambda s, o: F.expand(s, *o.shape),
        "view_as": lambda s, o: F.view(s, *o.shape),
        "reshape_as": lambda s, o: F.reshape(s, *o.shape),
        "permute": F.permute, "transpose": F.transpose, "swapaxes": F.transpose,
        "squeeze": F.squeeze, "unsqueeze": F.unsqueeze, "flatten": F.flatten,
        "flip": F.flip, "narrow": F.narrow, "split": F.split, "chunk": F.chunk,
        "unbind": F.unbind,
        "t": lambda s: F.transpose(s, 0, 1) if s.ndim == 2 else s,
        "sum": F.sum, "mean": F.mean, "var": F.var, "std": F.std, "prod": F.prod_,
        "amax": F.amax, "amin": F.amin, "logsumexp": F.logsumexp,
        "max": _MAX, "min": _MIN, "argmax": argmax, "argmin": argmin,
        "clamp": F.clamp, "clip": F.clamp, "matmul": F.matmul,
        "where": lambda s, cond, other: ops.where(cond, s, other),
        "masked_fill": lambda s, mask, value: ops.where(mask, value, s),
        # Counting (not min/max) so that empty dims give True / False, as in torch.
        "all": lambda s, dim=None, keepdim=False: F.sum(ops.logical_not(s), dim, keepdim) == 0,
        "any": lambda s, dim=None, keepdim=False: F.sum(s.to("bool"), dim, keepdim) > 0,
        "square": lambda s: ops.mul(s, s),
        "exp2": lambda s: ops.pow(2.0, s),
        "softmax": lambda s, dim: _nnf().softmax(s, dim),
        "log_softmax": lambda s, dim: _nnf().log_softmax(s, dim),
        "gather": gather, "scatter_add": scatter_add, "scatter": scatter,
    }
    for name in ("neg", "abs", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos",
                 "tanh", "sigmoid", "erf", "relu", "floor", "ceil", "round", "sign",
                 "logical_not", "reciprocal", "bitwise_not"):
        methods[name] = getattr(ops, name)
    for name, fn in methods.items():
        setattr(cls, name, fn)
    cls.T = property(F.T)  # type: ignore[attr-defined]
    cls.mT = property(F.mT)  # type: ignore[attr-defined]


def _nnf() -> Any:
    from kiln.nn import functional

    return functional
