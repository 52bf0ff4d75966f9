"""Loss functions as modules (``nn.CrossEntropyLoss()(logits, target)``).

Class weights and ``pos_weight`` are registered buffers, as in PyTorch, so they show up in
``state_dict()`` and move with ``.to(dtype)``.

>>> import kiln
>>> from kiln import nn
>>> loss = nn.CrossEntropyLoss(label_smoothing=0.1)
>>> round(loss(kiln.zeros(2, 4), kiln.tensor([0, 3])).item(), 4)
1.3863
>>> nn.MSELoss(reduction="sum")(kiln.ones(3), kiln.zeros(3)).item()
3.0
"""

from __future__ import annotations

from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError
from kiln.nn import functional as F
from kiln.nn.layers._utils import check_choice, check_float
from kiln.nn.module import Module

_REDUCTIONS = ("mean", "sum", "none")


def _legacy_reduction(size_average: bool | None, reduce: bool | None) -> str:
    # PyTorch's pre-1.0 arguments: reduce=False -> "none", size_average=False -> "sum".
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


class _Loss(Module):
    _reductions = _REDUCTIONS

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean") -> None:
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = _legacy_reduction(size_average, reduce)
        self.reduction = check_choice(type(self).__name__, "reduction", reduction,
                                      self._reductions)


class _WeightedLoss(_Loss):
    def __init__(self, weight: Tensor | None = None, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        if weight is not None and not isinstance(weight, Tensor):
            raise ArgumentError(f"{type(self).__name__}: weight must be a kiln.Tensor or None, "
                                f"got {type(weight).__name__}")
        self.register_buffer("weight", weight)


class L1Loss(_Loss):
    """Mean absolute error.

    >>> import kiln
    >>> kiln.nn.L1Loss()(kiln.tensor([1.0, 4.0]), kiln.tensor([2.0, 2.0])).item()
    1.5
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(input, target, reduction=self.reduction)


class MSELoss(_Loss):
    """Mean squared error.

    >>> import kiln
    >>> kiln.nn.MSELoss()(kiln.tensor([1.0, 4.0]), kiln.tensor([2.0, 2.0])).item()
    2.5
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of class indices under log-probabilities (N, C, ...).

    >>> import kiln
    >>> logp = kiln.tensor([[-0.5, -1.0], [-2.0, -0.25]])
    >>> kiln.nn.NLLLoss()(logp, kiln.tensor([0, 1])).item()
    0.375
    """

    def __init__(self, weight: Tensor | None = None, size_average: bool | None = None,
                 ignore_index: int = -100, reduce: bool | None = None,
                 reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    """Cross-entropy of logits against class indices or class probabilities.

    >>> import kiln
    >>> round(kiln.nn.CrossEntropyLoss()(kiln.zeros(2, 4), kiln.tensor([0, 3])).item(), 4)
    1.3863
    """

    def __init__(self, weight: Tensor | None = None, size_average: bool | None = None,
                 ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = check_float("CrossEntropyLoss", "label_smoothing",
                                           label_smoothing, 0.0, 1.0)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy of probabilities.

    >>> import kiln
    >>> round(kiln.nn.BCELoss()(kiln.tensor([0.5, 0.5]), kiln.tensor([0.0, 1.0])).item(), 4)
    0.6931
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy(input, target, weight=self.weight,
                                      reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of logits (numerically stable), with optional ``pos_weight``.

    >>> import kiln
    >>> round(kiln.nn.BCEWithLogitsLoss()(kiln.zeros(2), kiln.tensor([0.0, 1.0])).item(), 4)
    0.6931
    """

    def __init__(self, weight: Tensor | None = None, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean",
                 pos_weight: Tensor | None = None) -> None:
        super().__init__(size_average, reduce, reduction)
        for name, value in (("weight", weight), ("pos_weight", pos_weight)):
            if value is not None and not isinstance(value, Tensor):
                raise ArgumentError(f"BCEWithLogitsLoss: {name} must be a kiln.Tensor or None, "
                                    f"got {type(value).__name__}")
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight,
                                                  reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class SmoothL1Loss(_Loss):
    """Quadratic below ``beta``, linear above (``beta = 0`` is L1).

    >>> import kiln
    >>> kiln.nn.SmoothL1Loss(reduction="none")(kiln.tensor([0.5, 3.0]), kiln.zeros(2)).tolist()
    [0.125, 2.5]
    """

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = check_float("SmoothL1Loss", "beta", beta, 0.0)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """Quadratic below ``delta``, then linear with slope ``delta``.

    >>> import kiln
    >>> kiln.nn.HuberLoss(reduction="none", delta=2.0)(kiln.tensor([1.0, 3.0]),
    ...                                                kiln.zeros(2)).tolist()
    [0.5, 4.0]
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.delta = check_float("HuberLoss", "delta", delta, 0.0)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class KLDivLoss(_Loss):
    """KL divergence with log-probability ``input``; ``reduction="batchmean"`` is the true
    mean over the batch.

    >>> import kiln
    >>> logp = kiln.tensor([[0.5, 0.5]]).log()
    >>> kiln.nn.KLDivLoss(reduction="batchmean")(logp, kiln.tensor([[0.5, 0.5]])).item()
    0.0
    """

    _reductions = _REDUCTIONS + ("batchmean",)

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean", log_target: bool = False) -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_target = bool(log_target)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)
