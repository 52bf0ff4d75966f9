"""``MLP``: a multi-layer perceptron, the workhorse of tests and benchmarks."""

from __future__ import annotations

from typing import Any

from kiln import nn
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


class MLP(nn.Module):
    """Linear layers of the given ``sizes`` with an activation between them (none after the
    last). Parameters are ``layers.0.weight``, ``layers.0.bias``, ``layers.2.weight``, ...

    Inputs are (..., sizes[0]); flatten images first (``x.flatten(1)``).

    >>> import kiln
    >>> from kiln.models import MLP
    >>> model = MLP((784, 128, 10), activation="gelu")
    >>> model(kiln.randn(32, 784)).shape
    (32, 10)
    >>> model
    MLP(
      (layers): Sequential(
        (0): Linear(in_features=784, out_features=128, bias=True)
        (1): GELU(approximate='none')
        (2): Linear(in_features=128, out_features=10, bias=True)
      )
    )
    """

    def __init__(self, sizes: Any = (784, 1024, 1024, 10), activation: str = "relu",
                 bias: bool = True, dtype: Any = None) -> None:
        super().__init__()
        sizes = tuple(sizes)
        if len(sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1
                                 for s in sizes):
            raise ArgumentError(f"MLP: sizes must be at least two positive ints, got {sizes!r}")
        if activation not in _ACTIVATIONS:
            raise ArgumentError(f"MLP: activation must be one of {sorted(_ACTIVATIONS)}, got "
                                f"{activation!r}")
        self.sizes = sizes
        self.activation = activation
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            if i:
                layers.append(_ACTIVATIONS[activation]())
            layers.append(nn.Linear(a, b, bias=bias, dtype=dtype))
        self.layers = nn.Sequential(*layers)

    def forward(self, input: Tensor) -> Tensor:
        return self.layers(input)
