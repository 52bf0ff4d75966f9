"""More elementwise primitives torch has by name: the inverse and hyperbolic trigonometric
functions, ``tan``, ``log2``, ``log10``, ``trunc``, ``signbit``, ``atan2``, ``hypot`` and
``copysign``.

Primitives, not composites, where a composite would lose accuracy or range (``hypot`` of
1e30 overflows as ``sqrt(a*a + b*b)``; ``asinh`` as ``log(x + sqrt(x*x + 1))`` cancels for
negative x) or cannot be written at all (``signbit`` of -0.0 and of a negative NaN). The C
backend calls the C library's functions (``k_*`` in ``runtime/kiln_ops.h``); gradients
follow torch's formulas, including its values at the edges of each domain.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kiln.core.prims.pointwise import _binary, _floatify, _grads, _unary, _zero_grad

_PAIR = "kiln.tensor([1.0, -1.0]), kiln.tensor([-1.0, -2.0])"
# A runnable example per primitive, appended to its doc (the op table shows the first line).
_EXAMPLES = {
    "asin": ("kiln.tensor([0.0, 0.5])", "[0.0, 0.5235987901687622]"),
    "acos": ("kiln.tensor([1.0, 0.5])", "[0.0, 1.0471975803375244]"),
    "atan": ("kiln.tensor([0.0, 1.0])", "[0.0, 0.7853981852531433]"),
    "sinh": ("kiln.tensor([0.0, 1.0])", "[0.0, 1.175201177597046]"),
    "cosh": ("kiln.tensor([0.0, 1.0])", "[1.0, 1.5430806875228882]"),
    "asinh": ("kiln.tensor([0.0, 1.0])", "[0.0, 0.8813735842704773]"),
    "acosh": ("kiln.tensor([1.0, 2.0])", "[0.0, 1.316957950592041]"),
    "atanh": ("kiln.tensor([0.0, 0.5])", "[0.0, 0.5493061542510986]"),
    "tan": ("kiln.tensor([0.0, 1.0])", "[0.0, 1.5574077367782593]"),
    "log2": ("kiln.tensor([1.0, 8.0])", "[0.0, 3.0]"),
    "log10": ("kiln.tensor([1.0, 10.0])", "[0.0, 1.0]"),
    "trunc": ("kiln.tensor([-1.5, 2.7])", "[-1.0, 2.0]"),
    "signbit": ("kiln.tensor([-0.0, 1.0])", "[True, False]"),
    "atan2": (_PAIR, "[2.356194496154785, -2.677945137023926]"),
    "hypot": (_PAIR, "[1.4142135381698608, 2.2360680103302]"),
    "copysign": (_PAIR, "[-1.0, -1.0]"),
}


def _doc(name: str, text: str) -> str:
    call, result = _EXAMPLES[name]
    return f"{text}\n\n>>> import kiln\n>>> kiln.{name}({call}).tolist()\n{result}"


def _np(fn: Any) -> Any:
    """A NumPy kernel that computes quietly (NaN outside the domain, as torch)."""
    def eager(*xs: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return fn(*xs)

    return eager


# inverse trigonometric: d asin = 1/sqrt(1-x^2), d acos = -1/sqrt(1-x^2), d atan = 1/(1+x^2)
_unary("asin", _floatify(_np(np.arcsin)),
       lambda c, g: (g * (1.0 - c.args[0] * c.args[0]).rsqrt(),), "k_asin({0})",
       doc=_doc("asin", "asin(x): the arcsine, in [-pi/2, pi/2]; NaN outside [-1, 1]."))
_unary("acos", _floatify(_np(np.arccos)),
       lambda c, g: (-(g * (1.0 - c.args[0] * c.args[0]).rsqrt()),), "k_acos({0})",
       doc=_doc("acos", "acos(x): the arccosine, in [0, pi]; NaN outside [-1, 1]."))
_unary("atan", _floatify(_np(np.arctan)),
       lambda c, g: (g / (c.args[0] * c.args[0] + 1.0),), "k_atan({0})",
       doc=_doc("atan", "atan(x): the arctangent, in (-pi/2, pi/2)."))
# hyperbolic and their inverses
_unary("sinh", _floatify(_np(np.sinh)), lambda c, g: (g * c.args[0].cosh(),), "k_sinh({0})",
       doc=_doc("sinh", "sinh(x): the hyperbolic sine."))
_unary("cosh", _floatify(_np(np.cosh)), lambda c, g: (g * c.args[0].sinh(),), "k_cosh({0})",
       doc=_doc("cosh", "cosh(x): the hyperbolic cosine."))
_unary("asinh", _floatify(_np(np.arcsinh)),
       lambda c, g: (g * (c.args[0] * c.args[0] + 1.0).rsqrt(),), "k_asinh({0})",
       doc=_doc("asinh", "asinh(x): the inverse hyperbolic sine."))
_unary("acosh", _floatify(_np(np.arccosh)),
       lambda c, g: (g * (c.args[0] * c.args[0] - 1.0).rsqrt(),), "k_acosh({0})",
       doc=_doc("acosh", "acosh(x): the inverse hyperbolic cosine; NaN below 1."))
_unary("atanh", _floatify(_np(np.arctanh)),
       lambda c, g: (g / (1.0 - c.args[0] * c.args[0]),), "k_atanh({0})",
       doc=_doc("atanh", "atanh(x): the inverse hyperbolic tangent; +-inf at +-1, NaN beyond."))
_unary("tan", _floatify(_np(np.tan)), lambda c, g: (g * (c.out * c.out + 1.0),), "k_tan({0})",
       doc=_doc("tan", "tan(x): the tangent."))
_LN2, _LN10 = math.log(2.0), math.log(10.0)
_unary("log2", _floatify(_np(np.log2)), lambda c, g: (g / (c.args[0] * _LN2),), "k_log2({0})",
       doc=_doc("log2", "log2(x): the base-2 logarithm (exact at powers of two)."))
_unary("log10", _floatify(_np(np.log10)), lambda c, g: (g / (c.args[0] * _LN10),),
       "k_log10({0})", doc=_doc("log10", "log10(x): the base-10 logarithm."))
_unary("trunc", np.trunc, _zero_grad, "k_trunc({0})", "same",
       doc=_doc("trunc", "trunc(x): rounds toward zero (integers unchanged); its gradient "
                         "is 0, as torch's."))
_unary("signbit", np.signbit, None, "k_signbit({0})", "bool",
       doc=_doc("signbit", "signbit(x): whether the sign bit is set: True for -0.0 and a "
                           "negative NaN too."))


def _atan2_vjp(c: Any, g: Any) -> tuple:
    a, b = c.args  # atan2(a, b): the angle of the point (b, a)
    inv = 1.0 / (a * a + b * b)
    return _grads(c, g * b * inv if c.needs_grad(0) else None,
                  -(g * a * inv) if c.needs_grad(1) else None)


def _hypot_vjp(c: Any, g: Any) -> tuple:
    a, b = c.args
    return _grads(c, g * a / c.out if c.needs_grad(0) else None,
                  g * b / c.out if c.needs_grad(1) else None)


def _copysign_vjp(c: Any, g: Any) -> tuple:
    from kiln.core.prims import where

    a, _ = c.args
    # d/da copysign(a, b) = sign(a) * sign(result): +-1, and 0 at a == 0 (torch)
    ga = where(a == 0.0, 0.0, c.out / a) * g if c.needs_grad(0) else None
    return _grads(c, ga, g * 0.0 if c.needs_grad(1) else None)


_binary("atan2", _np(np.arctan2), _atan2_vjp, "k_atan2({0}, {1})", "float",
        doc=_doc("atan2", "atan2(a, b): the angle of the point (b, a), in [-pi, pi], "
                          "quadrant-aware."))
_binary("hypot", _np(np.hypot), _hypot_vjp, "k_hypot({0}, {1})", "float",
        doc=_doc("hypot", "hypot(a, b): sqrt(a**2 + b**2) without overflow or underflow "
                          "on the way."))
_binary("copysign", _np(np.copysign), _copysign_vjp, "k_copysign({0}, {1})", "float",
        doc=_doc("copysign", "copysign(a, b): the magnitude of a with the sign of b (-0.0 "
                             "counts as negative)."))

