"""Special functions as elementwise primitives: ``erfc``, ``lgamma``, ``digamma``,
``trigamma`` (polygamma of order 1), and the Bessel functions of the first and second kind
``bessel_j0``, ``bessel_j1``, ``bessel_y0``, ``bessel_y1``.

The NumPy kernels are the references: the C library's double-precision functions (Python's
``math`` module, or the C library through ctypes for the Bessel functions NumPy lacks) and,
for digamma and trigamma, recurrence to x >= 6 then the asymptotic series (reflection below
zero) in float64. The C backend calls the same C library functions, and the same series
(``k_digamma``, ``k_trigamma`` in ``runtime/kiln_ops.h``). Gradients follow torch's:
d erfc = -2/sqrt(pi) exp(-x^2), d lgamma = digamma, d digamma = trigamma, J0' = -J1,
Y0' = -Y1, J1' = J0 - J1/x, Y1' = Y0 - Y1/x, d trigamma = polygamma(2, .).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kiln.core.prims.pointwise import _floatify, _unary
from kiln.core.prims.registry import OpDef, register
from kiln.errors import ArgumentError, ValueArgumentError

_EXAMPLES = {
    "erfc": ("kiln.tensor([0.0, 1.0])", (1.0, 0.15729920566082)),
    "lgamma": ("kiln.tensor([1.0, 5.0])", (0.0, 3.178053855895996)),
    "digamma": ("kiln.tensor([1.0, 2.0])", (-0.5772156715393066, 0.42278432846069336)),
    "trigamma": ("kiln.tensor([1.0])", (1.6449340581893921,)),
    "bessel_j0": ("kiln.tensor([0.0, 1.0])", (1.0, 0.7651976943016052)),
    "bessel_j1": ("kiln.tensor([0.0, 1.0])", (0.0, 0.4400505721569061)),
    "bessel_y0": ("kiln.tensor([1.0])", (0.08825696259737015,)),
    "bessel_y1": ("kiln.tensor([1.0])", (-0.7812128067016602,)),
    "polygamma": ("2, kiln.tensor([1.0])", (-2.4041138,)),
}


def _doc(name: str, text: str) -> str:
    call, result = _EXAMPLES[name]
    values = ", ".join(f"'{v:.5f}'" for v in result)
    return (f"{text}\n\n>>> import kiln\n>>> from kiln import ops\n>>> "
            f"[f'{{v:.5f}}' for v in ops.{name}({call}).tolist()]\n[{values}]")


def _vectorize(fn: Any) -> Any:
    """A float64 NumPy kernel of a scalar function (exact: the C library's own)."""
    ufunc = np.frompyfunc(fn, 1, 1)

    def kernel(x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            out = np.asarray(ufunc(x.astype(np.float64)), dtype=np.float64)
        return out.astype(x.dtype)

    return _floatify(kernel)


def _libm(name: str) -> Any:
    """The C library's ``double name(double)``, found at its first call: looking libm up
    (ctypes.util runs ldconfig) would add milliseconds to every ``import kiln``."""
    found: list[Any] = []

    def call(x: float) -> float:
        if not found:
            found.append(_c_function(name))
        return found[0](x)

    return call


def _c_function(name: str) -> Any:
    import ctypes

    try:  # the interpreter links libm: its symbols are in the process already
        fn = getattr(ctypes.CDLL(None), name)
    except (AttributeError, OSError):
        import ctypes.util

        fn = getattr(ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6"), name)
    fn.restype = ctypes.c_double
    fn.argtypes = [ctypes.c_double]
    return fn


def _safe(fn: Any) -> Any:
    def call(x: float) -> float:
        try:
            return fn(x)
        except (ValueError, OverflowError):
            return math.inf if x <= 0 and float(x).is_integer() else math.nan

    return call


def _lgamma(x: float) -> float:
    if math.isnan(x):
        return math.nan
    if math.isinf(x):
        return math.inf
    try:
        return math.lgamma(x)
    except ValueError:  # a pole: 0 and the negative integers
        return math.inf


def _reflect_and_shift(x: np.ndarray, term: Any) -> tuple[np.ndarray, ...]:
    """(pole, neg, y, acc): x reflected to 1 - x below 0, then stepped up to y >= 6 (at most
    six steps) while ``acc`` sums ``term`` of each value passed: where the asymptotic
    series of digamma and trigamma is accurate."""
    pole = (x <= 0) & (x == np.floor(x))
    neg = x < 0
    y = np.where(neg, 1.0 - x, x)
    acc = np.zeros_like(y)
    for _ in range(6):
        small = y < 6.0
        acc = np.where(small, acc + term(y), acc)
        y = np.where(small, y + 1.0, y)
    return pole, neg, y, acc


def _digamma_np(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    with np.errstate(all="ignore"):
        # reflection: psi(x) = psi(1 - x) - pi / tan(pi x); recurrence psi(y) = psi(y+1) - 1/y
        pole, neg, y, acc = _reflect_and_shift(x, lambda y: -1.0 / y)
        f = 1.0 / (y * y)
        series = np.log(y) - 0.5 / y - f * (1.0 / 12 - f * (1.0 / 120 - f * (
            1.0 / 252 - f * (1.0 / 240 - f * (1.0 / 132)))))
        out = acc + series
        out = np.where(neg, out - np.pi / np.tan(np.pi * x), out)
        out = np.where(x == 0, np.copysign(np.inf, -x), out)
        return np.where(pole & (x != 0), np.nan, out)


def _trigamma_np(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    with np.errstate(all="ignore"):
        # reflection: psi1(x) = pi^2 / sin^2(pi x) - psi1(1 - x); psi1(y) = psi1(y+1) + 1/y^2
        pole, neg, y, acc = _reflect_and_shift(x, lambda y: 1.0 / (y * y))
        f = 1.0 / (y * y)
        series = 1.0 / y + 0.5 * f + (1.0 / y) * f * (1.0 / 6 - f * (1.0 / 30 - f * (
            1.0 / 42 - f * (1.0 / 30))))
        out = acc + series
        out = np.where(neg, (np.pi / np.sin(np.pi * x)) ** 2 - out, out)
        return np.where(pole, np.inf, out)


def _np_kernel(fn: Any) -> Any:
    return _floatify(lambda x: fn(x).astype(x.dtype))


_SQRT_PI = math.sqrt(math.pi)


def _ops() -> Any:
    from kiln.core import prims as ops

    return ops


_unary("erfc", _vectorize(_safe(math.erfc)),
       lambda c, g: (g * (-2.0 / _SQRT_PI) * (-(c.args[0] * c.args[0])).exp(),),
       "k_erfc({0})", doc=_doc("erfc", "erfc(x) = 1 - erf(x), accurate where erf(x) is near 1."))
_unary("lgamma", _vectorize(_lgamma),
       lambda c, g: (g * _ops().digamma(c.args[0]),), "k_lgamma({0})",
       doc=_doc("lgamma", "lgamma(x): log |Gamma(x)|; +inf at 0 and the negative integers."))
_unary("digamma", _np_kernel(_digamma_np),
       lambda c, g: (g * _ops().trigamma(c.args[0]),), "k_digamma({0})",
       doc=_doc("digamma", "digamma(x): d/dx lgamma(x); -inf at 0 (as torch), NaN at the "
                "negative integers."))
_unary("trigamma", _np_kernel(_trigamma_np),
       lambda c, g: (g * _ops().polygamma(2, c.args[0]),), "k_trigamma({0})",
       doc=_doc("trigamma", "trigamma(x): d/dx digamma(x), polygamma of order 1."))
_j0, _j1, _y0, _y1 = (_safe(_libm(n)) for n in ("j0", "j1", "y0", "y1"))
_unary("bessel_j0", _vectorize(_j0),
       lambda c, g: (g * -_ops().bessel_j1(c.args[0]),), "k_bessel_j0({0})",
       doc=_doc("bessel_j0", "bessel_j0(x): the Bessel function of the first kind, order 0."))
def _j1_vjp(c: Any, g: Any) -> tuple:
    ops = _ops()
    x = c.args[0]
    at_zero = x == 0
    safe = ops.where(at_zero, ops.full(shape=(), value=1.0, dtype=x.dtype), x)
    slope = ops.bessel_j0(x) - c.out / safe
    # J1'(0) = 1/2: the limit of J0(x) - J1(x)/x
    return (g * ops.where(at_zero, ops.full(shape=(), value=0.5, dtype=x.dtype), slope),)


_unary("bessel_j1", _vectorize(_j1), _j1_vjp,
       "k_bessel_j1({0})",
       doc=_doc("bessel_j1", "bessel_j1(x): the Bessel function of the first kind, order 1."))
_unary("bessel_y0", _vectorize(_y0),
       lambda c, g: (g * -_ops().bessel_y1(c.args[0]),), "k_bessel_y0({0})",
       doc=_doc("bessel_y0", "bessel_y0(x): the Bessel function of the second kind, order 0 "
                "(-inf at 0, NaN below)."))
_unary("bessel_y1", _vectorize(_y1),
       lambda c, g: (g * (_ops().bessel_y0(c.args[0]) - c.out / c.args[0]),),
       "k_bessel_y1({0})",
       doc=_doc("bessel_y1", "bessel_y1(x): the Bessel function of the second kind, order 1 "
                "(-inf at 0, NaN below)."))

_FAR = 1e4  # polygamma below -_FAR: NaN (the upward shift would take too many steps)
# B_2j / (2j)! for j = 1..6: the Euler-Maclaurin tail of the Hurwitz zeta function
_EM = (1.0 / 12, -1.0 / 720, 1.0 / 30240, -1.0 / 1209600, 1.0 / 47900160,
       -691.0 / 1307674368000)


def _polygamma_np(n: Any, x: np.ndarray) -> np.ndarray:
    """psi^(n)(x) = (-1)^(n+1) n! zeta(n + 1, x) for n >= 1: the zeta sum shifted until
    x + k >= 10, then Euler-Maclaurin with six Bernoulli terms (float64). Below -10**4 the
    shift would take too many steps: NaN there (documented)."""
    n_arr = np.asarray(n, dtype=np.float64)
    xf = np.asarray(x, dtype=np.float64)
    n_arr, xf = np.broadcast_arrays(n_arr, xf)
    with np.errstate(all="ignore"):
        s = n_arr + 1.0
        pole = (xf <= 0) & (xf == np.floor(xf))
        far = (xf < -_FAR) & ~pole
        ok = np.isfinite(xf) & ~far & ~pole
        steps = int(np.max(np.clip(np.ceil(10.0 - xf[ok]), 0, None))) if ok.any() else 0
        acc = np.zeros_like(xf)
        w = xf.copy()
        for _ in range(steps):
            low = w < 10.0
            acc = np.where(low, acc + w ** (-s), acc)
            w = np.where(low, w + 1.0, w)
        tail = w ** (1.0 - s) / (s - 1.0) + 0.5 * w ** (-s)
        rising = s.copy()  # s (s + 1) ... (s + 2j - 2), times w^(-s - 2j + 1)
        power = w ** (-s - 1.0)
        for j, coeff in enumerate(_EM):
            tail = tail + coeff * rising * power
            rising = rising * (s + 2 * j + 1) * (s + 2 * j + 2)
            power = power / (w * w)
        zeta = acc + tail
        fact = np.vectorize(math.factorial, otypes=[object])(n_arr.astype(np.int64)) \
            .astype(np.float64)
        sign = np.where(n_arr % 2 == 1, 1.0, -1.0)
        out = sign * fact * zeta
        out = np.where(pole, np.where(n_arr % 2 == 1, np.inf, -np.inf), out)
        out = np.where(far, np.nan, out)
        return np.where(np.isnan(xf), np.nan, out)


def _polygamma_kernel(n: Any, x: np.ndarray) -> np.ndarray:
    x_arr = np.asarray(x)
    dtype = x_arr.dtype if x_arr.dtype.kind == "f" else np.dtype(np.float32)
    n_int = np.asarray(n)
    if n_int.size and (n_int < 1).any():
        raise ValueArgumentError("polygamma primitive: n must be >= 1 (kiln.polygamma calls "
                                 "digamma for n = 0)")
    return _polygamma_np(n, x_arr).astype(dtype)


def _polygamma_meta(n: Any, x: Any) -> Any:
    from kiln.core import dtypes as dt
    from kiln.core.prims.registry import TensorMeta
    from kiln.core.prims.shapes import require_tensor

    if isinstance(n, bool) or not isinstance(n, int):
        raise ArgumentError(f"polygamma: n must be a Python int, got {type(n).__name__}")
    x = require_tensor("polygamma", x, "input")
    return TensorMeta(x.shape, dt.to_float(x.dtype))


register(OpDef("polygamma", _polygamma_meta, _polygamma_kernel,
               lambda c, g: (None, g * _ops().polygamma(c.args[0] + 1, c.args[1])),
               "pointwise",
               _doc("polygamma", "polygamma(n, x): the n-th derivative of digamma (n >= 1; "
                    "n an int), through the Hurwitz zeta function."),
               c_expr="k_polygamma({0}, {1})"))

SPECIAL_PRIMITIVES = ("erfc", "lgamma", "digamma", "trigamma", "bessel_j0", "bessel_j1",
                      "bessel_y0", "bessel_y1", "polygamma")
