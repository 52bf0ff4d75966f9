"""Tensor API: creation, attributes, promotion, indexing, in-place ops."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln.errors import ArgumentError, DTypeError, IndexError_, ShapeError


def test_creation_defaults_match_pytorch():
    assert kiln.tensor([1.0]).dtype == kiln.float32
    assert kiln.tensor([1]).dtype == kiln.int64
    assert kiln.tensor([True]).dtype == kiln.bool_
    assert kiln.zeros(2, 3).shape == (2, 3)
    assert kiln.ones((2, 3)).dtype == kiln.float32
    assert kiln.arange(5).dtype == kiln.int64
    assert kiln.arange(0.0, 1.0, 0.25).tolist() == [0.0, 0.25, 0.5, 0.75]
    np.testing.assert_allclose(kiln.linspace(0, 1, 5).numpy(), np.linspace(0, 1, 5))
    assert kiln.eye(3).numpy().trace() == 3.0
    assert kiln.full((2,), 7).dtype == kiln.int64
    assert kiln.zeros_like(kiln.ones(2, dtype="float64")).dtype == kiln.float64


def test_manual_seed_reproducible():
    kiln.manual_seed(3)
    a = kiln.randn(4)
    kiln.manual_seed(3)
    assert a.tolist() == kiln.randn(4).tolist()
    r = kiln.randint(0, 5, (100,))
    assert r.dtype == kiln.int64 and 0 <= r.numpy().min() and r.numpy().max() < 5


def test_from_numpy_shares_memory():
    a = np.arange(3, dtype=np.float32)
    t = kiln.from_numpy(a)
    a[1] = 10
    assert t.tolist() == [0.0, 10.0, 2.0]


@pytest.mark.parametrize(
    "a, b, want",
    [
        (kiln.ones(2, dtype="int32"), 2.5, kiln.float32),
        (kiln.ones(2, dtype="float32"), kiln.ones(2, dtype="float64"), kiln.float64),
        (kiln.ones(2, dtype="float32"), kiln.tensor(1.0, dtype="float64"), kiln.float32),
        (kiln.ones(2, dtype="int64"), kiln.ones(2, dtype="int32"), kiln.int64),
        (kiln.ones(2, dtype="bool"), 1, kiln.int64),
        (kiln.ones(2, dtype="int32"), 1, kiln.int32),
    ],
)
def test_type_promotion(a, b, want):
    assert (a + b).dtype == want


def test_true_division_of_ints_is_float():
    assert (kiln.tensor([3]) / 2).tolist() == [1.5]


def test_attributes_and_conversions():
    x = kiln.arange(6).reshape(2, 3).float()
    assert x.ndim == 2 and x.size() == (2, 3) and x.size(1) == 3 and x.numel() == 6
    assert x.T.shape == (3, 2) and x.mT.shape == (3, 2)
    assert x.to("float64").dtype == kiln.float64
    assert x[1, 2].item() == 5.0
    assert np.asarray(x).shape == (2, 3)
    y = x.clone()
    y.add_(1)
    assert x[0, 0].item() == 0.0 and y[0, 0].item() == 1.0
    assert "tensor(" in repr(x)


def test_indexing_matches_numpy():
    a = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    x = kiln.from_numpy(a)
    for index in [1, -1, (1, 2), slice(None, None, 2), (Ellipsis, 1), (None, 0),
                  (slice(1, None), None, slice(None, None, 3)), (0, Ellipsis, None)]:
        np.testing.assert_array_equal(x[index].numpy(), a[index])
    idx = np.array([2, 0, 2])
    np.testing.assert_array_equal(x[kiln.tensor(idx)].numpy(), a[idx])
    np.testing.assert_array_equal(x[:, kiln.tensor([[1, 3]])].numpy(), a[:, [[1, 3]]])


def test_indexing_errors():
    x = kiln.ones(2, 3)
    with pytest.raises(IndexError_):
        x[5]
    with pytest.raises(IndexError_):
        x[0, 0, 0]
    with pytest.raises(ArgumentError):
        x[::-1]


def test_setitem_matches_numpy():
    a = np.zeros((4, 5), np.float32)
    x = kiln.zeros(4, 5)
    x[1] = 3.0
    a[1] = 3.0
    x[:, 1::2] = kiln.ones(4, 2) * 2
    a[:, 1::2] = 2
    x[kiln.tensor([0, 3])] = 7.0
    a[[0, 3]] = 7
    np.testing.assert_array_equal(x.numpy(), a)


def test_setitem_gradient_flows():
    v = kiln.ones(2, requires_grad=True)
    x = kiln.zeros(3, 2)
    x[1] = v * 3.0
    x.sum().backward()
    np.testing.assert_allclose(v.grad.numpy(), [3.0, 3.0])


def test_inplace_ops():
    x = kiln.ones(3)
    x.mul_(2).add_(1).sub_(0.5).div_(5)
    np.testing.assert_allclose(x.numpy(), [0.5] * 3)
    x.clamp_(0.0, 0.25)
    x.fill_(4)
    assert x.tolist() == [4.0] * 3
    x.zero_()
    assert x.tolist() == [0.0] * 3
    with pytest.raises(ShapeError):
        x.copy_(kiln.ones(4))


def test_reductions_with_dims():
    a = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    x = kiln.from_numpy(a)
    np.testing.assert_allclose(x.sum(1).numpy(), a.sum(1), rtol=1e-6)
    np.testing.assert_allclose(x.mean((0, 1), keepdim=True).numpy(),
                               a.mean((0, 1), keepdims=True), rtol=1e-6)
    values, indices = x.max(1)
    np.testing.assert_array_equal(values.numpy(), a.max(1))
    np.testing.assert_array_equal(indices.numpy(), a.argmax(1))
    np.testing.assert_allclose(x.var(0).numpy(), a.var(0, ddof=1), rtol=1e-5)


def test_bool_of_multi_element_tensor_is_an_error():
    with pytest.raises(ShapeError):
        bool(kiln.ones(2))


def test_inplace_refuses_a_wider_result_category():
    x = kiln.tensor([1, 2])
    with pytest.raises(DTypeError, match=r"add_: the result has dtype float32.*int64"):
        x += 1.5
    with pytest.raises(DTypeError, match="mul_"):
        x.mul_(2.5)
    x.add_(True)  # bool into int is fine
    x[0] = 1.7  # setitem converts the value, as in torch
    x.fill_(2.5)
    assert x.tolist() == [2, 2] and x.dtype == kiln.int64
    y = kiln.ones(2, dtype="float64")
    y.add_(kiln.ones(2, dtype="float32"))  # float into float64: fine
    assert y.dtype == kiln.float64


def test_floor_divide_and_remainder_follow_python_and_torch():
    a = kiln.tensor([7, -7, 3])
    assert (a // 2).tolist() == [3, -4, 1] and (a // 2).dtype == kiln.int64
    assert (a % 3).tolist() == [1, 2, 0]
    assert (a % -3).tolist() == [-2, -1, 0]
    assert (7 // kiln.tensor([2, -2], dtype="int32")).dtype == kiln.int32
    np.testing.assert_allclose((a.float() % 2.5).numpy(), [2.0, 0.5, 0.5])


def test_python_and_tensor_bases_refuse_negative_integer_powers():
    with pytest.raises(ValueError, match="pow: integers to negative integer powers"):
        2 ** kiln.tensor([-1, 2])
    with pytest.raises(ValueError, match="pow: integers to negative integer powers"):
        kiln.tensor([2]) ** -1
    assert (2.0 ** kiln.tensor([-1, 2])).tolist() == [0.5, 4.0]


def test_integer_division_by_zero_is_an_error_not_a_garbage_value():
    # torch raises ZeroDivisionError here; a float64 detour would give INT64_MIN.
    from kiln.errors import ValueArgumentError

    for divide in (lambda: kiln.tensor([2, 3]) // kiln.tensor([1, 0]),
                   lambda: kiln.tensor([2]) % 0, lambda: 7 // kiln.tensor([0])):
        with pytest.raises(ValueArgumentError, match="floor_divide: integer division by zero"):
            divide()
    assert (kiln.tensor([2.0]) // 0).tolist() == [float("inf")]  # floats: inf, as in torch
