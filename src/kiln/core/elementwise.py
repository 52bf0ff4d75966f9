"""torch's elementwise functions that are composites of primitives: the NaN/inf tests
(``isnan``, ``isinf``, ``isfinite``...), ``nan_to_num``, ``nansum``/``nanmean``,
``logaddexp``, ``xlogy``, ``sinc``, ``fmax``/``fmin``, ``frac``, angle conversions, and the
new primitives of :mod:`kiln.core.prims.pointwise_math` under their torch names.

Plain Python over primitives, so autograd, tracing and every backend need nothing new; each
is a ``kiln.X`` function and a Tensor method of the same name (installed by
:func:`install`). Gradients follow torch's where a composite could differ: ``xlogy`` and
``sinc`` give finite gradients at 0, ``logaddexp`` of two equal infinities is that infinity.
"""

from __future__ import annotations

import math
from typing import Any

from kiln.core import dtypes as dt
from kiln.core import functional as F
from kiln.core import prims as ops
from kiln.core.tensor import Tensor
from kiln.core.typeinfo import finfo
from kiln.errors import ArgumentError, DTypeError


def _tensor(fn: str, x: Any) -> Tensor:
    if not isinstance(x, Tensor):
        raise ArgumentError(f"{fn}: input must be a kiln.Tensor, got {type(x).__name__}")
    return x


def _floating(x: Tensor) -> Tensor:
    return x if x.dtype.is_floating else ops.cast(x, dtype=dt.to_float(x.dtype))


# ------------------------------------------------------------------------------------------
# NaN and infinity


def isnan(input: Tensor) -> Tensor:
    """Where ``input`` is NaN (never for integers and bools).

    >>> import kiln
    >>> kiln.isnan(kiln.tensor([1.0, float("nan")])).tolist()
    [False, True]
    """
    return ops.ne(_tensor("isnan", input), input)


def isinf(input: Tensor) -> Tensor:
    """Where ``input`` is +inf or -inf.

    >>> import kiln
    >>> kiln.isinf(kiln.tensor([1.0, float("-inf"), float("nan")])).tolist()
    [False, True, False]
    """
    x = _tensor("isinf", input)
    if not x.dtype.is_floating:
        return ops.ne(x, x)
    return ops.eq(ops.abs(x), math.inf)


def isposinf(input: Tensor) -> Tensor:
    """Where ``input`` is +inf.

    >>> import kiln
    >>> kiln.isposinf(kiln.tensor([float("inf"), float("-inf")])).tolist()
    [True, False]
    """
    x = _tensor("isposinf", input)
    return ops.eq(x, math.inf) if x.dtype.is_floating else ops.ne(x, x)


def isneginf(input: Tensor) -> Tensor:
    """Where ``input`` is -inf.

    >>> import kiln
    >>> kiln.isneginf(kiln.tensor([float("inf"), float("-inf")])).tolist()
    [False, True]
    """
    x = _tensor("isneginf", input)
    return ops.eq(x, -math.inf) if x.dtype.is_floating else ops.ne(x, x)


def isfinite(input: Tensor) -> Tensor:
    """Where ``input`` is neither NaN nor infinite (always for integers and bools).

    >>> import kiln
    >>> kiln.isfinite(kiln.tensor([1.0, float("inf"), float("nan")])).tolist()
    [True, False, False]
    """
    x = _tensor("isfinite", input)
    if not x.dtype.is_floating:
        return ops.eq(x, x)
    return ops.lt(ops.abs(x), math.inf)  # False for NaN too: every comparison with it is


def nan_to_num(input: Tensor, nan: float = 0.0, posinf: float | None = None,
               neginf: float | None = None) -> Tensor:
    """Replace NaN by ``nan`` and the infinities by ``posinf``/``neginf`` (by default the
    largest and lowest finite values of the dtype). Integers come back unchanged.

    >>> import kiln
    >>> kiln.nan_to_num(kiln.tensor([float("nan"), float("inf"), -1.0]), posinf=9.0).tolist()
    [0.0, 9.0, -1.0]
    """
    x = _tensor("nan_to_num", input)
    if not x.dtype.is_floating:
        return x
    info = finfo(x.dtype)
    hi = info.max if posinf is None else posinf
    lo = info.min if neginf is None else neginf
    x = ops.where(isnan(x), float(nan), x)
    x = ops.where(ops.eq(x, math.inf), float(hi), x)
    return ops.where(ops.eq(x, -math.inf), float(lo), x)


def nansum(input: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None
           ) -> Tensor:
    """The sum, NaNs counted as zero.

    >>> import kiln
    >>> kiln.nansum(kiln.tensor([1.0, float("nan"), 2.0])).item()
    3.0
    """
    x = _tensor("nansum", input)
    if x.dtype.is_floating:
        x = ops.where(isnan(x), 0.0, x)
    return F.sum(x, dim, keepdim, dtype=dtype)


def nanmean(input: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None
            ) -> Tensor:
    """The mean over the values that are not NaN (NaN where all are).

    >>> import kiln
    >>> kiln.nanmean(kiln.tensor([1.0, float("nan"), 3.0])).item()
    2.0
    """
    x = _tensor("nanmean", input)
    if not x.dtype.is_floating:
        raise DTypeError(f"nanmean: input must be floating point, got {x.dtype}")
    keep = ops.logical_not(isnan(x))
    total = F.sum(ops.where(keep, x, 0.0), dim, keepdim, dtype=dtype)
    return ops.div(total, F.sum(ops.cast(keep, dtype=total.dtype), dim, keepdim))


def count_nonzero(input: Tensor, dim: Any = None) -> Tensor:
    """How many entries are not zero (int64), over ``dim`` or everything.

    >>> import kiln
    >>> kiln.count_nonzero(kiln.tensor([[0, 1], [2, 0]]), dim=0).tolist()
    [1, 1]
    """
    x = _tensor("count_nonzero", input)
    return F.sum(ops.cast(ops.ne(x, 0), dtype=dt.int64), dim)


# ------------------------------------------------------------------------------------------
# arithmetic


def frac(input: Tensor) -> Tensor:
    """The fractional part, ``input - trunc(input)``, with the sign of ``input``.

    >>> import kiln
    >>> kiln.frac(kiln.tensor([2.5, -1.25])).tolist()
    [0.5, -0.25]
    """
    x = _tensor("frac", input)
    return ops.sub(x, ops.trunc(x))


def sgn(input: Tensor) -> Tensor:
    """The sign (for real tensors, :func:`kiln.sign`).

    >>> import kiln
    >>> kiln.sgn(kiln.tensor([-3.0, 0.0, 2.0])).tolist()
    [-1.0, 0.0, 1.0]
    """
    return ops.sign(_tensor("sgn", input))


def negative(input: Tensor) -> Tensor:
    """``-input`` (torch.negative, an alias of neg).

    >>> import kiln
    >>> kiln.negative(kiln.tensor([1.0, -2.0])).tolist()
    [-1.0, 2.0]
    """
    return ops.neg(_tensor("negative", input))


def positive(input: Tensor) -> Tensor:
    """``input`` itself (torch.positive; bool is refused, as in torch).

    >>> import kiln
    >>> x = kiln.ones(2)
    >>> kiln.positive(x) is x
    True
    """
    x = _tensor("positive", input)
    if x.dtype.is_bool:
        raise DTypeError("positive: not defined for bool tensors (torch refuses them too)")
    return x


def rad2deg(input: Tensor) -> Tensor:
    """Radians to degrees.

    >>> import kiln
    >>> round(kiln.rad2deg(kiln.tensor([3.141592653589793])).item(), 3)
    180.0
    """
    return ops.mul(_floating(_tensor("rad2deg", input)), 180.0 / math.pi)


def deg2rad(input: Tensor) -> Tensor:
    """Degrees to radians.

    >>> import kiln
    >>> round(kiln.deg2rad(kiln.tensor([180.0])).item(), 5)
    3.14159
    """
    return ops.mul(_floating(_tensor("deg2rad", input)), math.pi / 180.0)


def rsub(input: Any, other: Any, *, alpha: Any = 1) -> Tensor:
    """``other - alpha * input`` (torch.rsub: sub with the operands swapped).

    >>> import kiln
    >>> kiln.rsub(kiln.tensor([1.0, 2.0]), 10.0).tolist()
    [9.0, 8.0]
    """
    return ops.sub(other, input if alpha == 1 else ops.mul(input, alpha))


def float_power(input: Any, exponent: Any) -> Tensor:
    """``input ** exponent`` computed in float64, as torch.float_power.

    >>> import kiln
    >>> kiln.float_power(kiln.tensor([2, 3]), 2).dtype
    kiln.float64
    """
    def f64(v: Any) -> Any:
        return ops.cast(v, dtype=dt.float64) if isinstance(v, Tensor) else float(v)

    if not isinstance(input, Tensor) and not isinstance(exponent, Tensor):
        raise ArgumentError("float_power: input or exponent must be a kiln.Tensor")
    return ops.pow(f64(input), f64(exponent))


def xlogy(input: Any, other: Any) -> Tensor:
    """``input * log(other)``, 0 where ``input`` is 0 (unless ``other`` is NaN), with
    gradients that are finite there, as torch.xlogy.

    >>> import kiln
    >>> kiln.xlogy(kiln.tensor([0.0, 2.0]), kiln.tensor([0.0, 1.0])).tolist()
    [0.0, 0.0]
    """
    a = input if isinstance(input, Tensor) else None
    b = other if isinstance(other, Tensor) else None
    if a is None and b is None:
        raise ArgumentError("xlogy: input or other must be a kiln.Tensor")
    zero = ops.eq(input, 0.0)
    safe = ops.where(zero, 1.0, other)  # log(other) where input is 0 never reaches a grad
    out = ops.where(zero, 0.0, ops.mul(input, ops.log(safe)))
    return ops.where(ops.ne(other, other), math.nan, out)


def logaddexp(input: Tensor, other: Any) -> Tensor:
    """``log(exp(input) + exp(other))`` without overflow.

    >>> import kiln
    >>> round(kiln.logaddexp(kiln.tensor([1000.0]), kiln.tensor([1000.0])).item(), 4)
    1000.6932
    """
    _tensor("logaddexp", input)
    m = ops.maximum(input, other)
    out = ops.add(m, ops.log1p(ops.exp(ops.neg(ops.abs(ops.sub(input, other))))))
    # two equal infinities: their difference is NaN, the answer that infinity
    return ops.where(ops.logical_and(isinf(m), ops.eq(input, other)), m, out)


def logaddexp2(input: Tensor, other: Any) -> Tensor:
    """``log2(2**input + 2**other)`` without overflow.

    >>> import kiln
    >>> kiln.logaddexp2(kiln.tensor([3.0]), kiln.tensor([3.0])).item()
    4.0
    """
    _tensor("logaddexp2", input)
    ln2 = math.log(2.0)
    return ops.div(logaddexp(ops.mul(input, ln2), ops.mul(other, ln2)), ln2)


def sinc(input: Tensor) -> Tensor:
    """The normalized sinc, ``sin(pi x) / (pi x)``, 1 at 0 (with gradient 0 there).

    >>> import kiln
    >>> [round(v, 4) for v in kiln.sinc(kiln.tensor([0.0, 0.5])).tolist()]
    [1.0, 0.6366]
    """
    x = _floating(_tensor("sinc", input))
    zero = ops.eq(x, 0.0)
    px = ops.mul(ops.where(zero, 1.0, x), math.pi)
    return ops.where(zero, 1.0, ops.div(ops.sin(px), px))


def _ignoring_nan(pick: Any, fn: str, input: Tensor, other: Any) -> Tensor:
    _tensor(fn, input)
    out = ops.where(ops.ne(other, other), input, pick(input, other))
    return ops.where(ops.ne(input, input), other, out)


def fmax(input: Tensor, other: Any) -> Tensor:
    """The elementwise maximum, ignoring a NaN on one side (NaN only where both are).

    >>> import kiln
    >>> kiln.fmax(kiln.tensor([1.0, float("nan")]), kiln.tensor([float("nan"), 2.0])).tolist()
    [1.0, 2.0]
    """
    return _ignoring_nan(ops.maximum, "fmax", input, other)


def fmin(input: Tensor, other: Any) -> Tensor:
    """The elementwise minimum, ignoring a NaN on one side (NaN only where both are).

    >>> import kiln
    >>> kiln.fmin(kiln.tensor([1.0, float("nan")]), kiln.tensor([float("nan"), 2.0])).tolist()
    [1.0, 2.0]
    """
    return _ignoring_nan(ops.minimum, "fmin", input, other)


def heaviside(input: Tensor, values: Any) -> Tensor:
    """The step function: 0 below zero, 1 above, ``values`` at zero.

    >>> import kiln
    >>> kiln.heaviside(kiln.tensor([-1.0, 0.0, 2.0]), kiln.tensor(0.5)).tolist()
    [0.0, 0.5, 1.0]
    """
    x = _tensor("heaviside", input)
    step = ops.cast(ops.gt(x, 0), dtype=x.dtype)
    return ops.where(ops.eq(x, 0), values, step)


def logical_xor(input: Tensor, other: Any) -> Tensor:
    """Whether exactly one of ``input`` and ``other`` is nonzero.

    >>> import kiln
    >>> kiln.logical_xor(kiln.tensor([True, False]), kiln.tensor([True, True])).tolist()
    [False, True]
    """
    _tensor("logical_xor", input)
    return ops.ne(ops.ne(input, 0), ops.ne(other, 0))


# the primitives of kiln.core.prims.pointwise_math under their torch names
PRIMITIVES = ("asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "tan",
              "log2", "log10", "trunc", "signbit", "atan2", "hypot", "copysign")
# torch's aliases of them
ALIASES = {"arcsin": "asin", "arccos": "acos", "arctan": "atan", "arcsinh": "asinh",
           "arccosh": "acosh", "arctanh": "atanh", "arctan2": "atan2", "fix": "trunc"}
# Names installed as kiln.X functions and as Tensor methods.
FUNCTIONS = ("negative", "isnan", "isinf", "isposinf", "isneginf", "isfinite", "nan_to_num",
             "nansum", "nanmean", "count_nonzero", "frac", "sgn", "positive", "rad2deg", "deg2rad",
             "rsub", "float_power", "xlogy", "logaddexp", "logaddexp2", "sinc", "fmax", "fmin",
             "heaviside", "logical_xor")
METHODS = tuple(n for n in FUNCTIONS if n != "rsub")


def functions() -> dict[str, Any]:
    """Every kiln.X function this module provides (composites, primitives, aliases)."""
    glob = globals()
    out = {name: glob[name] for name in FUNCTIONS}
    out.update({name: getattr(ops, name) for name in PRIMITIVES})
    out.update({alias: getattr(ops, name) for alias, name in ALIASES.items()})
    return out


def install(cls: type) -> None:
    """Attach the Tensor methods of this module (and of the new primitives) to ``cls``."""
    fns = functions()
    for name in (*METHODS, *PRIMITIVES, *ALIASES):
        setattr(cls, name, fns[name])
