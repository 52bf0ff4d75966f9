"""Op-table entries of the primitives in kiln.core.prims.pointwise_math (inverse and
hyperbolic trigonometry, tan, log2/log10, trunc, signbit, atan2, hypot, copysign): NumPy
references, torch oracles, gradients (finite differences) in the domains where each is
smooth."""

from __future__ import annotations

import numpy as np
from opinfo_base import FLOAT_DTYPES
from opinfo_prims import FLOATISH, NUMERIC, binary, binary_samples, fl, unary


def _above_one(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    return rng.uniform(1.2, 3.0, int(np.prod(shape)) if shape else 1)


unary("asin", lambda x: np.arcsin(fl(x)), "small", dtypes=FLOAT_DTYPES)
unary("acos", lambda x: np.arccos(fl(x)), "small", dtypes=FLOAT_DTYPES)
unary("atan", lambda x: np.arctan(fl(x)), dtypes=FLOATISH)
unary("sinh", lambda x: np.sinh(fl(x)), dtypes=FLOATISH)
unary("cosh", lambda x: np.cosh(fl(x)), dtypes=FLOATISH)
unary("tan", lambda x: np.tan(fl(x)), "small", dtypes=FLOATISH)
unary("asinh", lambda x: np.arcsinh(fl(x)), dtypes=FLOATISH)
unary("acosh", lambda x: np.arccosh(fl(x)), _above_one, dtypes=FLOAT_DTYPES)
unary("atanh", lambda x: np.arctanh(fl(x)), "small", dtypes=FLOAT_DTYPES)
unary("log2", lambda x: np.log2(fl(x)), "positive", dtypes=FLOATISH)
unary("log10", lambda x: np.log10(fl(x)), "positive", dtypes=FLOATISH)
unary("trunc", np.trunc, "nonint", dtypes=NUMERIC)
unary("signbit", np.signbit, dtypes=NUMERIC, grad=False, exact=True)
binary("atan2", lambda a, b: np.arctan2(fl(a), fl(b)), dtypes=FLOAT_DTYPES,
       samples=binary_samples("nonzero", "nonzero"))
binary("hypot", lambda a, b: np.hypot(fl(a), fl(b)), dtypes=FLOAT_DTYPES,
       samples=binary_samples("nonzero", "nonzero"))
binary("copysign", lambda a, b: np.copysign(fl(a), fl(b)), dtypes=FLOAT_DTYPES,
       samples=binary_samples("nonzero", "nonzero"))
