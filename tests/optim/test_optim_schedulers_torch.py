"""Learning-rate schedulers against torch.optim.lr_scheduler, epoch by epoch."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln import nn
from kiln.errors import KilnError
from kiln.optim import lr_scheduler as kls

torch = pytest.importorskip("torch")
tls = torch.optim.lr_scheduler


def _optimizers():
    kp = [nn.Parameter(kiln.zeros(2)), nn.Parameter(kiln.zeros(3))]
    tp = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))]
    kopt = kiln.optim.SGD([{"params": kp[:1]}, {"params": kp[1:], "lr": 0.3}], lr=1.0,
                          momentum=0.9)
    topt = torch.optim.SGD([{"params": tp[:1]}, {"params": tp[1:], "lr": 0.3}], lr=1.0,
                           momentum=0.9)
    return kopt, topt


CASES = [
    ("StepLR", {"step_size": 3, "gamma": 0.5}),
    ("MultiStepLR", {"milestones": [2, 5, 5, 9], "gamma": 0.3}),
    ("ExponentialLR", {"gamma": 0.9}),
    ("CosineAnnealingLR", {"T_max": 5, "eta_min": 0.01}),
    ("LambdaLR", {"lr_lambda": lambda e: 1.0 / (1 + e)}),
    ("MultiplicativeLR", {"lr_lambda": lambda e: 0.95}),
    ("LinearLR", {"start_factor": 0.25, "total_iters": 4}),
    ("ConstantLR", {"factor": 0.5, "total_iters": 3}),
]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[c[0] for c in CASES])
def test_scheduler_matches_torch(name, kwargs):
    kopt, topt = _optimizers()
    ks, ts = getattr(kls, name)(kopt, **kwargs), getattr(tls, name)(topt, **kwargs)
    assert ks.get_last_lr() == ts.get_last_lr()
    for epoch in range(14):
        kopt.step()
        topt.step()
        ks.step()
        ts.step()
        np.testing.assert_allclose(ks.get_last_lr(), ts.get_last_lr(), rtol=1e-14,
                                   err_msg=f"epoch {epoch}")
        assert [g["lr"] for g in kopt.param_groups] == ks.get_last_lr()


def test_chained_schedulers_and_state_dict():
    kopt, topt = _optimizers()
    k1, k2 = kls.LinearLR(kopt, 0.5, total_iters=3), kls.ExponentialLR(kopt, 0.9)
    t1, t2 = tls.LinearLR(topt, 0.5, total_iters=3), tls.ExponentialLR(topt, 0.9)
    for _ in range(5):
        kopt.step()
        topt.step()
        for s in (k1, k2, t1, t2):
            s.step()
        np.testing.assert_allclose(k2.get_last_lr(), t2.get_last_lr(), rtol=1e-14)
    state = k2.state_dict()
    assert state["last_epoch"] == 5 and "optimizer" not in state
    again = kls.ExponentialLR(kiln.optim.SGD([nn.Parameter(kiln.zeros(1))], lr=1.0), 0.5)
    again.load_state_dict(state)
    assert again.last_epoch == 5 and again.gamma == 0.9


def test_step_with_epoch_uses_closed_form():
    kopt, topt = _optimizers()
    ks = kls.StepLR(kopt, step_size=2, gamma=0.1)
    ks.step(epoch=5)
    np.testing.assert_allclose(ks.get_last_lr(), [1.0 * 0.01, 0.3 * 0.01], rtol=1e-14)


def test_scheduler_errors():
    kopt, _ = _optimizers()
    with pytest.raises(KilnError, match="Optimizer"):
        kls.StepLR(object(), 2)
    with pytest.raises(KilnError, match="step_size"):
        kls.StepLR(kopt, 0)
    with pytest.raises(KilnError, match="T_max"):
        kls.CosineAnnealingLR(kopt, T_max=0)
    with pytest.raises(KilnError, match="initial_lr"):
        kls.ExponentialLR(kiln.optim.SGD([nn.Parameter(kiln.zeros(1))], lr=1.0), 0.9,
                          last_epoch=3)
    with pytest.raises(KilnError, match="lr_lambdas"):
        kls.LambdaLR(kopt, [lambda e: 1.0])
