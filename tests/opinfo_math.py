"""Op-table entries of the primitives in kiln.core.prims.pointwise_math (inverse and
hyperbolic trigonometry, tan, log2/log10, trunc, signbit, atan2, hypot, copysign): NumPy
references, torch oracles, gradients (finite differences) in the domains where each is
smooth."""

from __future__ import annotations

import math

import numpy as np
from opinfo_base import FLOAT_DTYPES, OpInfo, Sample, make
from opinfo_prims import FLOATISH, NUMERIC, add, binary, binary_samples, fl, unary

from kiln import ops
from kiln.core.prims import pointwise_special


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



def _digamma_ref(x):  # noqa: ANN001, ANN202
    from kiln.core.prims.pointwise_special import _digamma_np

    return _digamma_np(fl(x))


def _trigamma_ref(x):  # noqa: ANN001, ANN202
    from kiln.core.prims.pointwise_special import _trigamma_np

    return _trigamma_np(fl(x))


def _vec(fn):  # noqa: ANN001, ANN202
    """A float64 reference of a scalar C-library function."""
    return lambda x: np.vectorize(fn, otypes=[np.float64])(fl(x).astype(np.float64))


def _torch_polygamma(n):  # noqa: ANN001, ANN202
    return lambda x: __import__("torch").special.polygamma(n, x)


# special functions (kiln.core.prims.pointwise_special): math's and the C library's own
unary("erfc", _vec(math.erfc), dtypes=FLOATISH, torch_name="torch.special.erfc")
unary("lgamma", _vec(math.lgamma), "positive", dtypes=FLOATISH)
unary("digamma", _digamma_ref, "positive", dtypes=FLOATISH)
unary("trigamma", _trigamma_ref, "positive", dtypes=FLOAT_DTYPES,
      torch_name=_torch_polygamma(1))
for _name in ("bessel_j0", "bessel_j1", "bessel_y0", "bessel_y1"):
    unary(_name, _vec(getattr(pointwise_special, "_" + _name.split("_")[1])),
          "positive" if "y" in _name else "real", dtypes=FLOAT_DTYPES,
          torch_name=f"torch.special.{_name}",
          skips={"torch_grad": "torch.special's Bessel functions have no derivative; Kiln's "
                 "are checked against finite differences"})


def _polygamma_samples(dtype: str, rng: np.random.Generator):  # noqa: ANN202
    for n, shape in ((2, (3, 4)), (3, (5,)), (2, ()), (4, (0, 3))):
        yield Sample((n, make(rng, shape, dtype, "positive")))


add(OpInfo("polygamma", ops.polygamma, lambda n, x: pointwise_special._polygamma_np(n, fl(x)),
           _polygamma_samples, lambda n, x: __import__("torch").special.polygamma(n, x),
           FLOAT_DTYPES, grad_args=(1,), primitives=("polygamma",), supports_grad2=True,
           skips={"size-1": "samples cover it through the 0-d one",
                  "non-contiguous": "an elementwise op; layouts covered by the unary table"}))
