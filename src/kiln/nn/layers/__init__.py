"""The layers of ``kiln.nn`` (all re-exported there: ``kiln.nn.Linear`` ...)."""

from __future__ import annotations

from kiln.nn.layers.activation import (
    ELU,
    GELU,
    Hardtanh,
    LeakyReLU,
    LogSigmoid,
    LogSoftmax,
    Mish,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softmin,
    Softplus,
    Tanh,
)
from kiln.nn.layers.activations import *  # noqa: E402, F403
from kiln.nn.layers.activations import __all__ as _activation_names  # noqa: E402
from kiln.nn.layers.attention import MultiheadAttention
from kiln.nn.layers.bags import *  # noqa: E402, F403
from kiln.nn.layers.bags import __all__ as _bag_names  # noqa: E402
from kiln.nn.layers.container import (
    ModuleDict,
    ModuleList,
    ParameterDict,
    ParameterList,
    Sequential,
)
from kiln.nn.layers.conv import Conv1d, Conv2d
from kiln.nn.layers.conv3d import *  # noqa: E402, F403
from kiln.nn.layers.conv3d import __all__ as _conv3d_names  # noqa: E402
from kiln.nn.layers.conv_transpose import ConvTranspose1d, ConvTranspose2d, PReLU

# torch's op-surface layers (issue 12 part 2), each module listing its own names.
from kiln.nn.layers.fold import *  # noqa: E402, F403
from kiln.nn.layers.fold import __all__ as _fold_names  # noqa: E402
from kiln.nn.layers.linear import (
    Bilinear,
    Flatten,
    Identity,
    Linear,
    NonDynamicallyQuantizableLinear,
    Unflatten,
)
from kiln.nn.layers.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)

# torch's losses, distances and remaining layers (issue 12, nnops)
from kiln.nn.layers.loss_extra import *  # noqa: E402, F403
from kiln.nn.layers.loss_extra import __all__ as _loss_extra_names  # noqa: E402
from kiln.nn.layers.norm import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm, RMSNorm
from kiln.nn.layers.norm_extra import *  # noqa: E402, F403
from kiln.nn.layers.norm_extra import __all__ as _norm_extra_names  # noqa: E402
from kiln.nn.layers.padding import *  # noqa: E402, F403
from kiln.nn.layers.padding import __all__ as _padding_names  # noqa: E402
from kiln.nn.layers.pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d
from kiln.nn.layers.pooling_nd import (
    AdaptiveAvgPool1d,
    AdaptiveMaxPool1d,
    AvgPool1d,
    AvgPool3d,
    MaxPool1d,
    MaxPool3d,
    Upsample,
    UpsamplingBilinear2d,
    UpsamplingNearest2d,
)
from kiln.nn.layers.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase
from kiln.nn.layers.sparse import Dropout, Embedding
from kiln.nn.layers.transformer import *  # noqa: E402, F403
from kiln.nn.layers.transformer import __all__ as _transformer_names  # noqa: E402
from kiln.nn.layers.unpool import MaxUnpool2d  # noqa: E402

__all__ = [
    "ELU", "GELU", "Hardtanh", "LeakyReLU", "LogSigmoid", "LogSoftmax", "Mish", "ReLU", "ReLU6",
    "Sigmoid", "SiLU", "Softmax", "Softmin", "Softplus", "Tanh", "MultiheadAttention",
    "ModuleDict", "ModuleList", "ParameterDict", "ParameterList", "Sequential", "Conv1d",
    "Conv2d", "Bilinear", "Flatten", "Identity", "Linear", "NonDynamicallyQuantizableLinear",
    "Unflatten", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "HuberLoss", "KLDivLoss",
    "L1Loss", "MSELoss", "NLLLoss", "SmoothL1Loss", "BatchNorm1d", "BatchNorm2d", "GroupNorm",
    "LayerNorm", "RMSNorm", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "AvgPool2d", "MaxPool2d",
    "Dropout", "Embedding",
    # issue 12
    "ConvTranspose1d", "ConvTranspose2d", "PReLU", "AdaptiveAvgPool1d", "AdaptiveMaxPool1d",
    "AvgPool1d", "AvgPool3d", "MaxPool1d", "MaxPool3d", "Upsample", "UpsamplingBilinear2d",
    "UpsamplingNearest2d", "GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNBase", "RNNCell",
    "RNNCellBase", *_fold_names, *_transformer_names, "MaxUnpool2d", *_padding_names,
    *_activation_names, *_loss_extra_names, *_norm_extra_names,
    *_conv3d_names, *_bag_names,
]
