"""kiln.nn.init: fans, gains, distribution statistics, seeding and default layer inits."""

from __future__ import annotations

import math

import numpy as np
import pytest

import kiln
from kiln import nn
from kiln.errors import KilnError
from kiln.nn import init


@pytest.mark.parametrize("shape,fans", [((5, 3), (3, 5)), ((16, 3, 5, 5), (75, 400)),
                                        ((4, 2, 7), (14, 28))])
def test_fans(shape, fans):
    assert init._calculate_fan_in_and_fan_out(kiln.zeros(*shape)) == fans


def test_fans_need_two_dims():
    with pytest.raises(KilnError, match="fewer than 2"):
        init._calculate_fan_in_and_fan_out(kiln.zeros(3))
    with pytest.raises(ValueError):  # PyTorch's exception type, too
        init.xavier_uniform_(kiln.zeros(3))


def test_gains_match_torch():
    torch = pytest.importorskip("torch")
    for name, param in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
                        ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2),
                        ("selu", None)]:
        assert init.calculate_gain(name, param) == torch.nn.init.calculate_gain(name, param)
    with pytest.raises(KilnError, match="unsupported nonlinearity"):
        init.calculate_gain("softsign_typo")
    with pytest.raises(KilnError):
        init.calculate_gain("leaky_relu", True)


def _stats(t):
    a = t.detach().numpy().astype(np.float64)
    return a.mean(), a.std(), a.min(), a.max()


def test_distribution_statistics():
    kiln.manual_seed(0)
    w = kiln.zeros(400, 300)
    mean, std, lo, hi = _stats(init.uniform_(w, -2.0, 3.0))
    assert lo >= -2.0 and hi < 3.0 and abs(mean - 0.5) < 0.02
    mean, std, _, _ = _stats(init.normal_(w, 1.0, 0.5))
    assert abs(mean - 1.0) < 0.005 and abs(std - 0.5) < 0.005
    a = math.sqrt(6.0 / 700)
    mean, std, lo, hi = _stats(init.xavier_uniform_(w))
    assert -a <= lo and hi <= a and abs(std - a / math.sqrt(3)) < 1e-3
    mean, std, _, _ = _stats(init.xavier_normal_(w, gain=2.0))
    assert abs(std - 2.0 * math.sqrt(2.0 / 700)) < 1e-3
    mean, std, lo, hi = _stats(init.kaiming_uniform_(w, nonlinearity="relu"))
    bound = math.sqrt(2.0) * math.sqrt(3.0 / 300)
    assert -bound <= lo and hi <= bound and abs(std - bound / math.sqrt(3)) < 1e-3
    mean, std, _, _ = _stats(init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"))
    assert abs(std - math.sqrt(2.0 / 400)) < 1e-3
    mean, std, lo, hi = _stats(init.trunc_normal_(w, mean=0.5, std=1.0, a=0.0, b=1.0))
    assert 0.0 <= lo and hi <= 1.0 and abs(mean - 0.5) < 0.01
    # std of N(0.5, 1) truncated to [0, 1] (symmetric about its mean): about 0.2841
    assert abs(std - 0.2841) < 0.005


def test_constant_and_structured_inits():
    assert init.constant_(kiln.zeros(2, 2), 3.5).tolist() == [[3.5, 3.5], [3.5, 3.5]]
    assert init.ones_(kiln.zeros(2)).tolist() == [1.0, 1.0]
    assert init.zeros_(kiln.ones(2, dtype="int64")).tolist() == [0, 0]
    assert init.eye_(kiln.zeros(2, 3)).tolist() == [[1.0, 0, 0], [0, 1.0, 0]]
    d = init.dirac_(kiln.zeros(4, 2, 3, 3), groups=2).numpy()
    assert d.sum() == 4 and d[0, 0, 1, 1] == 1 and d[2, 0, 1, 1] == 1
    for shape in [(6, 4), (4, 6), (3, 2, 2)]:
        q = init.orthogonal_(kiln.zeros(*shape, dtype="float64"), gain=2.0).numpy()
        q = q.reshape(shape[0], -1)
        gram = q @ q.T if shape[0] <= q.shape[1] else q.T @ q
        np.testing.assert_allclose(gram, 4.0 * np.eye(len(gram)), atol=1e-12)
    s = init.sparse_(kiln.zeros(10, 4), sparsity=0.3).numpy()
    assert ((s == 0).sum(axis=0) >= 3).all()


def test_seeded_and_explicit_generators():
    kiln.manual_seed(7)
    a = init.normal_(kiln.zeros(5)).tolist()
    kiln.manual_seed(7)
    assert init.normal_(kiln.zeros(5)).tolist() == a
    g1 = init.uniform_(kiln.zeros(3), generator=np.random.default_rng(1)).tolist()
    g2 = init.uniform_(kiln.zeros(3), generator=np.random.default_rng(1)).tolist()
    assert g1 == g2
    kiln.manual_seed(3)
    m1 = nn.Linear(4, 4)
    kiln.manual_seed(3)
    m2 = nn.Linear(4, 4)
    assert m1.weight.tolist() == m2.weight.tolist()


def test_init_on_parameters_runs_without_grad_and_keeps_identity():
    p = nn.Parameter(kiln.zeros(3, 3))
    data = p.numpy() if not p.requires_grad else p.detach().numpy()
    out = init.normal_(p)
    assert out is p and p.requires_grad and p.grad_fn is None
    assert np.shares_memory(p.detach().numpy(), data)


def test_default_layer_inits_follow_torch_bounds():
    kiln.manual_seed(0)
    lin = nn.Linear(50, 40)
    bound = 1 / math.sqrt(50)
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert np.abs(b).max() <= bound
    conv = nn.Conv2d(4, 8, 3)
    bound = 1 / math.sqrt(4 * 9)
    assert np.abs(conv.weight.detach().numpy()).max() <= bound
    emb = nn.Embedding(1000, 20, padding_idx=3).weight.detach().numpy()
    assert abs(emb.std() - 1.0) < 0.02 and not emb[3].any()
    bn = nn.BatchNorm2d(3)
    assert bn.weight.tolist() == [1.0] * 3 and bn.running_var.tolist() == [1.0] * 3


def test_init_errors():
    with pytest.raises(KilnError, match="mode"):
        init.kaiming_uniform_(kiln.zeros(2, 2), mode="fan_avg")
    with pytest.raises(KilnError, match="kiln.Tensor"):
        init.normal_(np.zeros(3))
    with pytest.raises(KilnError, match="2-D"):
        init.eye_(kiln.zeros(2, 2, 2))
