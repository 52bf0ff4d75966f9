"""Gradient clipping with torch's semantics: ``clip_grad_norm_`` scales every gradient by
``max_norm / (total_norm + 1e-6)`` when that is below 1 (the total norm is the norm of the
per-parameter norms, ``inf`` giving the largest absolute value), ``clip_grad_value_`` clamps
every gradient to ``[-clip_value, clip_value]``. Both work in place on ``.grad`` (in its
dtype, as torch) and skip parameters without a gradient."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from kiln.core.autograd.grad_mode import no_grad
from kiln.core.creation import zeros
from kiln.core.functional import stack
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, AutogradError, TraceError


def _grads(parameters: Any, fn: str) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    if not isinstance(parameters, Iterable):
        raise ArgumentError(f"{fn}: parameters must be a tensor or an iterable of tensors, got "
                            f"{type(parameters).__name__}")
    out = []
    for p in parameters:
        if not isinstance(p, Tensor):
            raise ArgumentError(f"{fn}: parameters must hold tensors, got {type(p).__name__}")
        if p.grad is not None:
            out.append(p.grad)
    return out


def _norm_type(norm_type: Any, fn: str) -> float:
    if isinstance(norm_type, str) and norm_type == "inf":
        return math.inf
    if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float)) or \
            not norm_type > 0:
        raise ArgumentError(f"{fn}: norm_type must be a positive number or 'inf', got "
                            f"{norm_type!r}")
    return float(norm_type)


def _norm(t: Tensor, p: float) -> Tensor:
    """The p-norm of all of ``t`` (0 for an empty tensor, whatever p, as torch's foreach)."""
    from kiln.core import linalg

    if t.numel() == 0:
        return zeros((), dtype=t.dtype)
    return linalg.vector_norm(t, p)


def get_total_norm(tensors: Any, norm_type: float | str = 2.0,
                   error_if_nonfinite: bool = False, foreach: Any = None) -> Tensor:
    """The norm of the per-tensor norms of ``tensors`` (a 0-d tensor), as torch's. Kiln ops
    throughout, so it also runs inside ``kiln.trace`` (a traced training step).

    >>> import kiln
    >>> from kiln.nn.utils import get_total_norm
    >>> get_total_norm([kiln.tensor([3.0]), kiln.tensor([4.0])]).item()
    5.0
    """
    fn = "get_total_norm"
    p = _norm_type(norm_type, fn)
    ts = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if not ts:
        return zeros(())
    with no_grad():
        total = _norm(stack([_norm(t.detach(), p) for t in ts]), p)
    if error_if_nonfinite:
        if total._node is not None:
            raise TraceError(f"{fn}: error_if_nonfinite=True needs the total norm's value, "
                             "which a trace does not have; pass error_if_nonfinite=False "
                             "inside kiln.trace (a non-finite norm then scales the "
                             "gradients to nan, as in torch)")
        if not math.isfinite(total.item()):
            raise AutogradError(f"{fn}: the total norm of order {norm_type} of the gradients "
                                "is non-finite, so it cannot be clipped; set "
                                "error_if_nonfinite=False to scale by it anyway")
    return total


def clip_grad_norm_(parameters: Any, max_norm: float, norm_type: float | str = 2.0,
                    error_if_nonfinite: bool = False, foreach: Any = None) -> Tensor:
    """Scale the gradients of ``parameters`` so that their total norm is at most
    ``max_norm``; returns the total norm before clipping (a 0-d tensor).

    >>> import kiln
    >>> from kiln.nn.utils import clip_grad_norm_
    >>> w = kiln.nn.Parameter(kiln.zeros(2)); w.grad = kiln.tensor([3.0, 4.0])
    >>> clip_grad_norm_(w, 1.0).item(), [round(v, 4) for v in w.grad.tolist()]
    (5.0, [0.6, 0.8])
    """
    fn = "clip_grad_norm_"
    grads = _grads(parameters, fn)
    if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float)):
        raise ArgumentError(f"{fn}: max_norm must be a number, got {max_norm!r}")
    if not grads:
        return zeros(())
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    with no_grad():
        # torch's formula, kept as tensor ops (no .item()), so a trace records it
        coef = (float(max_norm) / (total + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.to(g.dtype))
    return total


def clip_grad_value_(parameters: Any, clip_value: float, foreach: Any = None) -> None:
    """Clamp every gradient of ``parameters`` to ``[-clip_value, clip_value]`` in place.

    >>> import kiln
    >>> from kiln.nn.utils import clip_grad_value_
    >>> w = kiln.nn.Parameter(kiln.zeros(3)); w.grad = kiln.tensor([-5.0, 0.5, 2.0])
    >>> clip_grad_value_(w, 1.0); w.grad.tolist()
    [-1.0, 0.5, 1.0]
    """
    fn = "clip_grad_value_"
    if isinstance(clip_value, bool) or not isinstance(clip_value, (int, float)):
        raise ArgumentError(f"{fn}: clip_value must be a number, got {clip_value!r}")
    v = float(clip_value)
    with no_grad():
        for g in _grads(parameters, fn):
            g.clamp_(-v, v)
