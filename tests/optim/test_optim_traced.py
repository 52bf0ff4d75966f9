"""``opt.step()`` inside ``kiln.trace``: the state lives in eager tensors that the graph updates
in place on every call, so calling the traced step k times equals k eager steps -- including
the first (momentum buffer) and the step count (Adam's bias corrections)."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln.errors import TraceError

CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("Adam", {"lr": 0.05}),
    ("Adam", {"lr": 0.05, "amsgrad": True, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.05, "weight_decay": 0.1}),
]


def _grads(n: int) -> list:
    rng = np.random.default_rng(3)
    return [kiln.from_numpy(rng.standard_normal(5).astype(np.float32)) for _ in range(n)]


@pytest.mark.parametrize("backend", [None, "interpret", "c"])
@pytest.mark.parametrize(("name", "options"), CASES)
def test_traced_step_equals_eager_steps(name, options, backend):
    grads = _grads(4)
    kiln.manual_seed(0)
    w = kiln.nn.Parameter(kiln.randn(5))
    opt = getattr(kiln.optim, name)([w], **options)

    def step(g):
        w.grad = g
        opt.step()
        return w * 1.0

    before = w.detach().numpy().copy()
    run = kiln.trace(step, grads[0]) if backend is None else kiln.compile(step, backend=backend)
    np.testing.assert_array_equal(w.detach().numpy(), before)  # tracing changed nothing
    traced = [run(g) for g in grads]

    ref_w = kiln.nn.Parameter(kiln.from_numpy(before.copy()))
    ref_opt = getattr(kiln.optim, name)([ref_w], **options)
    for g, got in zip(grads, traced, strict=True):
        ref_w.grad = g
        ref_opt.step()
        got = got[0] if isinstance(got, (list, tuple)) else got
        np.testing.assert_allclose(got.detach().numpy(), ref_w.detach().numpy(), rtol=2e-6,
                                   atol=1e-7)
    np.testing.assert_allclose(w.detach().numpy(), ref_w.detach().numpy(), rtol=2e-6, atol=1e-7)
    for key, value in ref_opt.state[ref_w].items():
        np.testing.assert_allclose(opt.state[w][key].numpy(), value.numpy(), rtol=2e-6,
                                   atol=1e-7, err_msg=key)


def test_in_place_chain_on_a_closed_over_tensor_is_recorded():
    c = kiln.ones(3)

    def f(x):
        c.mul_(2.0)  # no tracer involved: still part of the graph
        c.add_(x)
        return c * 1.0

    gm = kiln.trace(f, kiln.ones(3))
    assert c.tolist() == [1.0, 1.0, 1.0]
    gm(kiln.ones(3))
    gm(kiln.ones(3))
    assert c.tolist() == [7.0, 7.0, 7.0]  # (1 * 2 + 1) * 2 + 1


def test_sgd_dampening_first_step_is_refused_in_a_trace():
    w = kiln.nn.Parameter(kiln.ones(2))
    opt = kiln.optim.SGD([w], lr=0.1, momentum=0.9, dampening=0.5)

    def step(g):
        w.grad = g
        opt.step()
        return w * 1.0

    with pytest.raises(TraceError, match="one eager opt.step"):
        kiln.trace(step, kiln.ones(2))
    w.grad = kiln.ones(2)
    opt.step()  # after an eager first step the update is the same every call: traceable
    gm = kiln.trace(step, kiln.ones(2))
    gm(kiln.ones(2))
