"""Conformance entries of torch's sorting, searching, selection, histogram and masked ops
(kiln.core.sortops, selectops, diagops, dataops and kiln.masked), with 0-d and empty forms
where torch takes them.

Ops whose output shape depends on the values (``unique``, ``nonzero``, ``masked_select``...)
run eagerly only: under a trace they refuse with a TraceError (docs/ops.md), which
tests/core/test_sortops.py checks. Functions that take no tensor (``logspace``) run eagerly
only too: a trace has nothing to record.
"""

from __future__ import annotations

import numpy as np
from harness import D, entry, f, t

E = ()  # a 0-d shape
EAGER = ("eager",)
FWD = ("eager", "trace", "aot", "c")


def fe(*args: object, **kwargs: object) -> object:
    """A form run eagerly only."""
    return f(*args, _modes=EAGER, **kwargs)


def i(*shape: int) -> object:
    return t(*shape, dtype="int64")


def dd(*shape: int) -> object:
    """Distinct values (no ties: the order, and a gradient through it, is unique)."""
    return t(*shape, domain="distinct")


def s(*shape: int) -> object:
    """Values with NaN, +-inf and +-0 among them."""
    return t(*shape, domain="special")


def m(*shape: int) -> object:
    return t(*shape, dtype="bool")


def kept(*shape: int) -> object:
    """A mask that keeps the first element of every row (no slice is empty)."""
    return t(*shape, dtype="bool", domain="kept")


def ix(*shape: int, high: int, const: bool = False) -> object:
    return t(*shape, dtype="int64", domain="index", high=high, const=const)


def sorted_seq(*shape: int) -> object:
    """An ascending sequence (its elements in order along the last dim)."""
    return t(*shape, domain="sorted", const=True)


def _np_sort(x: np.ndarray, dim: int = -1, descending: bool = False, **_: object) -> tuple:
    order = np.argsort(-x if descending else x, axis=dim, kind="stable")
    return np.take_along_axis(x, order, dim), order


def _np_unique(x: np.ndarray, sorted: bool = True, return_inverse: bool = False,  # noqa: A002
               return_counts: bool = False, dim: int | None = None) -> object:
    v, inv, c = np.unique(x, return_inverse=True, return_counts=True, axis=dim)
    out = [v] + ([inv.reshape(x.shape) if dim is None else inv] if return_inverse else []) + \
        ([c] if return_counts else [])
    return out[0] if len(out) == 1 else tuple(out)


SORTING = [
    entry("sort", f(dd(3, 4)), f(dd(3, 4), 0), f(dd(5), descending=True), f(t(E)),
          f(t(0, 3)), f(i(2, 5)), f(s(7), _grad=False),
          f(dd(2, 3), dim=1, descending=True, stable=True),
          f(m(6)), ref=_np_sort),
    entry("Tensor.sort", f(dd(2, 5), -1, True), f(dd(2, 300), -1, True)),  # 300: bitonic
    entry("argsort", f(dd(3, 4)), f(i(6), descending=True), f(dd(2, 3), 0), f(t(E)),
          f(i(8), stable=True), ref=lambda x, dim=-1, descending=False, stable=False:
          _np_sort(x, dim, descending)[1], grad=False),
    entry("Tensor.argsort", f(dd(4), dim=0), grad=False),
    entry("msort", f(dd(4, 3)), f(i(5))),
    entry("topk", f(dd(3, 5), 2), f(dd(6), 3, largest=False), f(dd(4, 3), 1, 0),
          f(dd(5), 0), f(t(E), 1)),
    entry("Tensor.topk", f(dd(2, 6), 4, -1, True, True)),
    entry("kthvalue", f(dd(3, 5), 2), f(dd(4, 3), 1, 0, True), f(t(E), 1), f(i(7), 4)),
    entry("median", f(dd(7)), f(dd(3, 4), 1), f(dd(4, 3), 0, True), f(s(6), _grad=False), f(t(E)),
          f(i(5, 2), 0)),
    entry("Tensor.median", f(dd(2, 5), -1)),
    entry("nanmedian", f(s(8), _grad=False), f(dd(3, 4), 1), f(s(2, 6), -1, True, _grad=False),
          f(t(E))),
    entry("mode", f(i(3, 6)), f(i(7), 0), f(i(4, 3), 0, True), f(dd(5)), grad=False),
    entry("Tensor.mode", f(i(2, 5)), grad=False),
    entry("quantile", f(dd(7), 0.3), f(dd(3, 5), t(3, domain="prob", const=True), 1),
          f(dd(4, 3), 0.5, 0, True), f(dd(6), 0.25, interpolation="lower"),
          f(dd(6), 0.6, interpolation="higher"), f(dd(6), 0.45, interpolation="nearest"),
          f(dd(6), 0.4, interpolation="midpoint"), f(s(6), 0.5, _grad=False),
          f(dd(2, 3), 0.7, None, True)),
    entry("nanquantile", f(s(8), 0.5, _grad=False), f(dd(3, 5), 0.2, 1),
          f(s(2, 6), 0.9, -1, True, _grad=False)),
    entry("Tensor.quantile", f(dd(5), 0.5)),
    entry("cummax", f(dd(3, 5), 1), f(i(6), 0), f(s(6), 0, _grad=False), f(t(E), 0),
          f(t(0, 2), 0)),
    entry("cummin", f(dd(4, 3), 0), f(i(2, 5), -1)),
    entry("Tensor.cummax", f(dd(5), 0)),
    entry("logcumsumexp", f(t(3, 5), 1), f(t(6), 0), f(t(E), 0)),
    entry("cumulative_trapezoid", f(t(5)), f(t(2, 5), dx=0.5), f(t(3, 4), t(3, 4), dim=0),
          f(t(4), t(4))),
]

SEARCHING = [
    entry("searchsorted", f(sorted_seq(6), t(3, 4)), f(sorted_seq(6), t(5), right=True),
          f(sorted_seq(2, 5), t(2, 3), side="right"), f(sorted_seq(5), t(E)),
          f(sorted_seq(4), t(4), out_int32=True), f(sorted_seq(4), t(0)),
          ref=lambda a, v, right=False, side=None, out_int32=False, sorter=None:
          np.searchsorted(a, v, "right" if right or side == "right" else "left")
          if a.ndim == 1 else None, grad=False),
    entry("bucketize", f(t(3, 4), sorted_seq(5)), f(t(6), sorted_seq(3), right=True),
          f(t(E), sorted_seq(4)), f(i(5), t(3, domain="sorted", const=True), out_int32=True),
          grad=False),
    entry("histc", f(t(20)), f(t(4, 5), bins=6, min=-1, max=1), f(t(E), 3), f(s(10), 4, -2, 2),
          f(t(0), 5, 0, 1), ref=lambda x, bins=100, min=0, max=0: np.histogram(
              x, bins, (x.min(), x.max()) if min == max else (min, max))[0].astype(x.dtype),
          grad=False),
    entry("Tensor.histc", f(t(3, 4), 5, 0, 0), grad=False),
    entry("histogram", f(t(20), 5), f(t(3, 4), 4, range=(-1.0, 1.0)),
          f(t(12), t(4, domain="distinct", const=True)),
          f(t(10), 3, weight=t(10, domain="positive"), density=True), f(t(0), 2), grad=False),
    entry("histogramdd", f(t(20, 2), [3, 2]), f(t(15, 3), 2, range=[-2.0, 2.0] * 3),
          f(t(10, 2), 3, weight=t(10, domain="positive"), density=True), grad=False),
    entry("isin", f(i(3, 4), i(5)), f(i(6), 2), f(i(E), i(3)), f(t(4), t(2)),
          f(i(5), i(3), invert=True), ref=lambda a, b, invert=False, assume_unique=False:
          np.isin(a, b, invert=invert), grad=False),
]

INDEXING = [
    entry("take", f(t(3, 4), ix(5, high=12, const=True)), f(t(E), ix(2, high=1, const=True)),
          f(t(6), ix(2, 2, high=6, const=True))),
    entry("Tensor.take", f(t(2, 3), ix(4, high=6, const=True))),
    entry("take_along_dim", f(t(3, 4), ix(3, 2, high=4, const=True), 1),
          f(t(3, 4), ix(5, high=12, const=True)), f(t(4, 3), ix(2, 1, high=4, const=True), 0)),
    entry("put", f(t(3, 4), ix(3, high=12, const=True), t(3)),
          f(t(6), ix(4, high=6, const=True), t(4), True)),
    entry("Tensor.put", f(t(2, 2), ix(2, high=4, const=True), t(2), accumulate=True)),
    entry("index_add", f(t(4, 3), 0, ix(5, high=4, const=True), t(5, 3)),
          f(t(3, 4), 1, ix(2, high=4, const=True), t(3, 2), alpha=2.0),
          f(t(2, 3), -1, ix(1, high=3, const=True), t(2, 1))),
    entry("Tensor.index_add", f(t(5), 0, ix(3, high=5, const=True), t(3))),
    entry("index_copy", f(t(4, 3), 0, t(2, dtype="int64", const=True, domain="index", high=1),
                          t(2, 3), _grad=False),
          f(t(3, 4), 1, ix(1, high=4, const=True), t(3, 1))),
    entry("index_fill", f(t(4, 3), 0, ix(2, high=4, const=True), 1.5),
          f(t(3, 4), 1, ix(3, high=4, const=True), -2.0), f(i(5), 0, ix(1, high=5,
                                                                         const=True), 7)),
    entry("Tensor.index_fill", f(t(2, 3), -1, ix(1, high=3, const=True), 0.0)),
    entry("index_reduce", f(t(4, 3), 0, ix(5, high=4, const=True), t(5, 3), "prod"),
          f(t(4, 3), 0, ix(5, high=4, const=True), t(5, 3), "mean"),
          f(dd(4, 3), 0, ix(5, high=4, const=True), dd(5, 3), "amax", include_self=False),
          f(dd(3, 4), 1, ix(2, high=4, const=True), dd(3, 2), "amin")),
    entry("scatter_reduce", f(t(5), 0, ix(6, high=5, const=True), t(6), "sum"),
          f(t(3, 4), 1, ix(3, 3, high=4, const=True), t(3, 3), "prod"),
          f(dd(4, 3), 0, ix(2, 3, high=4, const=True), dd(2, 3), "amax"),
          f(dd(4, 3), 0, ix(3, 3, high=4, const=True), dd(3, 3), "amin", include_self=False),
          f(t(4, 3), 0, ix(2, 2, high=4, const=True), t(3, 3), "mean"),
          f(t(E), 0, ix(E, high=1, const=True), t(E), "sum")),
    entry("Tensor.scatter_reduce", f(t(4), 0, ix(5, high=4, const=True), t(5), "mean",
                                     include_self=False)),
]

DIAGONALS = [
    entry("diag", f(t(3)), f(t(3, 4)), f(t(3), 1), f(t(4, 3), -1), f(t(2), -2)),
    entry("Tensor.diag", f(t(2, 2))),
    entry("diagonal", f(t(3, 4)), f(t(2, 3, 4), 1, 1, 2), f(t(3, 3), -1), f(t(2, 5), 7),
          f(t(0, 3))),
    entry("Tensor.diagonal", f(t(4, 2, 3), 0, -1, 0)),
    entry("linalg.diagonal", f(t(2, 3, 3)), f(t(3, 4), offset=1)),
    entry("diag_embed", f(t(3)), f(t(2, 3), 1), f(t(2, 3), -1, 0, 2), f(t(2, 2), 0, 0, 1)),
    entry("diagflat", f(t(2, 2)), f(t(3), 1), f(t(E))),
    entry("diagonal_scatter", f(t(3, 3), t(3)), f(t(3, 4), t(3), 1), f(t(4, 3), t(3), -1),
          f(t(2, 3, 3), t(2, 3), 0, 1, 2)),
    entry("select_scatter", f(t(3, 4), t(4), 0, 1), f(t(2, 3, 4), t(2, 4), 1, -1)),
    entry("slice_scatter", f(t(6, 3), t(2, 3), 0, 1, 5, 2), f(t(3, 5), t(3, 5), 1),
          f(t(4, 4), t(4, 1), 1, -1)),
    entry("block_diag", f(t(2, 2), t(1, 3)), f(t(E), t(2), t(2, 1)), f(i(2, 2), t(1, 1))),
    entry("combinations", f(t(4)), f(t(3), 3), f(t(3), 2, True), f(t(2), 3)),
    entry("cov", f(t(3, 6)), f(t(5)), f(t(2, 5), correction=0),
          f(t(2, 4), fweights=t(4, dtype="int64", domain="positive", const=True),
            aweights=t(4, domain="positive"))),
    entry("Tensor.cov", f(t(2, 4))),
    entry("corrcoef", f(t(3, 6)), f(t(1, 4))),
    entry("cross", f(t(3), t(3)), f(t(4, 3), t(4, 3), 1), f(t(3, 2), t(3, 2)),
          f(t(2, 3), t(1, 3), -1)),
    entry("linalg.cross", f(t(4, 3), t(4, 3)), f(t(3, 2), t(3, 2), dim=0)),
    entry("constant_pad_nd", f(t(2, 3), (1, 2)), f(t(2, 3), (1, 0, 2, 1), 1.5),
          f(t(3, 4), (-1, 2)), f(t(2, 5), (-1, -2, 1, 0))),
    entry("Tensor.sum_to_size", f(t(2, 3), (1, 3)), f(t(2, 3, 4), 3, 1), f(t(2, 3), (2, 3))),
    entry("fmod", f(t(3, 4), 1.5), f(t(5), t(5, domain="positive")), f(i(6), 3), grad=False),
    entry("ldexp", f(t(4), t(4, dtype="int64", const=True)), f(t(2, 3), t(3))),
    entry("frexp", f(t(3, 4)), f(s(6)), f(t(E)), grad=False),
]

SCATTERS = [
    entry("masked_scatter", f(t(3, 4), m(3, 4), t(3, 4)), f(t(3, 4), m(4), t(4, 4)),
          f(t(4), m(3, 4), t(3, 4)), f(t(E), m(E), t(2))),
    entry("Tensor.masked_scatter", f(t(2, 3), m(2, 3), t(6))),
    entry("index_put", f(t(4, 3), (ix(2, high=4, const=True),), t(2, 3)),
          f(t(4, 3), (ix(5, high=4, const=True), ix(5, high=3, const=True)), t(5), True),
          f(t(3, 3), (t(3, dtype="bool", domain="kept", const=True),), t(3)),
          f(t(4, 3), (ix(3, high=4, const=True),), t(E))),
    entry("Tensor.index_put", f(t(3, 2), (ix(2, 1, high=3, const=True),), t(2, 1, 2), True)),
    entry("nonzero_static", f(m(3, 4), size=4), f(i(6), size=8, fill_value=-3),
          f(t(2, 3), size=0), f(t(E), size=2), f(t(0, 2), size=3), grad=False),
    entry("unravel_index", f(ix(5, high=24), (2, 3, 4)), f(ix(2, 3, high=6), (6,)),
          f(ix(E, high=6), (3, 2)), grad=False),
    entry("repeat_interleave", f(t(2, 3), 2), f(t(2, 3), 3, 1), f(t(E), 2), f(t(3), 0),
          fe(t(3, 2), t(3, dtype="int64", domain="positive"), 0),
          fe(t(3, dtype="int64", domain="positive"))),
    entry("Tensor.repeat_interleave", f(t(2, 2), 2, dim=0)),
    entry("diagonal_copy", f(t(3, 4), 1)),
]

DATA_DEPENDENT = [
    entry("unique", fe(i(10)), fe(i(3, 4), return_inverse=True, return_counts=True),
          fe(i(5, 3), dim=0, return_inverse=True), fe(t(E)), fe(t(6), sorted=False),
          fe(i(2, 0)), modes=EAGER, ref=_np_unique),
    entry("Tensor.unique", fe(i(8), return_counts=True), modes=EAGER),
    entry("unique_consecutive", fe(t(8, dtype="int64", domain="index", high=2)),
          fe(i(3, 4), return_inverse=True, return_counts=True), fe(i(4, 2), dim=0),
          fe(t(E)), modes=EAGER),
    entry("nonzero", fe(m(3, 4)), fe(i(5)), fe(t(E)), fe(m(2, 3), as_tuple=True), fe(t(0, 2)),
          modes=EAGER, ref=lambda x, as_tuple=False: np.nonzero(x) if as_tuple
          else np.argwhere(x)),
    entry("argwhere", fe(i(3, 3)), fe(m(4)), modes=EAGER),
    entry("masked_select", f(t(3, 4), m(3, 4), _modes=("eager", "grad")),
          f(t(3, 4), m(4), _modes=("eager", "grad")), fe(t(E), m(E)), modes=("eager", "grad")),
    entry("bincount", fe(ix(10, high=6)), fe(ix(5, high=3), t(5), 2), fe(ix(0, high=1)),
          fe(ix(4, high=2), minlength=5), modes=EAGER,
          ref=lambda x, weights=None, minlength=0: np.bincount(x, weights, minlength)),
]

MASKED = [
    entry(f"masked.{name}", f(t(3, 4), mask=m(3, 4)), f(t(3, 4), 1, mask=m(3, 4), _grad=False),
          f(t(3, 4), 0, keepdim=True, mask=m(4), _grad=False), f(t(2, 3)),
          f(t(E), mask=m(E), _grad=False), f(t(2, 3), (0, 1), mask=m(2, 3)),
          f(t(3, 5), -1, mask=kept(3, 5)), grad=grad)
    for name, grad in (("sum", True), ("prod", True), ("amax", True), ("amin", True),
                       ("mean", True), ("logsumexp", True))
] + [
    entry("masked.sum", f(i(3, 4), 1, mask=m(3, 4)), f(t(2, 3), dtype=D("float64"))),
    entry("masked.argmax", f(t(3, 4), 1, mask=m(3, 4)), f(t(3, 4), mask=m(3, 4)),
          f(t(3, 4), 0, keepdim=True, mask=m(3, 4)), grad=False),
    entry("masked.argmin", f(t(3, 4), 1, mask=m(3, 4)), f(t(2, 3), 0), grad=False),
    entry("masked.median", f(dd(3, 4), 1, mask=m(3, 4), _grad=False),
          f(dd(3, 5), 1, mask=kept(3, 5)),
          f(dd(5), mask=kept(5)),
          f(dd(3, 4), 0, keepdim=True)),
    entry("masked.norm", f(t(3, 4), 2.0, 1, mask=m(3, 4)), f(t(3, 4), 1.0, mask=m(3, 4)),
          f(t(3, 4), float("inf"), 0, keepdim=True, mask=m(3, 4), _grad=False),
          f(t(3, 4), float("-inf"), 1, mask=m(3, 4), _grad=False), f(t(2, 3), 3.0),
          f(t(2, 3), 0.5, 1, mask=m(2, 3), _grad=False)),
    entry("masked.var", f(t(3, 4), 1, mask=m(3, 4), _grad=False), f(t(3, 5), 1, mask=kept(3, 5)),
          f(t(3, 4), mask=m(3, 4)),
          f(t(3, 4), 0, False, keepdim=True, mask=m(3, 4)), f(t(2, 5), 1, correction=2)),
    entry("masked.std", f(t(3, 4), 1, mask=m(3, 4), _grad=False),
          f(t(4, 6, domain="positive"), 1, mask=kept(4, 6)),
          f(t(2, 3), 0, True)),
    entry("masked.softmax", f(t(3, 4), 1, mask=m(3, 4)), f(t(3, 4), 0),
          f(t(E), 0, mask=m(E), _grad=False)),
    entry("masked.log_softmax", f(t(3, 4), 1, mask=kept(3, 4), _grad=False), f(t(3, 4), 0),
          f(t(2, 5), -1, mask=m(5), _grad=False)),
    entry("masked.softmin", f(t(3, 4), 1, mask=m(3, 4)), f(t(2, 3), 0)),
    entry("masked.normalize", f(t(3, 4), 2.0, 1, mask=m(3, 4)), f(t(3, 4), 1.0, 0),
          f(t(2, 5), 2.0, -1, eps=1e-6)),
    entry("masked.cumsum", f(t(3, 4), 1, mask=m(3, 4)), f(t(5), 0), f(i(2, 3), 0, mask=m(3))),
    entry("masked.cumprod", f(t(3, 4), 1, mask=m(3, 4)), f(t(5), 0)),
    entry("masked.logaddexp", f(t(3, 4), t(3, 4), input_mask=m(3, 4), other_mask=m(3, 4),
                                _grad=False),
          f(t(4), t(4))),
]

CREATION = [
    entry("logspace", fe(0, 3, 4), fe(-1.0, 2.0, 5, 2.0), fe(0, 3, 3, dtype=D("int64")),
          fe(0, 2.5, 4, 2, dtype=D("int32")), fe(1, 3, 1), fe(0, 1, 0),
          fe(0.5, 1.5, 3, dtype=D("float64")), modes=EAGER,
          ref=lambda start, end, steps, base=10.0, dtype=None: np.logspace(
              start, end, steps, base=base).astype(dtype or np.float32)),
]

ENTRIES = (SORTING + SEARCHING + INDEXING + DIAGONALS + SCATTERS + DATA_DEPENDENT + MASKED
           + CREATION)
