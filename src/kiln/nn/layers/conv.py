"""Convolution layers: Conv1d and Conv2d with PyTorch's arguments, parameters and repr."""

from __future__ import annotations

from typing import Any

from kiln.core.tensor import Tensor
from kiln.errors import ShapeError, ValueArgumentError
from kiln.nn import functional as F
from kiln.nn.layers._utils import (
    check_choice,
    check_int,
    check_tensor,
    conv_extra_repr,
    fan_in_init,
    float_dtype,
    static,
    tuple_arg,
    weight_and_bias,
)
from kiln.nn.module import Module

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    _n = 2  # spatial dims

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        name, n = type(self).__name__, self._n
        self.in_channels = check_int(name, "in_channels", in_channels, 1)
        self.out_channels = check_int(name, "out_channels", out_channels, 1)
        self.groups = check_int(name, "groups", groups, 1)
        if in_channels % groups:
            raise ValueArgumentError(f"{name}: in_channels ({in_channels}) must be divisible "
                                     f"by groups ({groups})")
        if out_channels % groups:
            raise ValueArgumentError(f"{name}: out_channels ({out_channels}) must be divisible "
                                     f"by groups ({groups})")
        self.kernel_size = tuple_arg(name, "kernel_size", kernel_size, n, 1)
        self.stride = tuple_arg(name, "stride", stride, n, 1)
        self.dilation = tuple_arg(name, "dilation", dilation, n, 1)
        if isinstance(padding, str):
            check_choice(name, "padding", padding, ("same", "valid"))
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueArgumentError(f"{name}: padding='same' is not supported for strided "
                                         "convolutions")
            self.padding: Any = padding
        else:
            self.padding = tuple_arg(name, "padding", padding, n, 0)
        self.padding_mode = check_choice(name, "padding_mode", padding_mode, _PADDING_MODES)
        self.transposed = False
        self.output_padding = (0,) * n
        # F.pad's argument for non-zero padding modes: last dim first, (left, right) each.
        rev: list[int] = [0, 0] * n
        for i in range(n):
            if self.padding == "same":
                total = self.dilation[i] * (self.kernel_size[i] - 1)
                lo = total // 2
                rev[2 * (n - 1 - i)], rev[2 * (n - 1 - i) + 1] = lo, total - lo
            elif self.padding != "valid":
                rev[2 * (n - 1 - i)] = rev[2 * (n - 1 - i) + 1] = self.padding[i]
        self._reversed_padding_repeated_twice = rev
        weight_and_bias(self, (out_channels, in_channels // groups) + self.kernel_size, bias,
                        float_dtype(name, dtype, device))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in_init(self.weight, self.bias)

    def _check_input(self, x: Tensor) -> None:
        name, n = type(self).__name__, self._n
        check_tensor(name, x)
        if x.ndim not in (n + 1, n + 2):
            raise ShapeError(f"{name}: expected {n + 1}-D (unbatched) or {n + 2}-D (batched) "
                             f"input, got shape {tuple(x.shape)}")
        c = x.shape[-n - 1]
        if static(c) and c != self.in_channels:
            raise ShapeError(f"{name}: expected input with {self.in_channels} channels (dim "
                             f"{-n - 1}), got shape {tuple(x.shape)}")

    def _conv(self, x: Tensor, padding: Any) -> Tensor:
        raise NotImplementedError

    def forward(self, input: Tensor) -> Tensor:
        self._check_input(input)
        if self.padding_mode != "zeros":
            padded = F.pad(input, tuple(self._reversed_padding_repeated_twice),
                           mode=self.padding_mode)
            return self._conv(padded, 0)
        return self._conv(input, self.padding)

    def extra_repr(self) -> str:
        return conv_extra_repr(self)


class Conv2d(_ConvNd):
    """2-D convolution over (N, C, H, W) or (C, H, W) input.

    Weight (out_channels, in_channels // groups, kH, kW); ``padding`` is an int, a pair,
    ``"same"`` or ``"valid"``; ``padding_mode`` is ``zeros``, ``reflect``, ``replicate`` or
    ``circular``.

    >>> import kiln
    >>> conv = kiln.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    >>> conv(kiln.ones(2, 3, 10, 10)).shape
    (2, 8, 10, 10)
    >>> conv
    Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
    """

    _n = 2

    def _conv(self, x: Tensor, padding: Any) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation,
                        self.groups)


class Conv1d(_ConvNd):
    """1-D convolution over (N, C, L) or (C, L) input.

    >>> import kiln
    >>> kiln.nn.Conv1d(4, 6, 5, stride=2)(kiln.ones(1, 4, 21)).shape
    (1, 6, 9)
    """

    _n = 1

    def _conv(self, x: Tensor, padding: Any) -> Tensor:
        pad = padding if isinstance(padding, str) else (
            padding if isinstance(padding, int) else padding[0])
        return F.conv1d(x, self.weight, self.bias, self.stride[0], pad, self.dilation[0],
                        self.groups)
