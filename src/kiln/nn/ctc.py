"""``F.ctc_loss``: the connectionist temporal classification loss, the forward (alpha)
recursion in log space written with Kiln ops, so it has gradients and traces (one step per
input frame, unrolled).

The extended label sequence puts a blank before, between and after the targets (2S + 1
states); each frame moves a state forward by 0, 1, or 2 (skipping a blank between two
different labels). Frames past a sample's input length leave its alphas unchanged.

>>> import kiln, kiln.nn.functional as F
>>> logp = kiln.full((2, 1, 2), 0.5).log()  # T=2, N=1, C=2 (blank 0)
>>> round(F.ctc_loss(logp, kiln.tensor([[1]]), [2], [1], reduction="sum").item(), 4)
0.2877
"""

from __future__ import annotations

from typing import Any

from kiln import ops
from kiln.core import dtypes as dt
from kiln.core.functional import cat, reshape, stack, unsqueeze
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError
from kiln.nn.checks import want_tensor

__all__ = ["ctc_loss"]

_NEG = float("-inf")


def _lengths(fn: str, name: str, value: Any, n: int) -> Tensor:
    from kiln.core.creation import tensor

    if isinstance(value, Tensor):
        v = value.to(dt.int64)
    else:
        v = tensor(list(value) if isinstance(value, (list, tuple)) else [value],
                   dtype=dt.int64)
    v = reshape(v, -1)
    if v.shape[0] != n:
        raise ShapeError(f"{fn}: {name} must have one length per batch element ({n}), got "
                         f"{v.shape[0]}")
    return v


def _logsumexp(*terms: Tensor) -> Tensor:
    """log(sum(exp)) of same-shape terms; -inf (with gradient 0, not nan) where all are -inf."""
    x = stack(list(terms), 0)
    m = ops.max(x, dims=(0,), keepdim=True).detach()
    m = ops.where(m == _NEG, 0.0, m)
    s = ops.sum(ops.exp(x - m), dims=(0,), keepdim=False)
    safe = ops.where(s > 0, s, 1.0)
    return ops.where(s > 0, ops.log(safe) + reshape(m, *s.shape), _NEG)


def _shift(a: Tensor, k: int) -> Tensor:
    """``a`` moved right by ``k`` states along dim 1, -inf coming in."""
    from kiln.core.creation import full

    pad = full((a.shape[0], k), _NEG, dtype=a.dtype)
    return cat([pad, a[:, :a.shape[1] - k]], 1)


def ctc_loss(log_probs: Tensor, targets: Tensor, input_lengths: Any, target_lengths: Any,
             blank: int = 0, reduction: str = "mean", zero_infinity: bool = False) -> Tensor:
    """The CTC loss of ``log_probs`` (T, N, C) or (T, C) (log-softmax outputs) against
    ``targets`` (N, S) padded, or 1-D concatenated; lengths as tensors or lists. ``mean``
    divides each loss by its target length, then averages over the batch (torch's rule).

    >>> import kiln, kiln.nn.functional as F
    >>> logp = kiln.zeros(3, 1, 2) - 0.6931471805599453
    >>> round(F.ctc_loss(logp, kiln.tensor([[1]]), [3], [1], reduction="none")[0].item(), 4)
    0.2877
    """
    fn = "ctc_loss"
    want_tensor(fn, "log_probs", log_probs)
    want_tensor(fn, "targets", targets)
    if reduction not in ("mean", "sum", "none"):
        raise ArgumentError(f"{fn}: reduction must be 'mean', 'sum' or 'none', got "
                            f"{reduction!r}")
    unbatched = log_probs.ndim == 2
    lp = unsqueeze(log_probs, 1) if unbatched else log_probs
    if lp.ndim != 3:
        raise ShapeError(f"{fn}: log_probs must be (T, N, C) or (T, C), got "
                         f"{tuple(log_probs.shape)}")
    t_max, n, c = lp.shape
    in_len = _lengths(fn, "input_lengths", input_lengths, n)
    tg_len = _lengths(fn, "target_lengths", target_lengths, n)
    if unbatched:
        tg = unsqueeze(targets, 0)
    elif targets.ndim == 1:  # concatenated: split by the (concrete) target lengths
        sizes = [int(v) for v in tg_len.tolist()]
        width = max(sizes + [1])
        rows, start = [], 0
        from kiln.core.creation import full

        for size in sizes:
            row = targets[start:start + size]
            rows.append(cat([row, full((width - size,), blank, dtype=targets.dtype)], 0))
            start += size
        tg = stack(rows, 0)
    else:
        tg = targets
    tg = tg.to(dt.int64)
    s = tg.shape[1]
    from kiln.core.creation import arange, full

    blanks = full((n, s), blank, dtype=dt.int64)
    ext = cat([reshape(stack([blanks, tg], 2), n, 2 * s), full((n, 1), blank, dtype=dt.int64)],
              1)  # (N, L): blank, y1, blank, y2, ..., blank
    states = 2 * s + 1
    # a skip from s - 2 to s: s is a label and differs from the label two states back
    prev2 = cat([full((n, 2), blank, dtype=dt.int64), ext[:, :states - 2]], 1)
    skip = ops.logical_and(ext != blank, ext != prev2)
    state = unsqueeze(arange(states, dtype=dt.int64), 0)
    ends = unsqueeze(2 * tg_len + 1, 1)  # valid states: s < 2 * target_len + 1
    valid = state < ends
    emit = [ops.gather(lp[t], ext, dim=1) for t in range(t_max)]  # (N, L) each
    alpha = ops.where(ops.logical_and(state < 2, valid), emit[0], _NEG) if t_max else \
        full((n, states), _NEG, dtype=lp.dtype)
    for t in range(1, t_max):
        step = _logsumexp(alpha, _shift(alpha, 1),
                          ops.where(skip, _shift(alpha, 2), _NEG)) + emit[t]
        step = ops.where(valid, step, _NEG)
        alpha = ops.where(unsqueeze(in_len > t, 1), step, alpha)
    last = ops.gather(alpha, unsqueeze(ends[:, 0] - 1, 1), dim=1)[:, 0]
    before = ops.gather(alpha, unsqueeze(ops.maximum(ends[:, 0] - 2, 0), 1), dim=1)[:, 0]
    before = ops.where(tg_len > 0, before, _NEG)
    loss = -_logsumexp(last, before)
    if zero_infinity:
        loss = ops.where(loss == float("inf"), 0.0, loss)
    if reduction == "none":
        return loss[0] if unbatched else loss
    if reduction == "sum":
        return ops.sum(loss, dims=(0,), keepdim=False)
    per = loss / ops.maximum(tg_len.to(loss.dtype), 1.0)
    return ops.sum(per, dims=(0,), keepdim=False) / n
