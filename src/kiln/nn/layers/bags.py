"""``nn.EmbeddingBag``, ``nn.MaxUnpool1d``, ``nn.MaxUnpool3d`` and ``nn.CTCLoss``: modules over
``F.embedding_bag``, ``F.max_unpool1d/3d`` and ``F.ctc_loss`` with torch's arguments.

>>> import kiln
>>> bag = kiln.nn.EmbeddingBag(10, 3, mode="sum")
>>> bag(kiln.tensor([1, 2, 4, 5]), kiln.tensor([0, 2])).shape
(2, 3)
"""

from __future__ import annotations

from typing import Any

from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError
from kiln.nn import functional as F
from kiln.nn import init
from kiln.nn.layers._utils import check_choice, check_int, float_dtype, new_param
from kiln.nn.layers.loss import _Loss
from kiln.nn.module import Module
from kiln.nn.parameter import Parameter

__all__ = ["EmbeddingBag", "MaxUnpool1d", "MaxUnpool3d", "CTCLoss"]


class EmbeddingBag(Module):
    """Sums, means or maxima of bags of embedding rows (``F.embedding_bag``); weight
    (num_embeddings, embedding_dim) starts as N(0, 1), the ``padding_idx`` row at zero.

    >>> import kiln
    >>> kiln.nn.EmbeddingBag(5, 2)(kiln.tensor([[0, 1], [2, 3]])).shape
    (2, 2)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, max_norm: float | None = None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False, mode: str = "mean",
                 sparse: bool = False, _weight: Tensor | None = None,
                 include_last_offset: bool = False, padding_idx: int | None = None,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        name = "EmbeddingBag"
        self.num_embeddings = check_int(name, "num_embeddings", num_embeddings, 0)
        self.embedding_dim = check_int(name, "embedding_dim", embedding_dim, 0)
        if max_norm is not None or scale_grad_by_freq or sparse:
            raise ArgumentError(f"{name}: max_norm, scale_grad_by_freq and sparse are not "
                                "supported (max_norm rewrites the weight in place)")
        self.max_norm, self.norm_type = None, norm_type
        self.scale_grad_by_freq, self.sparse = False, False
        self.mode = check_choice(name, "mode", mode, ("sum", "mean", "max"))
        self.include_last_offset = bool(include_last_offset)
        if padding_idx is not None and padding_idx < 0:
            padding_idx += num_embeddings
        self.padding_idx = padding_idx
        if _weight is None:
            self.weight = new_param((num_embeddings, embedding_dim), float_dtype(name, dtype,
                                                                                device))
            init.normal_(self.weight)
            if padding_idx is not None:
                from kiln.core.autograd.grad_mode import no_grad

                with no_grad():
                    self.weight[padding_idx] = 0.0
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ShapeError(f"{name}: _weight has shape {tuple(_weight.shape)}, expected "
                                 f"{(num_embeddings, embedding_dim)}")
            self.weight = Parameter(_weight)

    def forward(self, input: Tensor, offsets: Tensor | None = None,
                per_sample_weights: Tensor | None = None) -> Tensor:
        return F.embedding_bag(input, self.weight, offsets, mode=self.mode,
                               per_sample_weights=per_sample_weights,
                               include_last_offset=self.include_last_offset,
                               padding_idx=self.padding_idx)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, mode={self.mode!r}"


class _MaxUnpool(Module):
    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpool):
    """Values put back where ``MaxPool1d(return_indices=True)`` took them from.

    >>> import kiln
    >>> kiln.nn.MaxUnpool1d(2)(kiln.ones(1, 1, 2), kiln.tensor([[[0, 3]]])).tolist()
    [[[1.0, 0.0, 0.0, 1.0]]]
    """

    def forward(self, input: Tensor, indices: Tensor, output_size: Any = None) -> Tensor:
        return F.max_unpool1d(input, indices, self.kernel_size, self.stride, self.padding,
                              output_size)


class MaxUnpool3d(_MaxUnpool):
    """Values put back where ``MaxPool3d(return_indices=True)`` took them from.

    >>> import kiln
    >>> kiln.nn.MaxUnpool3d(2)(kiln.ones(1, 1, 1, 1, 1), kiln.tensor([[[[[0]]]]])).shape
    (1, 1, 2, 2, 2)
    """

    def forward(self, input: Tensor, indices: Tensor, output_size: Any = None) -> Tensor:
        return F.max_unpool3d(input, indices, self.kernel_size, self.stride, self.padding,
                              output_size)


class CTCLoss(_Loss):
    """The connectionist temporal classification loss (``F.ctc_loss``).

    >>> import kiln
    >>> logp = kiln.zeros(2, 1, 2) - 0.6931471805599453
    >>> round(kiln.nn.CTCLoss(reduction="sum")(logp, kiln.tensor([[1]]), [2], [1]).item(), 4)
    0.2877
    """

    def __init__(self, blank: int = 0, reduction: str = "mean",
                 zero_infinity: bool = False) -> None:
        super().__init__(reduction=reduction)
        self.blank, self.zero_infinity = blank, zero_infinity

    def forward(self, log_probs: Tensor, targets: Tensor, input_lengths: Any,
                target_lengths: Any) -> Tensor:
        return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, self.blank,
                          self.reduction, self.zero_infinity)
