"""``TransformerBlock``: one transformer encoder layer, batch-first.

Its submodules carry the names of ``torch.nn.TransformerEncoderLayer`` (``self_attn``,
``linear1``, ``linear2``, ``norm1``, ``norm2``, ``dropout``, ``dropout1``, ``dropout2``), so the
state dict of ``TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout,
activation="gelu", batch_first=True, norm_first=True)`` loads into it and gives the same
outputs.
"""

from __future__ import annotations

from typing import Any

from kiln import nn
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


class TransformerBlock(nn.Module):
    """Self-attention and a feed-forward MLP, each in a residual branch; pre-LayerNorm by
    default (``norm_first=True``: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``).

    Input and output are (batch, seq, d_model). ``src_mask`` (seq, seq) and
    ``src_key_padding_mask`` (batch, seq) follow MultiheadAttention (bool True = masked);
    ``is_causal=True`` without a mask builds the causal one.

    >>> import kiln
    >>> from kiln.models import TransformerBlock
    >>> block = TransformerBlock(d_model=32, nhead=4, dim_feedforward=64)
    >>> block(kiln.randn(2, 10, 32)).shape
    (2, 10, 32)
    >>> [n for n, _ in block.named_parameters()][:2]
    ['self_attn.in_proj_weight', 'self_attn.in_proj_bias']
    """

    def __init__(self, d_model: int = 256, nhead: int = 4, dim_feedforward: int = 1024,
                 dropout: float = 0.0, activation: str = "gelu", norm_first: bool = True,
                 layer_norm_eps: float = 1e-5, bias: bool = True, dtype: Any = None) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ArgumentError(f"TransformerBlock: activation must be 'relu' or 'gelu', got "
                                f"{activation!r}")
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                               batch_first=True, dtype=dtype)
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = bool(norm_first)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.activation = _ACTIVATIONS[activation]()

    def forward(self, input: Tensor, src_mask: Tensor | None = None,
                src_key_padding_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
        if is_causal and src_mask is None:
            from kiln.core.creation import arange

            n = input.shape[1]
            src_mask = arange(n).unsqueeze(0) > arange(n).unsqueeze(1)
        x = input
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x: Tensor, attn_mask: Tensor | None,
                  key_padding_mask: Tensor | None) -> Tensor:
        out, _ = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                need_weights=False)
        return self.dropout1(out)

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))
