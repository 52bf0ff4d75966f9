"""A stable sorting permutation by a bitonic sorting network: O(n log^2 n) compare-exchanges
of static slices, ``where`` and ``cat``, so it traces and compiles like any composite.

:mod:`kiln.core.sortops` ranks short rows by pairwise comparison (O(n^2), a handful of
nodes); rows longer than :data:`RANK_LIMIT` go through this network instead (O(n) memory,
about 30 nodes per stage, log2(n) (log2(n) + 1) / 2 stages).

Each element carries (group, key, index): group orders numbers, NaN and the padding up to a
power of two (pads always last); ties fall back to the index, which makes the network stable.
"""

from __future__ import annotations

from kiln.core import creation
from kiln.core import dtypes as dt
from kiln.core import functional as F
from kiln.core import prims as ops
from kiln.core.tensor import Tensor

RANK_LIMIT = 256


def _before(a: tuple, b: tuple, descending: bool) -> Tensor:
    """Whether element ``a`` = (group, key, index) sorts before ``b``."""
    ga, ka, ia = a
    gb, kb, ib = b
    same_group = ops.eq(ga, gb)
    key_first = ops.gt(ka, kb) if descending else ops.lt(ka, kb)
    same_key = ops.eq(ka, kb)
    first = ops.logical_or(key_first, ops.logical_and(same_key, ops.lt(ia, ib)))
    return ops.logical_or(ops.lt(ga, gb), ops.logical_and(same_group, first))


def _halves(t: Tensor, lead: tuple, blocks: int, stride: int) -> tuple[Tensor, Tensor]:
    r = F.reshape(t, lead + (blocks, 2, stride))
    return F.narrow(r, -2, 0, 1), F.narrow(r, -2, 1, 1)


def order(x: Tensor, descending: bool) -> Tensor:
    """The stable sorting permutation of each row of ``x`` (..., n) (NaN last ascending, first
    descending, as torch)."""
    n = int(x.shape[-1])
    lead = tuple(int(s) for s in x.shape[:-1])
    size = 1 << max(n - 1, 0).bit_length()
    key = x.detach()
    if key.dtype.is_bool:
        key = key.to(dt.int64)
    if key.dtype.is_floating:
        nan = ops.ne(key, key)
        key = ops.where(nan, 0.0, key)
        group = ops.where(nan, 0 if descending else 1, 1 if descending else 0)
    else:
        group = creation.zeros(lead + (n,), dtype=dt.int64)
    group = group.to(dt.int64)
    idx = F.expand(creation.arange(n), *(lead + (n,)))
    if size > n:  # pads: group 2, after every number and NaN
        pads = tuple((0, 0, 0) for _ in lead) + ((0, size - n, 0),)
        key = ops.pad(key, pads=pads, value=0)
        group = ops.pad(group, pads=pads, value=2)
        idx = ops.pad(idx, pads=pads, value=size)
    k = 2
    while k <= size:
        stride = k // 2
        while stride >= 1:
            blocks = size // (2 * stride)
            # the merge at level k sorts element i ascending when (i & k) == 0
            up = [((j * 2 * stride) & k) == 0 for j in range(blocks)]
            asc = F.reshape(creation.tensor(up, dtype=dt.bool_), (blocks, 1, 1))
            parts = [_halves(t, lead, blocks, stride) for t in (group, key, idx)]
            lo = tuple(p[0] for p in parts)
            hi = tuple(p[1] for p in parts)
            swap = ops.where(asc, _before(hi, lo, descending), _before(lo, hi, descending))
            out = []
            for a, b in zip(lo, hi, strict=True):
                out.append(F.reshape(F.cat([ops.where(swap, b, a), ops.where(swap, a, b)], -2),
                                     lead + (size,)))
            group, key, idx = out
            stride //= 2
        k *= 2
    return F.narrow(idx, -1, 0, n) if size > n else idx

