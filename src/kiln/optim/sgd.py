"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.errors import ArgumentError, ValueArgumentError
from kiln.optim import fast
from kiln.optim.optimizer import Optimizer, check_hyper, params_with_grad
from kiln.tensor import Tensor


class SGD(Optimizer):
    """SGD, step for step the same arithmetic as ``torch.optim.SGD`` (foreach=False):

    ``g = grad + weight_decay * p``; with momentum ``buf = momentum * buf + (1 - dampening) * g``
    (``buf = g`` on the first step) and ``g = buf`` (or ``g + momentum * buf`` with Nesterov);
    then ``p -= lr * g``. ``maximize`` ascends instead.

    >>> import kiln
    >>> w = kiln.nn.Parameter(kiln.tensor([1.0, -2.0]))
    >>> opt = kiln.optim.SGD([w], lr=0.1, momentum=0.9)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w.tolist()
    [0.800000011920929, -1.600000023841858]
    """

    def __init__(self, params: Any, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None,
                 differentiable: bool = False, fused: bool | None = None) -> None:
        check_hyper("SGD", "lr", lr)
        check_hyper("SGD", "momentum", momentum)
        check_hyper("SGD", "weight_decay", weight_decay)
        if not isinstance(dampening, (int, float)) or isinstance(dampening, bool):
            raise ArgumentError(f"SGD: dampening must be a number, got {dampening!r}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueArgumentError("SGD: Nesterov momentum requires a momentum and zero "
                                     "dampening")
        if differentiable or fused:
            raise ArgumentError("SGD: differentiable=True and fused=True are not supported")
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening,
                    "weight_decay": weight_decay, "nesterov": bool(nesterov),
                    "maximize": bool(maximize), "foreach": foreach}
        super().__init__(params, defaults)

    def _update_group(self, group: dict[str, Any]) -> None:
        use_fast = fast.enabled(self)
        for p in params_with_grad(group):
            arrays = fast.param_arrays(p) if use_fast else None
            if arrays is None or not self._fast_update(p, arrays, group):
                self._update_param(p, group)

    def _update_param(self, p: Tensor, group: dict[str, Any]) -> None:
        """The generic update, as Kiln ops (also what a trace records)."""
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        weight_decay, nesterov = group["weight_decay"], group["nesterov"]
        grad = p.grad if not group["maximize"] else -p.grad
        if weight_decay != 0:
            grad = grad + p * weight_decay
        if momentum != 0:
            state = self.state[p]
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = grad.detach().clone()
                state["momentum_buffer"] = buf
            else:
                buf.mul_(momentum).add_(grad, alpha=1 - dampening)
            grad = grad + buf * momentum if nesterov else buf
        p.add_(grad, alpha=-lr)

    def _fast_update(self, p: Tensor, arrays: tuple, group: dict[str, Any]) -> bool:
        """``_update_param`` as in-place ufuncs (see kiln.optim.fast); False if the state does
        not qualify (the caller then runs the generic update)."""
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        weight_decay, nesterov, maximize = group["weight_decay"], group["nesterov"], \
            group["maximize"]
        pf, gf = arrays
        buf_t = bf = None
        first = False
        if momentum != 0:
            state = self.state[p]
            buf_t = state.get("momentum_buffer")
            if buf_t is None:
                first = True
                bf = np.empty_like(pf)
            else:
                bf = fast.state_array(buf_t, pf, gf)
                if bf is None:
                    return False
        # add_(x, alpha=a) computes s + x * a, or s + x when a == 1: the same here.
        damp = 1 - dampening
        s1, s2 = self._scratch.get(pf.dtype, 2)
        with np.errstate(all="ignore"):
            for i, j in fast.chunks(pf.size):
                n = j - i
                pc, gc = pf[i:j], gf[i:j]
                t1, t2 = s1[:n], s2[:n]
                if maximize:
                    np.negative(gc, out=t1)
                    gc = t1
                if weight_decay != 0:
                    np.multiply(pc, weight_decay, out=t2)
                    np.add(gc, t2, out=t1)
                    gc = t1
                if bf is not None:
                    bc = bf[i:j]
                    if first:
                        np.copyto(bc, gc)
                    else:
                        np.multiply(bc, momentum, out=bc)
                        if damp == 1:
                            np.add(bc, gc, out=bc)
                        else:
                            np.multiply(gc, damp, out=t2)
                            np.add(bc, t2, out=bc)
                    if nesterov:
                        np.multiply(bc, momentum, out=t2)
                        np.add(gc, t2, out=t1)
                        gc = t1
                    else:
                        gc = bc
                np.multiply(gc, -lr, out=t2)
                np.add(pc, t2, out=pc)
        if first:
            self.state[p]["momentum_buffer"] = Tensor._wrap(bf.reshape(p._data.shape))
        elif buf_t is not None:
            fast.bump(buf_t)
        fast.bump(p)
        return True
