"""Dropout and Embedding."""

from __future__ import annotations

from typing import Any

from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError, ValueArgumentError
from kiln.nn import functional as F
from kiln.nn import init
from kiln.nn.layers._utils import check_float, check_int, check_tensor, float_dtype, new_param
from kiln.nn.module import Module
from kiln.nn.parameter import Parameter


class Dropout(Module):
    """Zero each element with probability ``p`` in training (scaling the rest by 1/(1-p));
    the identity in eval mode.

    >>> import kiln
    >>> drop = kiln.nn.Dropout(0.5)
    >>> drop.eval()(kiln.ones(3)).tolist()
    [1.0, 1.0, 1.0]
    >>> drop
    Dropout(p=0.5, inplace=False)
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueArgumentError(f"Dropout: p must be a probability in [0, 1], got {p!r}")
        self.p = p
        self.inplace = bool(inplace)

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Embedding(Module):
    """A lookup table: integer indices of any shape pick rows of ``weight``
    (num_embeddings, embedding_dim). Rows start as N(0, 1); the ``padding_idx`` row starts
    at zero and gets no gradient.

    >>> import kiln
    >>> emb = kiln.nn.Embedding(10, 3, padding_idx=0)
    >>> emb(kiln.tensor([[1, 2, 0]])).shape, emb(kiln.tensor([0])).tolist()
    ((1, 3, 3), [[0.0, 0.0, 0.0]])
    >>> emb
    Embedding(10, 3, padding_idx=0)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0,
                 scale_grad_by_freq: bool = False, sparse: bool = False,
                 _weight: Tensor | None = None, _freeze: bool = False, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        self.num_embeddings = check_int("Embedding", "num_embeddings", num_embeddings, 0)
        self.embedding_dim = check_int("Embedding", "embedding_dim", embedding_dim, 0)
        if padding_idx is not None:
            check_int("Embedding", "padding_idx", padding_idx, -num_embeddings)
            if padding_idx >= num_embeddings:
                raise ValueArgumentError(f"Embedding: padding_idx must be within "
                                         f"[{-num_embeddings}, {num_embeddings}), got "
                                         f"{padding_idx}")
            if padding_idx < 0:
                padding_idx += num_embeddings
        self.padding_idx = padding_idx
        if max_norm is not None:
            raise ArgumentError("Embedding: max_norm is not supported (it renormalizes rows in "
                                "place during the forward pass)")
        if scale_grad_by_freq or sparse:
            raise ArgumentError("Embedding: scale_grad_by_freq and sparse are not supported")
        self.max_norm = None
        self.norm_type = check_float("Embedding", "norm_type", norm_type)
        self.scale_grad_by_freq = False
        self.sparse = False
        if _weight is None:
            self.weight = new_param((num_embeddings, embedding_dim),
                                    float_dtype("Embedding", dtype, device))
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ShapeError(f"Embedding: _weight has shape {tuple(_weight.shape)}, "
                                 f"expected {(num_embeddings, embedding_dim)}")
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            from kiln.core.autograd.grad_mode import no_grad

            with no_grad():
                self.weight[self.padding_idx] = 0.0

    def forward(self, input: Tensor) -> Tensor:
        check_tensor("Embedding", input)
        if not input.dtype.is_integer:
            raise ArgumentError(f"Embedding: input must hold integer indices, got "
                                f"{input.dtype}")
        return F.embedding(input, self.weight, self.padding_idx)

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True,
                        padding_idx: int | None = None, **kwargs: Any) -> Embedding:
        """An Embedding whose weight is ``embeddings`` (2-D); frozen unless ``freeze=False``."""
        if embeddings.ndim != 2:
            raise ShapeError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape "
                             f"{tuple(embeddings.shape)}")
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx=padding_idx, _weight=embeddings, _freeze=freeze,
                   **kwargs)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        return s
