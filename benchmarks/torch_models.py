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
    import torch.nn as nn

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                nn.BatchNorm2d(cout))

        def forward(self, x: Any) -> Any:
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + identity)

    class ResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
            for i, (cin, cout, stride) in enumerate(widths, start=1):
                setattr(self, f"layer{i}", nn.Sequential(BasicBlock(cin, cout, stride),
                                                         BasicBlock(cout, cout, 1)))
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512, num_classes)

        def forward(self, x: Any) -> Any:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.avgpool(x).flatten(1))

    return ResNet()


def load_from_kiln(torch_module: Any, kiln_module: Any) -> Any:
    """Copy a Kiln module's state dict into ``torch_module`` (same keys and shapes)."""
    import torch

    state = {k: torch.from_numpy(np.array(v.numpy(), copy=True))
             for k, v in kiln_module.state_dict().items()}
    torch_module.load_state_dict(state)
    return torch_module
