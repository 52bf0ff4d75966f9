"""The eager fast path of the optimizers (kiln.optim.fast): bit for bit the generic path,
close to torch, the generic path wherever the fast one does not apply, and traces that
still record the update as mutations."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln import nn
from kiln.errors import AutogradError
from kiln.optim import fast

# One parameter larger than a chunk, so that chunk boundaries are crossed.
SHAPES = [(fast.CHUNK + 123,), (7, 5), (3,)]

CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1,
             "maximize": True}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.02, "betas": (0.3, 0.9), "maximize": True}),  # lerp weight >= 0.5
    ("AdamW", {"lr": 0.01, "weight_decay": 0.05, "amsgrad": True, "maximize": True}),
]


def _twins(dtype, n=2, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    return [[nn.Parameter(kiln.tensor(a.copy(), dtype=dtype)) for a in arrays]
            for _ in range(n)]


def _grads(params, step, dtype):
    return [np.sin(3.0 * p.detach().numpy() + step).astype(dtype) + 0.01 * i
            for i, p in enumerate(params)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in
                                                    enumerate(CASES)])
def test_fast_path_is_bitwise_the_generic_path(name, kwargs, dtype):
    fast_p, slow_p = _twins(dtype)
    # fused=False: this file tests the NumPy path (test_optim_fused.py the C kernels).
    fast_opt = getattr(kiln.optim, name)(fast_p, fused=False, **kwargs)
    slow_opt = getattr(kiln.optim, name)(slow_p, **kwargs)
    slow_opt._fast_path = False
    for step in range(3):
        for ps in (fast_p, slow_p):
            for p, g in zip(ps, _grads(fast_p, step, dtype), strict=True):
                p.grad = kiln.tensor(g, dtype=dtype)
        fast_opt.step()
        slow_opt.step()
        for a, b in zip(fast_p, slow_p, strict=True):
            np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert fast_opt._scratch._buffers and not slow_opt._scratch._buffers  # paths taken
    # Same state, same keys: the scratch buffers are not state.
    fs, ss = fast_opt.state_dict()["state"], slow_opt.state_dict()["state"]
    assert fs.keys() == ss.keys()
    for k in fs:
        assert fs[k].keys() == ss[k].keys()
        for key in fs[k]:
            np.testing.assert_array_equal(np.asarray(fs[k][key]), np.asarray(ss[k][key]))


@pytest.mark.parametrize("name,kwargs", [CASES[2], CASES[3]])
def test_fast_path_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    (kp,) = _twins("float64", n=1)
    tp = [torch.nn.Parameter(torch.tensor(p.detach().numpy().copy())) for p in kp]
    kopt = getattr(kiln.optim, name)(kp, fused=False, **kwargs)
    topt = getattr(torch.optim, name)(tp, foreach=False, **kwargs)
    for step in range(4):
        for k, t, g in zip(kp, tp, _grads(kp, step, "float64"), strict=True):
            k.grad, t.grad = kiln.tensor(g, dtype="float64"), torch.tensor(g)
        kopt.step()
        topt.step()
    for k, t in zip(kp, tp, strict=True):
        np.testing.assert_allclose(k.detach().numpy(), t.detach().numpy(), rtol=1e-12,
                                   atol=1e-14)


def _odd_grads(p):
    """Gradients the fast path must leave to the generic path (name, grad)."""
    g = np.linspace(-1, 1, p.numel(), dtype=np.float32).reshape(p.shape)
    wide = np.zeros(p.shape[:-1] + (2 * p.shape[-1],), np.float32)
    wide[..., ::2] = g
    return [
        ("non-contiguous", kiln.Tensor._wrap(wide[..., ::2])),
        ("requires grad", kiln.tensor(g, requires_grad=True)),
        ("other dtype", kiln.tensor(g.astype(np.float64), dtype="float64")),
        ("aliases the parameter", p.detach()),
    ]


@pytest.mark.parametrize("which", range(4))
@pytest.mark.parametrize("name,kwargs", [("SGD", {"lr": 0.1, "momentum": 0.9}),
                                         ("Adam", {"lr": 0.1})])
def test_odd_gradients_take_the_generic_path(name, kwargs, which):
    fast_p, slow_p = _twins("float32", n=2, seed=1)
    fast_p, slow_p = fast_p[1:2], slow_p[1:2]
    fast_opt = getattr(kiln.optim, name)(fast_p, **kwargs)
    slow_opt = getattr(kiln.optim, name)(slow_p, **kwargs)
    slow_opt._fast_path = False
    for _ in range(2):
        _, gf = _odd_grads(fast_p[0])[which]
        _, gs = _odd_grads(slow_p[0])[which]
        fast_p[0].grad, slow_p[0].grad = gf, gs
        fast_opt.step()
        slow_opt.step()
    np.testing.assert_array_equal(fast_p[0].detach().numpy(), slow_p[0].detach().numpy())
    assert not fast_opt._scratch._buffers


def test_non_contiguous_state_falls_back():
    (ps,) = _twins("float32", n=1)
    opt = kiln.optim.SGD(ps[1:2], lr=0.1, momentum=0.9)
    ps[1].grad = kiln.ones(7, 5)
    opt.step()
    buf = opt.state[ps[1]]["momentum_buffer"]
    wide = np.zeros((7, 10), np.float32)
    wide[:, ::2] = buf.numpy()
    opt.state[ps[1]]["momentum_buffer"] = kiln.Tensor._wrap(wide[:, ::2])
    before = ps[1].detach().numpy().copy()
    opt.step()  # generic path: buf = 0.9 * buf + g, p -= 0.1 * buf
    np.testing.assert_allclose(ps[1].detach().numpy(), before - 0.1 * 1.9, rtol=1e-6)


def test_fast_update_moves_version_counters():
    p = nn.Parameter(kiln.ones(3))
    opt = kiln.optim.SGD([p], lr=0.1, momentum=0.9)
    y = p * p  # its backward reads p
    p.grad = kiln.ones(3)
    v = p._version
    opt.step()
    assert p._version > v
    with pytest.raises(AutogradError, match="modified in place"):
        y.sum().backward()
    buf = opt.state[p]["momentum_buffer"]
    v = buf._version
    opt.step()
    assert buf._version > v


def test_step_inside_trace_records_mutations():
    # In a trace the update is graph work (the fast path is off): the traced function
    # writes the new parameter values back, like the eager step.
    lin, twin = nn.Linear(3, 2), nn.Linear(3, 2)
    twin.load_state_dict(lin.state_dict())
    opt, twin_opt = kiln.optim.SGD(lin.parameters(), lr=0.1), \
        kiln.optim.SGD(twin.parameters(), lr=0.1)

    def step(gw, gb):
        lin.weight.grad, lin.bias.grad = gw, gb
        opt.step()
        return lin.weight * 1.0

    gw, gb = kiln.randn(2, 3), kiln.randn(2)
    gm = kiln.trace(step, gw, gb)
    assert len(gm.signature.mutations) == 2 and not opt._scratch._buffers
    compiled = kiln.compile(step)
    for fn in (gm, compiled):
        for _ in range(2):
            gw, gb = kiln.randn(2, 3), kiln.randn(2)
            out = fn(gw, gb)
            twin.weight.grad, twin.bias.grad = gw, gb
            twin_opt.step()
            np.testing.assert_allclose(lin.weight.detach().numpy(),
                                       twin.weight.detach().numpy(), rtol=1e-6)
            np.testing.assert_allclose(lin.bias.detach().numpy(),
                                       twin.bias.detach().numpy(), rtol=1e-6)
            np.testing.assert_allclose(out.detach().numpy(), twin.weight.detach().numpy(),
                                       rtol=1e-6)
