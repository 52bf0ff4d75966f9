"""Margin and embedding losses of ``kiln.nn.functional`` as composites with torch's semantics:
``margin_ranking_loss``, ``hinge_embedding_loss``, ``soft_margin_loss``,
``multilabel_soft_margin_loss``, ``multi_margin_loss``, ``multilabel_margin_loss``,
``cosine_embedding_loss``, ``triplet_margin_loss``, ``triplet_margin_with_distance_loss``.
Each takes torch's positional order, including the legacy ``size_average`` / ``reduce``.

>>> import kiln, kiln.nn.functional as F
>>> F.margin_ranking_loss(kiln.tensor([1.0]), kiln.tensor([2.0]), kiln.tensor([1.0])).item()
1.0
"""

from __future__ import annotations

from collections.abc import Callable

from kiln import ops
from kiln.core import dtypes as dt
from kiln.core.functional import unsqueeze
from kiln.core.mathops import cumprod
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError
from kiln.nn.checks import want_shape, want_tensor
from kiln.nn.distance import pairwise_distance
from kiln.nn.functional import logsigmoid, softplus
from kiln.nn.losses import _check_reduction, _reduce, _torch_arguments

__all__ = ["margin_ranking_loss", "hinge_embedding_loss", "soft_margin_loss",
           "multilabel_soft_margin_loss", "multi_margin_loss", "multilabel_margin_loss",
           "cosine_embedding_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss"]


def _relu(x: Tensor) -> Tensor:
    return ops.maximum(x, 0.0)


@_torch_arguments(("input1", "input2", "target", "margin", "size_average", "reduce",
                   "reduction"))
def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                        reduction: str = "mean") -> Tensor:
    """max(0, -target (input1 - input2) + margin), ``target`` in {1, -1}.

    >>> import kiln, kiln.nn.functional as F
    >>> F.margin_ranking_loss(kiln.tensor([3.0]), kiln.tensor([1.0]), kiln.tensor([-1.0]),
    ...                       reduction="none").tolist()
    [2.0]
    """
    _check_reduction("margin_ranking_loss", reduction)
    if not input1.ndim == input2.ndim == target.ndim:
        raise ShapeError("margin_ranking_loss: input1, input2 and target must have the same "
                         f"number of dims, got shapes {tuple(input1.shape)}, "
                         f"{tuple(input2.shape)}, {tuple(target.shape)}")
    return _reduce(_relu(-target * (input1 - input2) + margin), reduction)


@_torch_arguments(("input", "target", "margin", "size_average", "reduce", "reduction"))
def hinge_embedding_loss(input: Tensor, target: Tensor, margin: float = 1.0,
                         reduction: str = "mean") -> Tensor:
    """``input`` where target is 1, max(0, margin - input) where it is -1.

    >>> import kiln, kiln.nn.functional as F
    >>> F.hinge_embedding_loss(kiln.tensor([0.3, 0.3]), kiln.tensor([1.0, -1.0]),
    ...                        reduction="none").tolist()
    [0.30000001192092896, 0.699999988079071]
    """
    _check_reduction("hinge_embedding_loss", reduction)
    hinge = ops.where(target != 1, _relu(margin - input), 0.0)
    own = ops.where(target != -1, input, 0.0)
    return _reduce(hinge + own, reduction)


@_torch_arguments(("input", "target", "size_average", "reduce", "reduction"))
def soft_margin_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """log(1 + exp(-target input)), computed as a softplus.

    >>> import kiln, kiln.nn.functional as F
    >>> round(F.soft_margin_loss(kiln.zeros(2), kiln.ones(2)).item(), 4)
    0.6931
    """
    _check_reduction("soft_margin_loss", reduction)
    return _reduce(softplus(-target * input), reduction)


@_torch_arguments(("input", "target", "weight", "size_average", "reduce", "reduction"))
def multilabel_soft_margin_loss(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                reduction: str = "mean") -> Tensor:
    """The per-class logistic loss of 0/1 ``target`` averaged over the classes (last dim).

    >>> import kiln, kiln.nn.functional as F
    >>> round(F.multilabel_soft_margin_loss(kiln.zeros(1, 3), kiln.ones(1, 3)).item(), 4)
    0.6931
    """
    _check_reduction("multilabel_soft_margin_loss", reduction)
    loss = -(target * logsigmoid(input) + (1.0 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    c = input.shape[-1] if input.ndim else 1
    loss = ops.sum(loss, dims=(input.ndim - 1,), keepdim=False) / c if input.ndim else loss
    return _reduce(loss, reduction)


def _class_rows(fn: str, input: Tensor, target: Tensor, target_ndim: int) -> tuple[Tensor, Tensor]:
    """(input as (N, C), target as (N,) or (N, C)) for torch's (C,) / (N, C) forms."""
    if input.ndim not in (0, 1, 2):
        raise ShapeError(f"{fn}: input must be (C,) or (N, C), got {tuple(input.shape)}")
    x = input.reshape(1, -1) if input.ndim < 2 else input
    want = (x.shape[0],) if target_ndim == 1 else tuple(x.shape)
    t = target.reshape(*want) if input.ndim < 2 and target.numel() == prod_of(want) else target
    if tuple(t.shape) != want:
        raise ShapeError(f"{fn}: target shape {tuple(target.shape)} does not fit input shape "
                         f"{tuple(input.shape)}")
    if not target.dtype.is_integer:
        raise ArgumentError(f"{fn}: target must hold integer class indices, got {target.dtype}")
    return x, t.to(dt.int64)


def prod_of(shape: tuple) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


@_torch_arguments(("input", "target", "p", "margin", "weight", "size_average", "reduce",
                   "reduction"))
def multi_margin_loss(input: Tensor, target: Tensor, p: int = 1, margin: float = 1.0,
                      weight: Tensor | None = None, reduction: str = "mean") -> Tensor:
    """The multi-class hinge loss: sum over i != y of max(0, margin - x[y] + x[i])^p, scaled
    by weight[y], divided by C.

    >>> import kiln, kiln.nn.functional as F
    >>> round(F.multi_margin_loss(kiln.tensor([[0.1, 0.2, 0.4, 0.8]]),
    ...                           kiln.tensor([3])).item(), 4)
    0.325
    """
    fn = "multi_margin_loss"
    _check_reduction(fn, reduction)
    if p not in (1, 2):
        raise ArgumentError(f"{fn}: p must be 1 or 2, got {p!r}")
    x, t = _class_rows(fn, input, target, 1)
    c = x.shape[1]
    want_shape(fn, "weight", weight, (c,), "one per class")
    picked = ops.gather(x, unsqueeze(t, 1), dim=1)  # (N, 1)
    z = _relu(margin - picked + x)
    if p == 2:
        z = z * z
    if weight is not None:
        z = z * unsqueeze(ops.gather(weight, t, dim=0), 1)
    other = ops.ne(unsqueeze(t, 1), _classes(c))
    loss = ops.sum(ops.where(other, z, 0.0), dims=(1,), keepdim=False) / c
    if input.ndim < 2:
        loss = loss.reshape(())
    return _reduce(loss, reduction)


def _classes(c: int) -> Tensor:
    from kiln.core.creation import arange

    return arange(c, dtype=dt.int64).reshape(1, c)


@_torch_arguments(("input", "target", "size_average", "reduce", "reduction"))
def multilabel_margin_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """The multi-label hinge loss: ``target`` (like input) lists class indices, ended by the
    first -1; the sum over listed j and unlisted i of max(0, 1 - (x[j] - x[i])), over C.

    >>> import kiln, kiln.nn.functional as F
    >>> x = kiln.tensor([[0.1, 0.2, 0.4, 0.8]])
    >>> round(F.multilabel_margin_loss(x, kiln.tensor([[3, 0, -1, 1]])).item(), 4)
    0.85
    """
    fn = "multilabel_margin_loss"
    _check_reduction(fn, reduction)
    x, t = _class_rows(fn, input, target, 2)
    c = x.shape[1]
    # the listed targets: the prefix before the first -1
    listed = cumprod((t >= 0).to(x.dtype), 1) > 0  # (N, C_j)
    safe = ops.where(listed, t, 0)
    hit = ops.logical_and(ops.eq(unsqueeze(safe, 2), unsqueeze(_classes(c), 0)),
                          unsqueeze(listed, 2))  # (N, C_j, C_i)
    is_target = ops.sum(hit.to(x.dtype), dims=(1,), keepdim=False) > 0  # (N, C_i)
    picked = ops.gather(x, safe, dim=1)  # (N, C_j)
    z = _relu(1.0 - unsqueeze(picked, 2) + unsqueeze(x, 1))  # (N, C_j, C_i)
    keep = ops.logical_and(unsqueeze(listed, 2), ops.logical_not(unsqueeze(is_target, 1)))
    loss = ops.sum(ops.where(keep, z, 0.0), dims=(1, 2), keepdim=False) / c
    if input.ndim < 2:
        loss = loss.reshape(())
    return _reduce(loss, reduction)


@_torch_arguments(("input1", "input2", "target", "margin", "size_average", "reduce",
                   "reduction"))
def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                          reduction: str = "mean") -> Tensor:
    """1 - cos(input1, input2) where target is 1, max(0, cos - margin) where it is -1.

    >>> import kiln, kiln.nn.functional as F
    >>> F.cosine_embedding_loss(kiln.tensor([[1.0, 0.0]]), kiln.tensor([[0.0, 1.0]]),
    ...                         kiln.tensor([1.0])).item()
    1.0
    """
    fn = "cosine_embedding_loss"
    _check_reduction(fn, reduction)
    if input1.ndim not in (1, 2) or tuple(input1.shape) != tuple(input2.shape):
        raise ShapeError(f"{fn}: input1 and input2 must have the same (D,) or (N, D) shape, got "
                         f"{tuple(input1.shape)} and {tuple(input2.shape)}")
    d = input1.ndim - 1
    eps = 1e-12
    dot = ops.sum(input1 * input2, dims=(d,), keepdim=False)
    m1 = ops.sum(input1 * input1, dims=(d,), keepdim=False) + eps
    m2 = ops.sum(input2 * input2, dims=(d,), keepdim=False) + eps
    cos = dot / ops.sqrt(m1 * m2)
    loss = ops.where(target == 1, 1.0 - cos, 0.0) + \
        ops.where(target == -1, _relu(cos - margin), 0.0)
    return _reduce(loss, reduction)


def _triplet(fn: str, anchor: Tensor, positive: Tensor, negative: Tensor,
             distance: Callable[[Tensor, Tensor], Tensor], margin: float, swap: bool,
             reduction: str) -> Tensor:
    _check_reduction(fn, reduction)
    for name, v in (("anchor", anchor), ("positive", positive), ("negative", negative)):
        want_tensor(fn, name, v)
    if margin <= 0:
        raise ArgumentError(f"{fn}: margin must be greater than 0, got {margin}")
    if not anchor.ndim == positive.ndim == negative.ndim:
        raise ShapeError(f"{fn}: anchor, positive and negative must have the same number of "
                         f"dims, got shapes {tuple(anchor.shape)}, {tuple(positive.shape)}, "
                         f"{tuple(negative.shape)}")
    d_pos = distance(anchor, positive)
    d_neg = distance(anchor, negative)
    if swap:
        d_neg = ops.minimum(d_neg, distance(positive, negative))
    return _reduce(_relu(margin + d_pos - d_neg), reduction)


@_torch_arguments(("anchor", "positive", "negative", "margin", "p", "eps", "swap",
                   "size_average", "reduce", "reduction"))
def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0,
                        p: float = 2.0, eps: float = 1e-6, swap: bool = False,
                        reduction: str = "mean") -> Tensor:
    """max(0, margin + d(a, p) - d(a, n)) with d the ``pairwise_distance`` (p-norm).

    >>> import kiln, kiln.nn.functional as F
    >>> a, pos, neg = kiln.zeros(1, 2), kiln.zeros(1, 2), kiln.ones(1, 2)
    >>> F.triplet_margin_loss(a, pos, neg, margin=2.0, eps=0.0).item() > 0.5
    True
    """
    def distance(x: Tensor, y: Tensor) -> Tensor:
        return pairwise_distance(x, y, p, eps)

    return _triplet("triplet_margin_loss", anchor, positive, negative, distance, margin, swap,
                    reduction)


def triplet_margin_with_distance_loss(anchor: Tensor, positive: Tensor, negative: Tensor, *,
                                      distance_function: Callable[[Tensor, Tensor], Tensor]
                                      | None = None, margin: float = 1.0, swap: bool = False,
                                      reduction: str = "mean") -> Tensor:
    """The triplet loss with any ``distance_function`` (``pairwise_distance`` when None).

    >>> import kiln, kiln.nn.functional as F
    >>> F.triplet_margin_with_distance_loss(kiln.zeros(1, 2), kiln.zeros(1, 2), kiln.ones(1, 2),
    ...     distance_function=lambda x, y: (x - y).abs().sum(-1)).item()
    0.0
    """
    return _triplet("triplet_margin_with_distance_loss", anchor, positive, negative,
                    distance_function or pairwise_distance, margin, swap, reduction)

