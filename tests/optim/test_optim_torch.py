"""Optimizers against torch.optim (foreach=False), step by step, plus state dicts and errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import kiln
from kiln import nn
from kiln.errors import KilnError

torch = pytest.importorskip("torch")

SHAPES = [(4, 3), (3,), (2, 2, 2)]


def _params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    kp = [nn.Parameter(kiln.tensor(a, dtype=dtype)) for a in arrays]
    tp = [torch.nn.Parameter(torch.tensor(a)) for a in arrays]
    return kp, tp


def _set_grads(kp, tp, step, skip=None):
    """A gradient that depends on the parameter (like a real loss) and on the step."""
    for i, (k, t) in enumerate(zip(kp, tp)):
        if skip is not None and i == skip:
            k.grad, t.grad = None, None
            continue
        x = t.detach().numpy()
        g = np.sin(3.0 * x + step) + 0.1 * x * x - 0.05 * (i + 1)
        k.grad = kiln.tensor(g, dtype=str(g.dtype))
        t.grad = torch.tensor(g)


def _groups(kp, tp, group_opts):
    if group_opts is None:
        return kp, tp
    kg = [dict(opts, params=[kp[i] for i in idx]) for idx, opts in group_opts]
    tg = [dict(opts, params=[tp[i] for i in idx]) for idx, opts in group_opts]
    return kg, tg


def _run(name, kwargs, group_opts=None, dtype="float64", steps=6, tol=None):
    kp, tp = _params(dtype)
    kg, tg = _groups(kp, tp, group_opts)
    kopt = getattr(kiln.optim, name)(kg, **kwargs)
    topt = getattr(torch.optim, name)(tg, foreach=False, **kwargs)
    tol = tol or ({"rtol": 1e-12, "atol": 1e-14} if dtype == "float64"
                  else {"rtol": 1e-5, "atol": 1e-6})
    for step in range(steps):
        _set_grads(kp, tp, step, skip=2 if step == 1 else None)
        kopt.step()
        topt.step()
        for i, (k, t) in enumerate(zip(kp, tp)):
            np.testing.assert_allclose(k.detach().numpy(), t.detach().numpy(),
                                       err_msg=f"param {i} after step {step}", **tol)
    return kopt, topt, kp, tp


SGD_CASES = [
    {"lr": 0.1},
    {"lr": 0.1, "momentum": 0.9},
    {"lr": 0.05, "momentum": 0.8, "dampening": 0.3},
    {"lr": 0.1, "momentum": 0.9, "nesterov": True},
    {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.01},
    {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1, "maximize": True},
]
ADAM_CASES = [
    {},
    {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6},
    {"lr": 0.01, "amsgrad": True},
    {"lr": 0.01, "weight_decay": 0.1},
    {"lr": 0.02, "betas": (0.3, 0.9), "maximize": True},  # lerp weight >= 0.5 branch
    {"lr": 0.01, "weight_decay": 0.05, "amsgrad": True, "maximize": True},
]


@pytest.mark.parametrize("kwargs", SGD_CASES)
def test_sgd_matches_torch(kwargs):
    _run("SGD", kwargs)


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("kwargs", ADAM_CASES)
def test_adam_adamw_match_torch(name, kwargs):
    _run(name, kwargs)


@pytest.mark.parametrize("name,kwargs", [("SGD", {"lr": 0.1, "momentum": 0.9}),
                                         ("Adam", {"lr": 0.01, "amsgrad": True}),
                                         ("AdamW", {"lr": 0.01})])
def test_float32_matches_torch(name, kwargs):
    _run(name, kwargs, dtype="float32")


@pytest.mark.parametrize("name,kwargs,groups", [
    ("SGD", {"lr": 0.1, "momentum": 0.9},
     [([0], {}), ([1, 2], {"lr": 0.01, "momentum": 0.5, "nesterov": True})]),
    ("Adam", {"lr": 0.01}, [([0, 2], {"weight_decay": 0.1}), ([1], {"betas": (0.5, 0.9)})]),
    ("AdamW", {"lr": 0.01}, [([0], {"amsgrad": True}), ([1, 2], {"weight_decay": 0.0})]),
])
def test_param_groups_match_torch(name, kwargs, groups):
    kopt, topt, _, _ = _run(name, kwargs, groups)
    for kg, tg in zip(kopt.param_groups, topt.param_groups):
        for key in ("lr", "weight_decay"):
            assert kg[key] == tg[key]


def test_state_dict_roundtrip_and_loading_torch_state():
    kopt, topt, kp, tp = _run("Adam", {"lr": 0.01, "amsgrad": True}, steps=3)
    saved = copy.deepcopy(kopt.state_dict())
    assert sorted(saved["state"]) == [0, 1, 2]
    assert set(saved["state"][0]) == set(topt.state_dict()["state"][0])
    # A fresh optimizer over copies of the parameters resumes exactly.
    kp2 = [nn.Parameter(p.detach().clone()) for p in kp]
    kopt2 = kiln.optim.Adam(kp2, lr=0.5)
    kopt2.load_state_dict(saved)
    assert kopt2.param_groups[0]["lr"] == 0.01 and kopt2.param_groups[0]["params"][0] is kp2[0]
    # ... and so does one loaded from PyTorch's own state dict.
    kp3 = [nn.Parameter(p.detach().clone()) for p in kp]
    kopt3 = kiln.optim.Adam(kp3)
    kopt3.load_state_dict(topt.state_dict())
    for step in range(3, 6):
        _set_grads(kp, tp, step)
        for ps in (kp2, kp3):
            for p, src in zip(ps, kp):
                p.grad = src.grad
        for opt in (kopt, kopt2, kopt3, topt):
            opt.step()
    for a, b, c, t in zip(kp, kp2, kp3, tp):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
        np.testing.assert_allclose(c.detach().numpy(), t.detach().numpy(), rtol=1e-12)


def test_sgd_momentum_state_dict_and_zero_grad():
    kopt, _, kp, _ = _run("SGD", {"lr": 0.1, "momentum": 0.9}, steps=2)
    state = kopt.state_dict()
    assert set(state["state"][0]) == {"momentum_buffer"}
    assert state["param_groups"][0]["params"] == [0, 1, 2]
    kopt.zero_grad(set_to_none=False)
    assert all(not p.grad.numpy().any() for p in kp[:2]) and kp[2].grad is None
    kopt.zero_grad()
    assert all(p.grad is None for p in kp)


def test_end_to_end_with_backward_matches_torch():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((16, 5)), rng.integers(0, 3, 16)
    tmodel = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(),
                                 torch.nn.Linear(8, 3)).double()
    kmodel = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    kmodel.load_state_dict(tmodel.state_dict())
    kopt = kiln.optim.AdamW(kmodel.parameters(), lr=0.05, amsgrad=True)
    topt = torch.optim.AdamW(tmodel.parameters(), lr=0.05, amsgrad=True, foreach=False)
    ksched = kiln.optim.lr_scheduler.CosineAnnealingLR(kopt, T_max=4)
    tsched = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=4)
    kx, tx = kiln.tensor(x, dtype="float64"), torch.tensor(x)
    ky, ty = kiln.tensor(y), torch.tensor(y)
    for _ in range(6):
        for opt, model, xx, yy, F, sched in (
                (kopt, kmodel, kx, ky, kiln.nn.functional, ksched),
                (topt, tmodel, tx, ty, torch.nn.functional, tsched)):
            opt.zero_grad()
            F.cross_entropy(model(xx), yy).backward()
            opt.step()
            sched.step()
        for (name, a), (_, b) in zip(kmodel.named_parameters(), tmodel.named_parameters()):
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-10,
                                       atol=1e-12, err_msg=name)


def test_closure_updates_seen_by_compiled_module():
    model = nn.Linear(3, 1)
    compiled = kiln.compile(model, backend="interpret")
    x = kiln.ones(2, 3)
    before = compiled(x).detach().numpy().copy()
    opt = kiln.optim.SGD(model.parameters(), lr=0.5)

    def closure():
        opt.zero_grad()
        loss = compiled(x).square().mean()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, kiln.Tensor)
    after = compiled(x).detach().numpy()
    np.testing.assert_allclose(after, model(x).detach().numpy(), rtol=1e-6)
    assert not np.allclose(before, after)


@pytest.mark.parametrize("build,match", [
    (lambda p: kiln.optim.SGD(p, lr=-1), "invalid lr"),
    (lambda p: kiln.optim.SGD(p, lr=0.1, nesterov=True), "Nesterov"),
    (lambda p: kiln.optim.SGD(p, lr=0.1, momentum=-0.5), "momentum"),
    (lambda p: kiln.optim.Adam(p, betas=(1.0, 0.9)), "beta parameter at index 0"),
    (lambda p: kiln.optim.Adam(p, eps=-1.0), "eps"),
    (lambda p: kiln.optim.AdamW(p, weight_decay=-0.1), "weight_decay"),
    (lambda p: kiln.optim.SGD([], lr=0.1), "empty parameter list"),
    (lambda p: kiln.optim.SGD(p[0], lr=0.1), "single Tensor"),
    (lambda p: kiln.optim.SGD(set(p), lr=0.1), "ordered"),
    (lambda p: kiln.optim.SGD([p[0], "w"], lr=0.1), "kiln Tensors"),
    (lambda p: kiln.optim.SGD([{"params": p[:1]}, {"params": p[:2]}], lr=0.1),
     "more than one parameter group"),
    (lambda p: kiln.optim.SGD([p[0] * 2], lr=0.1), "non-leaf"),
])
def test_bad_optimizer_arguments(build, match):
    params, _ = _params("float32")
    with pytest.raises(KilnError, match=match):
        build(params)


def test_load_state_dict_checks_groups():
    kp, _ = _params("float32")
    opt = kiln.optim.SGD(kp, lr=0.1)
    other = kiln.optim.SGD([{"params": kp[:1]}, {"params": kp[1:]}], lr=0.1)
    with pytest.raises(ValueError, match="parameter groups"):
        opt.load_state_dict(other.state_dict())
    with pytest.raises(KilnError):
        opt.load_state_dict({"state": {}})


def test_add_param_group_and_repr():
    kp, _ = _params("float32")
    opt = kiln.optim.Adam(kp[:2], lr=0.1)
    opt.add_param_group({"params": kp[2], "lr": 0.01})
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    assert opt.param_groups[1]["betas"] == (0.9, 0.999)
    assert "Parameter Group 1" in repr(opt)
