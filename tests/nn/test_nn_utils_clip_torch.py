"""kiln.nn.utils.clip_grad_norm_ / clip_grad_value_ against torch.nn.utils."""

from __future__ import annotations

import math

import numpy as np
import pytest

import kiln
from kiln.errors import ArgumentError, AutogradError
from kiln.nn.utils import clip_grad_norm_, clip_grad_value_

SHAPES = [(3, 4), (5,), (2, 2, 2), ()]


def _params(torch, grads, dtype):
    kp = [kiln.nn.Parameter(kiln.zeros(*g.shape, dtype=dtype)) for g in grads]
    tp = [torch.nn.Parameter(torch.zeros(g.shape, dtype=getattr(torch, dtype))) for g in grads]
    for k, t, g in zip(kp, tp, grads):
        k.grad = kiln.tensor(g)
        t.grad = torch.tensor(g)
    return kp, tp


@pytest.mark.torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3, 0.5, "inf", math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(dtype, norm_type, max_norm):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    kp, tp = _params(torch, grads, dtype)
    kp.append(kiln.nn.Parameter(kiln.zeros(2, dtype=dtype)))  # no grad: skipped
    a = clip_grad_norm_(kp, max_norm, norm_type)
    b = torch.nn.utils.clip_grad_norm_(tp, max_norm, norm_type)
    tol = 1e-6 if dtype == "float32" else 1e-12
    assert a.dtype.name == dtype and a.shape == ()
    np.testing.assert_allclose(a.item(), b.item(), rtol=tol)
    for k, t in zip(kp, tp):
        np.testing.assert_allclose(k.grad.numpy(), t.grad.numpy(), rtol=tol, atol=tol)


@pytest.mark.torch
def test_clip_grad_value_matches_torch():
    torch = pytest.importorskip("torch")
    grads = [np.random.default_rng(1).standard_normal(s).astype("float32") * 3 for s in SHAPES]
    kp, tp = _params(torch, grads, "float32")
    clip_grad_value_(kp, 1.5)
    torch.nn.utils.clip_grad_value_(tp, 1.5)
    for k, t in zip(kp, tp):
        assert k.grad.tolist() == t.grad.tolist()


def test_nonfinite_and_bad_arguments():
    p = kiln.nn.Parameter(kiln.zeros(2))
    p.grad = kiln.tensor([float("inf"), 1.0])
    assert math.isinf(clip_grad_norm_(p, 1.0).item())
    p.grad = kiln.tensor([float("nan"), 1.0])
    with pytest.raises(AutogradError, match="non-finite"):
        clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
    with pytest.raises(ArgumentError, match="norm_type"):
        clip_grad_norm_(p, 1.0, norm_type=-1)
    assert clip_grad_norm_([kiln.nn.Parameter(kiln.zeros(2))], 1.0).item() == 0.0


def test_clip_inside_a_training_step():
    kiln.manual_seed(0)
    model = kiln.nn.Linear(4, 3)
    opt = kiln.optim.SGD(model.parameters(), lr=0.1)
    loss = (model(kiln.randn(8, 4)) * 100).square().mean()
    loss.backward()
    total = clip_grad_norm_(model.parameters(), 1.0)
    assert total.item() > 1.0
    after = math.sqrt(sum((p.grad * p.grad).sum().item() for p in model.parameters()))
    assert after == pytest.approx(1.0, rel=1e-4)
    opt.step()
