"""``nn.MaxUnpool2d``: the module over :func:`kiln.nn.functional.max_unpool2d`."""

from __future__ import annotations

from typing import Any

from kiln.core.tensor import Tensor
from kiln.nn.module import Module
from kiln.nn.unpool import max_unpool2d


class MaxUnpool2d(Module):
    """Values put back at the positions ``MaxPool2d(return_indices=True)`` took them from.

    >>> import kiln
    >>> pool, unpool = kiln.nn.MaxPool2d(2, return_indices=True), kiln.nn.MaxUnpool2d(2)
    >>> out, idx = pool(kiln.arange(16.0).reshape(1, 1, 4, 4))
    >>> unpool(out, idx).shape
    (1, 1, 4, 4)
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, input: Tensor, indices: Tensor, output_size: Any = None) -> Tensor:
        return max_unpool2d(input, indices, self.kernel_size, self.stride, self.padding,
                            output_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


__all__ = ["MaxUnpool2d"]
