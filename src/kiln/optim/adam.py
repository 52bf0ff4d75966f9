"""Adam and AdamW (decoupled weight decay), with AMSGrad and maximize."""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln import ops
from kiln.core import dtypes
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError
from kiln.optim import fast, fused
from kiln.optim.optimizer import (
    Optimizer,
    check_hyper,
    params_with_grad,
    state_scalar,
    state_zeros,
)

# Option bits of the fused kernel (csrc/kiln_optim.c).
_MAXIMIZE, _DECAY, _DECOUPLED, _LERP_LOW, _AMSGRAD = 1, 2, 4, 8, 16


def _scalars(group: dict[str, Any]) -> tuple[Any, ...]:
    """``(weight_decay, 1 - lr * weight_decay, w = 1 - beta1, 1 - w, beta2, 1 - beta2, eps)``:
    the numbers of one step, computed once here for both eager paths (the NumPy ufuncs and
    the fused C kernel), so that both round the very same values to the parameter dtype."""
    lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
    weight = 1 - beta1
    return (weight_decay, 1 - lr * weight_decay, weight, 1 - weight, beta2, 1 - beta2,
            group["eps"])


def _lerp_(t: Tensor, end: Tensor, weight: float) -> Tensor:
    # PyTorch's lerp: the formula switches at weight 0.5 to stay accurate near both ends.
    if weight < 0.5:
        return t.add_((end - t) * weight)
    return t.copy_(end - (end - t) * (1 - weight))


class Adam(Optimizer):
    """Adam (Kingma & Ba), the same arithmetic as ``torch.optim.Adam`` (foreach=False).

    ``m = lerp(m, g, 1 - beta1)``, ``v = beta2 v + (1 - beta2) g^2``; with bias corrections
    ``c1 = 1 - beta1^t`` and ``c2 = 1 - beta2^t``:
    ``p -= (lr / c1) * m / (sqrt(v) / sqrt(c2) + eps)``. ``amsgrad`` uses the running max of
    ``v``; ``weight_decay`` adds ``wd * p`` to the gradient (AdamW decays ``p`` directly).

    >>> import kiln
    >>> w = kiln.nn.Parameter(kiln.tensor([1.0, -2.0]))
    >>> opt = kiln.optim.Adam([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> [round(v, 4) for v in w.tolist()]
    [0.9, -1.9]
    """

    _decoupled = False

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None,
                 decoupled_weight_decay: bool | None = None) -> None:
        name = type(self).__name__
        check_hyper(name, "lr", lr)
        check_hyper(name, "eps", eps)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ArgumentError(f"{name}: betas must be a pair of numbers, got {betas!r}")
        check_hyper(name, "beta parameter at index 0", betas[0], 0.0, 1.0, high_open=True)
        check_hyper(name, "beta parameter at index 1", betas[1], 0.0, 1.0, high_open=True)
        check_hyper(name, "weight_decay", weight_decay)
        if capturable or differentiable:
            raise ArgumentError(f"{name}: capturable and differentiable are not supported")
        decoupled = self._decoupled if decoupled_weight_decay is None \
            else bool(decoupled_weight_decay)
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "amsgrad": bool(amsgrad), "maximize": bool(maximize), "foreach": foreach,
                    "decoupled_weight_decay": decoupled, "fused": fused}
        super().__init__(params, defaults)

    def _init_state(self, p: Tensor, amsgrad: bool) -> dict[str, Any]:
        state = self.state[p]
        if not state:
            # A float32 0-d step, as in PyTorch, so state dicts line up.
            state["step"] = state_scalar(0.0)
            state["exp_avg"] = state_zeros(p)
            state["exp_avg_sq"] = state_zeros(p)
            if amsgrad:
                state["max_exp_avg_sq"] = state_zeros(p)
        elif amsgrad and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = state_zeros(p)
        return state

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
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay, amsgrad = group["weight_decay"], group["amsgrad"]
        decoupled = group.get("decoupled_weight_decay", self._decoupled)
        grad = p.grad if not group["maximize"] else -p.grad
        state = self._init_state(p, amsgrad)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        state["step"].add_(1)
        if weight_decay != 0:
            if decoupled:
                p.mul_(1 - lr * weight_decay)
            else:
                grad = grad + p * weight_decay
        _lerp_(exp_avg, grad, 1 - beta1)
        # (value * t1) * t2 and (value * t1) / t2: PyTorch's addcmul/addcdiv order.
        exp_avg_sq.mul_(beta2).add_(grad * (1 - beta2) * grad)
        if fast.tracing():
            # The step count is graph data (a constant updated on every call), so the bias
            # corrections are graph ops too, in float64 like the Python doubles below.
            step = state["step"].to(dtypes.float64)
            step_size = lr / (1.0 - beta1 ** step)
            bias_correction2_sqrt = ops.sqrt(1.0 - beta2 ** step)
        else:
            step_size, bias_correction2_sqrt = _step_sizes(lr, beta1, beta2,
                                                           float(state["step"].item()))
        if amsgrad:
            best = state["max_exp_avg_sq"]
            best.copy_(ops.maximum(best, exp_avg_sq))
            denom = ops.sqrt(best) / bias_correction2_sqrt + eps
        else:
            denom = ops.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
        p.add_(exp_avg * (-step_size) / denom)

    def _fast_update(self, p: Tensor, arrays: tuple, group: dict[str, Any]) -> bool:
        """``_update_param`` as in-place ufuncs (see kiln.optim.fast), the same operations
        in the same order; False if the state does not qualify (then the generic update
        runs)."""
        lr, (beta1, beta2) = group["lr"], group["betas"]
        weight_decay, decay, weight, one_minus_weight, beta2, one_minus_beta2, eps = \
            _scalars(group)
        amsgrad = group["amsgrad"]
        decoupled = group.get("decoupled_weight_decay", self._decoupled)
        pf, gf = arrays
        state = self._init_state(p, amsgrad)
        step_t = state["step"]
        step_arr = fast.state_step(step_t)
        mf = fast.state_array(state["exp_avg"], pf, gf)
        vf = fast.state_array(state["exp_avg_sq"], pf, gf)
        best_t = state.get("max_exp_avg_sq") if amsgrad else None
        bf = fast.state_array(best_t, pf, gf) if amsgrad else None
        if step_arr is None or mf is None or vf is None or (amsgrad and bf is None) or \
                np.may_share_memory(mf, vf):
            return False
        np.add(step_arr, 1, out=step_arr)
        fast.bump(step_t)
        step_size, bias_correction2_sqrt = _step_sizes(lr, beta1, beta2, float(step_t.item()))
        s1, s2 = self._scratch.get(pf.dtype, 2)
        with np.errstate(all="ignore"):
            for i, j in fast.chunks(pf.size):
                n = j - i
                pc, gc, mc, vc = pf[i:j], gf[i:j], mf[i:j], vf[i:j]
                t1, t2 = s1[:n], s2[:n]
                if group["maximize"]:
                    np.negative(gc, out=t1)
                    gc = t1
                if weight_decay != 0:
                    if decoupled:
                        np.multiply(pc, decay, out=pc)
                    else:
                        np.multiply(pc, weight_decay, out=t2)
                        np.add(gc, t2, out=t1)
                        gc = t1
                # _lerp_: m + (g - m) * w, or g - (g - m) * (1 - w) from w = 0.5 on.
                np.subtract(gc, mc, out=t2)
                if weight < 0.5:
                    np.multiply(t2, weight, out=t2)
                    np.add(mc, t2, out=mc)
                else:
                    np.multiply(t2, one_minus_weight, out=t2)
                    np.subtract(gc, t2, out=mc)
                np.multiply(vc, beta2, out=vc)
                np.multiply(gc, one_minus_beta2, out=t2)
                np.multiply(t2, gc, out=t2)
                np.add(vc, t2, out=vc)
                src = vc
                if bf is not None:
                    src = bf[i:j]
                    np.maximum(src, vc, out=src)
                np.sqrt(src, out=t2)
                np.true_divide(t2, bias_correction2_sqrt, out=t2)
                np.add(t2, eps, out=t2)
                np.multiply(mc, -step_size, out=t1)
                np.true_divide(t1, t2, out=t1)
                np.add(pc, t1, out=pc)
        fast.bump(p, state["exp_avg"], state["exp_avg_sq"])
        if best_t is not None:
            fast.bump(best_t)
        return True

    # fused steps (kiln.optim.fused): the same update, all tensors of a group in one C call ---
    _fused_algo = "adam"

    def _fused_structure(self, group: dict[str, Any]) -> bool:
        return bool(group["amsgrad"])

    def _fused_keys(self, structure: bool) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if structure else \
            ("exp_avg", "exp_avg_sq")

    def _fused_entry(self, p: Tensor, arr: np.ndarray, group: dict[str, Any],
                     structure: bool) -> fused.Entry | None:
        state = self._init_state(p, structure)
        step_t = state["step"]
        step_arr = fast.state_step(step_t)
        tensors = [state[key] for key in self._fused_keys(structure)]
        arrays = [fused.state_array(t, arr) for t in tensors]
        if step_arr is None or any(a is None for a in arrays):
            return None
        return fused.Entry(p, arr, tensors, arrays, extra=(step_t, step_arr))

    def _fused_extra_valid(self, state: dict[str, Any], entry: fused.Entry) -> bool:
        step_t, step_arr = entry.extra
        return state.get("step") is step_t and step_t._data is step_arr and \
            step_arr.flags.writeable

    def _fused_hyper(self, group: dict[str, Any]) -> tuple[tuple, int]:
        """The kernel's scalars (lr and beta1 also reach it through the step sizes) and
        option bits."""
        values = _scalars(group)
        weight_decay, weight = values[0], values[2]
        decoupled = group.get("decoupled_weight_decay", self._decoupled)
        flags = (_MAXIMIZE * bool(group["maximize"]) | _DECAY * (weight_decay != 0)
                 | _DECOUPLED * bool(decoupled) | _LERP_LOW * (weight < 0.5)
                 | _AMSGRAD * bool(group["amsgrad"]))
        return values, flags

    def _fused_before(self, batch: fused.Batch, group: dict[str, Any]) -> None:
        """Count the step of every tensor and give the kernel its step sizes (tensors may
        be at different steps: one that had no gradient for a while, a loaded state)."""
        lr, (beta1, beta2) = group["lr"], group["betas"]
        sizes: dict[float, tuple[float, float]] = {}
        ts = batch.ts
        for k, e in enumerate(batch.entries):
            step_t, step_arr = e.extra
            # np.add(step_arr, 1, out=step_arr) of the fast path, 30x cheaper: the sum is
            # exact in Python (a double, or an int), so storing it rounds once, as NumPy does.
            step_arr[()] = step_arr.item() + 1
            step_t._version += 1
            step = float(step_arr.item())
            pair = sizes.get(step)
            if pair is None:
                pair = sizes[step] = _step_sizes(lr, beta1, beta2, step)
            ts[2 * k], ts[2 * k + 1] = -pair[0], pair[1]

    def _fused_after(self, batch: fused.Batch) -> None:
        for e in batch.entries:
            e.param._version += 1
            for t in e.tensors:
                t._version += 1


def _step_sizes(lr: float, beta1: float, beta2: float, step: float) -> tuple[float, float]:
    """``lr / (1 - beta1^t)`` and ``sqrt(1 - beta2^t)`` for step count ``step``; the same
    Python doubles for all three paths (the fused kernel receives them as they are)."""
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    return lr / bias_correction1, bias_correction2**0.5


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * wd`` before
    the Adam update; ``weight_decay`` defaults to 1e-2.

    >>> import kiln
    >>> w = kiln.nn.Parameter(kiln.ones(2))
    >>> opt = kiln.optim.AdamW([w], lr=0.1, weight_decay=0.5)
    >>> w.grad = kiln.zeros(2)
    >>> opt.step()
    >>> w.tolist()
    [0.949999988079071, 0.949999988079071]
    """

    _decoupled = True

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)
