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


def sentence_encoder(vocab_size: int = 30522, hidden: int = 384, layers: int = 6,
                     heads: int = 12, intermediate: int = 1536, max_positions: int = 512,
                     type_vocab: int = 2, eps: float = 1e-12) -> Any:
    """``kiln.models.SentenceEncoder``: Hugging Face ``BertModel`` (eval mode, the names of
    its state dict under ``bert.``), mean pooling and L2 normalization, in torch.nn. Checked
    once against transformers' ``BertModel`` on all-MiniLM-L6-v2 (same numbers to 1e-6)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def dense(a: int, b: int) -> Any:
        return nn.Linear(a, b)

    class Box(nn.Module):  # a named container, as Hugging Face nests its modules
        pass

    def layer() -> Any:
        m = Box()
        m.attention = Box()
        m.attention.self = Box()
        for name in ("query", "key", "value"):
            setattr(m.attention.self, name, dense(hidden, hidden))
        m.attention.output = Box()
        m.attention.output.dense = dense(hidden, hidden)
        m.attention.output.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        m.intermediate = Box()
        m.intermediate.dense = dense(hidden, intermediate)
        m.output = Box()
        m.output.dense = dense(intermediate, hidden)
        m.output.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        return m

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = Box()
            e = self.bert.embeddings = Box()
            e.word_embeddings = nn.Embedding(vocab_size, hidden)
            e.position_embeddings = nn.Embedding(max_positions, hidden)
            e.token_type_embeddings = nn.Embedding(type_vocab, hidden)
            e.LayerNorm = nn.LayerNorm(hidden, eps=eps)
            self.bert.encoder = Box()
            self.bert.encoder.layer = nn.ModuleList([layer() for _ in range(layers)])
            self.bert.pooler = Box()
            self.bert.pooler.dense = dense(hidden, hidden)

        def forward(self, ids: Any, mask: Any) -> Any:
            e, b, s = self.bert.embeddings, ids.shape[0], ids.shape[1]
            x = (e.word_embeddings(ids) + e.position_embeddings.weight[:s]
                 + e.token_type_embeddings.weight[0])
            x = e.LayerNorm(x)
            bias = (1.0 - mask.to(x.dtype))[:, None, None, :] * torch.finfo(x.dtype).min
            d = hidden // heads
            for m in self.bert.encoder.layer:
                a = m.attention.self
                q, k, v = (f(x).view(b, s, heads, d).transpose(1, 2)
                           for f in (a.query, a.key, a.value))
                p = torch.softmax(q @ k.transpose(-1, -2) / d**0.5 + bias, dim=-1)
                ctx = (p @ v).transpose(1, 2).reshape(b, s, hidden)
                h = m.attention.output.LayerNorm(m.attention.output.dense(ctx) + x)
                x = m.output.LayerNorm(m.output.dense(F.gelu(m.intermediate.dense(h))) + h)
            w = mask.to(x.dtype).unsqueeze(-1)
            return F.normalize((x * w).sum(1) / w.sum(1).clamp(min=1e-9), dim=1)

    return Encoder()


def load_from_kiln(torch_module: Any, kiln_module: Any) -> Any:
    """Copy a Kiln module's state dict into ``torch_module`` (same keys and shapes)."""
    import torch

    state = {k: torch.from_numpy(np.array(v.numpy(), copy=True))
             for k, v in kiln_module.state_dict().items()}
    torch_module.load_state_dict(state)
    return torch_module
