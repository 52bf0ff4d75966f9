"""Eager in-place semantics against PyTorch: overwriting a value that has a history, in-place
ops through views (the base and every other view see the write, and their gradients follow),
assignment with repeated indices and every index form, and the errors torch raises too.

The op table (tests/opinfo_inplace.py, ``Tensor.__setitem__``, ``scatter``) runs the same
kinds of programs through every layer; these tests pin the issue's reproducers."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln.errors import AutogradError, ShapeError

torch = pytest.importorskip("torch")


def assert_same_as_torch(fn, *arrays):
    """``fn(lib, *leaves)`` with kiln and with torch (float64 leaves) gives the same values,
    and the loss ``(out * out).sum()`` the same gradients of the leaves."""
    results = []
    for lib in (kiln, torch):
        leaves = [lib.tensor(a, requires_grad=True) for a in arrays]
        out = fn(lib, *leaves)
        (out * out).sum().backward()
        grads = [None if t.grad is None else t.grad.numpy().copy() for t in leaves]
        results.append((out.detach().numpy().copy(), grads))
    (k_out, k_grads), (t_out, t_grads) = results
    np.testing.assert_allclose(k_out, t_out, rtol=1e-12)
    for kg, tg in zip(k_grads, t_grads, strict=True):
        assert (kg is None) == (tg is None)
        if kg is not None:
            np.testing.assert_allclose(kg, tg, rtol=1e-12)


W = np.arange(1.0, 7.0).reshape(2, 3)
V = np.array([2.0, -1.0, 0.5])


# --------------------------------------------------------------------------------------
# 1. overwriting a value that has a history


@pytest.mark.parametrize("how", ["fill_", "zero_", "copy_", "setitem"])
def test_overwrite_gives_the_old_value_zero_gradient(how):
    def fn(lib, w):
        x = w * 2
        if how == "fill_":
            x.fill_(1.0)
        elif how == "zero_":
            x.zero_()
        elif how == "copy_":
            x.copy_(lib.full((3,), 4.0, dtype=w.dtype))
        else:
            x[:] = 5.0
        return x * w

    assert_same_as_torch(fn, np.ones(3))


def test_overwritten_tensor_keeps_requires_grad_as_in_torch():
    w = kiln.ones(3, requires_grad=True)
    x = w * 2
    x.fill_(1.0)
    assert x.requires_grad and x.grad_fn is not None
    x.sum().backward()
    assert w.grad.tolist() == [0.0, 0.0, 0.0]


# --------------------------------------------------------------------------------------
# 2. in-place ops on views


VIEW_PROGRAMS = {
    "row mul_": lambda lib, w, v: _then(w, lambda x: x[0].mul_(3.0)) * w,
    "copy_ into a zeros buffer row": lambda lib, w, v: _buffer_row(lib, w),
    "view of a view": lambda lib, w, v: _then(w, lambda x: x[1:][0].add_(v)),
    "transposed row": lambda lib, w, v: _then(w, lambda x: x.t()[1].mul_(v[:2])),
    "flat slice": lambda lib, w, v: _then(w, lambda x: x.view(-1)[2:4].add_(v[:2])),
    "unsqueezed column": lambda lib, w, v: _then(w, lambda x: x[:, 1].unsqueeze(0).mul_(v[:2])),
    "narrow": lambda lib, w, v: _then(w, lambda x: x.narrow(1, 1, 2).mul_(2.0)),
    "strided": lambda lib, w, v: _then(w, lambda x: x[:, ::2].mul_(w[:, ::2])),
    "two updates through one view": lambda lib, w, v: _then(
        w, lambda x: x[0].add_(v).mul_(v)),
    "setitem through a view": lambda lib, w, v: _then(w, lambda x: x[1].__setitem__(
        slice(0, 2), v[1:])),
    "view read after its base changed": lambda lib, w, v: _stale(w, v),
    "view read after a sibling view changed": lambda lib, w, v: _sibling(w, v),
}


def _then(w, update):
    x = w * 1
    update(x)
    return x


def _buffer_row(lib, w):
    buf = lib.zeros(2, 3, dtype=w.dtype)
    buf[1].copy_(w[0] * 2)
    return buf


def _stale(w, v):
    x = w * 1
    row = x[0]
    x.mul_(2.0)
    return row * v


def _sibling(w, v):
    x = w * 1
    row = x[0]
    col = x[:, 2]
    col.add_(v[:2])
    return row * 1


@pytest.mark.parametrize("name", list(VIEW_PROGRAMS))
def test_inplace_on_views_matches_torch(name):
    assert_same_as_torch(VIEW_PROGRAMS[name], W, V)


def test_issue_reproducer_row_write_reaches_the_base():
    w = kiln.ones(2, 3, requires_grad=True)
    x = w * 1
    x[0].mul_(3.0)
    assert x.tolist() == [[3.0] * 3, [1.0] * 3]
    tw = torch.ones(2, 3, requires_grad=True, dtype=torch.float64)
    tx = tw * 1
    tx[0].mul_(3.0)
    (x * x * w).sum().backward()
    (tx * tx * tw).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy())
    assert w.grad.tolist()[0] == [27.0] * 3  # torch: 3 * 9 on row 0


def test_buffer_view_takes_a_history_it_did_not_have():
    # The view was made before its base required grad: its next use replays it from the
    # base's new history (the fast path of dispatch sees it is stale).
    w = kiln.ones(3, requires_grad=True)
    buf = kiln.zeros(2, 3)
    row = buf[0]
    buf.copy_(kiln.stack([w, w]) * 2)
    assert row.tolist() == [2.0, 2.0, 2.0]
    row.sum().backward()
    assert w.grad.tolist() == [2.0, 2.0, 2.0]


def test_eager_writes_go_to_the_shared_memory():
    x = kiln.zeros(2, 3)
    row, col, flat = x[1], x[:, 2], x.view(-1)
    with kiln.no_grad():
        row.add_(1.0)
    flat[0:2].fill_(7.0)
    col.mul_(10.0)
    expected = [[7.0, 7.0, 0.0], [1.0, 1.0, 10.0]]
    assert x.tolist() == expected
    assert flat.tolist() == sum(expected, [])
    assert row.tolist() == expected[1]
    assert np.shares_memory(x.numpy(), row.numpy())


def test_views_share_the_version_counter_of_their_base():
    # mul saved `row`; a write through another view of the same memory makes its
    # gradient wrong, so backward refuses (torch: "modified by an inplace operation").
    w = kiln.ones(2, 3, requires_grad=True)
    x = w * 1
    row = x[0]
    y = row * row
    x[1].add_(1.0)
    with pytest.raises(AutogradError, match="modified in place"):
        y.sum().backward()


def test_inplace_on_a_view_of_a_leaf_is_refused():
    w = kiln.ones(2, 3, requires_grad=True)
    with pytest.raises(AutogradError, match="a view of a leaf tensor that requires grad"):
        w[0].add_(1.0)
    with kiln.no_grad():  # as optimizers do
        w[0].add_(1.0)
    assert w.tolist()[0] == [2.0] * 3


def test_inplace_through_an_expanded_view_is_refused():
    x = kiln.ones(3) * 1
    with pytest.raises(ShapeError, match="share one memory location"):
        x.expand(2, 3).add_(1.0)
    x.expand(1, 3).add_(1.0)  # nothing is broadcast: an ordinary view
    assert x.tolist() == [2.0, 2.0, 2.0]


def test_view_refuses_a_layout_only_a_copy_can_reshape():
    x = kiln.zeros(2, 3).t()
    with pytest.raises(ShapeError, match="use .reshape"):
        x.view(-1)
    with pytest.raises(RuntimeError):
        torch.zeros(2, 3).t().view(-1)
    x.reshape(-1).fill_(1.0)  # a copy, as in torch: x is unchanged
    assert x.sum().item() == 0.0


def test_flip_is_a_copy():
    x = kiln.zeros(3)
    x.flip(0).add_(1.0)
    assert x.tolist() == [0.0, 0.0, 0.0]


# --------------------------------------------------------------------------------------
# 3 and 4. assignment: repeated indices, every index form


def test_repeated_indices_keep_the_last_value():
    x = kiln.zeros(3)
    x[kiln.tensor([1, 1])] = kiln.tensor([1.0, 2.0])
    assert x.tolist() == [0.0, 2.0, 0.0]
    y = np.zeros(3)
    y[np.array([1, 1])] = [1.0, 2.0]
    assert x.tolist() == y.tolist()


def test_repeated_indices_gradient_goes_to_the_last_write():
    w = kiln.ones(3, requires_grad=True)
    v = kiln.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = w * 1
    x[kiln.tensor([1, 2, 1])] = v
    (x * kiln.tensor([10.0, 20.0, 30.0])).sum().backward()
    assert w.grad.tolist() == [10.0, 0.0, 0.0]
    assert v.grad.tolist() == [0.0, 30.0, 20.0]


INDEX_FORMS = {
    "x[0, idx]": lambda i: (0, i),
    "x[1:, idx]": lambda i: (slice(1, None), i),
    "x[None, :, idx]": lambda i: (None, slice(None), i),
    "x[::2, idx]": lambda i: (slice(None, None, 2), i),
    "x[..., idx]": lambda i: (Ellipsis, i),
    "x[idx, 1:3]": lambda i: (i, slice(1, 3)),
    "x[-1, None, idx]": lambda i: (-1, None, i),
}


@pytest.mark.parametrize("form", list(INDEX_FORMS))
def test_assignment_accepts_the_index_forms_reads_accept(form):
    index = INDEX_FORMS[form]
    idx = [2, 0]

    def fn(lib, w, v):
        x = w * 1
        target = x[index(lib.tensor(idx))]
        x[index(lib.tensor(idx))] = v.reshape(target.shape) * 3
        return x

    shape = torch.zeros(3, 4)[index(torch.tensor(idx))].shape
    v = np.arange(1.0, 1.0 + np.prod(shape))
    assert_same_as_torch(fn, np.arange(12.0).reshape(3, 4), v)


def test_assignment_broadcasts_the_value():
    x = kiln.zeros(3, 4)
    x[1:, kiln.tensor([0, 3])] = kiln.tensor([1.0, 2.0])
    t = torch.zeros(3, 4)
    t[1:, torch.tensor([0, 3])] = torch.tensor([1.0, 2.0])
    np.testing.assert_array_equal(x.numpy(), t.numpy())


def test_scatter_matches_torch():
    x = np.arange(12.0).reshape(3, 4)
    index = np.array([[2, 0, 1, 2]])
    src = np.array([[10.0, 20.0, 30.0, 40.0]])
    got = kiln.scatter(kiln.tensor(x), 0, kiln.tensor(index), kiln.tensor(src))
    want = torch.scatter(torch.tensor(x), 0, torch.tensor(index), torch.tensor(src))
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    got = kiln.tensor(x).scatter(1, kiln.tensor([[3], [0], [1]]), 7.0)
    want = torch.tensor(x).scatter(1, torch.tensor([[3], [0], [1]]), 7.0)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
