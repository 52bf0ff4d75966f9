"""1-D and 3-D pooling layers and the resizing layers: MaxPool1d, AvgPool1d, MaxPool3d,
AvgPool3d, AdaptiveAvgPool1d, AdaptiveMaxPool1d, Upsample, UpsamplingNearest2d,
UpsamplingBilinear2d (thin modules over ``kiln.nn.functional``, with PyTorch's reprs)."""

from __future__ import annotations

from typing import Any

from kiln.core.tensor import Tensor
from kiln.errors import ValueArgumentError
from kiln.nn import functional as F
from kiln.nn.module import Module
from kiln.nn.pool_nd import ntuple


def _check(layer: str, n: int, kernel_size: Any, stride: Any, padding: Any) -> None:
    # Checked here so that a bad layer fails when built, not at its first call.
    k = ntuple(kernel_size, n, "kernel_size", layer)
    if stride is not None:
        if min(ntuple(stride, n, "stride", layer)) < 1:
            raise ValueArgumentError(f"{layer}: stride must be >= 1, got {stride!r}")
    p = ntuple(padding, n, "padding", layer)
    if min(k) < 1 or min(p) < 0:
        raise ValueArgumentError(f"{layer}: kernel_size must be >= 1 and padding >= 0, got "
                                 f"{kernel_size!r} and {padding!r}")
    if any(pi > ki // 2 for pi, ki in zip(p, k)):
        raise ValueArgumentError(f"{layer}: padding {padding!r} should be at most half of the "
                                 f"kernel size {kernel_size!r}")


class _MaxPoolNd(Module):
    _n = 1
    _fn = staticmethod(F.max_pool1d)

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 dilation: Any = 1, return_indices: bool = False,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        name = type(self).__name__
        _check(name, self._n, kernel_size, stride, padding)
        ntuple(dilation, self._n, "dilation", name)
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = bool(return_indices)
        self.ceil_mode = bool(ceil_mode)

    def forward(self, input: Tensor) -> Any:
        return type(self)._fn(input, self.kernel_size, self.stride, self.padding,
                              self.dilation, self.ceil_mode, self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """Max over ``kernel_size`` windows of (N, C, L) or (C, L) input.

    >>> import kiln
    >>> kiln.nn.MaxPool1d(2)(kiln.tensor([[[1.0, 3.0, 2.0, 0.0]]])).tolist()
    [[[3.0, 2.0]]]
    """

    _n = 1
    _fn = staticmethod(F.max_pool1d)


class MaxPool3d(_MaxPoolNd):
    """Max over ``kernel_size`` windows of (N, C, D, H, W) or (C, D, H, W) input.

    >>> import kiln
    >>> kiln.nn.MaxPool3d(2, stride=2)(kiln.ones(1, 2, 4, 4, 4)).shape
    (1, 2, 2, 2, 2)
    """

    _n = 3
    _fn = staticmethod(F.max_pool3d)


class AvgPool1d(Module):
    """Mean over ``kernel_size`` windows of (N, C, L) or (C, L) input.

    >>> import kiln
    >>> kiln.nn.AvgPool1d(2)(kiln.tensor([[[1.0, 3.0, 2.0, 0.0]]])).tolist()
    [[[2.0, 1.0]]]
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True) -> None:
        super().__init__()
        _check("AvgPool1d", 1, kernel_size, stride, padding)
        self.kernel_size = ntuple(kernel_size, 1, "kernel_size", "AvgPool1d")
        self.stride = ntuple(stride if stride is not None else kernel_size, 1, "stride",
                             "AvgPool1d")
        self.padding = ntuple(padding, 1, "padding", "AvgPool1d")
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool3d(Module):
    """Mean over ``kernel_size`` windows of (N, C, D, H, W) or (C, D, H, W) input.

    >>> import kiln
    >>> kiln.nn.AvgPool3d(2)(kiln.ones(1, 1, 2, 4, 4)).shape
    (1, 1, 1, 2, 2)
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None) -> None:
        super().__init__()
        _check("AvgPool3d", 3, kernel_size, stride, padding)
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override = divisor_override

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool3d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool1d(Module):
    """Average the last dim into ``output_size`` bins whatever its length.

    >>> import kiln
    >>> kiln.nn.AdaptiveAvgPool1d(1)(kiln.ones(2, 3, 7)).shape
    (2, 3, 1)
    """

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool1d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(Module):
    """Maximum over ``output_size`` bins of the last dim whatever its length.

    >>> import kiln
    >>> kiln.nn.AdaptiveMaxPool1d(2)(kiln.arange(4.0).reshape(1, 1, 4)).tolist()
    [[[1.0, 3.0]]]
    """

    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        super().__init__()
        self.output_size = output_size
        self.return_indices = bool(return_indices)

    def forward(self, input: Tensor) -> Any:
        return F.adaptive_max_pool1d(input, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class Upsample(Module):
    """Resize the spatial dims by ``scale_factor`` or to ``size`` (see ``F.interpolate``).

    >>> import kiln
    >>> up = kiln.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
    >>> up(kiln.ones(1, 3, 4, 4)).shape
    (1, 3, 8, 8)
    >>> up
    Upsample(scale_factor=2.0, mode='bilinear')
    """

    def __init__(self, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: bool | None = None,
                 recompute_scale_factor: bool | None = None) -> None:
        super().__init__()
        self.name = type(self).__name__
        self.size = size
        if isinstance(scale_factor, (list, tuple)):
            self.scale_factor: Any = tuple(float(f) for f in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor is not None else None
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input: Tensor) -> Tensor:
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                             recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self) -> str:
        if self.scale_factor is not None:
            info = f"scale_factor={self.scale_factor!r}"
        else:
            info = f"size={self.size!r}"
        return info + f", mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """Nearest-neighbour 2-D upsampling (``Upsample(mode='nearest')``).

    >>> import kiln
    >>> kiln.nn.UpsamplingNearest2d(scale_factor=2)(kiln.ones(1, 1, 2, 2)).shape
    (1, 1, 4, 4)
    """

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """Bilinear 2-D upsampling with ``align_corners=True`` (as torch's).

    >>> import kiln
    >>> kiln.nn.UpsamplingBilinear2d(size=(3, 3))(kiln.ones(1, 1, 2, 2)).shape
    (1, 1, 3, 3)
    """

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)
