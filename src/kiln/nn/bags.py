"""``F.embedding_bag`` and ``F.max_unpool1d`` / ``F.max_unpool3d`` as composites.

``embedding_bag`` looks the indices up with ``weight[input]`` and reduces each bag through a
dense (bags x indices) membership mask built from ``offsets`` with comparisons, so it traces
(the offsets stay data) and has the lookup's gradient. ``max_unpool`` scatters values into a
zero volume at the flat positions ``max_pool(..., return_indices=True)`` gave.

>>> import kiln, kiln.nn.functional as F
>>> w = kiln.arange(6.0).reshape(3, 2)
>>> F.embedding_bag(kiln.tensor([0, 2, 1]), w, kiln.tensor([0, 2]), mode="sum").tolist()
[[4.0, 6.0], [2.0, 3.0]]
"""

from __future__ import annotations

from typing import Any

from kiln import ops
from kiln.core import dtypes as dt
from kiln.core.functional import cat, reshape, unsqueeze
from kiln.core.prims.shapes import fmt_shape
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError
from kiln.nn.checks import want_tensor
from kiln.nn.pool_nd import ntuple

__all__ = ["embedding_bag", "max_unpool1d", "max_unpool3d"]

_MODES = ("sum", "mean", "max")


def _members(fn: str, n: int, offsets: Tensor | None, bag_rows: int | None,
             include_last_offset: bool) -> Tensor:
    """(B, n) bool: whether index i belongs to bag b."""
    from kiln.core.creation import arange

    pos = arange(n, dtype=dt.int64)
    if offsets is None:  # 2-D input: row b is bag b (bag_rows indices each)
        return ops.eq(unsqueeze(arange(n // bag_rows, dtype=dt.int64), 1),
                      unsqueeze(ops.floor_divide(pos, bag_rows), 0))
    want_tensor(fn, "offsets", offsets)
    if offsets.ndim != 1 or not offsets.dtype.is_integer:
        raise ShapeError(f"{fn}: offsets must be a 1-D integer tensor, got {offsets.dtype} of "
                         f"shape {fmt_shape(offsets.shape)}")
    starts = offsets.to(dt.int64)
    b = starts.shape[0] - (1 if include_last_offset else 0)
    ends_after = starts[1:]
    if not include_last_offset:
        from kiln.core.creation import full

        ends_after = cat([ends_after, full((1,), n, dtype=dt.int64)], 0)
    begin = unsqueeze(starts[:b], 1)
    end = unsqueeze(ends_after[:b], 1)
    p = unsqueeze(pos, 0)
    return ops.logical_and(p >= begin, p < end)


def embedding_bag(input: Tensor, weight: Tensor, offsets: Tensor | None = None,
                  max_norm: float | None = None, norm_type: float = 2.0,
                  scale_grad_by_freq: bool = False, mode: str = "mean", sparse: bool = False,
                  per_sample_weights: Tensor | None = None, include_last_offset: bool = False,
                  padding_idx: int | None = None) -> Tensor:
    """Sum, mean or max of the ``weight`` rows each bag's indices pick: ``input`` 2-D (each
    row a bag) or 1-D with ``offsets`` (bag starts). ``per_sample_weights`` scale the rows
    (mode "sum"); ``padding_idx`` entries are left out; an empty bag gives zeros.
    ``max_norm``, ``scale_grad_by_freq`` and ``sparse`` are refused, as in ``F.embedding``.

    >>> import kiln, kiln.nn.functional as F
    >>> w = kiln.arange(6.0).reshape(3, 2)
    >>> F.embedding_bag(kiln.tensor([[0, 2], [1, 1]]), w, mode="max").tolist()
    [[4.0, 5.0], [2.0, 3.0]]
    """
    fn = "embedding_bag"
    want_tensor(fn, "input", input)
    want_tensor(fn, "weight", weight)
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise ArgumentError(f"{fn}: max_norm, scale_grad_by_freq and sparse are not supported "
                            "(max_norm rewrites the weight in place during the forward); "
                            "renormalize the weight yourself, e.g. under kiln.no_grad(), "
                            "before the lookup")
    if mode not in _MODES:
        raise ArgumentError(f"{fn}: mode must be one of {_MODES}, got {mode!r}")
    if not input.dtype.is_integer:
        raise ArgumentError(f"{fn}: input must hold integer indices, got {input.dtype}")
    if weight.ndim != 2:
        raise ShapeError(f"{fn}: weight must be 2-D (num_embeddings, dim), got "
                         f"{fmt_shape(weight.shape)}")
    if per_sample_weights is not None and mode != "sum":
        raise ArgumentError(f"{fn}: per_sample_weights need mode='sum', got mode={mode!r}")
    if input.ndim == 2:
        if offsets is not None:
            raise ArgumentError(f"{fn}: offsets must be None for 2-D input (each row is a bag)")
        rows = input.shape[1]
        flat = reshape(input, -1)
        psw = None if per_sample_weights is None else reshape(per_sample_weights, -1)
        if rows == 0:
            from kiln.core.creation import zeros

            return zeros(input.shape[0], weight.shape[1], dtype=weight.dtype)
        member = _members(fn, flat.shape[0], None, rows, False)
    elif input.ndim == 1:
        if offsets is None:
            raise ArgumentError(f"{fn}: 1-D input needs offsets (the start of each bag)")
        flat, psw = input, per_sample_weights
        member = _members(fn, flat.shape[0], offsets, None, include_last_offset)
    else:
        raise ShapeError(f"{fn}: input must be 1-D (with offsets) or 2-D, got "
                         f"{fmt_shape(input.shape)}")
    emb = weight[flat.to(dt.int64)]  # (n, D)
    if padding_idx is not None:
        if padding_idx < 0:
            padding_idx += weight.shape[0]
        member = ops.logical_and(member, unsqueeze(flat != padding_idx, 0))
    if psw is not None:
        emb = emb * unsqueeze(psw, 1)
    m = member.to(weight.dtype)  # (B, n)
    if mode == "max":
        scores = ops.where(unsqueeze(member, 2), unsqueeze(emb, 0), float("-inf"))
        best = ops.max(scores, dims=(1,), keepdim=False) if emb.shape[0] else \
            ops.sum(scores, dims=(1,), keepdim=False)
        count = ops.sum(m, dims=(1,), keepdim=True)
        return ops.where(count > 0, best, 0.0)
    total = ops.matmul(m, emb)
    if mode == "mean":
        count = ops.sum(m, dims=(1,), keepdim=True)
        total = total / ops.maximum(count, 1.0)
    return total


def _max_unpool(fn: str, n: int, input: Tensor, indices: Tensor, kernel_size: Any,
                stride: Any, padding: Any, output_size: Any) -> Tensor:
    from kiln.core.creation import zeros

    want_tensor(fn, "input", input)
    want_tensor(fn, "indices", indices)
    if input.ndim not in (n + 1, n + 2) or tuple(indices.shape) != tuple(input.shape):
        raise ShapeError(f"{fn}: input must be {n + 1}-D or {n + 2}-D and indices of the same "
                         f"shape, got {fmt_shape(input.shape)} and {fmt_shape(indices.shape)}")
    unbatched = input.ndim == n + 1
    x = unsqueeze(input, 0) if unbatched else input
    idx = unsqueeze(indices, 0) if unbatched else indices
    k = ntuple(kernel_size, n, "kernel_size", fn)
    s = k if stride is None else ntuple(stride, n, "stride", fn)
    p = ntuple(padding, n, "padding", fn)
    b, c = x.shape[0], x.shape[1]
    ins = tuple(x.shape[2:])
    if output_size is None:
        size = tuple((ins[i] - 1) * s[i] - 2 * p[i] + k[i] for i in range(n))
    else:
        size = tuple(int(v) for v in tuple(output_size)[-n:])
        if len(size) != n:
            raise ShapeError(f"{fn}: output_size must give {n} spatial sizes, got "
                             f"{output_size!r}")
    total = 1
    for v in size:
        total *= v
    count = 1
    for v in ins:
        count *= v
    plane = zeros(b, c, total, dtype=x.dtype)
    out = ops.scatter(plane, reshape(idx.to(dt.int64), b, c, count), reshape(x, b, c, count),
                      dim=2)
    out = reshape(out, b, c, *size)
    return out[0] if unbatched else out


def max_unpool1d(input: Tensor, indices: Tensor, kernel_size: Any, stride: Any = None,
                 padding: Any = 0, output_size: Any = None) -> Tensor:
    """The inverse of ``max_pool1d(..., return_indices=True)``: values at their positions in a
    zero signal.

    >>> import kiln, kiln.nn.functional as F
    >>> F.max_unpool1d(kiln.tensor([[[5.0]]]), kiln.tensor([[[1]]]), 2).tolist()
    [[[0.0, 5.0]]]
    """
    return _max_unpool("max_unpool1d", 1, input, indices, kernel_size, stride, padding,
                       output_size)


def max_unpool3d(input: Tensor, indices: Tensor, kernel_size: Any, stride: Any = None,
                 padding: Any = 0, output_size: Any = None) -> Tensor:
    """The inverse of ``max_pool3d(..., return_indices=True)``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.max_unpool3d(kiln.ones(1, 1, 1, 1, 1), kiln.tensor([[[[[7]]]]]), 2).sum().item()
    1.0
    """
    return _max_unpool("max_unpool3d", 3, input, indices, kernel_size, stride, padding,
                       output_size)
