"""torch's selection, indexing, diagonal and statistics composites: ``logspace``, ``take``,
``take_along_dim``, ``put``, ``index_add``/``index_copy``/``index_fill``/``index_reduce``,
``scatter_reduce``, ``isin``, the ``diag`` family and ``*_scatter``, ``block_diag``,
``combinations``, ``cov``/``corrcoef``, ``cross``, ``searchsorted``/``bucketize``, the
histograms, ``constant_pad_nd`` and ``sum_to_size``.

Plain Python over primitives, so autograd, tracing and every backend need nothing new.
"""

from __future__ import annotations

import math
from typing import Any

from kiln.core import creation
from kiln.core import dtypes as dt
from kiln.core import functional as F
from kiln.core import prims as ops
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ValueArgumentError


def _t(fn: str, x: Any, arg: str = "input") -> Tensor:
    if not isinstance(x, Tensor):
        raise ArgumentError(f"{fn}: {arg} must be a kiln.Tensor, got {type(x).__name__}")
    return x


def _scalar(fn: str, arg: str, v: Any) -> float:
    if isinstance(v, Tensor):
        if v.numel() != 1:
            raise ArgumentError(f"{fn}: {arg} must be a number or a one-element tensor, got "
                                f"shape {tuple(v.shape)}")
        return v.item()
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ArgumentError(f"{fn}: {arg} must be a number, got {type(v).__name__}")
    return v


def logspace(start: Any, end: Any, steps: int, base: float = 10.0, *, dtype: Any = None,
             device: Any = None, requires_grad: bool = False) -> Tensor:
    """``steps`` values ``base ** linspace(start, end, steps)``; for an integer dtype the
    bounds are truncated first and each value after, as torch.

    >>> import kiln
    >>> kiln.logspace(0, 3, 4).tolist()
    [1.0, 10.0, 100.0, 1000.0]
    """
    start, end = _scalar("logspace", "start", start), _scalar("logspace", "end", end)
    base = _scalar("logspace", "base", base)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueArgumentError(f"logspace: steps must be an int >= 0, got {steps!r}")
    d = dt.get_dtype(dtype) if dtype is not None else dt.DEFAULT_FLOAT
    if not d.is_floating:
        start, end = int(start), int(end)
    exps = creation.linspace(float(start), float(end), steps, dtype=dt.float64)
    out = ops.pow(creation.full((), float(base), dtype=dt.float64), exps).to(d)
    return out.requires_grad_(True) if requires_grad else out



# ------------------------------------------------------------------------------------------
# searching and histograms


def _values_tensor(v: Any, like: Tensor) -> tuple[Tensor, bool]:
    """(a tensor, whether ``v`` was a Python number) for searchsorted's and bucketize's
    values."""
    if isinstance(v, Tensor):
        return v, False
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ArgumentError(f"expected a tensor or a number, got {type(v).__name__}")
    return creation.full((), v, dtype=like.dtype if isinstance(v, float) or
                         not like.dtype.is_floating else like.dtype), True


def _count_before(seq: Tensor, v: Tensor, right: bool, out_int32: bool) -> Tensor:
    """The insertion index of each ``v`` in each sorted row of ``seq`` (1-D: shared by all
    values), as torch's binary search: left counts ``!(s >= v)``, right ``!(s > v)``."""
    if seq.ndim <= 1:
        s = F.reshape(seq, (1,) * v.ndim + (-1,))
        vv = F.unsqueeze(v, -1)
    else:
        s = F.unsqueeze(seq, -2)  # (..., 1, m)
        vv = F.unsqueeze(v, -1)  # (..., k, 1)
    if s.dtype != vv.dtype:
        common = dt.promote_types(s.dtype, vv.dtype)
        s, vv = s.to(common), vv.to(common)
    past = ops.logical_not(ops.gt(s, vv) if right else ops.ge(s, vv))
    return F.sum(past.to(dt.int64), -1).to(dt.int32 if out_int32 else dt.int64)


def searchsorted(sorted_sequence: Tensor, input: Any, *, out_int32: bool = False,
                 right: bool = False, side: str | None = None, sorter: Tensor | None = None
                 ) -> Tensor:
    """Where each value of ``input`` would go in the sorted last dim of ``sorted_sequence``
    to keep it sorted (before equal elements, or after with ``right=True``/``side="right"``;
    ``sorter`` gives the order of an unsorted sequence).

    >>> import kiln
    >>> kiln.searchsorted(kiln.tensor([1.0, 3.0, 5.0]), kiln.tensor([3.0, 4.0])).tolist()
    [1, 2]
    """
    seq = _t("searchsorted", sorted_sequence, "sorted_sequence")
    if side is not None:
        if side not in ("left", "right"):
            raise ValueArgumentError(f"searchsorted: side must be 'left' or 'right', got "
                                     f"{side!r}")
        if right and side == "left":
            raise ArgumentError("searchsorted: side='left' and right=True contradict each "
                                "other")
        right = side == "right"
    if seq.ndim == 0:
        raise ArgumentError("searchsorted: sorted_sequence must have at least 1 dim, got a "
                            "0-d tensor")
    v, _ = _values_tensor(input, seq)
    if sorter is not None:
        seq = ops.gather(seq, _t("searchsorted", sorter, "sorter").to(dt.int64),
                         dim=seq.ndim - 1)
    if seq.ndim > 1 and tuple(seq.shape[:-1]) != tuple(v.shape[:-1]):
        raise ArgumentError(f"searchsorted: sorted_sequence's leading dims "
                            f"{tuple(seq.shape[:-1])} must match input's "
                            f"{tuple(v.shape[:-1])} (or be a 1-D sequence)")
    return _count_before(seq, v, right, out_int32)


def bucketize(input: Any, boundaries: Tensor, *, out_int32: bool = False,
              right: bool = False) -> Tensor:
    """The bucket of each element between the sorted 1-D ``boundaries`` (``boundaries[i-1] <
    x <= boundaries[i]``, or ``<=`` / ``<`` with ``right=True``).

    >>> import kiln
    >>> kiln.bucketize(kiln.tensor([0.5, 2.0, 9.0]), kiln.tensor([1.0, 2.0, 3.0])).tolist()
    [0, 1, 3]
    """
    b = _t("bucketize", boundaries, "boundaries")
    if b.ndim != 1:
        raise ArgumentError(f"bucketize: boundaries must be 1-D, got shape {tuple(b.shape)}")
    v, _ = _values_tensor(input, b)
    return _count_before(b, v, right, out_int32)


def _bin_of(x: Tensor, edges: Tensor) -> tuple[Tensor, Tensor]:
    """(bin index, inside) of each element of ``x`` against sorted ``edges`` (bins + 1): the
    last bin includes its right edge, elements outside (and NaN) are not inside."""
    nb = int(edges.shape[0]) - 1
    xe = F.unsqueeze(x, -1)
    inner = F.narrow(edges, 0, 1, max(nb - 1, 0))
    idx = F.sum(ops.ge(xe, inner).to(dt.int64), -1)
    inside = ops.logical_and(ops.ge(x, F.narrow(edges, 0, 0, 1)),
                             ops.le(x, F.narrow(edges, 0, nb, 1)))
    return idx, inside


def _count_bins(flat_bin: Tensor, inside: Tensor, nbins: int, weight: Tensor | None,
                dtype: Any) -> Tensor:
    hit = ops.logical_and(ops.eq(F.unsqueeze(flat_bin, -1), creation.arange(nbins)),
                          F.unsqueeze(inside, -1))
    w = hit.to(dtype)
    if weight is not None:
        w = ops.mul(w, F.unsqueeze(F.reshape(weight, (-1,)).to(dtype), -1))
    return F.sum(w, 0)


def histc(input: Tensor, bins: int = 100, min: Any = 0, max: Any = 0) -> Tensor:  # noqa: A002
    """Counts of the elements in ``bins`` equal bins between ``min`` and ``max`` (the data's
    range when both are equal; elements outside are left out).

    >>> import kiln
    >>> kiln.histc(kiln.tensor([1.0, 2.0, 1.0]), bins=4, min=0, max=3).tolist()
    [0.0, 2.0, 1.0, 0.0]
    """
    x = _t("histc", input)
    if not x.dtype.is_floating:
        raise ArgumentError(f"histc: input must be a float tensor, got {x.dtype}")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins <= 0:
        raise ValueArgumentError(f"histc: bins must be an int > 0, got {bins!r}")
    flat = F.reshape(x, (-1,))
    lo, hi = _scalar("histc", "min", min), _scalar("histc", "max", max)
    if lo > hi:
        raise ValueArgumentError(f"histc: max must be >= min, got min={lo}, max={hi}")
    if lo == hi and flat.shape[0]:
        finite = ops.logical_not(ops.ne(flat, flat))
        lo_t = F.amin(ops.where(finite, flat, math.inf))
        hi_t = F.amax(ops.where(finite, flat, -math.inf))
    else:
        lo_t = creation.full((), float(lo), dtype=x.dtype)
        hi_t = creation.full((), float(hi), dtype=x.dtype)
    same = ops.eq(lo_t, hi_t)
    lo_t, hi_t = ops.where(same, ops.sub(lo_t, 1.0), lo_t), ops.where(same, ops.add(hi_t, 1.0),
                                                                      hi_t)
    # torch's histc: pos = (x - min) * bins / (max - min), truncated; max goes to the last bin
    pos = ops.floor(ops.div(ops.mul(ops.sub(flat, lo_t), float(bins)), ops.sub(hi_t, lo_t)))
    pos = ops.minimum(ops.maximum(pos, 0.0), float(bins - 1)).to(dt.int64)
    inside = ops.logical_and(ops.ge(flat, lo_t), ops.le(flat, hi_t))
    return _count_bins(pos, inside, bins, None, x.dtype)


def _edges(fn: str, x: Tensor, bins: Any, rng: Any, k: int, lo_hi: Any) -> Tensor:
    """The bin edges of dim ``k`` of the (n, d) samples ``x``."""
    if isinstance(bins, Tensor):
        if bins.ndim != 1 or bins.shape[0] < 1:
            raise ArgumentError(f"{fn}: bins must be an int or a 1-D tensor of edges, got shape "
                                f"{tuple(bins.shape)}")
        return bins.to(x.dtype)
    if isinstance(bins, bool) or not isinstance(bins, int) or bins <= 0:
        raise ValueArgumentError(f"{fn}: bins must be an int > 0 or a tensor of edges, got "
                                 f"{bins!r}")
    col = F.narrow(x, 1, k, 1) if x.ndim == 2 else x
    if lo_hi is not None:
        lo_t = creation.full((), float(lo_hi[0]), dtype=x.dtype)
        hi_t = creation.full((), float(lo_hi[1]), dtype=x.dtype)
    elif col.numel() == 0:  # torch: the range [0, 1]
        lo_t = creation.full((), 0.0, dtype=x.dtype)
        hi_t = creation.full((), 1.0, dtype=x.dtype)
    else:
        lo_t, hi_t = F.amin(col), F.amax(col)
    same = ops.eq(lo_t, hi_t)
    lo_t, hi_t = ops.where(same, ops.sub(lo_t, 0.5), lo_t), ops.where(same, ops.add(hi_t, 0.5),
                                                                      hi_t)
    steps = creation.arange(bins + 1, dtype=x.dtype)
    edges = ops.add(lo_t, ops.mul(ops.sub(hi_t, lo_t), ops.div(steps, float(bins))))
    # the last edge exactly the maximum, as linspace's
    return ops.where(ops.eq(steps, float(bins)), hi_t, edges)


def _histdd(fn: str, x: Tensor, bins: Any, rng: Any, weight: Any, density: bool
            ) -> tuple[Tensor, list[Tensor]]:
    n_dims = int(x.shape[1])
    if isinstance(bins, (list, tuple)):
        if len(bins) != n_dims:
            raise ArgumentError(f"{fn}: bins must have one entry per dim ({n_dims}), got "
                                f"{len(bins)}")
        per = list(bins)
    else:
        per = [bins] * n_dims
    if rng is not None:
        rng = [float(r) for r in rng]
        if len(rng) != 2 * n_dims:
            raise ArgumentError(f"{fn}: range must hold (min, max) for each of the {n_dims} "
                                f"dims, got {len(rng)} numbers")
    edges = [_edges(fn, x, per[k], rng, k, None if rng is None else rng[2 * k:2 * k + 2])
             for k in range(n_dims)]
    counts = [int(e.shape[0]) - 1 for e in edges]
    flat = creation.zeros(tuple(x.shape[:1]), dtype=dt.int64)
    inside = ops.eq(flat, 0)
    for k, e in enumerate(edges):
        idx, ok = _bin_of(F.reshape(F.narrow(x, 1, k, 1), (-1,)), e)
        flat = ops.add(ops.mul(flat, counts[k]), idx)
        inside = ops.logical_and(inside, ok)
    total = math.prod(counts)
    w = _t(fn, weight, "weight") if weight is not None else None
    hist = F.reshape(_count_bins(flat, inside, total, w, x.dtype), tuple(counts))
    if density:
        vol = None
        for k, e in enumerate(edges):
            width = ops.sub(F.narrow(e, 0, 1, counts[k]), F.narrow(e, 0, 0, counts[k]))
            shape = [1] * n_dims
            shape[k] = counts[k]
            width = F.reshape(width, tuple(shape))
            vol = width if vol is None else ops.mul(vol, width)
        hist = ops.div(hist, ops.mul(F.sum(hist), vol))
    return hist, edges


def histogram(input: Tensor, bins: Any = 100, *, range: Any = None,  # noqa: A002
              weight: Tensor | None = None, density: bool = False) -> Any:
    """``(hist, bin_edges)``: counts (or summed ``weight``, or a density) of the elements in
    ``bins`` equal bins over ``range`` (the data's range by default), or between the edges of a
    1-D tensor ``bins``.

    >>> import kiln
    >>> kiln.histogram(kiln.tensor([1.0, 2.0, 1.0]), bins=2).hist.tolist()
    [2.0, 1.0]
    """
    from kiln.core.sortops import Histogram

    x = _t("histogram", input)
    if not x.dtype.is_floating:
        raise ArgumentError(f"histogram: input must be a float tensor, got {x.dtype}")
    hist, edges = _histdd("histogram", F.reshape(x, (-1, 1)), [bins], range, weight, density)
    return Histogram(hist, edges[0])


def histogramdd(input: Tensor, bins: Any = 10, *, range: Any = None,  # noqa: A002
                weight: Tensor | None = None, density: bool = False) -> Any:
    """``(hist, bin_edges)`` of the points in the last dim of ``input`` (N, D): a D-dim
    histogram with ``bins`` per dim (an int, a list of ints or of edge tensors).

    >>> import kiln
    >>> kiln.histogramdd(kiln.tensor([[0.0, 0.0], [1.0, 1.0]]), bins=2).hist.tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    from kiln.core.sortops import HistogramDD

    x = _t("histogramdd", input)
    if not x.dtype.is_floating or x.ndim < 1:
        raise ArgumentError(f"histogramdd: input must be a float tensor of at least 1 dim, "
                            f"got {x.dtype} of shape {tuple(x.shape)}")
    pts = F.reshape(x, (-1, int(x.shape[-1])))
    if weight is not None:
        weight = F.reshape(_t("histogramdd", weight, "weight"), (-1,))
    hist, edges = _histdd("histogramdd", pts, bins, range, weight, density)
    return HistogramDD(hist, tuple(edges))


# ------------------------------------------------------------------------------------------
# taking, putting and index_* ops


def _wrap(index: Tensor, n: Any) -> Tensor:
    """Negative indices counted from the end, as torch's take/put."""
    i = index.to(dt.int64)
    return ops.where(ops.lt(i, 0), ops.add(i, n), i)


def take(input: Tensor, index: Tensor) -> Tensor:
    """The elements of the flattened ``input`` at ``index`` (negative from the end), in
    ``index``'s shape.

    >>> import kiln
    >>> kiln.take(kiln.tensor([[1, 2], [3, 4]]), kiln.tensor([0, -1])).tolist()
    [1, 4]
    """
    x, i = _t("take", input), _t("take", index, "index")
    flat = F.reshape(x, (-1,))
    idx = F.reshape(_wrap(i, flat.shape[0]), (-1,))
    return F.reshape(ops.gather(flat, idx, dim=0), tuple(i.shape))


def take_along_dim(input: Tensor, indices: Tensor, dim: int | None = None) -> Tensor:
    """Gather along ``dim`` with ``indices`` broadcast against ``input`` (the flattened
    ``input`` when ``dim`` is None).

    >>> import kiln
    >>> kiln.take_along_dim(kiln.tensor([[10, 30, 20]]), kiln.tensor([[1, 2]]), 1).tolist()
    [[30, 20]]
    """
    from kiln.core.prims.shapes import norm_dim
    from kiln.core.shapeops import broadcast_shapes

    x, i = _t("take_along_dim", input), _t("take_along_dim", indices, "indices")
    if dim is None:
        return ops.gather(F.reshape(x, (-1,)), F.reshape(_wrap(i, x.numel()), (-1,)), dim=0)
    d = norm_dim("take_along_dim", dim, x.ndim)
    if i.ndim != x.ndim:
        raise ArgumentError(f"take_along_dim: input and indices must have the same number of "
                            f"dims, got {x.ndim} and {i.ndim}")
    xs = list(x.shape)
    js = list(i.shape)
    xs[d] = js[d] = 1
    common = list(broadcast_shapes(tuple(xs), tuple(js)))
    xb = F.expand(x, *[x.shape[k] if k == d else common[k] for k in range(x.ndim)])
    ib = F.expand(i, *[i.shape[k] if k == d else common[k] for k in range(x.ndim)])
    return ops.gather(xb, _wrap(ib, x.shape[d]), dim=d)


def put(input: Tensor, index: Tensor, source: Tensor, accumulate: bool = False) -> Tensor:
    """``input`` (as if flattened) with ``source``'s elements written (or added, with
    ``accumulate``) at ``index``, out of place.

    >>> import kiln
    >>> kiln.put(kiln.zeros(2, 2), kiln.tensor([0, 3]), kiln.tensor([1.0, 2.0])).tolist()
    [[1.0, 0.0], [0.0, 2.0]]
    """
    x = _t("put", input)
    i, src = _t("put", index, "index"), _t("put", source, "source")
    if i.numel() != src.numel():
        raise ArgumentError(f"put: index and source must have the same number of elements, "
                            f"got {i.numel()} and {src.numel()}")
    flat = F.reshape(x, (-1,))
    idx = F.reshape(_wrap(i, flat.shape[0]), (-1,))
    s = F.reshape(src.to(x.dtype), (-1,))
    prim = ops.scatter_add if accumulate else ops.scatter
    return F.reshape(prim(flat, idx, s, dim=0), tuple(x.shape))


def _spread(fn: str, x: Tensor, dim: int, index: Tensor, source: Tensor) -> tuple:
    """(dim, index expanded to ``source``'s shape) for the index_* ops."""
    from kiln.core.prims.shapes import norm_dim

    d = norm_dim(fn, dim, max(x.ndim, 1))
    i = _t(fn, index, "index")
    if i.ndim > 1 or not i.dtype.is_integer:
        raise ArgumentError(f"{fn}: index must be a 1-D integer tensor, got {i.dtype} of "
                            f"shape {tuple(i.shape)}")
    src = source
    if src.ndim == 0 and x.ndim:
        src = F.reshape(src, (1,) * x.ndim)
    shape = [1] * max(src.ndim, 1)
    shape[d] = -1
    idx = F.expand(F.reshape(_wrap(i, x.shape[d] if x.ndim else 1), tuple(shape)),
                   *tuple(src.shape if src.ndim else (1,)))
    return d, idx, src


def index_add(input: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha: Any = 1
              ) -> Tensor:
    """``input`` with ``alpha * source``'s slices added at ``index`` along ``dim``.

    >>> import kiln
    >>> src = kiln.tensor([1.0, 2.0, 3.0])
    >>> kiln.index_add(kiln.zeros(3), 0, kiln.tensor([0, 0, 2]), src).tolist()
    [3.0, 0.0, 3.0]
    """
    x = _t("index_add", input)
    src = _t("index_add", source, "source").to(x.dtype)
    if alpha != 1:
        src = ops.mul(src, alpha)
    if x.ndim == 0:
        return ops.add(x, F.sum(src))
    d, idx, src = _spread("index_add", x, dim, index, src)
    return ops.scatter_add(x, idx, src, dim=d)


def index_copy(input: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
    """``input`` with ``source``'s slices written at ``index`` along ``dim``.

    >>> import kiln
    >>> kiln.index_copy(kiln.zeros(3), 0, kiln.tensor([2]), kiln.tensor([5.0])).tolist()
    [0.0, 0.0, 5.0]
    """
    x = _t("index_copy", input)
    src = _t("index_copy", source, "source").to(x.dtype)
    if x.ndim == 0:
        return F.reshape(src, ())
    d, idx, src = _spread("index_copy", x, dim, index, src)
    return ops.scatter(x, idx, src, dim=d)


def index_fill(input: Tensor, dim: int, index: Tensor, value: Any) -> Tensor:
    """``input`` with the slices at ``index`` along ``dim`` set to ``value``.

    >>> import kiln
    >>> kiln.index_fill(kiln.zeros(3), 0, kiln.tensor([1]), 7.0).tolist()
    [0.0, 7.0, 0.0]
    """
    from kiln.core.prims.shapes import norm_dim

    x = _t("index_fill", input)
    i = F.reshape(_t("index_fill", index, "index"), (-1,))
    if x.ndim == 0:  # one element: index [0] (or -1) fills it
        return F.reshape(index_fill(F.reshape(x, (1,)), 0, i, value), ())
    d = norm_dim("index_fill", dim, x.ndim)
    n = x.shape[d]
    hit = F.sum(ops.eq(F.unsqueeze(creation.arange(n), -1), _wrap(i, n)).to(dt.int64), -1)
    shape = [1] * x.ndim
    shape[d] = n
    mask = F.reshape(ops.gt(hit, 0), tuple(shape))
    v = value.to(x.dtype) if isinstance(value, Tensor) else value
    return ops.where(mask, v, x)


_REDUCES = ("sum", "prod", "mean", "amax", "amin")


def scatter_reduce(input: Tensor, dim: int, index: Tensor, src: Tensor, reduce: str, *,
                   include_self: bool = True) -> Tensor:
    """``input`` with ``src``'s elements reduced (``"sum"``, ``"prod"``, ``"mean"``,
    ``"amax"``, ``"amin"``) into the places ``index`` names along ``dim``; ``include_self``
    says whether ``input``'s own values take part.

    >>> import kiln
    >>> src = kiln.tensor([1.0, 5.0, 2.0])
    >>> kiln.scatter_reduce(kiln.zeros(2), 0, kiln.tensor([0, 0, 1]), src, "amax").tolist()
    [5.0, 2.0]
    """
    from kiln.core.prims.shapes import norm_dim
    from kiln.core.sortops import _back, _last

    x = _t("scatter_reduce", input)
    if reduce not in _REDUCES:
        raise ValueArgumentError(f"scatter_reduce: reduce must be one of {_REDUCES}, got "
                                 f"{reduce!r}")
    i, s = _t("scatter_reduce", index, "index"), _t("scatter_reduce", src, "src").to(x.dtype)
    if x.ndim == 0:
        x1 = F.reshape(x, (1,))
        out = scatter_reduce(x1, 0, F.reshape(i, (-1,)), F.reshape(s, (-1,)), reduce,
                             include_self=include_self)
        return F.reshape(out, ())
    d = norm_dim("scatter_reduce", dim, x.ndim)
    if i.ndim != x.ndim:
        raise ArgumentError(f"scatter_reduce: index must have input's {x.ndim} dims, got "
                            f"{i.ndim}")
    if i.numel() == 0:
        return x
    # the corner of src that index covers, and of input that it can reach
    for k in range(x.ndim):
        if s.shape[k] != i.shape[k]:
            s = F.narrow(s, k, 0, int(i.shape[k]))
    region = x
    for k in range(x.ndim):
        if k != d and region.shape[k] != i.shape[k]:
            region = F.narrow(region, k, 0, int(i.shape[k]))
    t = int(x.shape[d])
    il, sl, rl = _last(i, d).to(dt.int64), _last(s, d), _last(region, d)
    hit = ops.eq(F.unsqueeze(il, -2), F.unsqueeze(creation.arange(t), -1))  # (..., T, S)
    sv = F.unsqueeze(sl, -2)
    any_hit = F.sum(hit.to(dt.int64), -1)
    if reduce in ("sum", "mean"):
        red = F.sum(ops.where(hit, sv, 0), -1)
        if include_self:
            red = ops.add(red, rl)
        if reduce == "mean":
            cnt = ops.add(any_hit, 1 if include_self else 0)
            cnt = ops.maximum(cnt, 1).to(x.dtype)
            red = ops.div(red, cnt) if x.dtype.is_floating else ops.floor_divide(red, cnt)
    elif reduce == "prod":
        red = ops.prod(ops.where(hit, sv, 1), dims=(rl.ndim,), keepdim=False)
        if include_self:
            red = ops.mul(red, rl)
    else:
        larger = reduce == "amax"
        fill = (-math.inf if larger else math.inf) if x.dtype.is_floating else \
            (F.amin(sl) if larger else F.amax(sl))
        masked = ops.where(hit, sv, fill)
        red = F.amax(masked, -1) if larger else F.amin(masked, -1)
        if include_self:
            red = ops.maximum(red, rl) if larger else ops.minimum(red, rl)
    red = ops.where(ops.gt(any_hit, 0), red, rl).to(x.dtype)
    red = _back(red, d)
    if tuple(red.shape) == tuple(x.shape):
        return red
    pads = tuple((0, int(x.shape[k]) - int(red.shape[k]), 0) for k in range(x.ndim))
    inside = ops.pad(creation.ones(tuple(red.shape), dtype=dt.bool_), pads=pads, value=0)
    return ops.where(inside, ops.pad(red, pads=pads, value=0), x)


def index_reduce(input: Tensor, dim: int, index: Tensor, source: Tensor, reduce: str, *,
                 include_self: bool = True) -> Tensor:
    """``input`` with ``source``'s slices reduced (``"prod"``, ``"mean"``, ``"amax"``,
    ``"amin"``) into the slices ``index`` names along ``dim``.

    >>> import kiln
    >>> src = kiln.tensor([2.0, 3.0])
    >>> kiln.index_reduce(kiln.ones(2), 0, kiln.tensor([0, 0]), src, "prod").tolist()
    [6.0, 1.0]
    """
    x = _t("index_reduce", input)
    if reduce not in ("prod", "mean", "amax", "amin"):
        raise ValueArgumentError(f"index_reduce: reduce must be 'prod', 'mean', 'amax' or "
                                 f"'amin', got {reduce!r}")
    src = _t("index_reduce", source, "source").to(x.dtype)
    if x.ndim == 0:
        return scatter_reduce(x, 0, F.reshape(index, ()), F.reshape(src, ()), reduce,
                              include_self=include_self)
    d, idx, src = _spread("index_reduce", x, dim, index, src)
    return scatter_reduce(x, d, idx, src, reduce, include_self=include_self)


def isin(elements: Any, test_elements: Any, *, assume_unique: bool = False,
         invert: bool = False) -> Tensor:
    """Whether each of ``elements`` occurs in ``test_elements`` (either may be a number).

    >>> import kiln
    >>> kiln.isin(kiln.tensor([1, 2, 3]), kiln.tensor([2, 5])).tolist()
    [False, True, False]
    """
    if not isinstance(elements, Tensor) and not isinstance(test_elements, Tensor):
        raise ArgumentError("isin: elements or test_elements must be a kiln.Tensor")
    e = elements if isinstance(elements, Tensor) else creation.tensor(elements)
    t = test_elements if isinstance(test_elements, Tensor) else creation.tensor(test_elements)
    flat = F.reshape(t, (-1,))
    hit = ops.gt(F.sum(ops.eq(F.unsqueeze(e, -1), flat).to(dt.int64), -1), 0)
    return ops.logical_not(hit) if invert else hit


FUNCTIONS = ("logspace", "searchsorted", "bucketize", "histc", "histogram", "histogramdd",
             "take", "take_along_dim", "put", "index_add", "index_copy", "index_fill",
             "index_reduce", "scatter_reduce", "isin")
METHODS: tuple = ("histc", "histogram", "take", "take_along_dim", "put", "index_add",
                  "index_copy", "index_fill", "index_reduce", "scatter_reduce")


def install(cls: type) -> None:
    """Attach the Tensor methods of this module to ``cls``."""
    glob = globals()
    for name in METHODS:
        setattr(cls, name, glob[name])
