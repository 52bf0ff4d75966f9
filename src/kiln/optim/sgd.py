"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from typing import Any

from kiln.errors import ArgumentError, ValueArgumentError
from kiln.optim.optimizer import Optimizer, check_hyper, params_with_grad


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
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        weight_decay, nesterov = group["weight_decay"], group["nesterov"]
        for p in params_with_grad(group):
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
