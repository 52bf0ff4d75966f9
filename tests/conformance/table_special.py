"""Conformance entries of kiln.special (torch.special) and torch's top-level special
functions (erfc, lgamma, digamma, polygamma, mvlgamma). Polynomials with a tensor of degrees
run eagerly only (the recurrence's length is the largest degree)."""

from __future__ import annotations

from harness import entry, f, t

E = ()
EAGER = ("eager",)


def pos(*shape: int) -> object:
    return t(*shape, domain="positive")


POLYNOMIALS = ("chebyshev_polynomial_t", "chebyshev_polynomial_u", "chebyshev_polynomial_v",
               "chebyshev_polynomial_w", "shifted_chebyshev_polynomial_t",
               "shifted_chebyshev_polynomial_u", "shifted_chebyshev_polynomial_v",
               "shifted_chebyshev_polynomial_w", "hermite_polynomial_h", "hermite_polynomial_he",
               "laguerre_polynomial_l", "legendre_polynomial_p")

ENTRIES = [
    entry("special.erfc", f(t(2, 3)), f(t(E))),
    entry("erfc", f(t(4))),
    entry("Tensor.erfc", f(t(3))),
    entry("special.gammaln", f(pos(2, 3))),
    entry("lgamma", f(pos(4)), f(t(3, domain="special"), _grad=False)),
    entry("Tensor.lgamma", f(pos(3))),
    entry("special.digamma", f(pos(2, 3))),
    entry("special.psi", f(pos(3))),
    entry("digamma", f(pos(4)), f(t(4), _grad=False)),
    entry("special.polygamma", f(1, pos(3)), f(2, pos(2, 2)), f(0, pos(3))),
    entry("polygamma", f(3, pos(4))),
    entry("Tensor.polygamma", f(pos(3), 2)),
    entry("special.multigammaln", f(t(3, domain="above_one"), 2)),
    entry("mvlgamma", f(t(3, domain="above_one"), 1)),
    entry("special.ndtr", f(t(2, 3))),
    entry("special.log_ndtr", f(t(2, 3)), f(t(4, domain="special"), _grad=False)),
    entry("special.erfcx", f(t(2, 3)), f(pos(3))),
    entry("special.xlog1py", f(t(3), pos(3)), f(t(2, 3), 0.5)),
    entry("special.entr", f(pos(3)), f(t(4), _grad=False)),
    entry("special.expit", f(t(2, 3))),
    entry("special.logit", f(t(3, domain="prob")), f(t(3, domain="prob"), 0.1)),
    entry("special.exp2", f(t(3))),
    entry("special.bessel_j0", f(t(2, 3))),
    entry("special.bessel_j1", f(t(2, 3))),
    entry("special.bessel_y0", f(pos(3))),
    entry("special.bessel_y1", f(pos(3))),
    entry("special.spherical_bessel_j0", f(t(2, 3)), f(t(E))),
    entry("special.softmax", f(t(2, 3), 1)),
    entry("special.log_softmax", f(t(2, 3), 0)),
    entry("special.sinc", f(t(3))),
    entry("special.round", f(t(3), _grad=False)),
    entry("special.logsumexp", f(t(2, 3), 1)),
    entry("special.xlogy", f(pos(3), pos(3))),
    entry("special.log1p", f(pos(3))),
    entry("special.expm1", f(t(3))),
    entry("special.erf", f(t(3))),
    *[entry(f"special.{name}", f(t(2, 3), 3), f(t(4), 0), f(t(3), 5),
            f(t(3), t(3, dtype="int64", domain="positive"), _modes=EAGER, _grad=False))
      for name in POLYNOMIALS],
]
