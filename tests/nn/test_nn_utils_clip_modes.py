"""Gradient clipping in every mode: eager against torch, and the same clipping traced
(kiln.trace), through AOT autograd and compiled with the C backend -- as it runs inside a
traced training step (``p.grad = g; clip_grad_norm_(...); opt.step()``).

The clipping functions run under ``no_grad`` (they rescale gradients, they are not
differentiated), so there is no finite-difference check for them."""

from __future__ import annotations

import math

import numpy as np
import pytest

import kiln
from kiln.aot import aot_function, nop
from kiln.errors import TraceError
from kiln.nn.utils import clip_grad_norm_, clip_grad_value_

SHAPES = [(3, 4), (5,), (), (0, 2)]
CASES = [("norm", 2.0, 0.5), ("norm", 1.0, 100.0), ("norm", math.inf, 0.3), ("norm", 3, 0.7),
         ("value", None, 0.4)]


def _grads(seed=0):
    rng = np.random.default_rng(seed)
    return [np.asarray(rng.standard_normal(s) * 2, np.float32) for s in SHAPES]


def clipped(lib, params, kind, norm_type, limit, grads):
    """The clipped gradients (and the total norm) of ``params`` whose ``.grad`` are set to
    ``grads`` -- the same source for torch and Kiln."""
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    if kind == "norm":
        total = lib.nn.utils.clip_grad_norm_(params, limit, norm_type)
        return [total] + [p.grad for p in params]
    lib.nn.utils.clip_grad_value_(params, limit)
    return [p.grad for p in params]


@pytest.mark.parametrize("kind,norm_type,limit", CASES)
def test_clipping_in_every_mode(kind, norm_type, limit):
    arrays = _grads()
    if norm_type == math.inf:  # torch refuses the inf-norm of an empty gradient (Kiln: 0)
        arrays = [a for a in arrays if a.size]
    xs = [kiln.tensor(a) for a in arrays]
    params = [kiln.nn.Parameter(kiln.zeros(*a.shape)) for a in arrays]

    def fn(*gs):
        return tuple(clipped(kiln, params, kind, norm_type, limit, gs))

    eager = [t.numpy() for t in fn(*xs)]
    runs = {"trace": kiln.trace(fn, *xs), "aot": aot_function(fn, nop),
            "c": kiln.compile(fn, backend="c")}
    for mode, run in runs.items():
        got = [t.numpy() for t in run(*xs)]
        for g, e in zip(got, eager, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-7, err_msg=mode)
    torch = pytest.importorskip("torch")  # last: the modes above run without torch
    tparams = [torch.nn.Parameter(torch.zeros(a.shape)) for a in arrays]
    want = [t.numpy() for t in clipped(torch, tparams, kind, norm_type, limit,
                                       [torch.from_numpy(a) for a in arrays])]
    for g, w in zip(eager, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


def test_clipping_inside_a_compiled_training_step():
    kiln.manual_seed(0)
    w = kiln.nn.Parameter(kiln.randn(5))
    ref = kiln.nn.Parameter(w.detach().clone())
    opt, ref_opt = kiln.optim.SGD([w], lr=0.1, momentum=0.9), kiln.optim.SGD([ref], lr=0.1,
                                                                             momentum=0.9)

    def step(g):
        w.grad = g
        total = clip_grad_norm_(w, 1.0)
        clip_grad_value_(w, 0.3)
        opt.step()
        return total

    run = kiln.compile(step, backend="c")
    rng = np.random.default_rng(1)
    for g in [kiln.tensor(rng.standard_normal(5).astype(np.float32)) for _ in range(3)]:
        ref.grad = g.clone()  # (before the step: clipping rescales g itself, as in torch)
        got = run(g)
        want = clip_grad_norm_(ref, 1.0)
        clip_grad_value_(ref, 0.3)
        ref_opt.step()
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
        np.testing.assert_allclose(w.detach().numpy(), ref.detach().numpy(), rtol=2e-6,
                                   atol=1e-7)


def test_error_if_nonfinite_is_refused_inside_a_trace():
    w = kiln.nn.Parameter(kiln.zeros(2))

    def step(g):
        w.grad = g
        return clip_grad_norm_(w, 1.0, error_if_nonfinite=True)

    with pytest.raises(TraceError, match="error_if_nonfinite=False"):
        kiln.trace(step, kiln.ones(2))
