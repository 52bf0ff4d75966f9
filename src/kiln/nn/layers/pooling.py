"""Pooling layers: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d."""

from __future__ import annotations

from typing import Any

from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError
from kiln.nn import functional as F
from kiln.nn.layers._utils import tuple_arg
from kiln.nn.module import Module


def _validate(layer: str, kernel_size: Any, stride: Any, padding: Any) -> None:
    # Checked here so that a bad layer fails when built, not at its first call.
    k = tuple_arg(layer, "kernel_size", kernel_size, 2, 1)
    if stride is not None:
        tuple_arg(layer, "stride", stride, 2, 1)
    p = tuple_arg(layer, "padding", padding, 2, 0)
    if any(pi > ki // 2 for pi, ki in zip(p, k)):
        raise ArgumentError(f"{layer}: padding {padding} should be at most half of the kernel "
                            f"size {kernel_size}")


class MaxPool2d(Module):
    """Max over ``kernel_size`` windows (``stride`` defaults to the kernel size).

    >>> import kiln
    >>> pool = kiln.nn.MaxPool2d(3, stride=2, padding=1)
    >>> pool(kiln.ones(1, 2, 8, 8)).shape
    (1, 2, 4, 4)
    >>> pool
    MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 dilation: Any = 1, return_indices: bool = False,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        _validate("MaxPool2d", kernel_size, stride, padding)
        tuple_arg("MaxPool2d", "dilation", dilation, 2, 1)
        if return_indices:
            raise ArgumentError("MaxPool2d: return_indices=True is not supported")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = False
        self.ceil_mode = bool(ceil_mode)

    def forward(self, input: Tensor) -> Tensor:
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Mean over ``kernel_size`` windows.

    >>> import kiln
    >>> kiln.nn.AvgPool2d(2)(kiln.ones(1, 1, 4, 4)).tolist()
    [[[[1.0, 1.0], [1.0, 1.0]]]]
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None) -> None:
        super().__init__()
        _validate("AvgPool2d", kernel_size, stride, padding)
        if divisor_override is not None and (not isinstance(divisor_override, int)
                                             or divisor_override <= 0):
            raise ArgumentError(f"AvgPool2d: divisor_override must be a positive int, got "
                                f"{divisor_override!r}")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override = divisor_override

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


def _output_size(layer: str, output_size: Any) -> Any:
    items = (output_size, output_size) if not isinstance(output_size, (tuple, list)) \
        else output_size
    if len(items) != 2 or any(v is not None and (isinstance(v, bool) or not isinstance(v, int)
                                                 or v < 1) for v in items):
        raise ArgumentError(f"{layer}: output_size must be a positive int, None, or a pair of "
                            f"them, got {output_size!r}")
    return output_size


class AdaptiveAvgPool2d(Module):
    """Average into a fixed ``output_size`` grid whatever the input size.

    >>> import kiln
    >>> kiln.nn.AdaptiveAvgPool2d((1, 1))(kiln.ones(2, 3, 7, 7)).shape
    (2, 3, 1, 1)
    """

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = _output_size("AdaptiveAvgPool2d", output_size)

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """Maximum over a fixed ``output_size`` grid whatever the input size.

    >>> import kiln
    >>> x = kiln.arange(16.0).reshape(1, 1, 4, 4)
    >>> kiln.nn.AdaptiveMaxPool2d(2)(x).tolist()
    [[[[5.0, 7.0], [13.0, 15.0]]]]
    """

    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        super().__init__()
        if return_indices:
            raise ArgumentError("AdaptiveMaxPool2d: return_indices=True is not supported")
        self.output_size = _output_size("AdaptiveMaxPool2d", output_size)
        self.return_indices = False

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_max_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
