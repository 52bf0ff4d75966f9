"""RNN, LSTM, GRU and their cells: torch's state_dict loads as is and gives torch's outputs,
final states and gradients; the same module traced, through AOT autograd and compiled with
the C backend gives eager's numbers; float64 gradients match finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln import nn
from kiln.aot import aot_function, nop
from kiln.errors import ArgumentError, ShapeError, ValueArgumentError

CONFIGS = [
    ("RNN", {}),
    ("RNN", {"nonlinearity": "relu", "num_layers": 2, "batch_first": True}),
    ("LSTM", {"num_layers": 2, "bidirectional": True, "batch_first": True}),
    ("LSTM", {"bias": False}),
    ("GRU", {"num_layers": 2, "bidirectional": True}),
    ("GRU", {"batch_first": True, "num_layers": 3}),
]
IN, HID, L, N = 3, 4, 5, 2


def _ids(cfg):
    return cfg[0] + "-" + "-".join(f"{k}={v}" for k, v in cfg[1].items())


def _flat(out):
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return [out]


def _pair(cls, kwargs, torch, dtype="float64"):
    torch.manual_seed(0)
    tm = getattr(torch.nn, cls)(IN, HID, **kwargs).to(getattr(torch, dtype))
    km = getattr(nn, cls)(IN, HID, **kwargs).to(getattr(kiln, dtype))
    assert list(km.state_dict()) == list(tm.state_dict())
    km.load_state_dict(tm.state_dict())
    return km, tm


def _input(kwargs, dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    shape = (N, L, IN) if kwargs.get("batch_first") else (L, N, IN)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.torch
@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids)
def test_rnn_matches_torch_with_grads(cfg):
    torch = pytest.importorskip("torch")
    cls, kwargs = cfg
    km, tm = _pair(cls, kwargs, torch)
    x = _input(kwargs)
    layers = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    h0 = np.random.default_rng(1).standard_normal((layers, N, HID))
    kx = kiln.tensor(x, dtype=kiln.float64, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    kh = kiln.tensor(h0, dtype=kiln.float64, requires_grad=True)
    th = torch.tensor(h0, requires_grad=True)
    k_state = (kh, kh * 0.5) if cls == "LSTM" else kh
    t_state = (th, th * 0.5) if cls == "LSTM" else th
    kout, tout = _flat(km(kx, k_state)), _flat(tm(tx, t_state))
    assert len(kout) == len(tout)
    rng = np.random.default_rng(2)
    kloss = tloss = 0
    for k, t in zip(kout, tout):
        assert tuple(k.shape) == tuple(t.shape)
        np.testing.assert_allclose(k.detach().numpy(), t.detach().numpy(), rtol=1e-9,
                                   atol=1e-11)
        w = rng.standard_normal(tuple(t.shape))
        kloss = kloss + (k * kiln.tensor(w, dtype=kiln.float64)).sum()
        tloss = tloss + (t * torch.tensor(w)).sum()
    kloss.backward()
    tloss.backward()
    np.testing.assert_allclose(kx.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(kh.grad.numpy(), th.grad.numpy(), rtol=1e-9, atol=1e-11)
    kp = dict(km.named_parameters())
    for name, p in tm.named_parameters():
        np.testing.assert_allclose(kp[name].grad.numpy(), p.grad.numpy(), rtol=1e-9,
                                   atol=1e-11, err_msg=name)


@pytest.mark.torch
@pytest.mark.parametrize("cls", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_match_torch(cls):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm = getattr(torch.nn, cls)(IN, HID).double()
    km = getattr(nn, cls)(IN, HID).double()
    km.load_state_dict(tm.state_dict())
    x = np.random.default_rng(0).standard_normal((N, IN))
    for args_k, args_t in [((kiln.tensor(x),), (torch.tensor(x),)),
                           ((kiln.tensor(x[0]),), (torch.tensor(x[0]),))]:
        for k, t in zip(_flat(km(*args_k)), _flat(tm(*args_t))):
            np.testing.assert_allclose(k.detach().numpy(), t.detach().numpy(), rtol=1e-9)
    assert repr(km) == repr(tm)


@pytest.mark.torch
def test_reprs_and_parameter_layout_match_torch():
    torch = pytest.importorskip("torch")
    for cls, kwargs in CONFIGS + [("RNN", {"dropout": 0.5, "num_layers": 2})]:
        km, tm = _pair(cls, kwargs, torch, "float32")
        assert repr(km) == repr(tm)
        for (kn, kp), (tn, tp) in zip(km.named_parameters(), tm.named_parameters()):
            assert kn == tn and tuple(kp.shape) == tuple(tp.shape)


@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids)
def test_rnn_traced_aot_and_c_match_eager(cfg):
    cls, kwargs = cfg
    kiln.manual_seed(0)
    m = getattr(nn, cls)(IN, HID, **kwargs)
    x = kiln.tensor(_input(kwargs, "float32"))
    ref = [t.detach().numpy() for t in _flat(m(x))]

    gm = kiln.trace(m, x)
    for a, b in zip(_flat(gm(x)), ref):
        np.testing.assert_allclose(a.detach().numpy(), b, rtol=1e-6, atol=1e-6)

    def loss(x):
        return sum((t * t).sum() for t in _flat(m(x)))

    xg = kiln.tensor(_input(kwargs, "float32"), requires_grad=True)
    loss(xg).backward()
    want_x = xg.grad.numpy().copy()
    want_p = {n: p.grad.numpy().copy() for n, p in m.named_parameters()}
    for mode in ("aot", "c"):
        m.zero_grad()
        xg.grad = None
        fn = aot_function(loss, nop) if mode == "aot" else kiln.compile(loss, backend="c")
        fn(xg).backward()
        np.testing.assert_allclose(xg.grad.numpy(), want_x, rtol=1e-4, atol=1e-5,
                                   err_msg=mode)
        for n, p in m.named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), want_p[n], rtol=1e-4, atol=1e-5,
                                       err_msg=f"{mode}: {n}")
    with kiln.no_grad():
        out = kiln.compile(m, backend="c")(x)
    for a, b in zip(_flat(out), ref):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-5, atol=1e-6)


def test_symbolic_batch_traces_once():
    m = nn.GRU(IN, HID, batch_first=True)
    gm = kiln.trace(m, kiln.randn(2, L, IN), dynamic={"input": {0: "B"}})
    out, h = gm(kiln.randn(5, L, IN))
    assert out.shape == (5, L, HID) and h.shape == (1, 5, HID)


def test_symbolic_sequence_length_is_refused():
    m = nn.LSTM(IN, HID)
    with pytest.raises(ShapeError, match="sequence length must be static"):
        kiln.trace(m, kiln.randn(L, N, IN), dynamic={"input": {0: "T"}})


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_grads_match_finite_differences(cls):
    kiln.manual_seed(0)
    m = getattr(nn, cls)(2, 3, num_layers=2, bidirectional=True).double()
    x0 = np.random.default_rng(0).standard_normal((3, 2, 2))
    w = np.random.default_rng(1).standard_normal((3, 2, 6))

    def f(xa: np.ndarray) -> float:
        with kiln.no_grad():
            return float((m(kiln.tensor(xa))[0] * kiln.tensor(w)).sum().item())

    x = kiln.tensor(x0, requires_grad=True)
    (m(x)[0] * kiln.tensor(w)).sum().backward()
    num = np.zeros_like(x0)
    eps = 1e-6
    for idx in np.ndindex(*x0.shape):
        plus, minus = x0.copy(), x0.copy()
        plus[idx] += eps
        minus[idx] -= eps
        num[idx] = (f(plus) - f(minus)) / (2 * eps)
    np.testing.assert_allclose(x.grad.numpy(), num, rtol=1e-6, atol=1e-8)
    # one weight, all of its entries
    p = m.weight_hh_l1_reverse
    p0 = p.detach().numpy().copy()
    num_p = np.zeros_like(p0)
    for idx in np.ndindex(*p0.shape):
        for sign in (1, -1):
            q = p0.copy()
            q[idx] += sign * eps
            with kiln.no_grad():
                p.copy_(kiln.tensor(q))
            num_p[idx] += sign * f(x0) / (2 * eps)
    with kiln.no_grad():
        p.copy_(kiln.tensor(p0))
    np.testing.assert_allclose(p.grad.numpy(), num_p, rtol=1e-6, atol=1e-8)


def test_dropout_between_layers():
    kiln.manual_seed(0)
    m = nn.LSTM(IN, HID, num_layers=2, dropout=0.5)
    x = kiln.randn(L, N, IN)
    m.eval()
    with kiln.no_grad():
        a = m(x)[0]
        b = m(x)[0]
        assert np.array_equal(a.numpy(), b.numpy())
        m.train()
        c = m(x)[0]
    assert not np.allclose(a.numpy(), c.numpy())
    # a one-layer RNN has no "between layers": dropout does nothing
    one = nn.GRU(IN, HID, dropout=0.5)
    with kiln.no_grad():
        assert np.array_equal(one(x)[0].numpy(), one(x)[0].numpy())


def test_errors_name_the_layer_and_argument():
    m = nn.LSTM(IN, HID)
    with pytest.raises(ShapeError, match="LSTM: expected input with 3 features"):
        m(kiln.randn(L, N, IN + 1))
    with pytest.raises(ArgumentError, match=r"LSTM: hx must be a tuple \(h_0, c_0\)"):
        m(kiln.randn(L, N, IN), kiln.zeros(1, N, HID))
    with pytest.raises(ShapeError, match="GRU: expected h_0 of shape"):
        nn.GRU(IN, HID)(kiln.randn(L, N, IN), kiln.zeros(2, N, HID))
    m.flatten_parameters()  # a no-op kept for ported code
    with pytest.raises(ValueArgumentError, match="proj_size must be smaller than hidden_size"):
        nn.LSTM(IN, HID, proj_size=HID)
    for cls in (nn.GRU, nn.RNN):
        with pytest.raises(ArgumentError, match="proj_size is only supported by LSTM"):
            cls(IN, HID, proj_size=2)
