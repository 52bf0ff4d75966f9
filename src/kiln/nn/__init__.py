"""``kiln.nn``: modules, parameters, layers, initializers and the functional API, as in
``torch.nn``.

Layer: modules and composites, right above the tensor core. May import kiln.io, the tensor core
(kiln.core, kiln.ops, kiln.autograd), kiln.symbolic, kiln.base and kiln.errors.

>>> import kiln
>>> from kiln import nn
>>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
>>> model(kiln.ones(3, 4)).shape
(3, 2)
"""

from __future__ import annotations

from kiln.nn import functional, init
from kiln.nn.layers import *  # noqa: F403  (the layer classes, listed in layers.__all__)
from kiln.nn.layers import __all__ as _layer_names
from kiln.nn.module import IncompatibleKeys, Module, RemovableHandle, StateDictError
from kiln.nn.parameter import Parameter

__all__ = ["Module", "Parameter", "StateDictError", "IncompatibleKeys", "RemovableHandle",
           "functional", "init", *_layer_names]
