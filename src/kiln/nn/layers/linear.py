"""Linear layers and shape adapters: Identity, Linear, Bilinear, Flatten, Unflatten."""

from __future__ import annotations

import math
from typing import Any

from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError
from kiln.nn import functional as F
from kiln.nn import init
from kiln.nn.layers._utils import (
    check_int,
    check_last_dim,
    check_tensor,
    fan_in_init,
    float_dtype,
    weight_and_bias,
)
from kiln.nn.module import Module


class Identity(Module):
    """Returns its input; constructor arguments are accepted and ignored (as in PyTorch).

    >>> import kiln
    >>> kiln.nn.Identity(54, unused="x")(kiln.ones(2)).tolist()
    [1.0, 1.0]
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return input


class Linear(Module):
    """``y = x @ weight.T + bias`` with ``weight`` of shape (out_features, in_features).

    Weight and bias start as U(-1/sqrt(in_features), 1/sqrt(in_features)), as in PyTorch.

    >>> import kiln
    >>> layer = kiln.nn.Linear(20, 30)
    >>> layer(kiln.randn(128, 20)).shape
    (128, 30)
    >>> layer
    Linear(in_features=20, out_features=30, bias=True)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.in_features = check_int(name, "in_features", in_features, 0)
        self.out_features = check_int(name, "out_features", out_features, 0)
        weight_and_bias(self, (out_features, in_features), bias, float_dtype(name, dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in_init(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        check_tensor(type(self).__name__, input)
        check_last_dim(type(self).__name__, input, self.in_features, "in_features")
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class NonDynamicallyQuantizableLinear(Linear):
    """The output projection of MultiheadAttention (named as in PyTorch, for identical reprs).

    >>> import kiln
    >>> kiln.nn.MultiheadAttention(4, 2).out_proj
    NonDynamicallyQuantizableLinear(in_features=4, out_features=4, bias=True)
    """


class Bilinear(Module):
    """``y[o] = x1 @ weight[o] @ x2 + bias[o]``, weight (out, in1, in2).

    >>> import kiln
    >>> kiln.nn.Bilinear(3, 4, 5)(kiln.ones(2, 3), kiln.ones(2, 4)).shape
    (2, 5)
    """

    def __init__(self, in1_features: int, in2_features: int, out_features: int,
                 bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.in1_features = check_int("Bilinear", "in1_features", in1_features, 0)
        self.in2_features = check_int("Bilinear", "in2_features", in2_features, 0)
        self.out_features = check_int("Bilinear", "out_features", out_features, 0)
        weight_and_bias(self, (out_features, in1_features, in2_features), bias,
                        float_dtype("Bilinear", dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.weight.shape[1]) if self.weight.shape[1] else 0
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1: Tensor, input2: Tensor) -> Tensor:
        check_last_dim("Bilinear", input1, self.in1_features, "in1_features")
        check_last_dim("Bilinear", input2, self.in2_features, "in2_features")
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class Flatten(Module):
    """Flatten dims ``start_dim..end_dim`` into one (by default all but the batch dim).

    >>> import kiln
    >>> kiln.nn.Flatten()(kiln.ones(32, 1, 5, 5)).shape
    (32, 25)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = check_int("Flatten", "start_dim", start_dim, -(1 << 30))
        self.end_dim = check_int("Flatten", "end_dim", end_dim, -(1 << 30))

    def forward(self, input: Tensor) -> Tensor:
        return F.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim ``dim`` into ``unflattened_size`` (one entry may be -1).

    >>> import kiln
    >>> kiln.nn.Unflatten(1, (2, 5, 5))(kiln.ones(2, 50)).shape
    (2, 2, 5, 5)
    """

    def __init__(self, dim: int, unflattened_size: Any) -> None:
        super().__init__()
        self.dim = check_int("Unflatten", "dim", dim, -(1 << 30))
        if not isinstance(unflattened_size, (tuple, list)) or not unflattened_size or any(
                isinstance(s, bool) or not isinstance(s, int) for s in unflattened_size):
            raise ArgumentError(f"Unflatten: unflattened_size must be a non-empty tuple of "
                                f"ints, got {unflattened_size!r}")
        if sum(1 for s in unflattened_size if s == -1) > 1:
            raise ShapeError(f"Unflatten: at most one size may be -1, got {unflattened_size}")
        self.unflattened_size = unflattened_size

    def forward(self, input: Tensor) -> Tensor:
        shape = tuple(input.shape)
        if not -len(shape) <= self.dim < len(shape):
            raise ShapeError(f"Unflatten: dim {self.dim} out of range for input of shape "
                             f"{shape}")
        d = self.dim % len(shape)
        sizes = tuple(self.unflattened_size)
        known = math.prod(s for s in sizes if s != -1)
        if -1 in sizes:
            if known == 0 or (isinstance(shape[d], int) and shape[d] % known):
                raise ShapeError(f"Unflatten: dim {d} of size {shape[d]} does not split into "
                                 f"{sizes}")
            sizes = tuple(shape[d] // known if s == -1 else s for s in sizes)
        elif isinstance(shape[d], int) and known != shape[d]:
            raise ShapeError(f"Unflatten: sizes {sizes} multiply to {known}, but dim {d} of the "
                             f"input has size {shape[d]}")
        return F.reshape(input, *(shape[:d] + sizes + shape[d + 1:]))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
