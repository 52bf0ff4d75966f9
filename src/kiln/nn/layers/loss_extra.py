"""torch's margin, embedding and likelihood losses as modules, and the distance modules
(``nn.PairwiseDistance``, ``nn.CosineSimilarity``): each calls its ``F.*`` composite with the
constructor's arguments (torch's names and order, the legacy ``size_average`` / ``reduce``
included).

>>> import kiln
>>> from kiln import nn
>>> nn.SoftMarginLoss(reduction="sum")(kiln.zeros(2), kiln.ones(2)).item() > 1.38
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from kiln.core.tensor import Tensor
from kiln.nn import functional as F
from kiln.nn.layers.linear import Linear
from kiln.nn.layers.loss import _Loss, _WeightedLoss
from kiln.nn.module import Module

__all__ = ["MarginRankingLoss", "HingeEmbeddingLoss", "SoftMarginLoss",
           "MultiLabelSoftMarginLoss", "MultiMarginLoss", "MultiLabelMarginLoss",
           "CosineEmbeddingLoss", "TripletMarginLoss", "TripletMarginWithDistanceLoss",
           "GaussianNLLLoss", "PoissonNLLLoss", "LinearCrossEntropyLoss", "PairwiseDistance",
           "CosineSimilarity"]


class _MarginLoss(_Loss):
    def __init__(self, margin: float, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin


class MarginRankingLoss(_MarginLoss):
    """max(0, -y (x1 - x2) + margin).

    >>> import kiln
    >>> kiln.nn.MarginRankingLoss()(kiln.tensor([1.0]), kiln.tensor([2.0]),
    ...                             kiln.tensor([1.0])).item()
    1.0
    """

    def __init__(self, margin: float = 0.0, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(margin, size_average, reduce, reduction)

    def forward(self, input1: Tensor, input2: Tensor, target: Tensor) -> Tensor:
        return F.margin_ranking_loss(input1, input2, target, margin=self.margin,
                                     reduction=self.reduction)


class HingeEmbeddingLoss(_MarginLoss):
    """x where y = 1, max(0, margin - x) where y = -1.

    >>> import kiln
    >>> kiln.nn.HingeEmbeddingLoss()(kiln.tensor([0.5]), kiln.tensor([-1.0])).item()
    0.5
    """

    def __init__(self, margin: float = 1.0, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(margin, size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.hinge_embedding_loss(input, target, margin=self.margin,
                                      reduction=self.reduction)


class CosineEmbeddingLoss(_MarginLoss):
    """1 - cos(x1, x2) where y = 1, max(0, cos(x1, x2) - margin) where y = -1.

    >>> import kiln
    >>> kiln.nn.CosineEmbeddingLoss()(kiln.ones(1, 2), kiln.ones(1, 2),
    ...                               kiln.tensor([-1.0])).item() > 0.99
    True
    """

    def __init__(self, margin: float = 0.0, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(margin, size_average, reduce, reduction)

    def forward(self, input1: Tensor, input2: Tensor, target: Tensor) -> Tensor:
        return F.cosine_embedding_loss(input1, input2, target, margin=self.margin,
                                       reduction=self.reduction)


class SoftMarginLoss(_Loss):
    """log(1 + exp(-y x)).

    >>> import kiln
    >>> round(kiln.nn.SoftMarginLoss()(kiln.zeros(2), kiln.ones(2)).item(), 4)
    0.6931
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.soft_margin_loss(input, target, reduction=self.reduction)


class MultiLabelMarginLoss(_Loss):
    """The multi-label hinge loss (targets listed by index, ended by -1).

    >>> import kiln
    >>> x = kiln.tensor([[0.1, 0.2, 0.4, 0.8]])
    >>> round(kiln.nn.MultiLabelMarginLoss()(x, kiln.tensor([[3, 0, -1, 1]])).item(), 4)
    0.85
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.multilabel_margin_loss(input, target, reduction=self.reduction)


class MultiLabelSoftMarginLoss(_WeightedLoss):
    """The per-class logistic loss of 0/1 targets, averaged over the classes.

    >>> import kiln
    >>> round(kiln.nn.MultiLabelSoftMarginLoss()(kiln.zeros(1, 3), kiln.ones(1, 3)).item(), 4)
    0.6931
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.multilabel_soft_margin_loss(input, target, weight=self.weight,
                                             reduction=self.reduction)


class MultiMarginLoss(_WeightedLoss):
    """The multi-class hinge loss, ``p`` 1 or 2, class ``weight`` optional.

    >>> import kiln
    >>> round(kiln.nn.MultiMarginLoss()(kiln.tensor([[0.1, 0.2, 0.4, 0.8]]),
    ...                                 kiln.tensor([3])).item(), 4)
    0.325
    """

    def __init__(self, p: int = 1, margin: float = 1.0, weight: Tensor | None = None,
                 size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.p, self.margin = p, margin

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.multi_margin_loss(input, target, p=self.p, margin=self.margin,
                                   weight=self.weight, reduction=self.reduction)


class TripletMarginLoss(_Loss):
    """max(0, margin + d(a, p) - d(a, n)) with the p-norm ``pairwise_distance``.

    >>> import kiln
    >>> kiln.nn.TripletMarginLoss()(kiln.zeros(1, 2), kiln.zeros(1, 2), kiln.zeros(1, 2)).item()
    1.0
    """

    def __init__(self, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6,
                 swap: bool = False, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin, self.p, self.eps, self.swap = margin, p, eps, swap

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        return F.triplet_margin_loss(anchor, positive, negative, margin=self.margin, p=self.p,
                                     eps=self.eps, swap=self.swap, reduction=self.reduction)


class TripletMarginWithDistanceLoss(_Loss):
    """The triplet loss with any ``distance_function`` (``pairwise_distance`` when None).

    >>> import kiln
    >>> kiln.nn.TripletMarginWithDistanceLoss(margin=2.0)(kiln.zeros(1, 2), kiln.zeros(1, 2),
    ...                                                  kiln.zeros(1, 2)).item()
    2.0
    """

    def __init__(self, *, distance_function: Callable[[Tensor, Tensor], Tensor] | None = None,
                 margin: float = 1.0, swap: bool = False, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        self.distance_function = distance_function
        self.margin, self.swap = margin, swap

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        return F.triplet_margin_with_distance_loss(
            anchor, positive, negative, distance_function=self.distance_function,
            margin=self.margin, swap=self.swap, reduction=self.reduction)


class GaussianNLLLoss(_Loss):
    """The Gaussian negative log-likelihood of ``target`` under mean ``input`` and ``var``.

    >>> import kiln
    >>> kiln.nn.GaussianNLLLoss()(kiln.zeros(2), kiln.zeros(2), kiln.ones(2)).item()
    0.0
    """

    def __init__(self, *, full: bool = False, eps: float = 1e-6, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        self.full, self.eps = full, eps

    def forward(self, input: Tensor, target: Tensor, var: Tensor | float) -> Tensor:
        return F.gaussian_nll_loss(input, target, var, full=self.full, eps=self.eps,
                                   reduction=self.reduction)


class PoissonNLLLoss(_Loss):
    """The Poisson negative log-likelihood of ``target`` under rate ``input`` (or its log).

    >>> import kiln
    >>> kiln.nn.PoissonNLLLoss()(kiln.zeros(2), kiln.zeros(2)).item()
    1.0
    """

    def __init__(self, log_input: bool = True, full: bool = False,
                 size_average: bool | None = None, eps: float = 1e-8,
                 reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_input, self.full, self.eps = log_input, full, eps

    def forward(self, log_input: Tensor, target: Tensor) -> Tensor:
        return F.poisson_nll_loss(log_input, target, log_input=self.log_input, full=self.full,
                                  eps=self.eps, reduction=self.reduction)


class LinearCrossEntropyLoss(_WeightedLoss):
    """A bias-optional ``Linear(in_features, num_classes * prod(out_features))`` (its weight
    flat, as torch stores it, so a torch ``state_dict`` loads) followed by cross-entropy.

    >>> import kiln
    >>> loss = kiln.nn.LinearCrossEntropyLoss(4, 3)
    >>> loss.linear.weight.shape, loss(kiln.ones(2, 4), kiln.tensor([0, 2])).shape
    ((3, 4), ())
    """

    def __init__(self, in_features: int, num_classes: int, *, out_features: tuple = (),
                 bias: bool = False, device: Any = None, dtype: Any = None,
                 reduction: str = "mean", weight: Tensor | None = None,
                 ignore_index: int | None = None, label_smoothing: float = 0.0,
                 options: Any = None) -> None:
        super().__init__(weight, reduction=reduction)
        self.num_classes = num_classes
        self.out_features = tuple(out_features)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.options = options
        self.linear = Linear(in_features, math.prod(self.out_features, start=num_classes),
                             bias=bias, device=device, dtype=dtype)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        shape = (self.num_classes, *self.out_features)
        w = self.linear.weight.reshape(*shape, self.linear.in_features)
        b = None if self.linear.bias is None else self.linear.bias.reshape(*shape)
        return F.linear_cross_entropy(input, w, target, linear_bias=b, weight=self.weight,
                                      reduction=self.reduction, ignore_index=self.ignore_index,
                                      label_smoothing=self.label_smoothing, options=self.options)

    def extra_repr(self) -> str:
        return (f"in_features={self.linear.in_features}, num_classes={self.num_classes}, "
                f"out_features={self.out_features}, bias={self.linear.bias is not None}, "
                f"reduction={self.reduction}")


class PairwiseDistance(Module):
    """``F.pairwise_distance`` as a module.

    >>> import kiln
    >>> round(kiln.nn.PairwiseDistance(eps=0.0)(kiln.tensor([[3.0, 4.0]]),
    ...                                         kiln.zeros(1, 2)).item(), 4)
    5.0
    """

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> None:
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)


class CosineSimilarity(Module):
    """``F.cosine_similarity`` as a module.

    >>> import kiln
    >>> round(kiln.nn.CosineSimilarity()(kiln.ones(1, 2), kiln.ones(1, 2)).item(), 4)
    1.0
    """

    def __init__(self, dim: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return F.cosine_similarity(x1, x2, self.dim, self.eps)
