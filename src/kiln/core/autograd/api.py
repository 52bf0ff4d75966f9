"""``backward`` and ``grad``: the two entry points of eager autograd, which
``kiln.autograd`` exports and ``Tensor.backward`` calls. They check their arguments and hand
the outputs with their starting gradients to the engine (:mod:`kiln.core.autograd.engine`).

>>> import kiln
>>> x = kiln.tensor([1.0, 2.0], requires_grad=True)
>>> (gx,) = kiln.autograd.grad((x * x).sum(), [x])
>>> gx.tolist()
[2.0, 4.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from kiln.core.autograd.engine import run_backward
from kiln.errors import AutogradError

if TYPE_CHECKING:
    from kiln.core.tensor import Tensor


def _as_list(value: Any, name: str) -> list:
    from kiln.core.tensor import Tensor

    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            if not isinstance(v, Tensor):
                raise AutogradError(f"{name}[{i}]: expected a kiln.Tensor, got {type(v).__name__}")
        return list(value)
    raise AutogradError(f"{name}: expected a Tensor or a sequence of Tensors, "
                        f"got {type(value).__name__}")


def _default_grads(outputs: list, grad_outputs: Any) -> list:
    from kiln.core import creation
    from kiln.core.tensor import Tensor

    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise AutogradError(f"grad_outputs: expected {len(outputs)} gradients, "
                            f"got {len(grad_outputs)}")
    grads = []
    for i, (o, g) in enumerate(zip(outputs, grad_outputs)):
        if g is None and o._node is None and o._data.size == 1:
            # The usual `loss.backward()`: a one-element eager output gets ones directly
            # (what ones_like gives, without an op dispatch).
            grads.append(Tensor._wrap(np.ones(o._data.shape, o._data.dtype)))
            continue
        if g is None:
            if o.numel() != 1:
                raise AutogradError(
                    f"grad can be implicitly created only for scalar outputs; outputs[{i}] "
                    f"has shape {tuple(o.shape)}: pass grad_outputs (or a gradient to "
                    "backward())"
                )
            g = creation.ones_like(o)
        elif tuple(g.shape) != tuple(o.shape):
            raise AutogradError(f"grad_outputs[{i}]: expected shape {tuple(o.shape)}, "
                                f"got {tuple(g.shape)}")
        grads.append(g)
    return grads


def backward(
    tensors: Tensor | Sequence[Tensor],
    grad_tensors: Tensor | Sequence[Tensor | None] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> None:
    """Accumulate gradients of ``tensors`` into the ``.grad`` of the leaves they depend on.

    >>> import kiln
    >>> x = kiln.tensor([1.0, 2.0], requires_grad=True)
    >>> kiln.autograd.backward([x * x], [kiln.ones(2)])
    >>> x.grad.tolist()
    [2.0, 4.0]
    """
    outs = _as_list(tensors, "tensors")
    grads = _default_grads(outs, grad_tensors)
    run_backward(outs, grads, retain_graph=bool(create_graph if retain_graph is None
                                                else retain_graph),
                 create_graph=create_graph)


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Tensor | Sequence[Tensor | None] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Tensor | None, ...]:
    """Gradients of ``outputs`` with respect to ``inputs``, without touching ``.grad``.

    With ``create_graph=True`` the result is itself differentiable (second derivatives).

    >>> import kiln
    >>> x = kiln.tensor(3.0, requires_grad=True)
    >>> (g,) = kiln.autograd.grad(x ** 3, [x], create_graph=True)
    >>> (g2,) = kiln.autograd.grad(g, [x])
    >>> float(g), float(g2)
    (27.0, 18.0)
    """
    outs = _as_list(outputs, "outputs")
    ins = _as_list(inputs, "inputs")
    grads = _default_grads(outs, grad_outputs)
    result = run_backward(
        outs, grads,
        retain_graph=bool(create_graph if retain_graph is None else retain_graph),
        create_graph=create_graph, inputs=ins, allow_unused=allow_unused,
    )
    return tuple(result or ())
