"""``nn.Unfold``, ``nn.Fold`` and ``nn.Tanhshrink``: modules over :mod:`kiln.nn.fold`."""

from __future__ import annotations

from typing import Any

from kiln.core.tensor import Tensor
from kiln.nn import fold as _fold
from kiln.nn.module import Module


class Unfold(Module):
    """Sliding blocks as columns (:func:`kiln.nn.functional.unfold`).

    >>> import kiln
    >>> kiln.nn.Unfold(2)(kiln.ones(1, 3, 4, 4)).shape
    (1, 12, 9)
    """

    def __init__(self, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
                 stride: Any = 1) -> None:
        super().__init__()
        self.kernel_size, self.dilation = kernel_size, dilation
        self.padding, self.stride = padding, stride

    def forward(self, input: Tensor) -> Tensor:
        return _fold.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")


class Fold(Module):
    """Columns summed back into an image (:func:`kiln.nn.functional.fold`).

    >>> import kiln
    >>> kiln.nn.Fold((4, 4), 2)(kiln.ones(1, 12, 9)).shape
    (1, 3, 4, 4)
    """

    def __init__(self, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
                 stride: Any = 1) -> None:
        super().__init__()
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride

    def forward(self, input: Tensor) -> Tensor:
        return _fold.fold(input, self.output_size, self.kernel_size, self.dilation,
                          self.padding, self.stride)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, kernel_size={self.kernel_size}, "
                f"dilation={self.dilation}, padding={self.padding}, stride={self.stride}")


class Tanhshrink(Module):
    """``x - tanh(x)``.

    >>> import kiln
    >>> kiln.nn.Tanhshrink()(kiln.zeros(2)).tolist()
    [0.0, 0.0]
    """

    def forward(self, input: Tensor) -> Tensor:
        return _fold.tanhshrink(input)


__all__ = ["Unfold", "Fold", "Tanhshrink"]
