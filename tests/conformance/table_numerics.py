"""Conformance entries of kiln.core.numerics (logit, renorm, gradient, scalar_tensor,
Tensor.__rdiv__) and kiln.fft's shifts."""

from __future__ import annotations

from harness import D, entry, f, t

E = ()
EAGER = ("eager",)

ENTRIES = [
    entry("logit", f(t(2, 3, domain="prob")), f(t(4, domain="prob"), 1e-3), f(t(E, domain="prob"))),
    entry("Tensor.logit", f(t(3, domain="prob"))),
    entry("renorm", f(t(3, 4), 2, 0, 1.0), f(t(2, 3, 4), 1, 1, 0.5), f(t(3, 2), 3.0, 1, 2.0)),
    entry("Tensor.renorm", f(t(3, 4), 2, 1, 1.0)),
    entry("gradient", f(t(5)), f(t(5), spacing=2.0), f(t(3, 4), dim=1, edge_order=2),
          f(t(3, 4), spacing=[0.5, 2.0]), f(t(3, 4), dim=(0,), spacing=(3.0,))),
    entry("scalar_tensor", f(3.5, _modes=EAGER, _grad=False), f(2, dtype=D("float64"),
                                                               _modes=EAGER, _grad=False),
          grad=False),
    entry("Tensor.__rdiv__", f(t(3, domain="positive"), 2.0)),
    entry("fft.fftshift", f(t(5)), f(t(4, 6), dim=1), f(t(3, 4), dim=(0, 1))),
    entry("fft.ifftshift", f(t(5)), f(t(4, 5), dim=0)),
]
