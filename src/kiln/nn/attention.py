"""``F.multi_head_attention_forward``: torch's functional multi-head attention (the math of
``nn.MultiheadAttention``, which calls it), as a composite.

Inputs are sequence-first, (L, N, E) or unbatched (L, E); internally everything runs as
(N, H, L, head_dim). Masks are bool (True = may not attend) or float (added to the scores).

>>> import kiln, kiln.nn.functional as F
>>> x = kiln.randn(3, 2, 4)
>>> w_in, w_out = kiln.randn(12, 4), kiln.randn(4, 4)
>>> out, w = F.multi_head_attention_forward(x, x, x, 4, 2, w_in, None, None, None, False, 0.0,
...                                         w_out, None, training=False)
>>> out.shape, w.shape
((3, 2, 4), (2, 3, 3))
"""

from __future__ import annotations

import math
from typing import Any

from kiln import ops
from kiln.core.functional import cat, chunk, matmul, mean
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError
from kiln.nn.checks import want_tensor

__all__ = ["multi_head_attention_forward"]

_FN = "multi_head_attention_forward"


def float_mask(mask: Tensor | None, name: str, dtype: Any) -> Tensor | None:
    """torch's canonical mask: a bool mask becomes 0 / -inf (True = not allowed)."""
    if mask is None:
        return None
    want_tensor(_FN, name, mask)
    if mask.dtype.is_bool:
        return ops.where(mask, float("-inf"), 0.0).to(dtype)
    if not mask.dtype.is_floating:
        raise ArgumentError(f"{_FN}: only bool and floating {name} are supported, got "
                            f"{mask.dtype}")
    return mask.to(dtype)


def _same(a: Any, b: Any) -> bool:
    from kiln.symbolic.sizes import SymInt

    return isinstance(a, SymInt) or isinstance(b, SymInt) or a == b


def _linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    y = matmul(x, w.transpose(0, 1))
    return y if b is None else y + b


def _project(query: Tensor, key: Tensor, value: Tensor, e: int, in_proj_weight: Tensor | None,
             in_proj_bias: Tensor | None, separate: bool, q_proj_weight: Tensor | None,
             k_proj_weight: Tensor | None, v_proj_weight: Tensor | None
             ) -> tuple[Tensor, Tensor, Tensor]:
    b = in_proj_bias
    bs = (None, None, None) if b is None else (b[0:e], b[e:2 * e], b[2 * e:3 * e])
    if separate:
        for name, w in (("q_proj_weight", q_proj_weight), ("k_proj_weight", k_proj_weight),
                        ("v_proj_weight", v_proj_weight)):
            if w is None:
                raise ArgumentError(f"{_FN}: use_separate_proj_weight=True needs {name}")
        return (_linear(query, q_proj_weight, bs[0]), _linear(key, k_proj_weight, bs[1]),
                _linear(value, v_proj_weight, bs[2]))
    if in_proj_weight is None:
        raise ArgumentError(f"{_FN}: in_proj_weight is None; pass it, or the separate "
                            "q/k/v_proj_weight with use_separate_proj_weight=True")
    if query is key and key is value:  # self-attention: one (3E, E) projection, as torch
        return tuple(chunk(_linear(query, in_proj_weight, b), 3, -1))  # type: ignore[return-value]
    w = in_proj_weight
    return (_linear(query, w[0:e], bs[0]), _linear(key, w[e:2 * e], bs[1]),
            _linear(value, w[2 * e:3 * e], bs[2]))


def _attn_mask(mask: Tensor | None, n: Any, h: int, tgt: Any, src: Any) -> Tensor | None:
    if mask is None:
        return None
    shape = tuple(mask.shape)
    if mask.ndim == 2:
        if not (_same(shape[0], tgt) and _same(shape[1], src)):
            raise ShapeError(f"{_FN}: the 2-D attn_mask has shape {shape}, expected "
                             f"({tgt}, {src})")
        return mask
    if mask.ndim == 3:
        want = (n * h, tgt, src)
        if not all(_same(a, b) for a, b in zip(shape, want)):
            raise ShapeError(f"{_FN}: the 3-D attn_mask has shape {shape}, expected "
                             f"{tuple(map(str, want))}")
        return mask.reshape(n, h, tgt, src)
    raise ShapeError(f"{_FN}: attn_mask must be 2-D or 3-D, got shape {shape}")


def _pad_last(mask: Tensor | None) -> Tensor | None:
    # one more key (bias_k or the zero key): its score gets no mask
    if mask is None:
        return None
    from kiln.nn.conv import pad

    return pad(mask, (0, 1))


def multi_head_attention_forward(
        query: Tensor, key: Tensor, value: Tensor, embed_dim_to_check: int, num_heads: int,
        in_proj_weight: Tensor | None, in_proj_bias: Tensor | None, bias_k: Tensor | None,
        bias_v: Tensor | None, add_zero_attn: bool, dropout_p: float, out_proj_weight: Tensor,
        out_proj_bias: Tensor | None, training: bool = True,
        key_padding_mask: Tensor | None = None, need_weights: bool = True,
        attn_mask: Tensor | None = None, use_separate_proj_weight: bool = False,
        q_proj_weight: Tensor | None = None, k_proj_weight: Tensor | None = None,
        v_proj_weight: Tensor | None = None, static_k: Tensor | None = None,
        static_v: Tensor | None = None, average_attn_weights: bool = True,
        is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
    """torch's ``F.multi_head_attention_forward``: returns ``(output, weights)``; output
    (L, N, E) (or (L, E)), weights (N, L, S) averaged over heads, (N, H, L, S) with
    ``average_attn_weights=False``, None with ``need_weights=False``. ``is_causal`` is a
    hint: the causal ``attn_mask`` must be passed too, as torch requires.

    >>> import kiln, kiln.nn.functional as F
    >>> x = kiln.ones(2, 4)
    >>> out, w = F.multi_head_attention_forward(x, x, x, 4, 1, kiln.ones(12, 4), None, None,
    ...     None, False, 0.0, kiln.ones(4, 4), None, need_weights=True)
    >>> w.tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    for name, t in (("query", query), ("key", key), ("value", value)):
        want_tensor(_FN, name, t)
    if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
        raise ShapeError(f"{_FN}: query, key and value must all be 2-D (unbatched) or 3-D "
                         f"(L, N, E), got shapes {tuple(query.shape)}, {tuple(key.shape)}, "
                         f"{tuple(value.shape)}")
    e = query.shape[-1]
    if not _same(e, embed_dim_to_check):
        raise ShapeError(f"{_FN}: query's last dim {e} is not embed_dim_to_check "
                         f"{embed_dim_to_check}")
    h = int(num_heads)
    hd = e // h
    if hd * h != e:
        raise ShapeError(f"{_FN}: embed_dim {e} is not divisible by num_heads {h}")
    if is_causal and attn_mask is None:
        raise ArgumentError(f"{_FN}: is_causal=True is only a hint; pass the causal attn_mask "
                            "as well (as torch requires)")
    batched = query.ndim == 3
    same_qkv = query is key and key is value
    if not batched:
        query, key, value = (t.unsqueeze(1) for t in (query, key, value))
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
        if attn_mask is not None and attn_mask.ndim == 3:
            pass  # (H, L, S) for the one batch: as (N * H, L, S) with N = 1
    # batch-first from here: (N, L, E)
    query, key, value = (t.transpose(0, 1) for t in (query, key, value))
    if same_qkv:
        key = value = query
    n, tgt = query.shape[0], query.shape[1]
    q, k, v = _project(query, key, value, e, in_proj_weight, in_proj_bias,
                       use_separate_proj_weight, q_proj_weight, k_proj_weight, v_proj_weight)
    kpm = float_mask(key_padding_mask, "key_padding_mask", q.dtype)
    mask = float_mask(attn_mask, "attn_mask", q.dtype)
    if bias_k is not None or bias_v is not None:
        if bias_k is None or bias_v is None or static_k is not None or static_v is not None:
            raise ArgumentError(f"{_FN}: bias_k and bias_v go together, and not with "
                                "static_k / static_v")
        k = cat([k, bias_k.reshape(1, 1, e).expand(n, 1, e)], 1)
        v = cat([v, bias_v.reshape(1, 1, e).expand(n, 1, e)], 1)
        mask, kpm = _pad_last(mask), _pad_last(kpm)
    q = q.reshape(n, tgt, h, hd).transpose(1, 2)
    k = k.reshape(n, k.shape[1], h, hd).transpose(1, 2) if static_k is None else \
        static_k.reshape(n, h, static_k.shape[1], hd)
    v = v.reshape(n, v.shape[1], h, hd).transpose(1, 2) if static_v is None else \
        static_v.reshape(n, h, static_v.shape[1], hd)
    if add_zero_attn:  # one all-zero key and value after the projections (and bias_kv)
        from kiln.core.creation import zeros

        k = cat([k, zeros(n, h, 1, hd, dtype=k.dtype)], 2)
        v = cat([v, zeros(n, h, 1, hd, dtype=v.dtype)], 2)
        mask, kpm = _pad_last(mask), _pad_last(kpm)
    src = k.shape[2]
    mask = _attn_mask(mask, n, h, tgt, src)
    if kpm is not None:
        if kpm.ndim != 2 or not (_same(kpm.shape[0], n) and _same(kpm.shape[1], src)):
            raise ShapeError(f"{_FN}: key_padding_mask has shape {tuple(kpm.shape)}, expected "
                             f"({n}, {src})")
        kpm = kpm.reshape(n, 1, 1, src)
        mask = kpm if mask is None else mask + kpm
    scores = matmul(q * math.sqrt(1.0 / hd), k.transpose(-2, -1))
    if mask is not None:
        scores = scores + mask
    from kiln.nn.functional import dropout, softmax

    weights = softmax(scores, -1)
    if training and dropout_p > 0.0:
        weights = dropout(weights, dropout_p, training=True)
    out = matmul(weights, v).transpose(1, 2).reshape(n, tgt, e)
    out = _linear(out, out_proj_weight, out_proj_bias).transpose(0, 1)
    if not batched:
        out = out.squeeze(1)
    if not need_weights:
        return out, None
    if average_attn_weights:
        weights = mean(weights, 1)
    return out, (weights if batched else weights.squeeze(0))
