"""Modules over :mod:`kiln.nn.activations` (torch's names, arguments and reprs):
``Softsign``, ``Softshrink``, ``Hardshrink``, ``Hardswish``, ``SELU``, ``CELU``, ``GLU``,
``Threshold`` and ``Softmax2d``."""

from __future__ import annotations

from kiln.core.tensor import Tensor
from kiln.errors import ShapeError
from kiln.nn import activations as A
from kiln.nn import functional as F
from kiln.nn.layers._utils import check_float
from kiln.nn.module import Module


def _inplace(inplace: bool, lead: bool) -> str:
    return ((", " if lead else "") + "inplace=True") if inplace else ""


class Softsign(Module):
    """``x / (1 + |x|)``.

    >>> import kiln
    >>> kiln.nn.Softsign()(kiln.tensor([1.0])).tolist()
    [0.5]
    """

    def forward(self, input: Tensor) -> Tensor:
        return A.softsign(input)


class _Shrink(Module):
    """The shared body of Softshrink and Hardshrink (``lambd``, torch's repr)."""

    def __init__(self, lambd: float = 0.5) -> None:
        super().__init__()
        self.lambd = check_float(type(self).__name__, "lambd", lambd)

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._fn(input, self.lambd)

    def extra_repr(self) -> str:
        return str(self.lambd)


class Softshrink(_Shrink):
    """Shrink toward 0 by ``lambd`` (0 inside ``[-lambd, lambd]``).

    >>> import kiln
    >>> kiln.nn.Softshrink(1.0)(kiln.tensor([1.5, -0.5])).tolist()
    [0.5, 0.0]
    """

    _fn = staticmethod(A.softshrink)


class Hardshrink(_Shrink):
    """``x`` outside ``[-lambd, lambd]``, else 0.

    >>> import kiln
    >>> kiln.nn.Hardshrink(1.0)(kiln.tensor([1.5, -0.5])).tolist()
    [1.5, 0.0]
    """

    _fn = staticmethod(A.hardshrink)


class Hardswish(Module):
    """``x * relu6(x + 3) / 6``.

    >>> import kiln
    >>> kiln.nn.Hardswish()(kiln.tensor([4.0])).tolist()
    [4.0]
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = bool(inplace)

    def forward(self, input: Tensor) -> Tensor:
        return A.hardswish(input)


class SELU(Module):
    """Scaled ELU with torch's self-normalizing constants.

    >>> import kiln
    >>> round(kiln.nn.SELU()(kiln.tensor([1.0])).item(), 4)
    1.0507
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = bool(inplace)

    def forward(self, input: Tensor) -> Tensor:
        return A.selu(input)

    def extra_repr(self) -> str:
        return _inplace(self.inplace, False)


class CELU(Module):
    """``x`` for x > 0, else ``alpha * (exp(x / alpha) - 1)``.

    >>> import kiln
    >>> kiln.nn.CELU(2.0)
    CELU(alpha=2.0)
    """

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha = check_float("CELU", "alpha", alpha)
        self.inplace = bool(inplace)

    def forward(self, input: Tensor) -> Tensor:
        return A.celu(input, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + _inplace(self.inplace, True)


class GLU(Module):
    """Gated linear unit over ``dim`` (its size halves).

    >>> import kiln
    >>> kiln.nn.GLU()(kiln.ones(2, 4)).shape
    (2, 2)
    """

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        return A.glu(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Threshold(Module):
    """``x`` above ``threshold``, else ``value``.

    >>> import kiln
    >>> kiln.nn.Threshold(0.1, 20.0)(kiln.tensor([0.0, 1.0])).tolist()
    [20.0, 1.0]
    """

    def __init__(self, threshold: float, value: float, inplace: bool = False) -> None:
        super().__init__()
        self.threshold = check_float("Threshold", "threshold", threshold)
        self.value = check_float("Threshold", "value", value)
        self.inplace = bool(inplace)

    def forward(self, input: Tensor) -> Tensor:
        return A.threshold(input, self.threshold, self.value)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, value={self.value}" + _inplace(self.inplace, True)


class Softmax2d(Module):
    """Softmax over the channels of (N, C, H, W) or (C, H, W) input.

    >>> import kiln
    >>> kiln.nn.Softmax2d()(kiln.zeros(1, 2, 1, 1)).flatten().tolist()
    [0.5, 0.5]
    """

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim not in (3, 4):
            raise ShapeError(f"Softmax2d: expected 3-D (C, H, W) or 4-D (N, C, H, W) input, "
                             f"got shape {tuple(input.shape)}")
        return F.softmax(input, -3)


__all__ = ["Softsign", "Softshrink", "Hardshrink", "Hardswish", "SELU", "CELU", "GLU",
           "Threshold", "Softmax2d"]
