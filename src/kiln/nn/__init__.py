"""``kiln.nn``: modules, parameters and the functional API, as in ``torch.nn``."""

from __future__ import annotations

from kiln.nn import functional
from kiln.nn.module import IncompatibleKeys, Module, RemovableHandle, StateDictError
from kiln.nn.parameter import Parameter

__all__ = ["Module", "Parameter", "StateDictError", "IncompatibleKeys", "RemovableHandle",
           "functional"]
