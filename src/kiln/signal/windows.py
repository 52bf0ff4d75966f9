"""``kiln.signal.windows``: torch.signal.windows's window functions, and torch's older
``kiln.hann_window`` family.

A window takes no tensor, only its length ``M`` and its parameters: it is computed with
NumPy in float64 and returned in ``dtype`` (a traced function records it as a constant).
``sym=True`` gives the symmetric window of filter design; ``sym=False`` the periodic one
of spectral analysis (the symmetric window of length ``M + 1`` without its last value).

>>> import kiln
>>> kiln.signal.windows.bartlett(5).tolist()
[0.0, 0.5, 1.0, 0.5, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from kiln.core.creation import tensor
from kiln.core.dtypes import get_dtype
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, DTypeError, ValueArgumentError


def _length(fn: str, M: Any) -> int:
    if isinstance(M, bool) or not isinstance(M, (int, np.integer)):
        raise ArgumentError(f"{fn}: M must be an int (the window length), got "
                            f"{type(M).__name__}")
    if M < 0:
        raise ValueArgumentError(f"{fn}: M must be non-negative, got {M}")
    return int(M)


def _finish(fn: str, values: np.ndarray, dtype: Any, requires_grad: bool,
            device: Any = None) -> Tensor:
    from kiln.core.devices import check_device

    check_device(fn, device)
    kind = get_dtype("float32" if dtype is None else dtype)
    if not kind.is_floating:
        raise DTypeError(f"{fn}: dtype must be floating point, got {kind}")
    return tensor(values.astype(kind.np_dtype), dtype=kind, requires_grad=requires_grad)


def _window(fn: str, M: Any, sym: bool, dtype: Any, requires_grad: bool, device: Any,
            values: Callable[[int], np.ndarray]) -> Tensor:
    """``values(N)``: the symmetric window of length N (N >= 2); periodic windows use N =
    M + 1 and drop the last value."""
    m = _length(fn, M)
    if m == 0:
        out = np.zeros(0)
    elif m == 1:
        out = np.ones(1)
    else:
        out = values(m) if sym else values(m + 1)[:m]
    return _finish(fn, out, dtype, requires_grad, device)


def _cosine_sum(coefficients: Iterable[float]) -> Callable[[int], np.ndarray]:
    coeffs = [float(c) for c in coefficients]

    def values(n: int) -> np.ndarray:
        k = np.arange(n) * (2.0 * math.pi / (n - 1))
        return sum(((-1) ** i) * c * np.cos(i * k) for i, c in enumerate(coeffs))

    return values


def general_cosine(M: int, *, a: Iterable[float], sym: bool = True, dtype: Any = None,
                   layout: Any = None, device: Any = None,
                   requires_grad: bool = False) -> Tensor:
    """sum_i (-1)^i a_i cos(2 pi i n / (M - 1)).

    >>> import kiln
    >>> kiln.signal.windows.general_cosine(3, a=[0.5, 0.5]).tolist()
    [0.0, 1.0, 0.0]
    """
    if isinstance(a, (str, bytes)) or not isinstance(a, Iterable):
        raise ArgumentError(f"general_cosine: a must be a sequence of coefficients, got "
                            f"{type(a).__name__}")
    return _window("general_cosine", M, sym, dtype, requires_grad, device, _cosine_sum(a))


def general_hamming(M: int, *, alpha: float = 0.54, sym: bool = True, dtype: Any = None,
                    layout: Any = None, device: Any = None,
                    requires_grad: bool = False) -> Tensor:
    """alpha - (1 - alpha) cos(2 pi n / (M - 1)).

    >>> import kiln
    >>> kiln.signal.windows.general_hamming(3, alpha=0.5).tolist()
    [0.0, 1.0, 0.0]
    """
    return _window("general_hamming", M, sym, dtype, requires_grad, device,
                   _cosine_sum([alpha, 1.0 - alpha]))


def hamming(M: int, *, sym: bool = True, dtype: Any = None, layout: Any = None,
            device: Any = None, requires_grad: bool = False) -> Tensor:
    """The Hamming window, 0.54 - 0.46 cos(2 pi n / (M - 1)).

    >>> import kiln
    >>> [round(v, 2) for v in kiln.signal.windows.hamming(3).tolist()]
    [0.08, 1.0, 0.08]
    """
    return _window("hamming", M, sym, dtype, requires_grad, device, _cosine_sum([0.54, 0.46]))


def hann(M: int, *, sym: bool = True, dtype: Any = None, layout: Any = None,
         device: Any = None, requires_grad: bool = False) -> Tensor:
    """The Hann window, 0.5 - 0.5 cos(2 pi n / (M - 1)).

    >>> import kiln
    >>> kiln.signal.windows.hann(3).tolist()
    [0.0, 1.0, 0.0]
    """
    return _window("hann", M, sym, dtype, requires_grad, device, _cosine_sum([0.5, 0.5]))


def blackman(M: int, *, sym: bool = True, dtype: Any = None, layout: Any = None,
             device: Any = None, requires_grad: bool = False) -> Tensor:
    """The Blackman window, 0.42 - 0.5 cos(2 pi n / (M - 1)) + 0.08 cos(4 pi n / (M - 1)).

    >>> import kiln
    >>> [round(v, 4) for v in kiln.signal.windows.blackman(5).tolist()][1:4]
    [0.34, 1.0, 0.34]
    """
    return _window("blackman", M, sym, dtype, requires_grad, device,
                   _cosine_sum([0.42, 0.5, 0.08]))


def nuttall(M: int, *, sym: bool = True, dtype: Any = None, layout: Any = None,
            device: Any = None, requires_grad: bool = False) -> Tensor:
    """The minimum 4-term Blackman-Harris window of Nuttall.

    >>> import kiln
    >>> [round(v, 4) for v in kiln.signal.windows.nuttall(3).tolist()]
    [0.0004, 1.0, 0.0004]
    """
    return _window("nuttall", M, sym, dtype, requires_grad, device,
                   _cosine_sum([0.3635819, 0.4891775, 0.1365995, 0.0106411]))


def bartlett(M: int, *, sym: bool = True, dtype: Any = None, layout: Any = None,
             device: Any = None, requires_grad: bool = False) -> Tensor:
    """The triangular Bartlett window, 1 - |2 n / (M - 1) - 1|.

    >>> import kiln
    >>> kiln.signal.windows.bartlett(3).tolist()
    [0.0, 1.0, 0.0]
    """
    return _window("bartlett", M, sym, dtype, requires_grad, device,
                   lambda n: 1.0 - np.abs(2.0 * np.arange(n) / (n - 1) - 1.0))


def cosine(M: int, *, sym: bool = True, dtype: Any = None, layout: Any = None,
           device: Any = None, requires_grad: bool = False) -> Tensor:
    """The cosine (sine) window, sin(pi (n + 0.5) / M).

    >>> import kiln
    >>> [round(v, 4) for v in kiln.signal.windows.cosine(2).tolist()]
    [0.7071, 0.7071]
    """
    return _window("cosine", M, sym, dtype, requires_grad, device,
                   lambda n: np.sin(math.pi * (np.arange(n) + 0.5) / n))


def _positive(fn: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueArgumentError(f"{fn}: {name} must be a positive number, got {value!r}")
    return float(value)


def exponential(M: int, *, center: float | None = None, tau: float = 1.0, sym: bool = True,
                dtype: Any = None, layout: Any = None, device: Any = None,
                requires_grad: bool = False) -> Tensor:
    """exp(-|n - center| / tau); ``center`` defaults to the middle ((M - 1) / 2, or M / 2
    for a periodic window) and may be given for a periodic window only.

    >>> import kiln
    >>> [round(v, 4) for v in kiln.signal.windows.exponential(3).tolist()]
    [0.3679, 1.0, 0.3679]
    """
    tau = _positive("exponential", "tau", tau)
    m = _length("exponential", M)
    if sym and center is not None:
        raise ValueArgumentError("exponential: center must be None for a symmetric window "
                                 "(sym=True), as in torch")
    mid = (m / 2 if not sym else (m - 1) / 2) if center is None else float(center)
    out = np.exp(-np.abs(np.arange(m) - mid) / tau) if m != 1 else np.ones(1)
    return _finish("exponential", out, dtype, requires_grad, device)


def gaussian(M: int, *, std: float = 1.0, sym: bool = True, dtype: Any = None,
             layout: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """exp(-((n - mid) / std)^2 / 2), mid = (M - 1) / 2 (M / 2 for a periodic window).

    >>> import kiln
    >>> [round(v, 4) for v in kiln.signal.windows.gaussian(3).tolist()]
    [0.6065, 1.0, 0.6065]
    """
    std = _positive("gaussian", "std", std)
    m = _length("gaussian", M)
    mid = (m - 1) / 2 if sym else m / 2
    out = np.exp(-0.5 * ((np.arange(m) - mid) / std) ** 2) if m != 1 else np.ones(1)
    return _finish("gaussian", out, dtype, requires_grad, device)


def kaiser(M: int, *, beta: float = 12.0, sym: bool = True, dtype: Any = None,
           layout: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """I0(beta sqrt(1 - (2 n / (M - 1) - 1)^2)) / I0(beta), I0 the modified Bessel function.

    >>> import kiln
    >>> [round(v, 4) for v in kiln.signal.windows.kaiser(3, beta=1.0).tolist()]
    [0.7898, 1.0, 0.7898]
    """
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or beta < 0:
        raise ValueArgumentError(f"kaiser: beta must be a non-negative number, got {beta!r}")

    def values(n: int) -> np.ndarray:
        ratio = 2.0 * np.arange(n) / (n - 1) - 1.0
        return np.i0(beta * np.sqrt(np.clip(1.0 - ratio * ratio, 0.0, None))) / np.i0(beta)

    return _window("kaiser", M, sym, dtype, requires_grad, device, values)


# torch's older top-level windows (periodic by default)
def _legacy(name: str, window: Callable[..., Tensor]) -> Callable[..., Tensor]:
    def fn(window_length: int, periodic: bool = True, *args: Any, dtype: Any = None,
           layout: Any = None, device: Any = None, requires_grad: bool = False,
           **kwargs: Any) -> Tensor:
        return window(window_length, *args, sym=not periodic, dtype=dtype, device=device,
                      requires_grad=requires_grad, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"torch.{name}: :func:`kiln.signal.windows.{window.__name__}` with "
                  f"``periodic`` (default True) for ``not sym``.\n\n>>> import kiln\n>>> "
                  f"kiln.{name}(1).tolist()\n[1.0]")
    return fn


def _hamming_window(M: int, *, alpha: float = 0.54, beta: float = 0.46, **kw: Any) -> Tensor:
    return _window("hamming_window", M, kw.get("sym", True), kw.get("dtype"),
                   kw.get("requires_grad", False), kw.get("device"),
                   _cosine_sum([alpha, beta]))


def _hamming_positional(M: int, alpha: float = 0.54, beta: float = 0.46, **kw: Any) -> Tensor:
    return _hamming_window(M, alpha=alpha, beta=beta, **kw)


_hamming_positional.__name__ = "hamming"


def _kaiser_positional(M: int, beta: float = 12.0, **kw: Any) -> Tensor:
    return kaiser(M, beta=beta, **kw)


_kaiser_positional.__name__ = "kaiser"

hann_window = _legacy("hann_window", hann)
hamming_window = _legacy("hamming_window", _hamming_positional)
blackman_window = _legacy("blackman_window", blackman)
bartlett_window = _legacy("bartlett_window", bartlett)
kaiser_window = _legacy("kaiser_window", _kaiser_positional)
LEGACY = ("hann_window", "hamming_window", "blackman_window", "bartlett_window",
          "kaiser_window")

__all__ = ["bartlett", "blackman", "cosine", "exponential", "gaussian", "general_cosine",
           "general_hamming", "hamming", "hann", "kaiser", "nuttall"]
