"""``kiln.models``: reference models used by tests, benchmarks and the demo.

Layer: reference models, above kiln.nn. May import kiln.nn, kiln.io, the tensor core and below;
nothing in the compile pipeline needs them.

>>> import kiln
>>> from kiln import models
>>> models.MLP((8, 16, 4))(kiln.randn(2, 8)).shape
(2, 4)
"""

from __future__ import annotations

from kiln.models.bert import BertConfig, BertModel, SentenceEncoder
from kiln.models.convnet import ConvNet
from kiln.models.mlp import MLP
from kiln.models.resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from kiln.models.transformer import TransformerBlock

__all__ = ["BertConfig", "BertModel", "SentenceEncoder",
           "MLP", "ConvNet", "ResNet", "BasicBlock", "Bottleneck", "resnet18", "resnet34",
           "resnet50", "TransformerBlock"]
