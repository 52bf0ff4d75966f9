"""Loss functions of ``kiln.nn.functional``, as composites with PyTorch's semantics.

Class-index losses pick the target's log-probability with ``gather``; ``ignore_index``
targets are first replaced by a valid class (0) and then masked out, so no out-of-range
index ever reaches the kernel. ``reduction`` is ``"mean"``, ``"sum"`` or ``"none"``; a weighted
mean divides by the summed weights of the counted targets, as in PyTorch.

>>> import kiln, kiln.nn.functional as F
>>> logits = kiln.tensor([[2.0, 0.0], [0.0, 2.0]])
>>> round(F.cross_entropy(logits, kiln.tensor([0, 1])).item(), 4)
0.1269
"""

from __future__ import annotations

from kiln import ops
from kiln.core import dtypes as dt
from kiln.core.functional import mean, sum, unsqueeze
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError
from kiln.nn.checks import want_broadcast, want_classes_in_range, want_shape
from kiln.nn.functional import log_softmax, softplus

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(fn: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ArgumentError(f"{fn}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return mean(loss)
    if reduction == "sum":
        return sum(loss)
    return loss


def _channel_view(weight: Tensor, ndim: int) -> Tensor:
    # (C,) -> (1, C, 1, ...) to broadcast over (N, C, d1, ...).
    return weight.reshape(*((1, weight.shape[0]) + (1,) * (ndim - 2)))


def _class_targets(fn: str, logp: Tensor, target: Tensor, weight: Tensor | None,
                   ignore_index: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-element -log p(target), the counted-weight of each element, and the mask."""
    if not target.dtype.is_integer:
        raise ArgumentError(f"{fn}: class-index target must be an integer tensor, got "
                            f"{target.dtype}")
    expected = (logp.shape[0],) + tuple(logp.shape[2:])
    if tuple(target.shape) != expected:
        raise ShapeError(f"{fn}: target shape {tuple(target.shape)} does not fit input shape "
                         f"{tuple(logp.shape)} (expected {expected})")
    want_shape(fn, "weight", weight, (logp.shape[1],), "one per class")
    want_classes_in_range(fn, target, logp.shape[1], ignore_index)
    keep = target != ignore_index
    safe = ops.where(keep, target, 0).to(dt.int64)
    picked = ops.gather(logp, unsqueeze(safe, 1), dim=1)
    nll = -picked.reshape(*expected)
    w = keep.to(logp.dtype)
    if weight is not None:
        w = w * ops.gather(weight, safe.reshape(-1), dim=0).reshape(*expected)
    # where, not a product with the mask: an ignored element's loss and gradient are 0 even
    # when its row holds inf or nan (or the mean's gradient is nan), as in torch.
    return ops.where(keep, nll * w, 0.0), w, keep


def _target_mean(loss: Tensor, w: Tensor, keep: Tensor) -> Tensor:
    """sum(loss) / sum(w): torch's mean over the counted targets. With every target ignored
    it is nan, and its gradient 0 (0/0 would make that nan too)."""
    none = ops.eq(sum(keep), 0)
    return ops.where(none, float("nan"), sum(loss) / ops.where(none, 1.0, sum(w)))


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None,
             ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of class indices under log-probabilities ``input`` (N, C, ...).

    >>> import kiln, kiln.nn.functional as F
    >>> F.nll_loss(kiln.tensor([[-1.0, -2.0]]), kiln.tensor([1])).item()
    2.0
    """
    _check_reduction("nll_loss", reduction)
    x = unsqueeze(input, 0) if input.ndim == 1 else input
    t = unsqueeze(target, 0) if input.ndim == 1 else target
    loss, w, keep = _class_targets("nll_loss", x, t, weight, ignore_index)
    if input.ndim == 1 and reduction == "none":
        loss = loss.reshape(())
    if reduction == "mean":
        return _target_mean(loss, w, keep)
    return _reduce(loss, reduction)


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits ``input`` (N, C, ...) or (C,), as ``torch.nn.functional``.

    ``target`` holds class indices (N, ...) or class probabilities (same shape as input).

    >>> import kiln, kiln.nn.functional as F
    >>> x = kiln.tensor([[0.0, 0.0]])
    >>> round(F.cross_entropy(x, kiln.tensor([0]), label_smoothing=0.2).item(), 4)
    0.6931
    """
    fn = "cross_entropy"
    _check_reduction(fn, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ArgumentError(f"{fn}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if not input.dtype.is_floating:
        raise ArgumentError(f"{fn}: input must be floating logits, got {input.dtype}")
    unbatched = input.ndim == 1
    x = unsqueeze(input, 0) if unbatched else input
    if x.ndim < 2:
        raise ShapeError(f"{fn}: input must be (C,) or (N, C, ...), got {tuple(input.shape)}")
    logp = log_softmax(x, 1)
    n_classes = x.shape[1]
    if target.dtype.is_floating:
        t = unsqueeze(target, 0) if unbatched else target
        if tuple(t.shape) != tuple(x.shape):
            raise ShapeError(f"{fn}: probability target shape {tuple(target.shape)} must equal "
                             f"input shape {tuple(input.shape)}")
        want_shape(fn, "weight", weight, (n_classes,), "one per class")
        if label_smoothing > 0.0:
            t = t * (1.0 - label_smoothing) + label_smoothing / n_classes
        terms = logp * t
        if weight is not None:
            terms = terms * _channel_view(weight, x.ndim)
        loss = -ops.sum(terms, dims=(1,), keepdim=False)
        if unbatched:
            loss = loss.reshape(())
        if reduction == "mean":
            return sum(loss) / (loss.numel() if not unbatched else 1)
        return _reduce(loss, reduction)
    t = unsqueeze(target, 0) if unbatched else target
    nll, w, keep = _class_targets(fn, logp, t, weight, ignore_index)
    if label_smoothing > 0.0:
        terms = logp if weight is None else logp * _channel_view(weight, x.ndim)
        smooth = -ops.sum(terms, dims=(1,), keepdim=False) * keep.to(logp.dtype)
        loss = nll * (1.0 - label_smoothing) + smooth * (label_smoothing / n_classes)
    else:
        loss = nll
    if unbatched:
        loss, w = loss.reshape(()), w.reshape(())
    if reduction == "mean":
        return _target_mean(loss, w, keep)
    return _reduce(loss, reduction)


def _same_shape(fn: str, input: Tensor, target: Tensor) -> None:
    if tuple(input.shape) != tuple(target.shape):
        raise ShapeError(f"{fn}: input shape {tuple(input.shape)} and target shape "
                         f"{tuple(target.shape)} differ (broadcasting a target is usually a "
                         "bug; expand it explicitly)")


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean squared error.

    >>> import kiln, kiln.nn.functional as F
    >>> F.mse_loss(kiln.tensor([1.0, 3.0]), kiln.tensor([0.0, 0.0])).item()
    5.0
    """
    _check_reduction("mse_loss", reduction)
    _same_shape("mse_loss", input, target)
    d = input - target
    return _reduce(d * d, reduction)


def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean absolute error.

    >>> import kiln, kiln.nn.functional as F
    >>> F.l1_loss(kiln.tensor([1.0, -3.0]), kiln.tensor([0.0, 0.0])).item()
    2.0
    """
    _check_reduction("l1_loss", reduction)
    _same_shape("l1_loss", input, target)
    return _reduce(ops.abs(input - target), reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta.

    >>> import kiln, kiln.nn.functional as F
    >>> F.smooth_l1_loss(kiln.tensor([0.5, 3.0]), kiln.zeros(2), reduction="none").tolist()
    [0.125, 2.5]
    """
    _check_reduction("smooth_l1_loss", reduction)
    _same_shape("smooth_l1_loss", input, target)
    if beta < 0:
        raise ArgumentError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    a = ops.abs(input - target)
    if beta == 0.0:
        return _reduce(a, reduction)
    return _reduce(ops.where(a < beta, a * a * (0.5 / beta), a - 0.5 * beta), reduction)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean",
               delta: float = 1.0) -> Tensor:
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta).

    >>> import kiln, kiln.nn.functional as F
    >>> F.huber_loss(kiln.tensor([0.5, 3.0]), kiln.zeros(2), reduction="sum").item()
    2.625
    """
    _check_reduction("huber_loss", reduction)
    _same_shape("huber_loss", input, target)
    a = ops.abs(input - target)
    return _reduce(ops.where(a < delta, a * a * 0.5, (a - 0.5 * delta) * delta), reduction)


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         reduction: str = "mean") -> Tensor:
    """BCE of probabilities; logs are clamped at -100 as in PyTorch (no inf for 0 or 1).

    >>> import kiln, kiln.nn.functional as F
    >>> round(F.binary_cross_entropy(kiln.tensor([0.5]), kiln.tensor([1.0])).item(), 4)
    0.6931
    """
    _check_reduction("binary_cross_entropy", reduction)
    _same_shape("binary_cross_entropy", input, target)
    log_p = ops.maximum(ops.log(input), -100.0)
    log_q = ops.maximum(ops.log(1.0 - input), -100.0)
    want_broadcast("binary_cross_entropy", ("input", input), ("weight", weight))
    loss = -(target * log_p + (1.0 - target) * log_q)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor,
                                     weight: Tensor | None = None, reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:
    """BCE of logits, computed stably as ``(1 - t) x + (1 + (pw - 1) t) softplus(-x)``.

    >>> import kiln, kiln.nn.functional as F
    >>> round(F.binary_cross_entropy_with_logits(kiln.zeros(3), kiln.ones(3)).item(), 4)
    0.6931
    """
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    _same_shape("binary_cross_entropy_with_logits", input, target)
    want_broadcast("binary_cross_entropy_with_logits", ("input", input), ("weight", weight),
                   ("pos_weight", pos_weight))
    sp = softplus(-input)
    if pos_weight is not None:
        loss = (1.0 - target) * input + (1.0 + (pos_weight - 1.0) * target) * sp
    else:
        loss = (1.0 - target) * input + sp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def kl_div(input: Tensor, target: Tensor, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """KL divergence with ``input`` as log-probabilities (PyTorch's argument order).

    ``reduction="batchmean"`` divides the sum by the batch size (the mathematically right mean).

    >>> import kiln, kiln.nn.functional as F
    >>> p = kiln.tensor([[0.25, 0.75]])
    >>> F.kl_div(p.log(), p, reduction="batchmean").item()
    0.0
    """
    if reduction not in _REDUCTIONS + ("batchmean",):
        raise ArgumentError(f"kl_div: reduction must be one of {_REDUCTIONS + ('batchmean',)}, "
                            f"got {reduction!r}")
    want_broadcast("kl_div", ("input", input), ("target", target))
    if log_target:
        loss = ops.exp(target) * (target - input)
    else:
        # 0 * log 0 is 0 by convention (xlogy), so zero targets contribute nothing.
        safe = ops.where(target > 0, target, 1.0)
        loss = ops.where(target > 0, target * (ops.log(safe) - input), 0.0)
    if reduction == "batchmean":
        return sum(loss) / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)

