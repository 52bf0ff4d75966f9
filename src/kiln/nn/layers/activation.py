"""Activation layers: thin modules over ``kiln.nn.functional`` with PyTorch's reprs.

``inplace=True`` is accepted for compatibility and shown in the repr, but Kiln computes
out of place (the result is the same; only PyTorch's memory saving is lost).

>>> import kiln
>>> from kiln import nn
>>> nn.GELU(approximate="tanh"), nn.LeakyReLU(0.2), nn.ReLU(inplace=True)
(GELU(approximate='tanh'), LeakyReLU(negative_slope=0.2), ReLU(inplace=True))
>>> nn.Softmax(dim=-1)(kiln.zeros(2, 4)).tolist()[0]
[0.25, 0.25, 0.25, 0.25]
"""

from __future__ import annotations

from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError
from kiln.nn import functional as F
from kiln.nn.layers._utils import check_choice, check_float
from kiln.nn.module import Module


def _inplace_repr(inplace: bool, lead: str = "") -> str:
    if not inplace:
        return ""
    return (", " if lead else "") + "inplace=True"


class _InplaceActivation(Module):
    """An elementwise activation whose only option is PyTorch's ``inplace`` flag."""

    _fn = staticmethod(F.relu)

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = bool(inplace)

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._fn(input)

    def extra_repr(self) -> str:
        return _inplace_repr(self.inplace)


class _Activation(Module):
    """An elementwise activation without options."""

    _fn = staticmethod(F.tanh)

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._fn(input)


class ReLU(_InplaceActivation):
    """max(x, 0) elementwise.

    >>> import kiln
    >>> kiln.nn.ReLU()(kiln.tensor([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """

    _fn = staticmethod(F.relu)


class ReLU6(_InplaceActivation):
    """min(max(x, 0), 6) elementwise.

    >>> import kiln
    >>> kiln.nn.ReLU6()(kiln.tensor([-1.0, 2.0, 9.0])).tolist()
    [0.0, 2.0, 6.0]
    """

    _fn = staticmethod(F.relu6)


class GELU(Module):
    """Gaussian error linear unit, exact (``approximate='none'``) or with tanh.

    >>> import kiln
    >>> [round(v, 4) for v in kiln.nn.GELU()(kiln.tensor([-1.0, 0.0, 1.0])).tolist()]
    [-0.1587, 0.0, 0.8413]
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = check_choice("GELU", "approximate", approximate, ("none", "tanh"))

    def forward(self, input: Tensor) -> Tensor:
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(_InplaceActivation):
    """x * sigmoid(x) elementwise.

    >>> import kiln
    >>> [round(v, 4) for v in kiln.nn.SiLU()(kiln.tensor([-1.0, 0.0, 1.0])).tolist()]
    [-0.2689, 0.0, 0.7311]
    """

    _fn = staticmethod(F.silu)


class Mish(_InplaceActivation):
    """x * tanh(softplus(x)) elementwise.

    >>> import kiln
    >>> [round(v, 4) for v in kiln.nn.Mish()(kiln.tensor([-1.0, 0.0, 1.0])).tolist()]
    [-0.3034, 0.0, 0.8651]
    """

    _fn = staticmethod(F.mish)


class Tanh(_Activation):
    """tanh elementwise.

    >>> import kiln
    >>> [round(v, 4) for v in kiln.nn.Tanh()(kiln.tensor([-1.0, 0.0])).tolist()]
    [-0.7616, 0.0]
    """

    _fn = staticmethod(F.tanh)


class Sigmoid(_Activation):
    """1 / (1 + exp(-x)) elementwise.

    >>> import kiln
    >>> kiln.nn.Sigmoid()(kiln.tensor([0.0])).tolist()
    [0.5]
    """

    _fn = staticmethod(F.sigmoid)


class LogSigmoid(_Activation):
    """log(sigmoid(x)) elementwise, computed stably.

    >>> import kiln
    >>> [round(v, 4) for v in kiln.nn.LogSigmoid()(kiln.tensor([0.0, -200.0])).tolist()]
    [-0.6931, -200.0]
    """

    _fn = staticmethod(F.logsigmoid)


class Hardtanh(Module):
    """clamp(x, min_val, max_val) elementwise.

    >>> import kiln
    >>> kiln.nn.Hardtanh(-0.5, 0.5)(kiln.tensor([-1.0, 0.25, 2.0])).tolist()
    [-0.5, 0.25, 0.5]
    """

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0,
                 inplace: bool = False) -> None:
        super().__init__()
        if max_val <= min_val:
            raise ArgumentError(f"Hardtanh: max_val ({max_val}) must be greater than min_val "
                                f"({min_val})")
        self.min_val, self.max_val, self.inplace = min_val, max_val, bool(inplace)

    def forward(self, input: Tensor) -> Tensor:
        return F.hardtanh(input, self.min_val, self.max_val)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}" + \
            _inplace_repr(self.inplace, "x")


class _SoftmaxBase(Module):
    _fn = staticmethod(F.softmax)

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int)):
            raise ArgumentError(f"{type(self).__name__}: dim must be an int, got {dim!r}")
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        if self.dim is None:
            raise ArgumentError(f"{type(self).__name__}: dim is required (PyTorch's implicit "
                                f"dim choice is deprecated); construct it with dim=...")
        return type(self)._fn(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax(_SoftmaxBase):
    """exp(x) / sum(exp(x)) along ``dim``.

    >>> import kiln
    >>> kiln.nn.Softmax(dim=1)(kiln.zeros(1, 4)).tolist()
    [[0.25, 0.25, 0.25, 0.25]]
    """

    _fn = staticmethod(F.softmax)


class LogSoftmax(_SoftmaxBase):
    """log(softmax(x)) along ``dim``, computed stably.

    >>> import kiln
    >>> [round(v, 4) for v in kiln.nn.LogSoftmax(dim=0)(kiln.zeros(2)).tolist()]
    [-0.6931, -0.6931]
    """

    _fn = staticmethod(F.log_softmax)


class Softmin(_SoftmaxBase):
    """softmax(-x) along ``dim``.

    >>> import kiln
    >>> [round(v, 4) for v in kiln.nn.Softmin(dim=0)(kiln.tensor([0.0, 1.0])).tolist()]
    [0.7311, 0.2689]
    """

    _fn = staticmethod(F.softmin)


class LeakyReLU(Module):
    """x for x > 0, else ``negative_slope * x``.

    >>> import kiln
    >>> kiln.nn.LeakyReLU(0.5)(kiln.tensor([-2.0, 3.0])).tolist()
    [-1.0, 3.0]
    """

    def __init__(self, negative_slope: float = 1e-2, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = check_float("LeakyReLU", "negative_slope", negative_slope)
        self.inplace = bool(inplace)

    def forward(self, input: Tensor) -> Tensor:
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + _inplace_repr(self.inplace, "x")


class ELU(Module):
    """x for x > 0, else ``alpha * (exp(x) - 1)``.

    >>> import kiln
    >>> [round(v, 4) for v in kiln.nn.ELU()(kiln.tensor([-1.0, 2.0])).tolist()]
    [-0.6321, 2.0]
    """

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha = check_float("ELU", "alpha", alpha)
        self.inplace = bool(inplace)

    def forward(self, input: Tensor) -> Tensor:
        return F.elu(input, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + _inplace_repr(self.inplace, "x")


class Softplus(Module):
    """log(1 + exp(beta * x)) / beta, linear above ``threshold``.

    >>> import kiln
    >>> [round(v, 4) for v in kiln.nn.Softplus()(kiln.tensor([0.0, 30.0])).tolist()]
    [0.6931, 30.0]
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = check_float("Softplus", "beta", beta)
        self.threshold = check_float("Softplus", "threshold", threshold)

    def forward(self, input: Tensor) -> Tensor:
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"
