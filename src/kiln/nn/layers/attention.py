"""MultiheadAttention with PyTorch's parameters, masks and outputs.

Parameters are laid out as in ``torch.nn.MultiheadAttention`` (``in_proj_weight`` of shape
(3E, E) holding the q, k and v projections, ``in_proj_bias``, ``out_proj``; or
``q_proj_weight``/``k_proj_weight``/``v_proj_weight`` when ``kdim``/``vdim`` differ), so state
dicts move between the two. Internally everything runs batch-first as (N, H, L, head_dim).
"""

from __future__ import annotations

from typing import Any

from kiln.core.tensor import Tensor
from kiln.errors import ShapeError, ValueArgumentError
from kiln.nn import init
from kiln.nn.attention import multi_head_attention_forward
from kiln.nn.layers._utils import check_int, check_tensor, float_dtype, new_param, static
from kiln.nn.layers.linear import NonDynamicallyQuantizableLinear
from kiln.nn.module import Module


def _same(a: Any, b: Any) -> bool:
    return not (static(a) and static(b)) or a == b


class MultiheadAttention(Module):
    """Multi-head attention: ``softmax(q k^T / sqrt(head_dim) + mask) v`` per head.

    Inputs are (L, N, E) or, with ``batch_first=True``, (N, L, E); unbatched (L, E) works too.
    ``key_padding_mask`` (N, S) and ``attn_mask`` (L, S) or (N * num_heads, L, S) are bool
    (True = may not attend) or float (added to the scores). Returns ``(output, weights)``;
    weights are averaged over heads unless ``average_attn_weights=False``, and None with
    ``need_weights=False``.

    >>> import kiln
    >>> mha = kiln.nn.MultiheadAttention(16, 4, batch_first=True)
    >>> x = kiln.randn(2, 5, 16)
    >>> out, w = mha(x, x, x)
    >>> out.shape, w.shape
    ((2, 5, 16), (2, 5, 5))
    >>> [name for name, _ in mha.named_parameters()]
    ['in_proj_weight', 'in_proj_bias', 'out_proj.weight', 'out_proj.bias']
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False,
                 kdim: int | None = None, vdim: int | None = None, batch_first: bool = False,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        name = "MultiheadAttention"
        self.embed_dim = check_int(name, "embed_dim", embed_dim, 1)
        self.num_heads = check_int(name, "num_heads", num_heads, 1)
        self.kdim = check_int(name, "kdim", kdim, 1) if kdim is not None else embed_dim
        self.vdim = check_int(name, "vdim", vdim, 1) if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or \
                not 0.0 <= dropout <= 1.0:
            raise ValueArgumentError(f"{name}: dropout must be in [0, 1], got {dropout!r}")
        self.dropout = dropout
        self.batch_first = bool(batch_first)
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != embed_dim:
            raise ValueArgumentError(f"{name}: embed_dim ({embed_dim}) must be divisible by "
                                     f"num_heads ({num_heads})")
        d = float_dtype(name, dtype, device)
        if not self._qkv_same_embed_dim:
            self.q_proj_weight = new_param((embed_dim, embed_dim), d)
            self.k_proj_weight = new_param((embed_dim, self.kdim), d)
            self.v_proj_weight = new_param((embed_dim, self.vdim), d)
            self.register_parameter("in_proj_weight", None)
        else:
            self.in_proj_weight = new_param((3 * embed_dim, embed_dim), d)
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        if bias:
            self.in_proj_bias = new_param((3 * embed_dim,), d)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, dtype=d)
        if add_bias_kv:
            self.bias_k = new_param((1, 1, embed_dim), d)
            self.bias_v = new_param((1, 1, embed_dim), d)
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = bool(add_zero_attn)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
        if self.bias_v is not None:
            init.xavier_normal_(self.bias_v)

    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor) -> bool:
        name = "MultiheadAttention"
        for arg, t in (("query", query), ("key", key), ("value", value)):
            check_tensor(name, t, arg)
        batched = query.ndim == 3
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ShapeError(f"{name}: query, key and value must all be 2-D (unbatched) or 3-D "
                             f"(batched), got shapes {tuple(query.shape)}, {tuple(key.shape)}, "
                             f"{tuple(value.shape)}")
        for arg, t, want in (("query", query, self.embed_dim), ("key", key, self.kdim),
                             ("value", value, self.vdim)):
            if not _same(t.shape[-1], want):
                raise ShapeError(f"{name}: expected {arg} with last dim {want}, got shape "
                                 f"{tuple(t.shape)}")
        if not all(_same(a, b) for a, b in zip(key.shape[:-1], value.shape[:-1])):
            raise ShapeError(f"{name}: key shape {tuple(key.shape)} does not match value shape "
                             f"{tuple(value.shape)}")
        return batched

    # forward ----------------------------------------------------------------------------
    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Tensor | None = None, need_weights: bool = True,
                attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        batched = self._check_inputs(query, key, value)
        if batched and self.batch_first:
            # F.multi_head_attention_forward is sequence-first; self-attention stays one
            # tensor (one packed projection), as in torch.
            if query is key and key is value:
                query = key = value = query.transpose(0, 1)
            else:
                query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        out, weights = multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads, self.in_proj_weight,
            self.in_proj_bias, self.bias_k, self.bias_v, self.add_zero_attn, self.dropout,
            self.out_proj.weight, self.out_proj.bias, training=self.training,
            key_padding_mask=key_padding_mask, need_weights=need_weights, attn_mask=attn_mask,
            use_separate_proj_weight=not self._qkv_same_embed_dim,
            q_proj_weight=self.q_proj_weight, k_proj_weight=self.k_proj_weight,
            v_proj_weight=self.v_proj_weight, average_attn_weights=average_attn_weights,
            is_causal=is_causal)
        if batched and self.batch_first:
            out = out.transpose(0, 1)
        return out, weights
