"""kiln.autograd.Function: custom nodes with several outputs, on eager tensors and tracers."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
import kiln.core.autograd.function
from kiln.aot import aot_function, nop
from kiln.errors import AutogradError


class SinCos(kiln.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return x.sin() * scale, x.cos() * scale, x.argmax()

    @staticmethod
    def backward(ctx, gs, gc, _gi):
        (x,) = ctx.saved_tensors
        return (gs * x.cos() - gc * x.sin()) * ctx.scale, None


def _x(values=(0.3, 1.1, -0.4)):
    return kiln.tensor(list(values), dtype=kiln.float64, requires_grad=True)


def test_several_outputs_and_non_tensor_argument():
    x = _x()
    s, c, i = SinCos.apply(x, 2.0)
    assert s.grad_fn is not None and c.grad_fn is not None
    assert not i.requires_grad  # integer outputs never get a gradient
    (s * 3.0 + c).sum().backward()
    xs = np.array([0.3, 1.1, -0.4])
    np.testing.assert_allclose(x.grad.numpy(), 2.0 * (3.0 * np.cos(xs) - np.sin(xs)))


def test_missing_output_grads_are_zeros_or_none():
    seen = []

    class Probe(kiln.autograd.Function):
        @staticmethod
        def forward(ctx, x, materialize):
            ctx.set_materialize_grads(materialize)
            return x * 2.0, x * 3.0

        @staticmethod
        def backward(ctx, ga, gb):
            seen.append(gb if gb is None else gb.tolist())
            return ga * 2.0 + (0.0 if gb is None else gb * 3.0), None

    for materialize in (True, False):
        x = _x((1.0, 2.0))
        a, _ = Probe.apply(x, materialize)
        a.sum().backward()
        assert x.grad.tolist() == [2.0, 2.0]
    assert seen == [[0.0, 0.0], None]


def test_mark_non_differentiable_and_input_passthrough():
    class Pass(kiln.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x * 2.0
            ctx.mark_non_differentiable(y)
            return x, y

        @staticmethod
        def backward(ctx, gx, gy):
            assert gy is None or float(gy.abs().sum()) == 0.0
            return gx * 5.0

    x = _x((1.0,))
    out, y = Pass.apply(x)
    assert out is not x and x.is_leaf and not y.requires_grad
    out.sum().backward()
    assert x.grad.tolist() == [5.0]


def test_gradient_count_and_type_errors():
    class TooMany(kiln.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1.0

        @staticmethod
        def backward(ctx, g):
            return g, g

    with pytest.raises(AutogradError, match="TooMany.backward returned 2 gradients, expected 1"):
        TooMany.apply(_x()).sum().backward()

    class NotTensor(kiln.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1.0

        @staticmethod
        def backward(ctx, g):
            return (1.0,)

    with pytest.raises(AutogradError, match="gradient 0 must be a kiln.Tensor"):
        NotTensor.apply(_x()).sum().backward()


def test_saved_tensor_version_and_freed_checks():
    class Square(kiln.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 2.0 * x

    x = _x()
    h = x * 1.0
    y = Square.apply(h)
    h.mul_(2.0)
    with pytest.raises(AutogradError, match="saved tensor 0 of Square was modified in place"):
        y.sum().backward()
    y = Square.apply(x * 1.0)
    y.backward(kiln.ones(3, dtype=kiln.float64))
    with pytest.raises(AutogradError, match="Square a second time"):
        y.backward(kiln.ones(3, dtype=kiln.float64))


def test_retain_grad_and_autograd_grad_on_outputs():
    x = _x()
    s, c, _ = SinCos.apply(x, 1.0)
    s.retain_grad()
    (s * 4.0 + c).sum().backward()
    assert s.grad.tolist() == [4.0, 4.0, 4.0]
    x2 = _x()
    s2, c2, _ = SinCos.apply(x2, 1.0)
    (gs,) = kiln.autograd.grad((s2 * c2).sum(), [s2])
    np.testing.assert_allclose(gs.numpy(), c2.detach().numpy())


def test_no_grad_and_inputs_without_grad_record_nothing():
    with kiln.no_grad():
        s, _, _ = SinCos.apply(_x(), 1.0)
    assert s.grad_fn is None and not s.requires_grad
    s, _, _ = SinCos.apply(kiln.tensor([0.1]), 1.0)
    assert s.grad_fn is None


def test_function_inside_aot_trace_uses_its_backward():
    # The custom backward runs on tracers while the joint graph is traced.
    class ScaledGrad(kiln.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1.0

        @staticmethod
        def backward(ctx, g):
            return g * 10.0  # deliberately not the true derivative

    f = aot_function(lambda x: ScaledGrad.apply(x.exp()).sum(), nop)
    x = _x((0.0, 1.0))
    f(x).backward()
    np.testing.assert_allclose(x.grad.numpy(), 10.0 * np.exp([0.0, 1.0]))
