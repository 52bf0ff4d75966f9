"""torch's remaining normalization, dropout and shuffle modules: ``BatchNorm3d``,
``InstanceNorm1d/2d/3d``, ``LocalResponseNorm``, ``Dropout1d/2d/3d``, ``AlphaDropout``,
``FeatureAlphaDropout``, ``PixelShuffle``, ``PixelUnshuffle``, ``ChannelShuffle`` (torch's
constructor arguments and buffer names, so a torch ``state_dict`` loads).

>>> import kiln
>>> kiln.nn.InstanceNorm2d(3)(kiln.randn(2, 3, 4, 4)).shape
(2, 3, 4, 4)
"""

from __future__ import annotations

from typing import Any

from kiln.core.tensor import Tensor
from kiln.errors import ShapeError
from kiln.nn import functional as F
from kiln.nn.layers._utils import check_tensor
from kiln.nn.layers.norm import _BatchNorm
from kiln.nn.layers.sparse import Dropout
from kiln.nn.module import Module

__all__ = ["BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
           "LocalResponseNorm", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
           "FeatureAlphaDropout", "PixelShuffle", "PixelUnshuffle", "ChannelShuffle", "LPPool1d",
           "LPPool2d", "LPPool3d", "Hardsigmoid", "RReLU", "FractionalMaxPool2d",
           "FractionalMaxPool3d"]


class BatchNorm3d(_BatchNorm):
    """Batch normalization of (N, C, D, H, W) input over N, D, H and W.

    >>> import kiln
    >>> kiln.nn.BatchNorm3d(2)(kiln.randn(2, 2, 3, 3, 3)).shape
    (2, 2, 3, 3, 3)
    """

    _ranks = (5,)


class _InstanceNorm(_BatchNorm):
    _spatial = 1

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = False, track_running_stats: bool = False, device: Any = None,
                 dtype: Any = None, *, bias: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device,
                         dtype, bias=bias)

    def forward(self, input: Tensor) -> Tensor:
        name = type(self).__name__
        check_tensor(name, input)
        n = self._spatial
        if input.ndim not in (n + 1, n + 2):
            raise ShapeError(f"{name}: expected {n + 1}D (unbatched) or {n + 2}D input, got "
                             f"{input.ndim}D input of shape {tuple(input.shape)}")
        unbatched = input.ndim == n + 1
        x = input.unsqueeze(0) if unbatched else input
        if self.affine and x.shape[1] != self.num_features:
            raise ShapeError(f"{name}: expected {self.num_features} channels, got input of "
                             f"shape {tuple(input.shape)}")
        out = F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                              self.training or not self.track_running_stats,
                              0.0 if self.momentum is None else self.momentum, self.eps)
        return out.squeeze(0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization of (N, C, L) or (C, L) input over L.

    >>> import kiln
    >>> kiln.nn.InstanceNorm1d(2)(kiln.randn(3, 2, 5)).shape
    (3, 2, 5)
    """

    _spatial = 1


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of (N, C, H, W) or (C, H, W) input over H and W.

    >>> import kiln
    >>> kiln.nn.InstanceNorm2d(2, affine=True)(kiln.randn(2, 4, 4)).shape
    (2, 4, 4)
    """

    _spatial = 2


class InstanceNorm3d(_InstanceNorm):
    """Instance normalization of (N, C, D, H, W) or (C, D, H, W) input over D, H and W.

    >>> import kiln
    >>> kiln.nn.InstanceNorm3d(2)(kiln.randn(1, 2, 3, 3, 3)).shape
    (1, 2, 3, 3, 3)
    """

    _spatial = 3


class LocalResponseNorm(Module):
    """``F.local_response_norm`` over ``size`` neighbouring channels.

    >>> import kiln
    >>> kiln.nn.LocalResponseNorm(2)(kiln.ones(1, 3, 4)).shape
    (1, 3, 4)
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75,
                 k: float = 1.0) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, input: Tensor) -> Tensor:
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class Dropout1d(Dropout):
    """Zero whole channels of (N, C, L) input in training.

    >>> import kiln
    >>> kiln.nn.Dropout1d().eval()(kiln.ones(1, 2, 3)).sum().item()
    6.0
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout1d(input, self.p, self.training)


class Dropout2d(Dropout):
    """Zero whole channels of (N, C, H, W) input in training.

    >>> import kiln
    >>> kiln.nn.Dropout2d().eval()(kiln.ones(1, 2, 3, 3)).sum().item()
    18.0
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout2d(input, self.p, self.training)


class Dropout3d(Dropout):
    """Zero whole channels of (N, C, D, H, W) input in training.

    >>> import kiln
    >>> kiln.nn.Dropout3d().eval()(kiln.ones(1, 2, 2, 2, 2)).sum().item()
    16.0
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout3d(input, self.p, self.training)


class AlphaDropout(Dropout):
    """``F.alpha_dropout`` in training (SELU's statistics kept), the identity in eval.

    >>> import kiln
    >>> kiln.nn.AlphaDropout(0.2).eval()(kiln.ones(2)).tolist()
    [1.0, 1.0]
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.alpha_dropout(input, self.p, self.training)


class FeatureAlphaDropout(Dropout):
    """``F.feature_alpha_dropout`` in training, the identity in eval.

    >>> import kiln
    >>> kiln.nn.FeatureAlphaDropout(0.2).eval()(kiln.ones(1, 2)).tolist()
    [[1.0, 1.0]]
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.feature_alpha_dropout(input, self.p, self.training)


class PixelShuffle(Module):
    """(*, C r^2, H, W) -> (*, C, H r, W r).

    >>> import kiln
    >>> kiln.nn.PixelShuffle(2)(kiln.ones(1, 4, 2, 2)).shape
    (1, 1, 4, 4)
    """

    def __init__(self, upscale_factor: int) -> None:
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, input: Tensor) -> Tensor:
        return F.pixel_shuffle(input, self.upscale_factor)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """(*, C, H r, W r) -> (*, C r^2, H, W).

    >>> import kiln
    >>> kiln.nn.PixelUnshuffle(2)(kiln.ones(1, 1, 4, 4)).shape
    (1, 4, 2, 2)
    """

    def __init__(self, downscale_factor: int) -> None:
        super().__init__()
        self.downscale_factor = downscale_factor

    def forward(self, input: Tensor) -> Tensor:
        return F.pixel_unshuffle(input, self.downscale_factor)

    def extra_repr(self) -> str:
        return f"downscale_factor={self.downscale_factor}"


class ChannelShuffle(Module):
    """``F.channel_shuffle`` with ``groups`` groups.

    >>> import kiln
    >>> kiln.nn.ChannelShuffle(2)(kiln.ones(1, 4, 3)).shape
    (1, 4, 3)
    """

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, input: Tensor) -> Tensor:
        return F.channel_shuffle(input, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class _LPPool(Module):
    _fn = "lp_pool1d"

    def __init__(self, norm_type: float, kernel_size: Any, stride: Any = None,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.norm_type, self.kernel_size = norm_type, kernel_size
        self.stride, self.ceil_mode = stride, ceil_mode

    def forward(self, input: Tensor) -> Tensor:
        return getattr(F, self._fn)(input, self.norm_type, self.kernel_size, self.stride,
                                    self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, ceil_mode={self.ceil_mode}")


class LPPool1d(_LPPool):
    """``F.lp_pool1d``: the p-norm of each window.

    >>> import kiln
    >>> kiln.nn.LPPool1d(2, 2)(kiln.ones(1, 1, 4)).shape
    (1, 1, 2)
    """

    _fn = "lp_pool1d"


class LPPool2d(_LPPool):
    """``F.lp_pool2d``: the p-norm of each window.

    >>> import kiln
    >>> kiln.nn.LPPool2d(2, 2)(kiln.ones(1, 1, 4, 4)).shape
    (1, 1, 2, 2)
    """

    _fn = "lp_pool2d"


class LPPool3d(_LPPool):
    """``F.lp_pool3d``: the p-norm of each window.

    >>> import kiln
    >>> kiln.nn.LPPool3d(2, 2)(kiln.ones(1, 1, 2, 2, 2)).shape
    (1, 1, 1, 1, 1)
    """

    _fn = "lp_pool3d"


class Hardsigmoid(Module):
    """relu6(x + 3) / 6.

    >>> import kiln
    >>> kiln.nn.Hardsigmoid()(kiln.tensor([0.0])).tolist()
    [0.5]
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.hardsigmoid(input)


class RReLU(Module):
    """``F.rrelu``: random negative slopes in training, their mean in eval.

    >>> import kiln
    >>> kiln.nn.RReLU(0.25, 0.75).eval()(kiln.tensor([-2.0])).tolist()
    [-1.0]
    """

    def __init__(self, lower: float = 1.0 / 8, upper: float = 1.0 / 3,
                 inplace: bool = False) -> None:
        super().__init__()
        self.lower, self.upper, self.inplace = lower, upper, inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.rrelu(input, self.lower, self.upper, self.training)

    def extra_repr(self) -> str:
        return f"lower={self.lower}, upper={self.upper}"


class _FractionalMaxPool(Module):
    _fn = "fractional_max_pool2d"

    def __init__(self, kernel_size: Any, output_size: Any = None, output_ratio: Any = None,
                 return_indices: bool = False, _random_samples: Tensor | None = None) -> None:
        super().__init__()
        if (output_size is None) == (output_ratio is None):
            raise ShapeError(f"{type(self).__name__}: give exactly one of output_size and "
                             "output_ratio")
        self.kernel_size, self.output_size = kernel_size, output_size
        self.output_ratio, self.return_indices = output_ratio, return_indices
        # a buffer, as in torch, so a state_dict carries the fixed samples
        self.register_buffer("_random_samples", _random_samples)

    def forward(self, input: Tensor) -> Any:
        return getattr(F, self._fn)(input, self.kernel_size, self.output_size,
                                    self.output_ratio, self.return_indices,
                                    _random_samples=self._random_samples)


class FractionalMaxPool2d(_FractionalMaxPool):
    """``F.fractional_max_pool2d`` (fixed window starts with ``_random_samples``).

    >>> import kiln
    >>> kiln.nn.FractionalMaxPool2d(2, output_size=3)(kiln.ones(1, 1, 6, 6)).shape
    (1, 1, 3, 3)
    """

    _fn = "fractional_max_pool2d"


class FractionalMaxPool3d(_FractionalMaxPool):
    """``F.fractional_max_pool3d`` (fixed window starts with ``_random_samples``).

    >>> import kiln
    >>> kiln.nn.FractionalMaxPool3d(2, output_ratio=0.5)(kiln.ones(1, 1, 4, 4, 4)).shape
    (1, 1, 2, 2, 2)
    """

    _fn = "fractional_max_pool3d"
