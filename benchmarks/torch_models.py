"""PyTorch twins of ``kiln.models`` for side-by-side benchmarks (torchvision is not needed).

Each builder returns a torch module whose ``state_dict`` keys and shapes equal the Kiln
model's, so :func:`load_from_kiln` makes both compute the same function.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def mlp(sizes: tuple[int, ...], activation: str = "relu") -> Any:
    """``kiln.models.MLP``: Linear layers in ``.layers`` with an activation between them."""
    import torch.nn as nn

    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(nn.ReLU() if activation == "relu" else nn.GELU())
        layers.append(nn.Linear(a, b))

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.Sequential(*layers)

        def forward(self, x: Any) -> Any:
            return self.layers(x)

    return MLP()


def transformer_block(d_model: int = 256, nhead: int = 4, dim_feedforward: int = 1024) -> Any:
    import torch.nn as nn

    return nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout=0.0,
                                      activation="gelu", batch_first=True, norm_first=True)


def resnet18(num_classes: int = 1000) -> Any:
    """torchvision's ResNet-18, rebuilt from torch.nn with the same parameter names."""
    return resnet("basic", (2, 2, 2, 2), num_classes)


def resnet50(num_classes: int = 1000) -> Any:
    """torchvision's ResNet-50 (v1.5: stride in the 3x3 conv), same parameter names."""
    return resnet("bottleneck", (3, 4, 6, 3), num_classes)


def resnet(block: str, layers: tuple[int, ...], num_classes: int = 1000) -> Any:
    """torchvision's ResNet with ``"basic"`` or ``"bottleneck"`` blocks, in torch.nn."""
    import torch.nn as nn

    expansion = 1 if block == "basic" else 4

    def downsample(cin: int, cout: int, stride: int) -> Any:
        if stride == 1 and cin == cout:
            return None
        return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, planes: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample(cin, planes, stride)

        def forward(self, x: Any) -> Any:
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + identity)

    class Bottleneck(nn.Module):
        def __init__(self, cin: int, planes: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * 4)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = downsample(cin, planes * 4, stride)

        def forward(self, x: Any) -> Any:
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            return self.relu(self.bn3(self.conv3(out)) + identity)

    Block = BasicBlock if block == "basic" else Bottleneck

    class ResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = 64
            for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers), start=1):
                blocks = []
                for j in range(n):
                    blocks.append(Block(cin, planes, 2 if (j == 0 and i > 1) else 1))
                    cin = planes * expansion
                setattr(self, f"layer{i}", nn.Sequential(*blocks))
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512 * expansion, num_classes)

        def forward(self, x: Any) -> Any:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.avgpool(x).flatten(1))

    return ResNet()


def sentence_encoder(*args: Any, **kwargs: Any) -> Any:
    """``kiln.models.SentenceEncoder`` in torch.nn (kept in the package for the demo)."""
    from kiln.cli.torch_reference import sentence_encoder as build

    return build(*args, **kwargs)


def load_from_kiln(torch_module: Any, kiln_module: Any) -> Any:
    """Copy a Kiln module's state dict into ``torch_module`` (same keys and shapes)."""
    import torch

    state = {k: torch.from_numpy(np.array(v.numpy(), copy=True))
             for k, v in kiln_module.state_dict().items()}
    torch_module.load_state_dict(state)
    return torch_module
