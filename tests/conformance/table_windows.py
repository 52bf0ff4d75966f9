"""Conformance entries of the window functions (kiln.signal.windows and torch's older
``kiln.hann_window`` family). A window takes no tensor, so its forms run eagerly only (a
trace would have nothing to record); empty, one-element, symmetric and periodic windows."""

from __future__ import annotations

from harness import D, entry, f

EAGER = ("eager",)


def fe(*args: object, **kwargs: object) -> object:
    return f(*args, _modes=EAGER, _grad=False, **kwargs)


def _forms(**extra: object) -> list:
    return [fe(0, **extra), fe(1, **extra), fe(7, **extra), fe(8, sym=False, **extra),
            fe(5, dtype=D("float64"), **extra)]


ENTRIES = [
    *[entry(f"signal.windows.{name}", *_forms(), grad=False)
      for name in ("bartlett", "blackman", "cosine", "hamming", "hann", "nuttall")],
    entry("signal.windows.exponential", *_forms(), fe(6, center=1.5, tau=0.5, sym=False),
          grad=False),
    entry("signal.windows.gaussian", *_forms(std=0.7), grad=False),
    entry("signal.windows.kaiser", *_forms(), fe(9, beta=3.5), grad=False),
    entry("signal.windows.general_cosine", *_forms(a=[0.46, 0.23, 0.31]), grad=False),
    entry("signal.windows.general_hamming", *_forms(), fe(6, alpha=0.6), grad=False),
    *[entry(name, fe(0), fe(1), fe(6), fe(6, False), fe(5, True, dtype=D("float64")),
            grad=False)
      for name in ("hann_window", "hamming_window", "blackman_window", "bartlett_window",
                   "kaiser_window")],
    entry("hamming_window", fe(6, True, 0.5, 0.5), grad=False),
    entry("kaiser_window", fe(6, False, 4.0), grad=False),
]
