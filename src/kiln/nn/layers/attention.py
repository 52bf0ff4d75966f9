"""MultiheadAttention with PyTorch's parameters, masks and outputs.

Parameters are laid out as in ``torch.nn.MultiheadAttention`` (``in_proj_weight`` of shape
(3E, E) holding the q, k and v projections, ``in_proj_bias``, ``out_proj``; or
``q_proj_weight``/``k_proj_weight``/``v_proj_weight`` when ``kdim``/``vdim`` differ), so state
dicts move between the two. Internally everything runs batch-first as (N, H, L, head_dim).
"""

from __future__ import annotations

import math
from typing import Any

from kiln import ops
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError, ValueArgumentError
from kiln.nn import functional as F
from kiln.nn import init
from kiln.nn.layers._utils import check_int, check_tensor, float_dtype, new_param, static
from kiln.nn.layers.linear import NonDynamicallyQuantizableLinear
from kiln.nn.module import Module


def _float_mask(mask: Tensor | None, name: str, dtype: Any) -> Tensor | None:
    """PyTorch's canonical mask: a bool mask becomes 0 / -inf (True = not allowed)."""
    if mask is None:
        return None
    check_tensor("MultiheadAttention", mask, name)
    if mask.dtype.is_bool:
        return ops.where(mask, float("-inf"), 0.0).to(dtype)
    if not mask.dtype.is_floating:
        raise ArgumentError(f"MultiheadAttention: only bool and floating {name} are supported, "
                            f"got {mask.dtype}")
    return mask.to(dtype)


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
        if add_zero_attn:
            raise ArgumentError(f"{name}: add_zero_attn=True is not supported")
        self.dropout = dropout
        self.batch_first = bool(batch_first)
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != embed_dim:
            raise ValueArgumentError(f"{name}: embed_dim ({embed_dim}) must be divisible by "
                                     f"num_heads ({num_heads})")
        d = float_dtype(name, dtype)
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
        self.add_zero_attn = False
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

    # projections ------------------------------------------------------------------------
    def _weights(self) -> tuple:
        e = self.embed_dim
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            ws = (w[0:e], w[e:2 * e], w[2 * e:3 * e])
        else:
            ws = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        b = self.in_proj_bias
        bs = (None, None, None) if b is None else (b[0:e], b[e:2 * e], b[2 * e:3 * e])
        return ws, bs

    def _project(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self._qkv_same_embed_dim and q is k and k is v:
            # Self-attention: one (3E, E) projection, as PyTorch does.
            qkv = F.linear(q, self.in_proj_weight, self.in_proj_bias)
            return F.chunk(qkv, 3, -1)  # type: ignore[return-value]
        (wq, wk, wv), (bq, bk, bv) = self._weights()
        return F.linear(q, wq, bq), F.linear(k, wk, bk), F.linear(v, wv, bv)

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
        if is_causal and attn_mask is None:
            raise ArgumentError("MultiheadAttention: is_causal=True is only a hint; pass the "
                                "causal attn_mask as well (as PyTorch requires)")
        same_qkv = query is key and key is value
        if not batched:
            query, key, value = (t.unsqueeze(0) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        if same_qkv:
            key = value = query
        n, tgt_len, e = query.shape
        h, hd = self.num_heads, self.head_dim
        q, k, v = self._project(query, key, value)
        kpm = _float_mask(key_padding_mask, "key_padding_mask", q.dtype)
        mask = _float_mask(attn_mask, "attn_mask", q.dtype)
        if self.bias_k is not None:
            k = F.cat([k, self.bias_k.expand(n, 1, e)], 1)
            v = F.cat([v, self.bias_v.expand(n, 1, e)], 1)
            mask = F.pad(mask, (0, 1)) if mask is not None else None
            kpm = F.pad(kpm, (0, 1)) if kpm is not None else None
        src_len = k.shape[1]
        mask = self._merge_masks(mask, kpm, n, tgt_len, src_len)
        q = q.reshape(n, tgt_len, h, hd).transpose(1, 2)
        k = k.reshape(n, src_len, h, hd).transpose(1, 2)
        v = v.reshape(n, src_len, h, hd).transpose(1, 2)
        scores = F.matmul(q * math.sqrt(1.0 / hd), k.transpose(-2, -1))
        if mask is not None:
            scores = scores + mask
        weights = F.softmax(scores, -1)
        if self.training and self.dropout > 0.0:
            weights = F.dropout(weights, self.dropout, training=True)
        out = F.matmul(weights, v).transpose(1, 2).reshape(n, tgt_len, e)
        out = self.out_proj(out)
        if not batched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = F.mean(weights, 1)
        return out, (weights if batched else weights.squeeze(0))

    def _merge_masks(self, mask: Tensor | None, kpm: Tensor | None, n: Any, tgt_len: Any,
                     src_len: Any) -> Tensor | None:
        name, h = "MultiheadAttention", self.num_heads
        if mask is not None:
            shape = tuple(mask.shape)
            if mask.ndim == 2:
                if not (_same(shape[0], tgt_len) and _same(shape[1], src_len)):
                    raise ShapeError(f"{name}: the 2-D attn_mask has shape {shape}, expected "
                                     f"({tgt_len}, {src_len})")
            elif mask.ndim == 3:
                want = (n * h, tgt_len, src_len)
                if not all(_same(a, b) for a, b in zip(shape, want)):
                    raise ShapeError(f"{name}: the 3-D attn_mask has shape {shape}, expected "
                                     f"{tuple(map(str, want))}")
                mask = mask.reshape(n, h, tgt_len, src_len)
            else:
                raise ShapeError(f"{name}: attn_mask must be 2-D or 3-D, got shape {shape}")
        if kpm is not None:
            if kpm.ndim != 2 or not (_same(kpm.shape[0], n) and _same(kpm.shape[1], src_len)):
                raise ShapeError(f"{name}: key_padding_mask has shape {tuple(kpm.shape)}, "
                                 f"expected ({n}, {src_len})")
            kpm = kpm.reshape(n, 1, 1, src_len)
            mask = kpm if mask is None else mask + kpm
        return mask
