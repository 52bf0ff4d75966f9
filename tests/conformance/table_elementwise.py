"""Conformance entries of torch's elementwise composites (kiln.core.elementwise): the
NaN/inf tests, nan_to_num, nansum/nanmean, logaddexp, xlogy, sinc, fmax/fmin and the rest,
with 0-d, empty and special-value (NaN, infinities, signed zeros) forms. The primitives of
kiln.core.prims.pointwise_math get theirs from the registry (table._registry_pointwise);
their aliases (arcsin, fix, ...) are checked here once each."""

from __future__ import annotations

from harness import entry, f, t

E = ()  # a 0-d shape


def s(*shape: int) -> object:
    """Values with NaN, +-inf and +-0 among them (no gradient check on those forms)."""
    return t(*shape, domain="special")


def i(*shape: int) -> object:
    return t(*shape, dtype="int64")


ENTRIES = [
    entry("negative", f(t(2, 3)), f(t(E)), f(i(3))),
    entry("isnan", f(s(2, 4)), f(t(E)), f(t(0, 2)), f(i(3)), grad=False),
    entry("isinf", f(s(2, 4)), f(t(E)), f(i(3)), grad=False),
    entry("isposinf", f(s(2, 4)), f(i(3)), grad=False),
    entry("isneginf", f(s(2, 4)), grad=False),
    entry("isfinite", f(s(2, 4)), f(t(0)), f(i(3)), grad=False),
    entry("Tensor.isnan", f(s(6)), grad=False),
    entry("Tensor.isfinite", f(s(6)), grad=False),
    entry("nan_to_num", f(s(2, 4), _grad=False),
          f(s(8), nan=1.5, posinf=7.0, neginf=-7.0, _grad=False), f(t(2, 3)), f(i(3))),
    entry("Tensor.nan_to_num", f(s(5), 0.5, _grad=False)),
    entry("nansum", f(s(2, 4), _grad=False), f(t(2, 3)), f(t(2, 3), 1, True), f(t(0, 3), 0)),
    entry("nanmean", f(s(2, 4), _grad=False), f(t(2, 3), 1), f(t(3, 2), dim=0, keepdim=True)),
    entry("count_nonzero", f(i(3, 4)), f(t(2, 3), 1), f(i(3, 4), dim=0), grad=False),
    entry("frac", f(t(2, 3)), f(t(E)), f(t(0))),
    entry("Tensor.frac", f(t(4))),
    entry("sgn", f(t(2, 3)), f(t(E)), grad=False),
    entry("positive", f(t(2, 3)), f(i(3))),
    entry("rad2deg", f(t(2, 3)), f(i(3))),
    entry("deg2rad", f(t(2, 3)), f(t(E))),
    entry("rsub", f(t(2, 3), t(3)), f(t(3), 2.0, alpha=3)),
    entry("float_power", f(t(2, 3, domain="positive"), 2.5), f(i(3), 2),
          f(t(3, domain="positive"), t(3)), tol=(1e-5, 1e-5)),
    entry("xlogy", f(t(2, 3), t(2, 3, domain="positive")),
          f(t(3), t(3, domain="positive"))),
    entry("logaddexp", f(t(2, 3), t(3)), f(t(E), t(E)), f(s(5), s(5), _grad=False)),
    entry("logaddexp2", f(t(2, 3), t(2, 3))),
    entry("sinc", f(t(2, 3)), f(t(E)), f(s(5), _grad=False)),
    entry("fmax", f(s(2, 5), t(5), _grad=False), f(t(2, 3), t(3)), f(i(3), i(3))),
    entry("fmin", f(s(2, 5), t(5), _grad=False), f(t(2, 3), t(3))),
    entry("heaviside", f(t(2, 3), t(3)), f(s(5), t(E)), grad=False),
    entry("logical_xor", f(t(2, 3, dtype="bool"), t(3, dtype="bool")), f(t(2, 3), i(3)),
          grad=False),
    entry("arcsin", f(t(2, 3, domain="unit"))),
    entry("arctan2", f(t(2, 3), t(3))),
    entry("fix", f(t(2, 3)), grad=False),
    entry("hypot", f(t(2, 3), t(3)), f(s(5), s(5), _grad=False)),
    entry("copysign", f(t(2, 3, domain="positive"), t(3)), f(s(5), s(5), _grad=False)),
    entry("signbit", f(s(2, 5)), f(i(4)), grad=False),
    entry("Tensor.atan2", f(t(4), t(4))),
    entry("Tensor.log2", f(t(4, domain="positive"))),
    entry("Tensor.trunc", f(s(5)), grad=False),
]
