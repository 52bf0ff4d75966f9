"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, TraceError, ValueArgumentError
from kiln.optim import fast, fused
from kiln.optim.optimizer import Optimizer, check_hyper, params_with_grad, state_zeros

# Option bits of the fused kernel (csrc/kiln_optim.c).
_MAXIMIZE, _DECAY, _MOMENTUM, _DAMP_ONE, _NESTEROV = 1, 2, 4, 8, 16


def _scalars(group: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """``(weight_decay, momentum, 1 - dampening, -lr)``: the numbers of one step, computed
    once here for both eager paths (the NumPy ufuncs and the fused C kernel), so that both
    round the very same values to the parameter dtype."""
    return group["weight_decay"], group["momentum"], 1 - group["dampening"], -group["lr"]


class SGD(Optimizer):
    """SGD, step for step the same arithmetic as ``torch.optim.SGD`` (foreach=False):

    ``g = grad + weight_decay * p``; with momentum ``buf = momentum * buf + (1 - dampening) * g``
    (``buf = g`` on the first step) and ``g = buf`` (or ``g + momentum * buf`` with Nesterov);
    then ``p -= lr * g``. ``maximize`` ascends instead.

    ``fused`` (None, True or False) chooses the fused C kernel of :mod:`kiln.optim.fused`:
    None uses it when a C compiler is available, True requires it, False never does. It
    gives the same bits as the NumPy path, faster.

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
        if differentiable:
            raise ArgumentError("SGD: differentiable=True is not supported")
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening,
                    "weight_decay": weight_decay, "nesterov": bool(nesterov),
                    "maximize": bool(maximize), "foreach": foreach, "fused": fused}
        super().__init__(params, defaults)

    def _update_group(self, group: dict[str, Any]) -> None:
        use_fast = fast.enabled(self)
        params = list(params_with_grad(group))
        if use_fast:
            params = fused.step_group(self, group, params)
        for p in params:
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
            if buf is None and fast.tracing():
                # A trace would bake the first step (buf = grad) into every call. The buffer
                # starts as eager zeros instead, updated as a graph mutation: 0 * m + grad is
                # grad, so each call is the step it stands for -- unless dampening changes it.
                if dampening != 0:
                    raise TraceError(
                        "SGD: the first step with momentum and dampening != 0 copies the "
                        "gradient undampened, which a trace would repeat on every call; take "
                        "one eager opt.step() before tracing it")
                buf = state["momentum_buffer"] = state_zeros(p)
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
        weight_decay, momentum, damp, neg_lr = _scalars(group)
        nesterov, maximize = group["nesterov"], group["maximize"]
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
                np.multiply(gc, neg_lr, out=t2)
                np.add(pc, t2, out=pc)
        if first:
            self.state[p]["momentum_buffer"] = Tensor._wrap(bf.reshape(p._data.shape))
        elif buf_t is not None:
            fast.bump(buf_t)
        fast.bump(p)
        return True

    # fused steps (kiln.optim.fused): the same update, all tensors of a group in one C call ---
    _fused_algo = "sgd"

    def _fused_structure(self, group: dict[str, Any]) -> bool:
        return group["momentum"] != 0

    def _fused_keys(self, structure: bool) -> tuple[str, ...]:
        return ("momentum_buffer",) if structure else ()

    def _fused_entry(self, p: Tensor, arr: np.ndarray, group: dict[str, Any],
                     structure: bool) -> fused.Entry | None:
        if not structure:
            return fused.Entry(p, arr, [], [])
        buf = self.state[p].get("momentum_buffer")
        if buf is None:  # the first step fills a new buffer, stored after the call
            return fused.Entry(p, arr, [None], [np.empty(arr.size, arr.dtype)])
        barr = fused.state_array(buf, arr)
        return None if barr is None else fused.Entry(p, arr, [buf], [barr])

    def _fused_extra_valid(self, state: dict[str, Any], entry: fused.Entry) -> bool:
        return True

    def _fused_hyper(self, group: dict[str, Any]) -> tuple[tuple, int]:
        """The kernel's scalars and option bits."""
        values = _scalars(group)
        weight_decay, momentum, damp, _ = values
        flags = (_MAXIMIZE * bool(group["maximize"]) | _DECAY * (weight_decay != 0)
                 | _MOMENTUM * (momentum != 0) | _DAMP_ONE * (damp == 1)
                 | _NESTEROV * bool(group["nesterov"]))
        return values, flags

    def _fused_before(self, batch: fused.Batch, group: dict[str, Any]) -> None:
        pass

    def _fused_after(self, batch: fused.Batch) -> None:
        first = False
        for e in batch.entries:
            e.param._version += 1
            if e.tensors:
                buf = e.tensors[0]
                if buf is None:
                    buf = Tensor._wrap(e.arrays[0].reshape(e.data.shape))
                    self.state[e.param]["momentum_buffer"] = buf
                    e.tensors[0], e.datas[0] = buf, buf._data
                    first = True
                else:
                    buf._version += 1
        if first:
            batch.clear_first()
