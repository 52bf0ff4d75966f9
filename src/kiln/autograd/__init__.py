"""Eager reverse-mode autograd (``kiln.autograd``): ``backward``, ``grad``, grad mode and
custom ``Function``\\ s.

The tape itself (grad mode, graph nodes, the engine) is part of the tensor core
(:mod:`kiln.core.autograd`), since dispatch records into it and ``Tensor`` keeps its
gradient accumulator; this package is its public name.

Layer: just above the tensor core, beside kiln.ops (the two do not import each other). May
import kiln.core, kiln.symbolic, kiln.base and kiln.errors below it.

>>> import kiln
>>> x = kiln.tensor([1.0, 2.0], requires_grad=True)
>>> (gx,) = kiln.autograd.grad((x * x).sum(), [x])
>>> gx.tolist()
[2.0, 4.0]
"""

from __future__ import annotations

from kiln.core.autograd.api import backward, grad
from kiln.core.autograd.function import Function, FunctionCtx
from kiln.core.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled

__all__ = ["backward", "grad", "no_grad", "enable_grad", "is_grad_enabled", "set_grad_enabled",
           "Function", "FunctionCtx"]
