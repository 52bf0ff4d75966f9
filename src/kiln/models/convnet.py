"""``ConvNet``: a small conv-bn-relu-pool classifier for 28x28 or 32x32 images."""

from __future__ import annotations

from typing import Any

from kiln import nn
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError


class ConvNet(nn.Module):
    """Two blocks of conv3x3-BatchNorm-ReLU-maxpool2, then a linear classifier.

    ``in_channels=1, image_size=28`` suits MNIST, ``in_channels=3, image_size=32`` CIFAR;
    ``image_size`` must be a multiple of 4 (two 2x poolings).

    >>> import kiln
    >>> from kiln.models import ConvNet
    >>> net = ConvNet(in_channels=3, image_size=32)
    >>> net(kiln.randn(2, 3, 32, 32)).shape
    (2, 10)
    >>> [name for name, _ in net.named_children()]
    ['features', 'flatten', 'fc']
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 channels: tuple[int, int] = (16, 32), dtype: Any = None) -> None:
        super().__init__()
        if not isinstance(image_size, int) or image_size < 4 or image_size % 4:
            raise ArgumentError(f"ConvNet: image_size must be a positive multiple of 4, got "
                                f"{image_size!r}")
        if len(channels) != 2:
            raise ArgumentError(f"ConvNet: channels must be a pair, got {channels!r}")
        c1, c2 = channels
        self.image_size = image_size
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1, bias=False, dtype=dtype),
            nn.BatchNorm2d(c1, dtype=dtype),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1, bias=False, dtype=dtype),
            nn.BatchNorm2d(c2, dtype=dtype),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c2 * (image_size // 4) ** 2, num_classes, dtype=dtype)

    def forward(self, input: Tensor) -> Tensor:
        return self.fc(self.flatten(self.features(input)))
