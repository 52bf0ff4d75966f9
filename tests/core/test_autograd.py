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


# --------------------------------------------------------------------------------------
# freed graphs, retain_graph, accumulation


def test_grad_through_a_freed_graph_says_how_to_fix_it():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    kiln.autograd.grad(y, [x])
    with pytest.raises(AutogradError, match=r"second time.*retain_graph=True"):
        kiln.autograd.grad(y, [x])


def test_retain_graph_allows_repeated_backward_and_accumulates():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    for _ in range(3):
        y.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 12.0])
    x.grad = None
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])


def test_gradients_accumulate_across_graphs_and_shared_leaves():
    w = kiln.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    b = kiln.tensor([0.5, -0.5], requires_grad=True)
    for scale in (1.0, 2.0):
        ((w @ kiln.ones(2) + b) * scale).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), np.full((2, 2), 3.0))
    np.testing.assert_allclose(b.grad.numpy(), [3.0, 3.0])


def test_non_scalar_output_needs_grad_outputs_for_grad_too():
    x = kiln.ones(2, 3, requires_grad=True)
    with pytest.raises(AutogradError, match=r"outputs\[0\] has shape \(2, 3\)"):
        kiln.autograd.grad(x * 2.0, [x])
    with pytest.raises(AutogradError, match=r"grad_outputs\[0\]: expected shape \(2, 3\)"):
        kiln.autograd.grad(x * 2.0, [x], grad_outputs=[kiln.ones(3)])
    (g,) = kiln.autograd.grad(x * 2.0, [x], grad_outputs=[kiln.ones(2, 3)])
    np.testing.assert_allclose(g.numpy(), np.full((2, 3), 2.0))


def test_backward_of_something_without_grad_is_an_error():
    x = kiln.ones(2)
    with pytest.raises(AutogradError, match="does not require grad"):
        (x * 2.0).sum().backward()


def test_grad_of_an_intermediate_and_detach():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    y = (h * h).sum() + (x.detach() * x).sum()
    gh, gx = kiln.autograd.grad(y, [h, x])
    np.testing.assert_allclose(gh.numpy(), [6.0, 12.0])
    np.testing.assert_allclose(gx.numpy(), [18.0 + 1.0, 36.0 + 2.0])


def test_integer_results_carry_no_gradient():
    x = kiln.tensor([1.5, -2.5], requires_grad=True)
    assert not x.long().requires_grad
    assert not x.argmax().requires_grad
    assert not (x > 0).requires_grad
    with pytest.raises(AutogradError, match="does not require grad"):
        x.long().float().sum().backward()


# --------------------------------------------------------------------------------------
# grad mode


def test_no_grad_as_decorator_and_set_grad_enabled():
    x = kiln.ones(2, requires_grad=True)

    @kiln.no_grad()
    def frozen(t):
        return t * 2.0

    assert not frozen(x).requires_grad
    assert kiln.is_grad_enabled()
    kiln.set_grad_enabled(False)
    try:
        assert not (x * 2.0).requires_grad
    finally:
        kiln.set_grad_enabled(True)
    assert (x * 2.0).requires_grad


def test_grad_mode_is_restored_after_an_exception():
    with pytest.raises(ValueError), kiln.no_grad():
        raise ValueError("boom")
    assert kiln.is_grad_enabled()


# --------------------------------------------------------------------------------------
# in-place ops and version counters


def test_setitem_on_a_leaf_requiring_grad_is_refused():
    w = kiln.zeros(3, requires_grad=True)
    with pytest.raises(AutogradError, match=r"__setitem__: a leaf tensor that requires grad"):
        w[0] = 1.0
    with kiln.no_grad():
        w[0] = 1.0
    assert w.detach().tolist() == [1.0, 0.0, 0.0]


def test_modifying_a_saved_output_in_place_is_detected():
    x = kiln.tensor([0.5, 1.0], requires_grad=True)
    y = x.exp()  # exp's backward reads its output
    loss = y.sum()
    y.mul_(2.0)
    with pytest.raises(AutogradError, match="output of op exp was modified in place"):
        loss.backward()


def test_modifying_a_saved_argument_in_place_is_detected():
    x = kiln.tensor([0.5, 1.0], requires_grad=True)
    y = x * 1.0
    z = (y.sin()).sum()  # sin's backward reads its argument
    y.add_(1.0)
    with pytest.raises(AutogradError, match=r"argument 0 of op sin was modified in place "
                                            r"after it was used \(version 1, expected 0\)"):
        z.backward()


def test_version_counter_counts_in_place_updates():
    x = kiln.zeros(2)
    assert x._version == 0
    x.add_(1.0)
    x[0] = 5.0
    x.mul_(2.0)
    assert x._version == 3


# --------------------------------------------------------------------------------------
# higher order


def test_third_derivative_with_create_graph():
    x = kiln.tensor(2.0, dtype="float64", requires_grad=True)
    y = x ** 4
    (g1,) = kiln.autograd.grad(y, [x], create_graph=True)
    (g2,) = kiln.autograd.grad(g1, [x], create_graph=True)
    (g3,) = kiln.autograd.grad(g2, [x])
    assert (g1.item(), g2.item(), g3.item()) == (32.0, 48.0, 48.0)


def test_gradient_penalty_matches_analytic_hessian():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 3))
    w = kiln.tensor(a, requires_grad=True)
    x = kiln.tensor(rng.standard_normal(3), requires_grad=True)
    y = (w @ x).tanh().sum()
    (gx,) = kiln.autograd.grad(y, [x], create_graph=True)
    penalty = (gx * gx).sum()
    (gw,) = kiln.autograd.grad(penalty, [w])
    # y = sum tanh(Wx): dy/dx = W^T s with s = 1 - tanh^2(Wx); penalty = |W^T s|^2.
    xs = x.detach().numpy()

    def pen(m):
        s = 1 - np.tanh(m @ xs) ** 2
        v = m.T @ s
        return v @ v

    eps = 1e-6
    fd = np.zeros_like(a)
    for i in range(3):
        for j in range(3):
            d = np.zeros_like(a)
            d[i, j] = eps
            fd[i, j] = (pen(a + d) - pen(a - d)) / (2 * eps)
    np.testing.assert_allclose(gw.numpy(), fd, rtol=1e-6, atol=1e-8)


def test_set_grad_enabled_is_also_a_context_manager():
    # PyTorch training loops write `with torch.set_grad_enabled(is_train):`.
    x = kiln.ones(2, requires_grad=True)
    for train in (True, False):
        with kiln.set_grad_enabled(train):
            assert (x * 2.0).requires_grad == train
        assert kiln.is_grad_enabled()
    with kiln.no_grad(), kiln.set_grad_enabled(True):
        assert (x * 2.0).requires_grad
    assert kiln.is_grad_enabled()


def test_one_grad_mode_object_can_be_entered_again_before_it_exits():
    @kiln.no_grad()
    def depth(n):
        assert not kiln.is_grad_enabled()
        return depth(n - 1) if n else 0

    depth(3)
    assert kiln.is_grad_enabled()
    ctx = kiln.enable_grad()
    with kiln.no_grad():
        with ctx:
            with ctx:
                assert kiln.is_grad_enabled()
            assert kiln.is_grad_enabled()
        assert not kiln.is_grad_enabled()


def test_backward_inside_trace_explains_the_aot_way():
    model = kiln.nn.Linear(3, 2)

    def step(x):
        loss = model(x).sum()
        loss.backward()
        return loss

    with pytest.raises(AutogradError, match="inside kiln.trace.*kiln.compile"):
        kiln.trace(step, kiln.randn(4, 3))
