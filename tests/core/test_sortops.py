"""The sorting, searching, histogram, masked and data-dependent ops against NumPy (the
conformance table runs them in every mode against torch): ties and NaN in sorting, every
quantile interpolation, histograms, the refusal of data-dependent shapes under tracing."""

from __future__ import annotations

import numpy as np
import pytest

import kiln


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_sort_is_stable_with_ties_and_puts_nan_last() -> None:
    a = _rng().integers(0, 4, (3, 17))
    got = kiln.sort(kiln.tensor(a), dim=1)
    order = np.argsort(a, axis=1, kind="stable")
    np.testing.assert_array_equal(got.indices.numpy(), order)
    np.testing.assert_array_equal(got.values.numpy(), np.take_along_axis(a, order, 1))
    x = kiln.tensor([2.0, float("nan"), -1.0, float("inf")])
    assert kiln.argsort(x).tolist() == [2, 0, 3, 1]
    assert kiln.argsort(x, descending=True).tolist() == [1, 3, 0, 2]


def test_topk_kthvalue_median_against_numpy() -> None:
    a = _rng().standard_normal((4, 9)).astype(np.float32)
    x = kiln.tensor(a)
    np.testing.assert_array_equal(kiln.topk(x, 3).values.numpy(), -np.sort(-a, 1)[:, :3])
    np.testing.assert_array_equal(kiln.kthvalue(x, 4).values.numpy(), np.sort(a, 1)[:, 3])
    np.testing.assert_array_equal(kiln.median(x, 1).values.numpy(), np.sort(a, 1)[:, 4])


@pytest.mark.parametrize("how", ["linear", "lower", "higher", "midpoint", "nearest"])
def test_quantile_interpolations_against_numpy(how: str) -> None:
    a = _rng().standard_normal((3, 10))
    q = np.array([0.0, 0.13, 0.5, 0.77, 1.0])
    got = kiln.quantile(kiln.tensor(a), kiln.tensor(q), dim=1, interpolation=how)
    np.testing.assert_allclose(got.numpy(), np.quantile(a, q, axis=1, method=how), atol=1e-12)
    a[0, 3] = np.nan
    got = kiln.nanquantile(kiln.tensor(a), 0.4, dim=1, interpolation=how)
    np.testing.assert_allclose(got.numpy(), np.nanquantile(a, 0.4, axis=1, method=how),
                               atol=1e-12)


def test_quantile_refuses_q_outside_the_unit_interval() -> None:
    with pytest.raises(kiln.KilnError, match=r"q must be in \[0, 1\]"):
        kiln.quantile(kiln.ones(3), 1.5)


def test_searchsorted_and_bucketize_against_numpy() -> None:
    rng = _rng()
    seq = np.sort(rng.standard_normal(20))
    v = rng.standard_normal((3, 5))
    for side in ("left", "right"):
        got = kiln.searchsorted(kiln.tensor(seq), kiln.tensor(v), side=side)
        np.testing.assert_array_equal(got.numpy(), np.searchsorted(seq, v, side))
    perm = rng.permutation(20)
    got = kiln.searchsorted(kiln.tensor(seq[perm]), kiln.tensor(v),
                            sorter=kiln.tensor(np.argsort(perm)))
    np.testing.assert_array_equal(got.numpy(), np.searchsorted(seq, v))
    assert kiln.searchsorted(kiln.tensor([1.0, 2.0]), 1.5).item() == 1
    assert kiln.bucketize(kiln.tensor([1.0, 2.5]), kiln.tensor([1.0, 2.0, 3.0]),
                          right=True).tolist() == [1, 2]


def test_histograms_against_numpy() -> None:
    a = _rng().standard_normal(200)
    hist, edges = kiln.histogram(kiln.tensor(a), bins=7)
    want, want_edges = np.histogram(a, bins=7)
    np.testing.assert_array_equal(hist.numpy(), want)
    np.testing.assert_allclose(edges.numpy(), want_edges, atol=1e-12)
    got = kiln.histc(kiln.tensor(a), bins=5, min=-1, max=1)
    np.testing.assert_array_equal(got.numpy(), np.histogram(a, 5, (-1, 1))[0])
    pts = _rng().standard_normal((50, 2))
    hist, _ = kiln.histogramdd(kiln.tensor(pts), bins=[3, 4])
    np.testing.assert_array_equal(hist.numpy(), np.histogramdd(pts, bins=[3, 4])[0])


def test_unique_against_numpy() -> None:
    a = _rng().integers(0, 3, (6, 2))
    vals, inv, counts = kiln.unique(kiln.tensor(a), dim=0, return_inverse=True,
                                    return_counts=True)
    want, winv, wcounts = np.unique(a, axis=0, return_inverse=True, return_counts=True)
    np.testing.assert_array_equal(vals.numpy(), want)
    np.testing.assert_array_equal(inv.numpy(), winv.reshape(-1))
    np.testing.assert_array_equal(counts.numpy(), wcounts)


def test_cov_against_numpy() -> None:
    rng = _rng()
    a = rng.standard_normal((3, 8))
    fw, aw = rng.integers(1, 4, 8), rng.uniform(0.5, 2.0, 8)
    got = kiln.cov(kiln.tensor(a), fweights=kiln.tensor(fw), aweights=kiln.tensor(aw))
    np.testing.assert_allclose(got.numpy(), np.cov(a, fweights=fw, aweights=aw), atol=1e-12)
    np.testing.assert_allclose(kiln.corrcoef(kiln.tensor(a)).numpy(), np.corrcoef(a),
                               atol=1e-12)


@pytest.mark.parametrize("call", [
    lambda x: kiln.unique(x),
    lambda x: kiln.unique_consecutive(x),
    lambda x: kiln.nonzero(x),
    lambda x: kiln.argwhere(x),
    lambda x: kiln.masked_select(x, x > 0),
    lambda x: kiln.bincount(x.long().abs()),
])
def test_data_dependent_shapes_refuse_under_tracing(call) -> None:  # noqa: ANN001
    x = kiln.tensor([1.0, -2.0, 3.0])
    call(x)  # eagerly fine
    with pytest.raises(kiln.KilnError, match="output shape depends on the values"):
        kiln.trace(call, x)


def test_masked_select_gradient_reaches_the_selected_elements() -> None:
    x = kiln.tensor([1.0, -2.0, 3.0], requires_grad=True)
    kiln.masked_select(x, kiln.tensor([True, False, True])).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 1.0]


def test_masked_identities_on_a_fully_masked_row() -> None:
    x = kiln.tensor([[1.0, 2.0], [3.0, 4.0]])
    mask = kiln.tensor([[True, True], [False, False]])
    assert kiln.masked.sum(x, 1, mask=mask).tolist() == [3.0, 0.0]
    assert kiln.masked.amax(x, 1, mask=mask).tolist() == [2.0, float("-inf")]
    assert np.isnan(kiln.masked.mean(x, 1, mask=mask).numpy()[1])
    with pytest.raises(kiln.KilnError, match="mask must broadcast"):
        kiln.masked.sum(x, mask=kiln.ones(1, 2, 2, dtype=kiln.bool_))


def test_sorting_in_the_c_backend() -> None:
    f = kiln.compile(lambda x: (kiln.sort(x, 1).values, kiln.topk(x, 2).indices),
                     backend="c")
    a = _rng().standard_normal((3, 6)).astype(np.float32)
    values, idx = f(kiln.tensor(a))
    np.testing.assert_array_equal(values.numpy(), np.sort(a, 1))
    np.testing.assert_array_equal(idx.numpy(), np.argsort(-a, 1)[:, :2])


def test_nonzero_static_traces_and_compiles() -> None:
    x = kiln.tensor([[0.0, 2.0], [3.0, 0.0]])
    want = [[0, 1], [1, 0], [-1, -1]]
    assert kiln.nonzero_static(x, size=3).tolist() == want
    gm = kiln.trace(lambda v: kiln.nonzero_static(v, size=3), x)
    assert gm(x).tolist() == want


def test_repeat_interleave_with_tensor_counts_refuses_under_tracing() -> None:
    counts = kiln.tensor([1, 2])
    assert kiln.repeat_interleave(kiln.tensor([5, 6]), counts).tolist() == [5, 6, 6]
    with pytest.raises(kiln.KilnError, match="output shape depends on the values"):
        kiln.trace(lambda c: kiln.repeat_interleave(kiln.tensor([5, 6]), c), counts)


def test_masked_scatter_refuses_a_short_source() -> None:
    with pytest.raises(kiln.KilnError, match="selects 2 elements but source has only 1"):
        kiln.masked_scatter(kiln.zeros(2), kiln.tensor([True, True]), kiln.ones(1))


def test_long_rows_sort_through_the_bitonic_network() -> None:
    rng = _rng()
    a = rng.integers(0, 50, (2, 300)).astype(np.float64)
    a[0, ::7] = np.nan
    x = kiln.tensor(a)
    for descending in (False, True):
        key = np.where(np.isnan(a), -np.inf if descending else np.inf, -a if descending else a)
        want = np.argsort(key, axis=1, kind="stable")
        np.testing.assert_array_equal(kiln.argsort(x, descending=descending).numpy(), want)
    gm = kiln.trace(lambda v: kiln.sort(v, 1).indices, x)
    np.testing.assert_array_equal(gm(x).numpy(), np.argsort(np.where(np.isnan(a), np.inf, a),
                                                            axis=1, kind="stable"))
    # the gradient of the sorted values goes back to where each came from
    y = kiln.tensor(rng.standard_normal(300), requires_grad=True)
    w = rng.standard_normal(300)
    out = kiln.sort(y)
    (out.values * kiln.tensor(w)).sum().backward()
    np.testing.assert_allclose(y.grad.numpy()[out.indices.numpy()], w)


def test_in_place_writes_eagerly_under_autograd_and_traced() -> None:
    idx, src = kiln.tensor([0, 2, 0]), kiln.tensor([1.0, 2.0, 3.0])
    x = kiln.zeros(3)
    assert x.index_add_(0, idx, src) is x and x.tolist() == [4.0, 0.0, 2.0]
    x.index_fill_(0, kiln.tensor([1]), -1.0).put_(kiln.tensor([2]), kiln.tensor([9.0]))
    assert x.tolist() == [4.0, -1.0, 9.0]
    x.masked_scatter_(kiln.tensor([True, False, False]), kiln.tensor([7.0]))
    x.scatter_reduce_(0, kiln.tensor([1, 1]), kiln.tensor([5.0, 6.0]), "amax")
    assert x.tolist() == [7.0, 6.0, 9.0]
    x.index_put_((kiln.tensor([0]),), kiln.tensor(1.0), accumulate=True)
    x.index_copy_(0, kiln.tensor([2]), kiln.tensor([0.5]))
    x.index_reduce_(0, kiln.tensor([1]), kiln.tensor([2.0]), "prod")
    assert x.tolist() == [8.0, 12.0, 0.5]
    w = kiln.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = w * 1.0
    y.index_add_(0, kiln.tensor([0]), kiln.tensor([10.0]))
    (y * y).sum().backward()
    assert w.grad.tolist() == [22.0, 4.0, 6.0]

    def step(v):  # noqa: ANN001, ANN202
        out = v * 2.0
        out.index_fill_(0, kiln.tensor([1]), 0.0)
        return out

    v = kiln.tensor([1.0, 2.0, 3.0])
    assert kiln.trace(step, v)(v).tolist() == [2.0, 0.0, 6.0]
