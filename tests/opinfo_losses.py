"""Op table entries for the losses of ``kiln.nn.functional``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import opinfo_refs as R
from opinfo_base import ErrorCase, OpInfo, Sample, _resolve, make

import kiln.nn.functional as F
from kiln.errors import ArgumentError, ShapeError

ENTRIES: list[OpInfo] = []


def add(info: OpInfo) -> OpInfo:
    ENTRIES.append(info)
    return info


def _reduce(loss: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "mean":
        return np.asarray(loss.mean())
    if reduction == "sum":
        return np.asarray(loss.sum())
    return loss


def _nll(logp: np.ndarray, target: np.ndarray, weight: Any, ignore_index: int,
         reduction: str) -> np.ndarray:
    """NLL of class indices; logp is (N, C, ...) in float64."""
    c = logp.shape[1]
    keep = target != ignore_index
    safe = np.where(keep, target, 0)
    picked = np.take_along_axis(logp, safe[:, None], axis=1)[:, 0]
    w = keep.astype(np.float64)
    if weight is not None:
        w = w * np.asarray(weight, np.float64)[safe]
    loss = -picked * w
    _ = c
    if reduction == "mean":
        with np.errstate(invalid="ignore"):  # every target ignored: 0 / 0 = nan, as torch
            return np.asarray(loss.sum() / w.sum())
    return _reduce(loss, reduction)


def _np_cross_entropy(x: np.ndarray, target: np.ndarray, weight: Any = None,
                      ignore_index: int = -100, reduction: str = "mean",
                      label_smoothing: float = 0.0) -> np.ndarray:
    unbatched = x.ndim == 1
    xb = x[None].astype(np.float64) if unbatched else x.astype(np.float64)
    tb = target[None] if unbatched else target
    logp = R.log_softmax(xb, 1)
    c = xb.shape[1]
    wshape = (1, c) + (1,) * (xb.ndim - 2)
    if target.dtype.kind == "f":
        t = tb.astype(np.float64)
        if label_smoothing:
            t = t * (1 - label_smoothing) + label_smoothing / c
        terms = logp * t
        if weight is not None:
            terms = terms * np.asarray(weight, np.float64).reshape(wshape)
        loss = -terms.sum(1)
        if unbatched:
            loss = loss[0]
        return _reduce(loss, reduction).astype(x.dtype)
    keep = tb != ignore_index
    nll = _nll(logp, tb, weight, ignore_index, "none")
    w = keep.astype(np.float64)
    if weight is not None:
        w = w * np.asarray(weight, np.float64)[np.where(keep, tb, 0)]
    if label_smoothing:
        terms = logp if weight is None else logp * np.asarray(weight, np.float64).reshape(wshape)
        smooth = -terms.sum(1) * keep
        loss = nll * (1 - label_smoothing) + smooth * (label_smoothing / c)
    else:
        loss = nll
    if unbatched:
        loss, w = loss[0], w[0]
    if reduction == "mean":
        with np.errstate(invalid="ignore"):  # every target ignored: 0 / 0 = nan, as torch
            return np.asarray(loss.sum() / w.sum()).astype(x.dtype)
    return _reduce(loss, reduction).astype(x.dtype)


def _ce_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    x = lambda *s: make(rng, s, dtype, layout="T" if len(s) == 2 else "contig")  # noqa: E731
    t = rng.integers(0, 5, (4,))
    yield Sample((x(4, 5), t), grad_args=(0,))
    t_ign = t.copy()
    t_ign[1] = -100
    yield Sample((x(4, 5), t_ign), {"reduction": "sum"}, desc="ignore_index", grad_args=(0,))
    w = make(rng, (5,), dtype, "positive")
    yield Sample((x(4, 5), t, w), desc="weights", grad_args=(0,))
    yield Sample((x(4, 5), t_ign, w), {"reduction": "none", "label_smoothing": 0.2},
                 grad_args=(0,))
    yield Sample((x(4, 5), t_ign, w), {"label_smoothing": 0.2}, desc="weighted mean, smoothing",
                 grad_args=(0,))
    yield Sample((x(4, 5), np.where(t == 2, 2, t)), {"ignore_index": 2, "label_smoothing": 0.1},
                 grad_args=(0,))
    yield Sample((x(2, 3, 4), rng.integers(0, 3, (2, 4))), desc="spatial (N, C, d)",
                 grad_args=(0,))
    yield Sample((x(5), np.array(3)), desc="unbatched", grad_args=(0,))
    yield Sample((x(1, 5), t[:1]), desc="batch of one", grad_args=(0,))
    yield Sample((x(0, 5), t[:0]), {"reduction": "sum"}, desc="empty batch", grad_args=(0,))
    # Every target ignored: the mean is nan and its gradient 0, as in torch.
    yield Sample((x(3, 5), np.full(3, -100)), desc="every target ignored", grad_args=(0,),
                 skips={"grad": "the loss is nan; torch is the oracle for its gradient (0)"})
    probs = R.softmax(make(rng, (4, 5), dtype), 1)
    yield Sample((x(4, 5), probs), desc="probability targets")
    yield Sample((x(4, 5), probs, w), {"label_smoothing": 0.3, "reduction": "sum"},
                 desc="probability targets, weights, smoothing", grad_args=(0, 1))


def _ce_errors() -> list[ErrorCase]:
    x = np.ones((4, 5), np.float32)
    return [ErrorCase((x, np.zeros(3, np.int64)), exc=ShapeError,
                      match=r"cross_entropy: target shape \(3,\) does not fit"),
            ErrorCase((x, np.zeros(4, np.int64)), {"reduction": "avg"}, exc=ArgumentError,
                      match="cross_entropy: reduction must be one of"),
            ErrorCase((x, np.ones((4, 4), np.float32)), exc=ShapeError,
                      match="cross_entropy: probability target shape"),
            ErrorCase((np.ones((4, 5), np.int64), np.zeros(4, np.int64)), exc=ArgumentError,
                      match="cross_entropy: input must be floating logits, got int64")]


add(OpInfo(name="F.cross_entropy", op=F.cross_entropy, ref=_np_cross_entropy,
           torch_ref="torch.nn.functional.cross_entropy", sample_fn=_ce_samples,
           supports_grad2=True, error_fn=_ce_errors))


def _np_nll_loss(x: np.ndarray, target: np.ndarray, weight: Any = None,
                 ignore_index: int = -100, reduction: str = "mean") -> np.ndarray:
    unbatched = x.ndim == 1
    xb = x[None] if unbatched else x
    tb = target[None] if unbatched else target
    out = _nll(xb.astype(np.float64), tb, weight, ignore_index, reduction)
    if unbatched and reduction == "none":
        out = out[0]
    return np.asarray(out).astype(x.dtype)


def _nll_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    logp = lambda *s: R.log_softmax(make(rng, s, dtype), 1 if len(s) > 1 else 0)  # noqa: E731
    t = rng.integers(0, 4, (3,))
    t[0] = -100
    yield Sample((logp(3, 4), t), grad_args=(0,))
    yield Sample((logp(3, 4), t, make(rng, (4,), dtype, "positive")), {"reduction": "none"},
                 grad_args=(0,))
    yield Sample((logp(2, 4, 3), rng.integers(0, 4, (2, 3))), {"reduction": "sum"},
                 grad_args=(0,))
    yield Sample((logp(4), np.array(1)), {"reduction": "none"}, grad_args=(0,))
    yield Sample((np.asfortranarray(logp(1, 4)), t[1:2]), grad_args=(0,))
    yield Sample((np.asfortranarray(logp(3, 4)), t), {"reduction": "sum"}, grad_args=(0,))
    yield Sample((logp(0, 4), t[:0]), {"reduction": "sum"}, desc="empty batch", grad_args=(0,))
    yield Sample((logp(2, 4), np.full(2, -100)), desc="every target ignored", grad_args=(0,),
                 skips={"grad": "the loss is nan; torch is the oracle for its gradient (0)"})


add(OpInfo(name="F.nll_loss", op=F.nll_loss, ref=_np_nll_loss,
           torch_ref="torch.nn.functional.nll_loss", sample_fn=_nll_samples,
           supports_grad2=True))


def _pair_samples(diff: Any, kwargs: tuple) -> Callable:
    def gen(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
        for k, (shape, layout) in enumerate([((3, 4), "T"), ((2, 3, 2), "strided"), ((5,),
                                                                                   "contig"),
                                             ((), "contig"), ((1, 3), "contig")]):
            x = make(rng, shape, dtype, layout=layout)
            d = make(rng, shape, dtype, diff)
            yield Sample((x, np.asarray(x - d, dtype)), dict(kwargs[k % len(kwargs)]))
        # The mean over no elements is NaN (and a warning in NumPy): sum the empty batch.
        yield Sample((make(rng, (0, 2), dtype), make(rng, (0, 2), dtype)), {"reduction": "sum"})

    return gen


_RED = ({}, {"reduction": "sum"}, {"reduction": "none"})
# Differences kept away from the kinks of |d| (0) and of smooth_l1/huber (beta, delta).
_AWAY = lambda rng, s: rng.choice([-2.5, -0.6, 0.4, 1.8], s) + rng.uniform(-0.1, 0.1, s)  # noqa


def _np_pair(fn: Callable) -> Callable:
    def ref(a: np.ndarray, b: np.ndarray, reduction: str = "mean", **kw: Any) -> np.ndarray:
        loss = fn(a.astype(np.float64) - b.astype(np.float64), **kw)
        return _reduce(loss, reduction).astype(a.dtype)

    return ref


def _smooth_l1(d: np.ndarray, beta: float = 1.0) -> np.ndarray:
    a = np.abs(d)
    return a if beta == 0 else np.where(a < beta, 0.5 * a * a / beta, a - 0.5 * beta)


def _huber(d: np.ndarray, delta: float = 1.0) -> np.ndarray:
    a = np.abs(d)
    return np.where(a < delta, 0.5 * a * a, delta * (a - 0.5 * delta))


for _name, _fn, _kw in (("mse_loss", lambda d: d * d, _RED),
                        ("l1_loss", np.abs, _RED),
                        ("smooth_l1_loss", _smooth_l1, _RED + ({"beta": 0.5}, {"beta": 0.0})),
                        ("huber_loss", _huber, _RED + ({"delta": 2.0},))):
    add(OpInfo(name=f"F.{_name}", op=getattr(F, _name), ref=_np_pair(_fn),
               torch_ref=f"torch.nn.functional.{_name}", sample_fn=_pair_samples(_AWAY, _kw),
               supports_grad2=True,
               error_fn=lambda n=_name: [
                   ErrorCase((np.ones((2, 3), np.float32), np.ones(3, np.float32)),
                             exc=ShapeError, match=f"{n}: input shape .* and target shape"),
                   ErrorCase((np.ones(3, np.float32), np.ones(3, np.float32)),
                             {"reduction": "max"}, exc=ArgumentError,
                             match=f"{n}: reduction must be one of")]))


def _np_bce(p: np.ndarray, t: np.ndarray, weight: Any = None,
            reduction: str = "mean") -> np.ndarray:
    p64 = p.astype(np.float64)
    with np.errstate(divide="ignore"):
        loss = -(t * np.maximum(np.log(p64), -100) + (1 - t) * np.maximum(np.log1p(-p64), -100))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction).astype(p.dtype)


def _bce_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (3, 4), dtype, "prob", "T"), make(rng, (3, 4), dtype, "prob")))
    yield Sample((make(rng, (2, 3), dtype, "prob"), make(rng, (2, 3), dtype, "prob"),
                  make(rng, (3,), dtype, "positive")), {"reduction": "sum"})
    yield Sample((make(rng, (5,), dtype, "prob", "contig"), (rng.random(5) < 0.5).astype(dtype)),
                 {"reduction": "none"})
    yield Sample((np.array([0.0, 1.0, 0.5], dtype), np.array([1.0, 0.0, 1.0], dtype)),
                 desc="log clamped at -100", grad_args=())
    yield Sample((make(rng, (0, 1), dtype, "prob"), make(rng, (0, 1), dtype, "prob")),
                 {"reduction": "sum"})


add(OpInfo(name="F.binary_cross_entropy", op=F.binary_cross_entropy, ref=_np_bce,
           torch_ref="torch.nn.functional.binary_cross_entropy", sample_fn=_bce_samples,
           supports_grad2=True, grad_args=(0, 1),
           torch_note="float32: torch computes log(1 - p) with log1p-free kernels; atol 1e-5",
           torch_tol={"float32": (1e-5, 1e-5)}))


def _np_bce_logits(x: np.ndarray, t: np.ndarray, weight: Any = None, reduction: str = "mean",
                   pos_weight: Any = None) -> np.ndarray:
    x64 = x.astype(np.float64)
    sp = R.softplus(-x64)
    pw = 1.0 if pos_weight is None else pos_weight
    loss = (1 - t) * x64 + (1 + (pw - 1) * t) * sp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction).astype(x.dtype)


def _bcel_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (3, 4), dtype, layout="T"), make(rng, (3, 4), dtype, "prob"),
                  None, None))
    yield Sample((make(rng, (2, 3), dtype), make(rng, (2, 3), dtype, "prob"),
                  make(rng, (2, 1), dtype, "positive"), make(rng, (3,), dtype, "positive")),
                 {"reduction": "none"})
    yield Sample((np.array([-40.0, 30.0, 0.5], dtype), np.array([1.0, 0.0, 0.3], dtype),
                  None, None), {"reduction": "sum"}, desc="large logits (stable)")
    yield Sample((make(rng, (0, 3), dtype), make(rng, (0, 3), dtype, "prob"), None, None),
                 {"reduction": "sum"})


def _bcel(fn: Callable) -> Callable:
    # pos_weight comes after reduction (and torch's deprecated arguments): keyword it.
    return lambda x, t, w, pw, reduction="mean": fn(x, t, weight=w, reduction=reduction,
                                                    pos_weight=pw)


add(OpInfo(name="F.binary_cross_entropy_with_logits",
           op=_bcel(F.binary_cross_entropy_with_logits), ref=_bcel(_np_bce_logits),
           torch_ref=lambda *a, **k: _bcel(_resolve(
               "torch.nn.functional.binary_cross_entropy_with_logits"))(*a, **k),
           sample_fn=_bcel_samples, supports_grad2=True, grad_args=(0, 1)))


def _np_kl(x: np.ndarray, t: np.ndarray, reduction: str = "mean",
           log_target: bool = False) -> np.ndarray:
    x64, t64 = x.astype(np.float64), t.astype(np.float64)
    if log_target:
        loss = np.exp(t64) * (t64 - x64)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            loss = np.where(t64 > 0, t64 * (np.log(np.where(t64 > 0, t64, 1.0)) - x64), 0.0)
    if reduction == "batchmean":
        return np.asarray(loss.sum() / (x.shape[0] if x.ndim else 1)).astype(x.dtype)
    return _reduce(loss, reduction).astype(x.dtype)


def _kl_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    logp = R.log_softmax(make(rng, (3, 4), dtype), 1)
    q = R.softmax(make(rng, (3, 4), dtype), 1)
    q0 = q.copy()
    q0[0, 1] = 0.0
    yield Sample((logp, q), {"reduction": "batchmean"})
    yield Sample((logp, q0), {"reduction": "sum"}, desc="zero target", grad_args=(0,))
    yield Sample((logp, np.log(q)), {"log_target": True, "reduction": "none"})
    yield Sample((logp, q), skips={"torch": "torch warns that reduction='mean' will change"})
    yield Sample((np.asfortranarray(logp[:1]), q[:1]), {"reduction": "batchmean"})
    yield Sample((np.asfortranarray(logp), q), {"reduction": "sum"})
    yield Sample((logp[:0], q[:0]), {"reduction": "sum"})


add(OpInfo(name="F.kl_div", op=F.kl_div, ref=_np_kl, torch_ref="torch.nn.functional.kl_div",
           sample_fn=_kl_samples, supports_grad2=True,
           grad_tol=(1e-6, 1e-8)))
