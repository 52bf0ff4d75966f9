"""Eager autograd semantics: accumulation, grad(), retain/create graph, errors."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln.errors import AutogradError


def test_backward_accumulates_into_leaves():
    x = kiln.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 7.0, 9.0])


def test_shared_subexpression_gets_summed_gradient():
    x = kiln.tensor([2.0], requires_grad=True)
    y = x.exp()
    z = y * y + y
    z.sum().backward()
    e = np.exp(2.0)
    np.testing.assert_allclose(x.grad.numpy(), [2 * e * e + e], rtol=1e-6)


def test_grad_does_not_touch_dot_grad():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    (g,) = kiln.autograd.grad((x * x).sum(), [x])
    assert x.grad is None
    np.testing.assert_allclose(g.numpy(), [2.0, 4.0])


def test_second_derivative_with_create_graph():
    x = kiln.tensor([0.5, 1.5], dtype="float64", requires_grad=True)
    y = (x.sin() * x).sum()
    (g,) = kiln.autograd.grad(y, [x], create_graph=True)
    (h,) = kiln.autograd.grad(g.sum(), [x])
    xs = np.array([0.5, 1.5])
    np.testing.assert_allclose(h.numpy(), 2 * np.cos(xs) - xs * np.sin(xs), rtol=1e-12)


def test_backward_twice_without_retain_graph_fails():
    x = kiln.tensor([1.0], requires_grad=True)
    y = (x.exp() * 2.0).sum()
    y.backward(retain_graph=True)
    y.backward()
    with pytest.raises(AutogradError, match="second time"):
        y.backward()


def test_non_scalar_backward_needs_gradient():
    x = kiln.ones(3, requires_grad=True)
    y = x * 2.0
    with pytest.raises(AutogradError, match="scalar outputs"):
        y.backward()
    y.backward(kiln.ones(3))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_inplace_on_leaf_requiring_grad_is_refused():
    w = kiln.ones(2, requires_grad=True)
    with pytest.raises(AutogradError, match="leaf"):
        w.add_(1.0)
    with kiln.no_grad():
        w.add_(1.0)
    np.testing.assert_allclose(w.detach().numpy(), [2.0, 2.0])


def test_inplace_after_use_is_detected():
    x = kiln.ones(2, requires_grad=True)
    y = x * 1.0
    z = y * y
    y.mul_(2.0)
    with pytest.raises(AutogradError, match="modified in place"):
        z.sum().backward()


def test_inplace_on_non_leaf_keeps_correct_gradient():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    y.mul_(2.0)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])


def test_no_grad_and_enable_grad():
    x = kiln.ones(2, requires_grad=True)
    with kiln.no_grad():
        assert not (x * 2).requires_grad
        with kiln.enable_grad():
            assert (x * 2).requires_grad


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(AutogradError):
        kiln.tensor([1, 2], requires_grad=True)


def test_retain_grad_on_non_leaf():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    y.retain_grad()
    (y * y).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [4.0, 8.0])


def test_grad_of_unused_input():
    x = kiln.ones(2, requires_grad=True)
    u = kiln.ones(2, requires_grad=True)
    with pytest.raises(AutogradError, match="not used"):
        kiln.autograd.grad((x * 2).sum(), [x, u])
    gx, gu = kiln.autograd.grad((x * 2).sum(), [x, u], allow_unused=True)
    assert gu is None
