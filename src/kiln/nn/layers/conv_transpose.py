"""Transposed convolution layers (ConvTranspose1d, ConvTranspose2d) and PReLU, with PyTorch's
arguments, parameter names, layouts, initialization and reprs."""

from __future__ import annotations

from typing import Any

from kiln.core.tensor import Tensor
from kiln.errors import ShapeError, ValueArgumentError
from kiln.nn import functional as F
from kiln.nn.conv_transpose import transposed_out_size
from kiln.nn.layers._utils import (
    check_choice,
    check_int,
    check_tensor,
    conv_extra_repr,
    fan_in_init,
    float_dtype,
    new_param,
    tuple_arg,
)
from kiln.nn.module import Module


class _ConvTransposeNd(Module):
    _n = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, output_padding: Any = 0, groups: int = 1, bias: bool = True,
                 dilation: Any = 1, padding_mode: str = "zeros", device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        name, n = type(self).__name__, self._n
        self.in_channels = check_int(name, "in_channels", in_channels, 1)
        self.out_channels = check_int(name, "out_channels", out_channels, 1)
        self.groups = check_int(name, "groups", groups, 1)
        if in_channels % groups or out_channels % groups:
            raise ValueArgumentError(f"{name}: in_channels ({in_channels}) and out_channels "
                                     f"({out_channels}) must be divisible by groups ({groups})")
        self.kernel_size = tuple_arg(name, "kernel_size", kernel_size, n, 1)
        self.stride = tuple_arg(name, "stride", stride, n, 1)
        self.padding = tuple_arg(name, "padding", padding, n, 0)
        self.output_padding = tuple_arg(name, "output_padding", output_padding, n, 0)
        self.dilation = tuple_arg(name, "dilation", dilation, n, 1)
        # Only zero padding is defined for transposed convolutions (torch says the same).
        self.padding_mode = check_choice(name, "padding_mode", padding_mode, ("zeros",))
        self.transposed = True
        d = float_dtype(name, dtype, device)
        self.weight = new_param((in_channels, out_channels // groups) + self.kernel_size, d)
        if bias:
            self.bias = new_param((out_channels,), d)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # torch's _ConvNd init: fan_in from the weight's dim 1 (out_channels // groups here)
        fan_in_init(self.weight, self.bias)

    def _output_padding(self, x: Tensor, output_size: Any) -> tuple[int, ...]:
        if output_size is None:
            return self.output_padding
        n, name = self._n, type(self).__name__
        want = list(output_size)[-n:]
        if len(want) != n:
            raise ShapeError(f"{name}: output_size must give {n} spatial sizes, got "
                             f"{output_size!r}")
        out = []
        for i in range(n):
            base = transposed_out_size(x.shape[x.ndim - n + i], self.kernel_size[i],
                                       self.stride[i], self.padding[i], self.dilation[i], 0)
            extra = want[i] - base
            limit = max(self.stride[i], self.dilation[i])
            if not 0 <= extra < limit:
                raise ShapeError(f"{name}: output_size {tuple(want)} is not reachable: dim {i} "
                                 f"must be in [{base}, {base + limit - 1}]")
            out.append(extra)
        return tuple(out)

    def _check_input(self, x: Tensor) -> None:
        name, n = type(self).__name__, self._n
        check_tensor(name, x)
        if x.ndim not in (n + 1, n + 2):
            raise ShapeError(f"{name}: expected {n + 1}-D (unbatched) or {n + 2}-D (batched) "
                             f"input, got shape {tuple(x.shape)}")
        c = x.shape[-n - 1]
        if isinstance(c, int) and c != self.in_channels:
            raise ShapeError(f"{name}: expected input with {self.in_channels} channels (dim "
                             f"{-n - 1}), got shape {tuple(x.shape)}")

    def extra_repr(self) -> str:
        return conv_extra_repr(self)


class ConvTranspose2d(_ConvTransposeNd):
    """2-D transposed convolution over (N, C, H, W) or (C, H, W) input; weight
    (in_channels, out_channels // groups, kH, kW).

    >>> import kiln
    >>> up = kiln.nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
    >>> up(kiln.ones(1, 8, 5, 5)).shape
    (1, 4, 10, 10)
    >>> up
    ConvTranspose2d(8, 4, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), output_padding=(1, 1))
    """

    _n = 2

    def forward(self, input: Tensor, output_size: Any = None) -> Tensor:
        self._check_input(input)
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups,
                                  self.dilation)


class ConvTranspose1d(_ConvTransposeNd):
    """1-D transposed convolution over (N, C, L) or (C, L) input; weight
    (in_channels, out_channels // groups, k).

    >>> import kiln
    >>> kiln.nn.ConvTranspose1d(4, 2, 4, stride=2)(kiln.ones(1, 4, 10)).shape
    (1, 2, 22)
    """

    _n = 1

    def forward(self, input: Tensor, output_size: Any = None) -> Tensor:
        self._check_input(input)
        return F.conv_transpose1d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups,
                                  self.dilation)


class PReLU(Module):
    """x for x > 0, else ``weight * x``, with ``num_parameters`` learned slopes (one, or one
    per channel) starting at ``init``.

    >>> import kiln
    >>> act = kiln.nn.PReLU()
    >>> act(kiln.tensor([-2.0, 2.0])).tolist()
    [-0.5, 2.0]
    >>> act
    PReLU(num_parameters=1)
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        self.num_parameters = check_int("PReLU", "num_parameters", num_parameters, 1)
        self.init = float(init)
        self.weight = new_param((num_parameters,), float_dtype("PReLU", dtype, device), self.init)

    def reset_parameters(self) -> None:
        from kiln.nn import init

        init.constant_(self.weight, self.init)

    def forward(self, input: Tensor) -> Tensor:
        return F.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"
