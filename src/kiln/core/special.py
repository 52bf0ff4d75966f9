"""``kiln.special``: torch.special's functions. Primitives (``erfc``, ``lgamma``, ``digamma``,
the Bessel functions: :mod:`kiln.core.prims.pointwise_special`) and composites over them
and the other primitives: ``ndtr``, ``log_ndtr``, ``erfcx``, ``xlog1py``, ``entr``,
``expit``, ``logit``, ``polygamma``, ``multigammaln``,
``spherical_bessel_j0``, and the classical orthogonal polynomials (Chebyshev T/U/V/W and
their shifted forms, Hermite H/He, Laguerre, Legendre) by their three-term recurrences.

A polynomial's degree ``n`` may be an int, or a tensor of degrees (one per element): then
the recurrence runs to the largest degree, which a trace does not know, so tensor degrees
run eagerly only.

>>> import kiln
>>> kiln.special.chebyshev_polynomial_t(kiln.tensor([0.5]), 3).tolist()
[-1.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from kiln.core import elementwise, mathops
from kiln.core import functional as core_functional
from kiln.core import prims as ops
from kiln.core.creation import tensor as _tensor_of
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, TraceError, ValueArgumentError

_SQRT_HALF = math.sqrt(0.5)
_SQRT_PI = math.sqrt(math.pi)


def _float(fn: str, x: Any) -> Tensor:
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        x = _tensor_of(float(x))
    if not isinstance(x, Tensor):
        raise ArgumentError(f"special.{fn}: input must be a kiln.Tensor, got {type(x).__name__}")
    return x if x.dtype.is_floating else x.float()


def _const(value: float, like: Tensor) -> Tensor:
    return ops.full(shape=(), value=value, dtype=like.dtype)


# aliases of primitives and existing functions ----------------------------------------------
def erfc(input: Tensor) -> Tensor:
    """1 - erf(x), accurate in the tail.

    >>> import kiln
    >>> kiln.special.erfc(kiln.tensor([0.0])).tolist()
    [1.0]
    """
    return ops.erfc(_float("erfc", input))


def gammaln(input: Tensor) -> Tensor:
    """log |Gamma(x)| (``lgamma``).

    >>> import kiln
    >>> kiln.special.gammaln(kiln.tensor([1.0])).tolist()
    [0.0]
    """
    return ops.lgamma(_float("gammaln", input))


def digamma(input: Tensor) -> Tensor:
    """The logarithmic derivative of Gamma (``psi``).

    >>> import kiln
    >>> f"{kiln.special.digamma(kiln.tensor([1.0])).item():.4f}"
    '-0.5772'
    """
    return ops.digamma(_float("digamma", input))


def polygamma(n: int, input: Tensor) -> Tensor:
    """The n-th derivative of digamma (n = 0: digamma; 1: trigamma; above, through the
    Hurwitz zeta function, NaN below -10**4 for n >= 2).

    >>> import kiln
    >>> f"{kiln.special.polygamma(1, kiln.tensor([1.0])).item():.4f}"
    '1.6449'
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueArgumentError(f"polygamma: n must be a non-negative int, got {n!r}")
    x = _float("polygamma", input)
    if n == 0:
        return ops.digamma(x)
    if n == 1:
        return ops.trigamma(x)
    return ops.polygamma(n, x)


def multigammaln(input: Tensor, p: int) -> Tensor:
    """The log of the multivariate gamma function of dimension ``p`` (``mvlgamma``):
    p (p - 1) / 4 log(pi) + sum_j lgamma(x - j / 2); every x must exceed (p - 1) / 2.

    >>> import kiln
    >>> f"{kiln.special.multigammaln(kiln.tensor([2.5]), 2).item():.4f}"
    '0.8570'
    """
    if isinstance(p, bool) or not isinstance(p, int) or p < 1:
        raise ValueArgumentError(f"multigammaln: p must be a positive int, got {p!r}")
    x = _float("multigammaln", input)
    bound = (p - 1) / 2
    # the domain check reads values: eager only (a traced graph gives NaN outside it)
    if not _tracing() and x.numel() and bool((x.detach() <= bound).any().item()):
        raise ValueArgumentError(f"multigammaln: every element of input must be greater "
                                 f"than (p - 1) / 2 = {bound}")
    out = ops.lgamma(x)
    for j in range(1, p):
        out = out + ops.lgamma(x - j / 2.0)
    out = out + p * (p - 1) / 4.0 * math.log(math.pi)
    if _tracing():
        out = ops.where(x > bound, out, _const(math.nan, out))
    return out


def expit(input: Tensor) -> Tensor:
    """The logistic sigmoid.

    >>> import kiln
    >>> kiln.special.expit(kiln.tensor([0.0])).tolist()
    [0.5]
    """
    return _float("expit", input).sigmoid()


def logit(input: Tensor, eps: float | None = None) -> Tensor:
    """log(p / (1 - p)) (p clamped to [eps, 1 - eps] with ``eps``).

    >>> import kiln
    >>> kiln.special.logit(kiln.tensor([0.5])).tolist()
    [0.0]
    """
    from kiln.core.numerics import logit as _logit

    return _logit(input, eps)


def ndtr(input: Tensor) -> Tensor:
    """The standard normal CDF, erfc(-x / sqrt 2) / 2.

    >>> import kiln
    >>> kiln.special.ndtr(kiln.tensor([0.0])).tolist()
    [0.5]
    """
    x = _float("ndtr", input)
    return 0.5 * ops.erfc(-x * _SQRT_HALF)


def log_ndtr(input: Tensor) -> Tensor:
    """log of :func:`ndtr`, accurate far in the left tail (through ``erfcx``).

    >>> import kiln
    >>> f"{kiln.special.log_ndtr(kiln.tensor([-20.0])).item():.2f}"
    '-203.92'
    """
    x = _float("log_ndtr", input)
    # x < -1: log(erfcx(-x/sqrt2) / 2) - x^2 / 2 keeps its precision where ndtr underflows
    t = -x * _SQRT_HALF
    tail = (0.5 * erfcx(t)).log() - 0.5 * x * x
    head = (0.5 * ops.erfc(t)).log()
    return ops.where(x < -1.0, tail, head)


def erfcx(input: Tensor) -> Tensor:
    """exp(x^2) erfc(x), the scaled complementary error function (finite for large x,
    where it tends to 1 / (x sqrt pi)).

    >>> import kiln
    >>> kiln.special.erfcx(kiln.tensor([0.0])).tolist()
    [1.0]
    """
    x = _float("erfcx", input)
    big = x > 8.0
    safe = ops.where(big, _const(0.0, x), x)
    direct = (safe * safe).exp() * ops.erfc(safe)
    # the asymptotic series, for x > 8 (its terms fall below float64 precision there)
    y = ops.where(big, x, _const(8.0, x))
    inv2 = 1.0 / (2.0 * y * y)
    series = (1.0 - inv2 * (1.0 - 3.0 * inv2 * (1.0 - 5.0 * inv2 * (1.0 - 7.0 * inv2)))) \
        / (y * _SQRT_PI)
    return ops.where(big, series, direct)


def xlog1py(input: Any, other: Any) -> Tensor:
    """x * log1p(y), and 0 where x is 0 (NaN y stays NaN).

    >>> import kiln
    >>> kiln.special.xlog1py(kiln.tensor([0.0, 2.0]), kiln.tensor([-1.0, 0.0])).tolist()
    [0.0, 0.0]
    """
    x = _float("xlog1py", input)
    y = _float("xlog1py", other)
    value = x * y.log1p()
    keep_nan = y != y
    return ops.where((x == 0) & ~keep_nan, ops.full(shape=(), value=0.0, dtype=value.dtype),
                     value)


def entr(input: Tensor) -> Tensor:
    """-x log x elementwise: 0 at 0, -inf below 0.

    >>> import kiln
    >>> kiln.special.entr(kiln.tensor([0.0, 1.0, -1.0])).tolist()
    [0.0, -0.0, -inf]
    """
    x = _float("entr", input)
    safe = ops.where(x > 0, x, _const(1.0, x))
    value = -x * safe.log()
    zero = ops.where(x == 0, _const(0.0, x), _const(-math.inf, x))
    return ops.where(x > 0, value, ops.where(x != x, x, zero))


def bessel_j0(input: Tensor) -> Tensor:
    """J0, the Bessel function of the first kind of order 0.

    >>> import kiln
    >>> kiln.special.bessel_j0(kiln.tensor([0.0])).tolist()
    [1.0]
    """
    return ops.bessel_j0(_float("bessel_j0", input))


def bessel_j1(input: Tensor) -> Tensor:
    """J1, the Bessel function of the first kind of order 1.

    >>> import kiln
    >>> kiln.special.bessel_j1(kiln.tensor([0.0])).tolist()
    [0.0]
    """
    return ops.bessel_j1(_float("bessel_j1", input))


def bessel_y0(input: Tensor) -> Tensor:
    """Y0, the Bessel function of the second kind of order 0.

    >>> import kiln
    >>> kiln.special.bessel_y0(kiln.tensor([0.0])).tolist()
    [-inf]
    """
    return ops.bessel_y0(_float("bessel_y0", input))


def bessel_y1(input: Tensor) -> Tensor:
    """Y1, the Bessel function of the second kind of order 1.

    >>> import kiln
    >>> kiln.special.bessel_y1(kiln.tensor([0.0])).tolist()
    [-inf]
    """
    return ops.bessel_y1(_float("bessel_y1", input))


def spherical_bessel_j0(input: Tensor) -> Tensor:
    """j0(x) = sin(x) / x, 1 at 0.

    >>> import kiln
    >>> kiln.special.spherical_bessel_j0(kiln.tensor([0.0])).tolist()
    [1.0]
    """
    x = _float("spherical_bessel_j0", input)
    safe = ops.where(x == 0, _const(1.0, x), x)
    return ops.where(x == 0, _const(1.0, x), safe.sin() / safe)


# orthogonal polynomials ---------------------------------------------------------------------
Recurrence = Callable[[int, Tensor, Tensor, Tensor], Tensor]


def _polynomial(fn: str, input: Any, n: Any, first: Callable[[Tensor], Tensor],
                step: Recurrence, shift: bool = False) -> Tensor:
    x = _float(fn, input)
    if shift:
        x = 2.0 * x - 1.0
    if isinstance(n, Tensor) and n.ndim == 0 and not _tracing():
        n = n.item()
    if isinstance(n, float):  # as torch: the degree is truncated to an integer
        n = int(n) if math.isfinite(n) else -1
    if isinstance(n, int) and not isinstance(n, bool):
        if n < 0:
            return x * 0.0
        values = _run(x, n, first, step)
        return values[n]
    if not isinstance(n, Tensor):
        raise ArgumentError(f"special.{fn}: n must be an int or a tensor of degrees, got "
                            f"{type(n).__name__}")
    if _tracing():
        raise TraceError(f"special.{fn}: a tensor of degrees sets how far the recurrence "
                         "runs, which a trace does not know; pass an int degree")
    top = int(n.max().item()) if n.numel() else -1
    values = _run(x, max(top, 0), first, step)
    nd = n.to(x.dtype).trunc() if n.dtype.is_floating else n.to(x.dtype)
    out = (x * 0.0) + (nd * 0.0)
    for k, value in enumerate(values):
        out = ops.where(nd == k, value + out * 0.0, out)
    return out


def _tracing() -> bool:
    from kiln.core.trace_state import _STACK

    return bool(_STACK)


def _run(x: Tensor, n: int, first: Callable[[Tensor], Tensor], step: Recurrence) -> list:
    values = [x * 0.0 + 1.0]
    if n >= 1:
        values.append(first(x))
    for k in range(1, n):
        values.append(step(k, x, values[k], values[k - 1]))
    return values


def _chebyshev(k: int, x: Tensor, p: Tensor, q: Tensor) -> Tensor:
    return 2.0 * x * p - q


def chebyshev_polynomial_t(input: Any, n: Any) -> Tensor:
    """Chebyshev T_n(x): T0 = 1, T1 = x, T_(k+1) = 2x T_k - T_(k-1); 0 for n < 0.

    >>> import kiln
    >>> kiln.special.chebyshev_polynomial_t(kiln.tensor([2.0]), 2).tolist()
    [7.0]
    """
    return _polynomial("chebyshev_polynomial_t", input, n, lambda x: x, _chebyshev)


def chebyshev_polynomial_u(input: Any, n: Any) -> Tensor:
    """Chebyshev U_n(x): U1 = 2x, the T recurrence.

    >>> import kiln
    >>> kiln.special.chebyshev_polynomial_u(kiln.tensor([2.0]), 2).tolist()
    [15.0]
    """
    return _polynomial("chebyshev_polynomial_u", input, n, lambda x: 2.0 * x, _chebyshev)


def chebyshev_polynomial_v(input: Any, n: Any) -> Tensor:
    """Chebyshev V_n(x): V1 = 2x - 1, the T recurrence.

    >>> import kiln
    >>> kiln.special.chebyshev_polynomial_v(kiln.tensor([2.0]), 1).tolist()
    [3.0]
    """
    return _polynomial("chebyshev_polynomial_v", input, n, lambda x: 2.0 * x - 1.0, _chebyshev)


def chebyshev_polynomial_w(input: Any, n: Any) -> Tensor:
    """Chebyshev W_n(x): W1 = 2x + 1, the T recurrence.

    >>> import kiln
    >>> kiln.special.chebyshev_polynomial_w(kiln.tensor([2.0]), 1).tolist()
    [5.0]
    """
    return _polynomial("chebyshev_polynomial_w", input, n, lambda x: 2.0 * x + 1.0, _chebyshev)


def shifted_chebyshev_polynomial_t(input: Any, n: Any) -> Tensor:
    """T_n(2x - 1), the Chebyshev T polynomial on [0, 1].

    >>> import kiln
    >>> kiln.special.shifted_chebyshev_polynomial_t(kiln.tensor([1.0]), 3).tolist()
    [1.0]
    """
    return _polynomial("shifted_chebyshev_polynomial_t", input, n, lambda x: x, _chebyshev,
                       shift=True)


def shifted_chebyshev_polynomial_u(input: Any, n: Any) -> Tensor:
    """U_n(2x - 1).

    >>> import kiln
    >>> kiln.special.shifted_chebyshev_polynomial_u(kiln.tensor([1.0]), 2).tolist()
    [3.0]
    """
    return _polynomial("shifted_chebyshev_polynomial_u", input, n, lambda x: 2.0 * x,
                       _chebyshev, shift=True)


def shifted_chebyshev_polynomial_v(input: Any, n: Any) -> Tensor:
    """V_n(2x - 1).

    >>> import kiln
    >>> kiln.special.shifted_chebyshev_polynomial_v(kiln.tensor([1.0]), 1).tolist()
    [1.0]
    """
    return _polynomial("shifted_chebyshev_polynomial_v", input, n, lambda x: 2.0 * x - 1.0,
                       _chebyshev, shift=True)


def shifted_chebyshev_polynomial_w(input: Any, n: Any) -> Tensor:
    """W_n(2x - 1).

    >>> import kiln
    >>> kiln.special.shifted_chebyshev_polynomial_w(kiln.tensor([1.0]), 1).tolist()
    [3.0]
    """
    return _polynomial("shifted_chebyshev_polynomial_w", input, n, lambda x: 2.0 * x + 1.0,
                       _chebyshev, shift=True)


def hermite_polynomial_h(input: Any, n: Any) -> Tensor:
    """The physicists' Hermite H_n(x): H1 = 2x, H_(k+1) = 2x H_k - 2k H_(k-1).

    >>> import kiln
    >>> kiln.special.hermite_polynomial_h(kiln.tensor([1.0]), 2).tolist()
    [2.0]
    """
    return _polynomial("hermite_polynomial_h", input, n, lambda x: 2.0 * x,
                       lambda k, x, p, q: 2.0 * x * p - 2.0 * k * q)


def hermite_polynomial_he(input: Any, n: Any) -> Tensor:
    """The probabilists' Hermite He_n(x): He1 = x, He_(k+1) = x He_k - k He_(k-1).

    >>> import kiln
    >>> kiln.special.hermite_polynomial_he(kiln.tensor([2.0]), 2).tolist()
    [3.0]
    """
    return _polynomial("hermite_polynomial_he", input, n, lambda x: x,
                       lambda k, x, p, q: x * p - k * q)


def laguerre_polynomial_l(input: Any, n: Any) -> Tensor:
    """Laguerre L_n(x): L1 = 1 - x, L_(k+1) = ((2k + 1 - x) L_k - k L_(k-1)) / (k + 1).

    >>> import kiln
    >>> kiln.special.laguerre_polynomial_l(kiln.tensor([1.0]), 2).tolist()
    [-0.5]
    """
    return _polynomial("laguerre_polynomial_l", input, n, lambda x: 1.0 - x,
                       lambda k, x, p, q: ((2 * k + 1 - x) * p - k * q) / (k + 1))


def legendre_polynomial_p(input: Any, n: Any) -> Tensor:
    """Legendre P_n(x): P1 = x, P_(k+1) = ((2k + 1) x P_k - k P_(k-1)) / (k + 1).

    >>> import kiln
    >>> kiln.special.legendre_polynomial_p(kiln.tensor([0.5]), 2).tolist()
    [-0.125]
    """
    return _polynomial("legendre_polynomial_p", input, n, lambda x: x,
                       lambda k, x, p, q: ((2 * k + 1) * x * p - k * q) / (k + 1))


# torch.special's aliases: the functions kiln has under these names (kiln.core imports
# nothing above it, so they come from their own modules, not from the kiln package)
psi = digamma
erf, expm1, log1p = ops.erf, ops.expm1, ops.log1p
sinc, xlogy = elementwise.sinc, elementwise.xlogy
logsumexp = core_functional.logsumexp
round = mathops.round  # noqa: A001


def exp2(input: Tensor) -> Tensor:
    """2 ** x.

    >>> import kiln
    >>> kiln.special.exp2(kiln.tensor([3.0])).tolist()
    [8.0]
    """
    return _float("exp2", input).exp2()


def softmax(input: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    """softmax along ``dim``.

    >>> import kiln
    >>> kiln.special.softmax(kiln.zeros(2), 0).tolist()
    [0.5, 0.5]
    """
    from kiln.core import masked  # its softmax without a mask is the plain one

    return masked.softmax(input, dim, dtype=dtype)


def log_softmax(input: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    """log_softmax along ``dim``.

    >>> import kiln
    >>> f"{kiln.special.log_softmax(kiln.zeros(2), 0)[0].item():.4f}"
    '-0.6931'
    """
    from kiln.core import masked

    return masked.log_softmax(input, dim, dtype=dtype)


__all__ = ["bessel_j0", "bessel_j1", "bessel_y0", "bessel_y1", "chebyshev_polynomial_t",
           "chebyshev_polynomial_u", "chebyshev_polynomial_v", "chebyshev_polynomial_w",
           "digamma", "entr", "erf", "erfc", "erfcx", "exp2", "expit", "expm1", "gammaln",
           "hermite_polynomial_h", "hermite_polynomial_he", "laguerre_polynomial_l",
           "legendre_polynomial_p", "log1p", "log_ndtr", "log_softmax", "logit", "logsumexp",
           "multigammaln", "ndtr", "polygamma", "psi", "round", "shifted_chebyshev_polynomial_t",
           "shifted_chebyshev_polynomial_u", "shifted_chebyshev_polynomial_v",
           "shifted_chebyshev_polynomial_w", "sinc", "softmax", "spherical_bessel_j0",
           "xlog1py", "xlogy"]
# torch's top-level names and Tensor methods for them
TOP_LEVEL = {"erfc": erfc, "lgamma": gammaln, "digamma": digamma, "polygamma": polygamma,
             "mvlgamma": multigammaln}


def _method_polygamma(self: Tensor, n: int) -> Tensor:
    return polygamma(n, self)


def install(cls: type) -> None:
    """Attach ``x.erfc()``, ``x.lgamma()``, ``x.digamma()``, ``x.polygamma(n)`` and
    ``x.mvlgamma(p)``."""
    for name in ("erfc", "lgamma", "digamma", "mvlgamma"):
        setattr(cls, name, TOP_LEVEL[name])
    cls.polygamma = _method_polygamma
