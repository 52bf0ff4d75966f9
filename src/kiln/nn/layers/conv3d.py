"""3-D convolution and adaptive pooling modules (``Conv3d``, ``ConvTranspose3d``,
``AdaptiveAvgPool3d``, ``AdaptiveMaxPool3d``) and torch's lazy convolutions
(``LazyConv1d/2d/3d``, ``LazyConvTranspose1d/2d/3d``), whose ``in_channels`` come from the
first input, or from the weight of a loaded ``state_dict``; then they become the plain module
(``LazyConv2d`` -> ``Conv2d``), as in torch.

>>> import kiln
>>> conv = kiln.nn.LazyConv2d(4, 3)
>>> conv(kiln.ones(1, 2, 5, 5)).shape, type(conv).__name__, conv.in_channels
((1, 4, 3, 3), 'Conv2d', 2)
"""

from __future__ import annotations

from typing import Any

from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError
from kiln.nn import functional as F
from kiln.nn.layers._utils import check_tensor
from kiln.nn.layers.conv import Conv1d, Conv2d, _ConvNd
from kiln.nn.layers.conv_transpose import ConvTranspose1d, ConvTranspose2d, _ConvTransposeNd
from kiln.nn.module import Module

__all__ = ["Conv3d", "ConvTranspose3d", "AdaptiveAvgPool3d", "AdaptiveMaxPool3d",
           "LazyConv1d", "LazyConv2d", "LazyConv3d", "LazyConvTranspose1d",
           "LazyConvTranspose2d", "LazyConvTranspose3d"]


class Conv3d(_ConvNd):
    """3-D convolution over (N, C, D, H, W) or (C, D, H, W) input; weight
    (out_channels, in_channels // groups, kD, kH, kW).

    >>> import kiln
    >>> kiln.nn.Conv3d(2, 4, 3, padding=1)(kiln.ones(1, 2, 4, 4, 4)).shape
    (1, 4, 4, 4, 4)
    """

    _n = 3

    def _conv(self, x: Tensor, padding: Any) -> Tensor:
        return F.conv3d(x, self.weight, self.bias, self.stride, padding, self.dilation,
                        self.groups)


class ConvTranspose3d(_ConvTransposeNd):
    """3-D transposed convolution over (N, C, D, H, W) or (C, D, H, W) input; weight
    (in_channels, out_channels // groups, kD, kH, kW).

    >>> import kiln
    >>> kiln.nn.ConvTranspose3d(2, 3, 2, stride=2)(kiln.ones(1, 2, 2, 2, 2)).shape
    (1, 3, 4, 4, 4)
    """

    _n = 3

    def forward(self, input: Tensor, output_size: Any = None) -> Tensor:
        self._check_input(input)
        return F.conv_transpose3d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups,
                                  self.dilation)


class AdaptiveAvgPool3d(Module):
    """Average D, H and W into ``output_size`` bins whatever their lengths.

    >>> import kiln
    >>> kiln.nn.AdaptiveAvgPool3d(1)(kiln.ones(2, 3, 4, 4, 4)).shape
    (2, 3, 1, 1, 1)
    """

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool3d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool3d(Module):
    """Maximum over ``output_size`` bins of D, H and W (and the indices with
    ``return_indices=True``).

    >>> import kiln
    >>> kiln.nn.AdaptiveMaxPool3d((1, 2, 2))(kiln.ones(1, 2, 4, 4, 4)).shape
    (1, 2, 1, 2, 2)
    """

    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        super().__init__()
        self.output_size = output_size
        self.return_indices = bool(return_indices)

    def forward(self, input: Tensor) -> Any:
        return F.adaptive_max_pool3d(input, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class _Lazy(Module):
    cls_to_become: type = Module
    _transposed = False

    def __init__(self, out_channels: int, kernel_size: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        object.__setattr__(self, "_lazy_args", (out_channels, kernel_size, *args))
        object.__setattr__(self, "_lazy_kwargs", dict(kwargs))

    def initialize(self, in_channels: int) -> None:
        """Become ``cls_to_become`` with ``in_channels`` (training mode and hooks kept)."""
        keep = {k: self.__dict__[k] for k in ("training", "_forward_hooks",
                                               "_forward_pre_hooks")}
        target = self.cls_to_become
        args, kwargs = self._lazy_args, self._lazy_kwargs
        for key in ("_lazy_args", "_lazy_kwargs"):
            self.__dict__.pop(key, None)
        object.__setattr__(self, "__class__", target)  # (its __init__ calls super())
        target.__init__(self, in_channels, *args, **kwargs)
        self.__dict__.update(keep)

    def _groups(self) -> int:
        # groups comes 6th after in_channels in Conv*d (stride, padding, dilation before it)
        # and in ConvTranspose*d (stride, padding, output_padding before it)
        args = self._lazy_args
        return args[5] if len(args) > 5 else self._lazy_kwargs.get("groups", 1)

    def forward(self, input: Any, *args: Any) -> Any:
        name = type(self).__name__
        check_tensor(name, input)
        n = self.cls_to_become._n
        if input.ndim not in (n + 1, n + 2):
            raise ArgumentError(f"{name}: expected {n + 1}-D or {n + 2}-D input, got shape "
                                f"{tuple(input.shape)}")
        self.initialize(int(input.shape[-n - 1]))
        return self(input, *args)

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> Any:
        weight = state_dict.get("weight") if hasattr(state_dict, "get") else None
        if weight is not None:
            shape = tuple(weight.shape)
            self.initialize(shape[0] if self._transposed else shape[1] * self._groups())
            return self.load_state_dict(state_dict, strict)
        return super().load_state_dict(state_dict, strict)


class LazyConv1d(_Lazy):
    """``Conv1d`` with ``in_channels`` from the first input.

    >>> import kiln
    >>> kiln.nn.LazyConv1d(2, 3)(kiln.ones(1, 4, 5)).shape
    (1, 2, 3)
    """

    cls_to_become = Conv1d


class LazyConv2d(_Lazy):
    """``Conv2d`` with ``in_channels`` from the first input.

    >>> import kiln
    >>> kiln.nn.LazyConv2d(2, 3)(kiln.ones(4, 5, 5)).shape
    (2, 3, 3)
    """

    cls_to_become = Conv2d


class LazyConv3d(_Lazy):
    """``Conv3d`` with ``in_channels`` from the first input.

    >>> import kiln
    >>> kiln.nn.LazyConv3d(2, 2)(kiln.ones(1, 3, 3, 3, 3)).shape
    (1, 2, 2, 2, 2)
    """

    cls_to_become = Conv3d


class LazyConvTranspose1d(_Lazy):
    """``ConvTranspose1d`` with ``in_channels`` from the first input.

    >>> import kiln
    >>> kiln.nn.LazyConvTranspose1d(2, 3)(kiln.ones(1, 4, 5)).shape
    (1, 2, 7)
    """

    cls_to_become = ConvTranspose1d
    _transposed = True


class LazyConvTranspose2d(_Lazy):
    """``ConvTranspose2d`` with ``in_channels`` from the first input.

    >>> import kiln
    >>> kiln.nn.LazyConvTranspose2d(2, 3)(kiln.ones(1, 4, 5, 5)).shape
    (1, 2, 7, 7)
    """

    cls_to_become = ConvTranspose2d
    _transposed = True


class LazyConvTranspose3d(_Lazy):
    """``ConvTranspose3d`` with ``in_channels`` from the first input.

    >>> import kiln
    >>> kiln.nn.LazyConvTranspose3d(2, 2)(kiln.ones(1, 3, 2, 2, 2)).shape
    (1, 2, 3, 3, 3)
    """

    cls_to_become = ConvTranspose3d
    _transposed = True
