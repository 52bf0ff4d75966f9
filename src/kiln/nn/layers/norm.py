"""Normalization layers: BatchNorm1d/2d, LayerNorm, GroupNorm, RMSNorm."""

from __future__ import annotations

from typing import Any

from kiln.core import dtypes as _dt
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError, ValueArgumentError
from kiln.nn import functional as F
from kiln.nn import init
from kiln.nn.layers._utils import (
    check_float,
    check_int,
    check_tensor,
    float_dtype,
    new_param,
    static,
)
from kiln.nn.module import Module


class _BatchNorm(Module):
    _ranks: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device: Any = None,
                 dtype: Any = None, *, bias: bool = True) -> None:
        super().__init__()
        from kiln.core.creation import ones, tensor, zeros

        name = type(self).__name__
        self.num_features = check_int(name, "num_features", num_features, 1)
        self.eps = check_float(name, "eps", eps, 0.0)
        if momentum is not None:
            check_float(name, "momentum", momentum, 0.0, 1.0)
        self.momentum = momentum
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        d = float_dtype(name, dtype)
        if self.affine:
            self.weight = new_param((num_features,), d, 1.0)
            if bias:
                self.bias = new_param((num_features,), d)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=d))
            self.register_buffer("running_var", ones(num_features, dtype=d))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=_dt.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input(self, x: Tensor) -> None:
        name = type(self).__name__
        check_tensor(name, x)
        if x.ndim not in self._ranks:
            want = " or ".join(f"{r}D" for r in self._ranks)
            raise ShapeError(f"{name}: expected {want} input, got {x.ndim}D input of shape "
                             f"{tuple(x.shape)}")
        if static(x.shape[1]) and x.shape[1] != self.num_features:
            raise ShapeError(f"{name}: expected {self.num_features} channels (dim 1), got input "
                             f"of shape {tuple(x.shape)}")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input(input)
        factor: Any = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                # Cumulative average: weight 1/n for the n-th batch. Kept as a tensor so that
                # under kiln.trace it follows the buffer's value instead of being frozen.
                factor = 1.0 / self.num_batches_tracked.to(self.running_mean.dtype)
        use_batch_stats = self.training or (self.running_mean is None
                                            and self.running_var is None)
        keep = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if keep else None,
                            self.running_var if keep else None, self.weight, self.bias,
                            use_batch_stats, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) input over N (and L).

    >>> import kiln
    >>> bn = kiln.nn.BatchNorm1d(3)
    >>> bn(kiln.randn(8, 3)).shape, bn.num_batches_tracked.item()
    ((8, 3), 1)
    >>> bn
    BatchNorm1d(3, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
    """

    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) input over N, H and W.

    Training normalizes with the batch statistics and updates ``running_mean`` and
    ``running_var`` in place (``momentum=None`` gives the cumulative average); eval mode uses
    the running statistics.

    >>> import kiln
    >>> bn = kiln.nn.BatchNorm2d(4)
    >>> y = bn(kiln.randn(2, 4, 5, 5))
    >>> _ = bn.eval()
    >>> bn(kiln.randn(2, 4, 5, 5)).shape
    (2, 4, 5, 5)
    """

    _ranks = (4,)


def _normalized_shape(layer: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (tuple, list)) or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value):
        raise ArgumentError(f"{layer}: normalized_shape must be an int or a tuple of "
                            f"non-negative ints, got {value!r}")
    return tuple(int(v) for v in value)


def _check_trailing(layer: str, x: Tensor, shape: tuple) -> None:
    check_tensor(layer, x)
    tail = tuple(x.shape[x.ndim - len(shape):]) if x.ndim >= len(shape) else None
    if tail is None or any(static(a) and a != b for a, b in zip(tail, shape)):
        raise ShapeError(f"{layer}: normalized_shape {shape} does not match the trailing dims "
                         f"of input shape {tuple(x.shape)}")


class LayerNorm(Module):
    """Normalize over the trailing ``normalized_shape`` dims, then scale and shift.

    >>> import kiln
    >>> ln = kiln.nn.LayerNorm(8)
    >>> ln(kiln.randn(2, 3, 8)).shape
    (2, 3, 8)
    >>> ln
    LayerNorm((8,), eps=1e-05, elementwise_affine=True, bias=True)
    """

    def __init__(self, normalized_shape: Any, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.normalized_shape = _normalized_shape("LayerNorm", normalized_shape)
        self.eps = check_float("LayerNorm", "eps", eps, 0.0)
        self.elementwise_affine = bool(elementwise_affine)
        d = float_dtype("LayerNorm", dtype)
        if self.elementwise_affine:
            self.weight = new_param(self.normalized_shape, d, 1.0)
            if bias:
                self.bias = new_param(self.normalized_shape, d)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.elementwise_affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        _check_trailing("LayerNorm", input, self.normalized_shape)
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


class GroupNorm(Module):
    """Normalize each group of ``num_channels // num_groups`` channels per sample.

    >>> import kiln
    >>> kiln.nn.GroupNorm(2, 6)(kiln.randn(4, 6, 3, 3)).shape
    (4, 6, 3, 3)
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, device: Any = None, dtype: Any = None, *,
                 bias: bool = True) -> None:
        super().__init__()
        self.num_groups = check_int("GroupNorm", "num_groups", num_groups, 1)
        self.num_channels = check_int("GroupNorm", "num_channels", num_channels, 1)
        if num_channels % num_groups:
            raise ValueArgumentError(f"GroupNorm: num_channels ({num_channels}) must be "
                                     f"divisible by num_groups ({num_groups})")
        self.eps = check_float("GroupNorm", "eps", eps, 0.0)
        self.affine = bool(affine)
        d = float_dtype("GroupNorm", dtype)
        if self.affine:
            self.weight = new_param((num_channels,), d, 1.0)
            if bias:
                self.bias = new_param((num_channels,), d)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        check_tensor("GroupNorm", input)
        if input.ndim < 2 or (static(input.shape[1]) and input.shape[1] != self.num_channels):
            raise ShapeError(f"GroupNorm: expected input (N, {self.num_channels}, ...), got "
                             f"shape {tuple(input.shape)}")
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, "
                f"affine={self.affine}, bias={self.bias is not None}")


class RMSNorm(Module):
    """x / sqrt(mean(x^2) + eps) over the trailing dims, times ``weight``.

    ``eps=None`` uses the machine epsilon of the input's dtype, as PyTorch does.

    >>> import kiln
    >>> kiln.nn.RMSNorm(4)
    RMSNorm((4,), eps=None, elementwise_affine=True)
    """

    def __init__(self, normalized_shape: Any, eps: float | None = None,
                 elementwise_affine: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.normalized_shape = _normalized_shape("RMSNorm", normalized_shape)
        if eps is not None:
            check_float("RMSNorm", "eps", eps, 0.0)
        self.eps = eps
        self.elementwise_affine = bool(elementwise_affine)
        if self.elementwise_affine:
            self.weight = new_param(self.normalized_shape, float_dtype("RMSNorm", dtype), 1.0)
        else:
            self.register_parameter("weight", None)

    def reset_parameters(self) -> None:
        if self.elementwise_affine:
            init.ones_(self.weight)

    def forward(self, input: Tensor) -> Tensor:
        _check_trailing("RMSNorm", input, self.normalized_shape)
        return F.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")
