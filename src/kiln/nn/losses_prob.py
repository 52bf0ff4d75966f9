"""Likelihood losses of ``kiln.nn.functional`` as composites with torch's semantics:
``gaussian_nll_loss``, ``poisson_nll_loss`` and ``linear_cross_entropy`` (a linear layer
followed by ``cross_entropy``; torch's chunking ``options`` only save memory and are
accepted and ignored).

>>> import kiln, kiln.nn.functional as F
>>> F.gaussian_nll_loss(kiln.zeros(2), kiln.zeros(2), kiln.ones(2)).item()
0.0
"""

from __future__ import annotations

import math
from typing import Any

from kiln import ops
from kiln.core.creation import full_like
from kiln.core.functional import clamp, matmul, unsqueeze
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError
from kiln.nn.checks import want_tensor
from kiln.nn.losses import _check_reduction, _reduce, _torch_arguments, cross_entropy

__all__ = ["gaussian_nll_loss", "poisson_nll_loss", "linear_cross_entropy"]


def gaussian_nll_loss(input: Tensor, target: Tensor, var: Tensor | float, full: bool = False,
                      eps: float = 1e-6, reduction: str = "mean") -> Tensor:
    """0.5 (log var + (input - target)^2 / var) (+ 0.5 log 2 pi when ``full``); ``var`` is
    clamped at ``eps`` with the gradient passing through the clamp, as torch does. ``var``
    may have input's shape, miss its last dim, or have one dim of size 1.

    >>> import kiln, kiln.nn.functional as F
    >>> round(F.gaussian_nll_loss(kiln.tensor([1.0]), kiln.tensor([3.0]), kiln.tensor([2.0]),
    ...                           reduction="sum").item(), 4)
    1.3466
    """
    fn = "gaussian_nll_loss"
    want_tensor(fn, "input", input)
    if isinstance(var, (int, float)) and not isinstance(var, bool):
        if var < 0:
            raise ArgumentError(f"{fn}: var must be non-negative, got {var}")
        var = full_like(input, float(var))
    want_tensor(fn, "var", var)
    if tuple(var.shape) != tuple(input.shape):
        if tuple(input.shape[:-1]) == tuple(var.shape):
            var = unsqueeze(var, -1)
        elif not (input.ndim == var.ndim and sum(
                int(b) for a, b in zip(input.shape, var.shape) if a != b) == 1):
            raise ShapeError(f"{fn}: var shape {tuple(var.shape)} fits neither input shape "
                             f"{tuple(input.shape)}, nor it without the last dim, nor it with "
                             "one dim of size 1")
    _check_reduction(fn, reduction)
    # torch clamps in place under no_grad: the value is clamped, the gradient is var's own
    var = var + (clamp(var, min=eps) - var).detach()
    d = input - target
    loss = 0.5 * (ops.log(var) + d * d / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


@_torch_arguments(("input", "target", "log_input", "full", "size_average", "eps", "reduce",
                   "reduction"))
def poisson_nll_loss(input: Tensor, target: Tensor, log_input: bool = True, full: bool = False,
                     eps: float = 1e-8, reduction: str = "mean") -> Tensor:
    """exp(input) - target input (``log_input``), else input - target log(input + eps); with
    ``full`` the Stirling term of target > 1 is added.

    >>> import kiln, kiln.nn.functional as F
    >>> F.poisson_nll_loss(kiln.zeros(2), kiln.zeros(2)).item()
    1.0
    """
    _check_reduction("poisson_nll_loss", reduction)
    if log_input:
        loss = ops.exp(input) - target * input
    else:
        loss = input - target * ops.log(input + eps)
    if full:
        big = target > 1
        t = ops.where(big, target, 2.0)  # no log(0) whose 0 * inf gradient would be nan
        stirling = t * ops.log(t) - t + 0.5 * ops.log(2 * math.pi * t)
        loss = loss + ops.where(big, stirling, 0.0)
    return _reduce(loss, reduction)


def linear_cross_entropy(input: Tensor, linear_weight: Tensor, target: Tensor, *,
                         linear_bias: Tensor | None = None, weight: Tensor | None = None,
                         reduction: str = "mean", ignore_index: int | None = None,
                         label_smoothing: float = 0.0, options: Any = None) -> Tensor:
    """``cross_entropy(linear(input, linear_weight) + linear_bias, target, ...)``: input (in,)
    or (N, in), linear_weight (C, in) or (C, d1, ..., dK, in) for a K-dimensional loss.
    ``options`` (torch's chunking, a memory saving) is accepted and ignored.

    >>> import kiln, kiln.nn.functional as F
    >>> round(F.linear_cross_entropy(kiln.ones(1, 2), kiln.zeros(3, 2),
    ...                              kiln.tensor([0])).item(), 4)
    1.0986
    """
    fn = "linear_cross_entropy"
    want_tensor(fn, "input", input)
    want_tensor(fn, "linear_weight", linear_weight)
    if input.ndim not in (1, 2):
        raise ShapeError(f"{fn}: input must be (in_features,) or (N, in_features), got "
                         f"{tuple(input.shape)}")
    if linear_weight.ndim < 2 or linear_weight.shape[-1] != input.shape[-1]:
        raise ShapeError(f"{fn}: linear_weight must be (C, ..., in_features) with in_features "
                         f"{input.shape[-1]}, got {tuple(linear_weight.shape)}")
    c = linear_weight.shape[0]
    out_features = tuple(linear_weight.shape[1:-1])
    if linear_bias is not None and tuple(linear_bias.shape) != (c, *out_features):
        raise ShapeError(f"{fn}: linear_bias must have shape {(c, *out_features)}, got "
                         f"{tuple(linear_bias.shape)}")
    if out_features and input.ndim == 1:
        raise ShapeError(f"{fn}: a K-dimensional linear_weight {tuple(linear_weight.shape)} "
                         f"needs batched input (N, in_features), got {tuple(input.shape)}")
    batch = tuple(input.shape[:-1])
    w2 = linear_weight.reshape(-1, input.shape[-1])
    logits = matmul(input, w2.transpose(0, 1)).reshape(*batch, c, *out_features)
    if linear_bias is not None:
        logits = logits + linear_bias
    probabilities = tuple(target.shape) == tuple(logits.shape)
    if probabilities and ignore_index is not None:
        raise ArgumentError(f"{fn}: ignore_index cannot be given when target holds class "
                            "probabilities")
    return cross_entropy(logits, target, weight, reduction=reduction,
                         ignore_index=-100 if ignore_index is None else ignore_index,
                         label_smoothing=label_smoothing)
