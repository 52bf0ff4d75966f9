"""More of torch's activation functions, as composites of pointwise primitives:
``softsign``, ``softshrink``, ``hardshrink``, ``hardswish``, ``selu``, ``celu``, ``glu`` and
``threshold`` (``kiln.nn.functional``; the modules are in :mod:`kiln.nn.layers.activations`).

``inplace=True`` is accepted and computes out of place (Kiln's functional results are new
tensors; the module keeps the flag for its repr), as the other activations here do.
"""

from __future__ import annotations

from kiln import ops
from kiln.core.functional import chunk
from kiln.core.prims.shapes import fmt_shape, norm_dim
from kiln.core.tensor import Tensor
from kiln.errors import ShapeError
from kiln.nn.checks import want_tensor

# torch's SELU constants (Klambauer et al., 2017).
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def softsign(input: Tensor) -> Tensor:
    """``x / (1 + |x|)``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.softsign(kiln.tensor([-3.0, 1.0])).tolist()
    [-0.75, 0.5]
    """
    x = want_tensor("softsign", "input", input)
    return x / (ops.abs(x) + 1.0)


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``x - lambd`` above ``lambd``, ``x + lambd`` below ``-lambd``, else 0.

    >>> import kiln, kiln.nn.functional as F
    >>> F.softshrink(kiln.tensor([-2.0, 0.2, 1.5]), 1.0).tolist()
    [-1.0, 0.0, 0.5]
    """
    x = want_tensor("softshrink", "input", input)
    return ops.where(x > lambd, x - lambd, ops.where(x < -lambd, x + lambd, 0.0))


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``x`` where ``|x| > lambd``, else 0.

    >>> import kiln, kiln.nn.functional as F
    >>> F.hardshrink(kiln.tensor([-2.0, 0.2, 1.5]), 1.0).tolist()
    [-2.0, 0.0, 1.5]
    """
    x = want_tensor("hardshrink", "input", input)
    return ops.where(ops.logical_or(x > lambd, x < -lambd), x, 0.0)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * relu6(x + 3) / 6``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.hardswish(kiln.tensor([-4.0, 0.0, 1.0, 4.0])).tolist()
    [-0.0, 0.0, 0.6666666865348816, 4.0]
    """
    x = want_tensor("hardswish", "input", input)
    return x * (x + 3.0).clamp(0.0, 6.0) / 6.0


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` where x > 0, else ``alpha * (exp(x / alpha) - 1)``.

    >>> import kiln, kiln.nn.functional as F
    >>> [round(v, 4) for v in F.celu(kiln.tensor([-1.0, 2.0]), 2.0).tolist()]
    [-0.7869, 2.0]
    """
    x = want_tensor("celu", "input", input)
    # expm1 of min(x, 0) keeps the untaken branch finite (as F.elu does)
    return ops.where(x > 0, x, ops.expm1(ops.where(x > 0, 0.0, x) / alpha) * alpha)


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """``scale * elu(x, alpha)`` with torch's self-normalizing constants.

    >>> import kiln, kiln.nn.functional as F
    >>> [round(v, 4) for v in F.selu(kiln.tensor([-1.0, 1.0])).tolist()]
    [-1.1113, 1.0507]
    """
    x = want_tensor("selu", "input", input)
    neg = ops.expm1(ops.where(x > 0, 0.0, x)) * _SELU_ALPHA
    return ops.where(x > 0, x, neg) * _SELU_SCALE


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """Gated linear unit: the first half of ``dim`` times the sigmoid of the second.

    >>> import kiln, kiln.nn.functional as F
    >>> F.glu(kiln.tensor([2.0, 0.0])).tolist()
    [1.0]
    """
    x = want_tensor("glu", "input", input)
    if x.ndim == 0:
        raise ShapeError("glu: a 0-d tensor has no dim to halve")
    d = norm_dim("glu", dim, x.ndim)
    size = x.shape[d]
    if isinstance(size, int) and size % 2:
        raise ShapeError(f"glu: dim {dim} must have an even size to halve, got shape "
                         f"{fmt_shape(x.shape)}")
    a, b = chunk(x, 2, d)
    return a * ops.sigmoid(b)


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """``x`` where ``x > threshold``, else ``value``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.threshold(kiln.tensor([0.5, 2.0]), 1.0, -1.0).tolist()
    [-1.0, 2.0]
    """
    x = want_tensor("threshold", "input", input)
    return ops.where(x > threshold, x, value)


__all__ = ["softsign", "softshrink", "hardshrink", "hardswish", "celu", "selu", "glu",
           "threshold"]
