"""``kiln.nn.Parameter``: a Tensor that a Module registers as a trainable parameter."""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.core.tensor import Tensor


class Parameter(Tensor):
    """A tensor that is a module parameter (``requires_grad=True`` unless told otherwise).

    Wrapping a tensor shares its data, as in PyTorch.

    >>> import kiln
    >>> p = kiln.nn.Parameter(kiln.ones(2))
    >>> p.requires_grad, isinstance(p, kiln.Tensor)
    (True, True)
    >>> print(p)
    Parameter containing:
    tensor([1., 1.], requires_grad=True)
    """

    def __new__(cls, data: Any = None, requires_grad: bool = True) -> Parameter:
        from kiln.core.creation import _to_array

        if data is None:
            array = np.zeros((0,), dtype=np.float32)
        elif isinstance(data, Tensor):
            array = data._concrete("nn.Parameter()")
        else:
            array = _to_array(data)
        # Not cls._wrap(array): that calls cls.__new__, which is this method (endless
        # recursion). Build a plain tensor and retag it; the memory layout is the same.
        p = Tensor._wrap(array)
        p.__class__ = cls
        p._is_param = True
        if requires_grad:
            p.requires_grad_(True)
        return p

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        # Everything happens in __new__; Tensor.__init__ must not run again.
        pass

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol: Any) -> Any:
        # copy.deepcopy(module) copies parameters as Parameters with their values.
        return (Parameter, (Tensor._wrap(np.array(self._data, copy=True)), self.requires_grad))
