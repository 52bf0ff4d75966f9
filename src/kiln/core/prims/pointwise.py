"""Pointwise primitives: unary, binary (with broadcasting and promotion), where, cast.

``c_expr`` templates use ``{0}``, ``{1}``, ``{2}`` for the operands and ``k_*`` functions that
the C backend's runtime header defines for every dtype (``_Generic`` dispatch).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from kiln.core import dtypes as dt
from kiln.core.prims.registry import OpDef, TensorMeta, register
from kiln.core.prims.shapes import broadcast_shapes, promote, require_tensor, shape_of
from kiln.core.prims.vjp_utils import sum_to
from kiln.errors import ArgumentError, DTypeError, ValueArgumentError

_erf_obj = np.frompyfunc(math.erf, 1, 1)


def _np_erf(x: np.ndarray) -> np.ndarray:
    # NumPy has no erf; math.erf is exact to double precision. Elementwise Python calls
    # are slow, but the eager kernel is the reference, not the fast path.
    return np.asarray(_erf_obj(x), dtype=np.float64)


# --------------------------------------------------------------------------------------
# unary


def _unary_meta(name: str, kind: str) -> Callable[..., TensorMeta]:
    def meta(x: Any) -> TensorMeta:
        x = require_tensor(name, x, "input")
        if kind == "float":
            return TensorMeta(x.shape, dt.to_float(x.dtype))
        if kind == "bool":
            return TensorMeta(x.shape, dt.bool_)
        if kind == "numeric" and x.dtype.is_bool:
            raise DTypeError(f"{name}: input must be numeric, got bool")
        if kind == "bitwise" and x.dtype.is_floating:
            raise DTypeError(f"{name}: input must be an integer or bool tensor, got {x.dtype}")
        return TensorMeta(x.shape, x.dtype)

    return meta


def _unary(name: str, eager: Callable, vjp: Callable | None, c_expr: str, kind: str = "float",
           doc: str = "") -> None:
    register(OpDef(name=name, meta=_unary_meta(name, kind), eager=eager, vjp=vjp,
                   kind="pointwise", doc=doc or f"Elementwise {name}.", c_expr=c_expr,
                   differentiable=vjp is not None))


def _floatify(fn: Callable) -> Callable:
    def eager(x: np.ndarray) -> np.ndarray:
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        return fn(x)

    return eager


def _zero_grad(ctx: Any, g: Any) -> tuple:
    return (g * 0.0,)


_SQRT_2_OVER_PI = 2.0 / math.sqrt(math.pi)

_unary("neg", np.negative, lambda c, g: (-g,), "(-{0})", "numeric")
_unary("abs", np.abs, lambda c, g: (g * c.args[0].sign(),), "k_abs({0})", "numeric")
_unary("exp", _floatify(np.exp), lambda c, g: (g * c.out,), "k_exp({0})")
_unary("log", _floatify(np.log), lambda c, g: (g / c.args[0],), "k_log({0})")
_unary("log1p", _floatify(np.log1p), lambda c, g: (g / (c.args[0] + 1.0),), "k_log1p({0})")
_unary("expm1", _floatify(np.expm1), lambda c, g: (g * (c.out + 1.0),), "k_expm1({0})")
_unary("sqrt", _floatify(np.sqrt), lambda c, g: (g * 0.5 / c.out,), "k_sqrt({0})")
_unary("rsqrt", _floatify(lambda x: 1.0 / np.sqrt(x)),
       lambda c, g: (g * -0.5 * c.out * c.out * c.out,), "k_rsqrt({0})")
_unary("sin", _floatify(np.sin), lambda c, g: (g * c.args[0].cos(),), "k_sin({0})")
_unary("cos", _floatify(np.cos), lambda c, g: (-(g * c.args[0].sin()),), "k_cos({0})")
_unary("tanh", _floatify(np.tanh), lambda c, g: (g * (1.0 - c.out * c.out),), "k_tanh({0})")
_unary("sigmoid", _floatify(lambda x: np.exp(-np.logaddexp(0, -x)).astype(x.dtype)),
       lambda c, g: (g * c.out * (1.0 - c.out),), "k_sigmoid({0})")
_unary("erf", _floatify(lambda x: _np_erf(x).astype(x.dtype)),
       lambda c, g: (g * _SQRT_2_OVER_PI * (-(c.args[0] * c.args[0])).exp(),), "k_erf({0})")
_unary("relu", lambda x: np.maximum(x, np.zeros((), x.dtype)),
       lambda c, g: (g * (c.out > 0),), "k_relu({0})", "numeric")
_unary("floor", np.floor, _zero_grad, "k_floor({0})", "same")
_unary("ceil", np.ceil, _zero_grad, "k_ceil({0})", "same")
# NumPy rounds half to even, like torch.round.
_unary("round", np.round, _zero_grad, "k_round({0})", "same")
_unary("sign", np.sign, _zero_grad, "k_sign({0})", "numeric")
_unary("logical_not", np.logical_not, None, "(!{0})", "bool")
# On bool, ~ is logical not (np.invert does that; the C backend emits `!` for bool).
_unary("bitwise_not", np.invert, None, "(~{0})", "bitwise",
       doc="bitwise_not(x): ~x for integers, logical not for bool; floats are refused.")
_unary("reciprocal", _floatify(np.reciprocal), lambda c, g: (-(g * c.out * c.out),),
       "k_reciprocal({0})")


# --------------------------------------------------------------------------------------
# binary


def _binary_meta(name: str, kind: str) -> Callable[..., TensorMeta]:
    def meta(a: Any, b: Any) -> TensorMeta:
        if not isinstance(a, TensorMeta) and not isinstance(b, TensorMeta):
            raise ArgumentError(f"{name}: at least one argument must be a tensor")
        shape = broadcast_shapes(name, shape_of(a), shape_of(b))
        dtype = promote(name, a, b)
        if kind == "bool":
            return TensorMeta(shape, dt.bool_)
        if kind == "logical":
            return TensorMeta(shape, dt.bool_)
        if kind == "float":
            dtype = dt.to_float(dtype)
        if kind == "numeric" and dtype.is_bool:
            raise DTypeError(f"{name}: operands must be numeric, got bool")
        if kind == "bitwise":
            for arg, v in (("input", a), ("other", b)):
                if (isinstance(v, TensorMeta) and v.dtype.is_floating) or isinstance(v, float):
                    bad = v.dtype if isinstance(v, TensorMeta) else type(v).__name__
                    raise DTypeError(f"{name}: {arg} must be an integer or bool tensor or "
                                     f"number, got {bad}")
        if kind == "integer":
            if dtype.is_floating:
                raise DTypeError(f"{name}: operands must be integers or bool, got {dtype} "
                                 "(floats use floor(div(a, b)))")
            if dtype.is_bool:
                dtype = dt.int64
        return TensorMeta(shape, dtype)

    return meta


def _binary(name: str, eager: Callable, vjp: Callable | None, c_expr: str,
            kind: str = "arith", doc: str = "") -> None:
    register(OpDef(name=name, meta=_binary_meta(name, kind), eager=eager, vjp=vjp,
                   kind="pointwise", doc=doc or f"Elementwise {name} with broadcasting.",
                   c_expr=c_expr, differentiable=vjp is not None))


def _shape(x: Any) -> tuple:
    return tuple(x.shape) if hasattr(x, "shape") else ()


def _grads(ctx: Any, ga: Any, gb: Any) -> tuple:
    """Reduce each operand's gradient to its own (pre-broadcast) shape."""
    a, b = ctx._args
    return (sum_to(ga, _shape(a)) if ctx.needs_grad(0) else None,
            sum_to(gb, _shape(b)) if ctx.needs_grad(1) else None)


def _add_vjp(c: Any, g: Any) -> tuple:
    return _grads(c, g, g)


def _sub_vjp(c: Any, g: Any) -> tuple:
    return _grads(c, g, -g if c.needs_grad(1) else None)


def _mul_vjp(c: Any, g: Any) -> tuple:
    a, b = c.args
    return _grads(c, g * b if c.needs_grad(0) else None, g * a if c.needs_grad(1) else None)


def _div_vjp(c: Any, g: Any) -> tuple:
    a, b = c.args
    ga = g / b if c.needs_grad(0) else None
    gb = -(g * c.out / b) if c.needs_grad(1) else None
    return _grads(c, ga, gb)


def _pow_vjp(c: Any, g: Any) -> tuple:
    from kiln.core.prims import where

    a, b = c.args
    ga = None
    if c.needs_grad(0):
        # b * a^(b-1) is 0 * inf at a == 0 when b == 0: the derivative of a^0 is 0 (torch).
        if hasattr(b, "shape"):
            ga = g * where(b == 0.0, 0.0, b * a ** (b - 1.0))
        else:
            ga = g * b * a ** (b - 1.0) if b != 0 else g * 0.0
    gb = None
    if c.needs_grad(1) and not hasattr(a, "shape"):
        # A Python base (2.0 ** x): log a is a constant.
        log_a = math.log(a) if a > 0 else (0.0 if a == 0 else math.nan)
        gb = g * c.out * log_a
    elif c.needs_grad(1):
        # d/db a^b = a^b log a; define it as 0 where a == 0 (PyTorch does the same).
        safe = where(a == 0.0, 1.0, a)
        gb = g * where(a == 0.0, 0.0, c.out * safe.log())
    return _grads(c, ga, gb)


def _minmax_vjp(pick_a: str) -> Callable:
    def vjp(c: Any, g: Any) -> tuple:
        a, b = c.args
        wins = (a > b) if pick_a == "gt" else (a < b)
        ties = (a == b)
        share_a = wins.to(g.dtype) + ties.to(g.dtype) * 0.5
        ga = g * share_a if c.needs_grad(0) else None
        gb = g * (1.0 - share_a) if c.needs_grad(1) else None
        return _grads(c, ga, gb)

    return vjp


def _np_div(a: Any, b: Any) -> Any:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.true_divide(a, b)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) or (isinstance(v, np.ndarray) and v.dtype.kind in "biu")


def _np_pow(a: Any, b: Any) -> Any:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # An integer result (integer base, Python or tensor, and integer exponent).
        if _is_int(a) and _is_int(b) and np.any(np.asarray(b) < 0):
            raise ValueArgumentError("pow: integers to negative integer powers are not allowed")
        return np.power(a, b)


def _np_floordiv(a: Any, b: Any) -> Any:
    if np.any(np.asarray(b) == 0):
        raise ValueArgumentError("floor_divide: integer division by zero (the divisor holds a "
                                 "0); divide floats for inf/nan results")
    with np.errstate(over="ignore"):  # INT_MIN // -1 wraps, as in NumPy
        return np.floor_divide(a, b)


_binary("add", np.add, _add_vjp, "({0} + {1})", "numeric_or_bool")
_binary("floor_divide", _np_floordiv, None, "k_floordiv({0}, {1})", "integer",
        doc="floor_divide(a, b): integer division rounding toward -inf (bool operands give "
            "int64); a zero divisor is an error, also in compiled code. Floats use "
            "floor(div(a, b)).")
_binary("sub", np.subtract, _sub_vjp, "({0} - {1})", "numeric")
_binary("mul", np.multiply, _mul_vjp, "({0} * {1})")
_binary("div", _np_div, _div_vjp, "k_div({0}, {1})", "float")
_binary("pow", _np_pow, _pow_vjp, "k_pow({0}, {1})", "numeric")
_binary("maximum", np.maximum, _minmax_vjp("gt"), "k_max({0}, {1})")
_binary("minimum", np.minimum, _minmax_vjp("lt"), "k_min({0}, {1})")
_binary("eq", np.equal, None, "({0} == {1})", "bool")
_binary("ne", np.not_equal, None, "({0} != {1})", "bool")
_binary("lt", np.less, None, "({0} < {1})", "bool")
_binary("le", np.less_equal, None, "({0} <= {1})", "bool")
_binary("gt", np.greater, None, "({0} > {1})", "bool")
_binary("ge", np.greater_equal, None, "({0} >= {1})", "bool")
_binary("logical_and", np.logical_and, None, "({0} && {1})", "logical")
_binary("logical_or", np.logical_or, None, "({0} || {1})", "logical")
for _name, _np_fn, _c in (("bitwise_and", np.bitwise_and, "&"),
                          ("bitwise_or", np.bitwise_or, "|"),
                          ("bitwise_xor", np.bitwise_xor, "^")):
    _binary(_name, _np_fn, None, f"({{0}} {_c} {{1}})", "bitwise",
            doc=f"{_name}(a, b): a {_c} b bit by bit with broadcasting, for integers and bool "
                "(on bool: the logical op); floats are refused.")


# --------------------------------------------------------------------------------------
# where and cast


def _where_meta(cond: Any, a: Any, b: Any) -> TensorMeta:
    cond = require_tensor("where", cond, "condition")
    if not cond.dtype.is_bool:
        raise DTypeError(f"where: condition must be bool, got {cond.dtype}")
    shape = broadcast_shapes("where", cond.shape, shape_of(a), shape_of(b))
    return TensorMeta(shape, promote("where", a, b))


def _where_vjp(c: Any, g: Any) -> tuple:
    from kiln.core.prims import where

    cond, a, b = c._args
    ga = sum_to(where(cond, g, 0.0), _shape(a)) if c.needs_grad(1) else None
    gb = sum_to(where(cond, 0.0, g), _shape(b)) if c.needs_grad(2) else None
    return (None, ga, gb)


register(OpDef(
    name="where", meta=_where_meta, eager=np.where, vjp=_where_vjp, kind="pointwise",
    doc="where(condition, a, b): a where condition holds, else b (broadcasting).",
    c_expr="({0} ? {1} : {2})",
))


def _cast_meta(x: Any, *, dtype: dt.DType) -> TensorMeta:
    x = require_tensor("cast", x, "input")
    return TensorMeta(x.shape, dt.get_dtype(dtype))


def _cast_eager(x: np.ndarray, *, dtype: dt.DType) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return x.astype(dt.get_dtype(dtype).np_dtype, copy=True)


def _cast_vjp(c: Any, g: Any) -> tuple:
    (x,) = c._args
    return (g.to(x.dtype),)


register(OpDef(
    name="cast", meta=_cast_meta, eager=_cast_eager, vjp=_cast_vjp, kind="pointwise",
    doc="cast(x, dtype=...): convert to another dtype (a copy even for the same dtype).",
    c_expr="(({T}){0})", attrs=("dtype",),
))
