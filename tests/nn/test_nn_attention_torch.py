"""MultiheadAttention against PyTorch: layouts, masks, weights, grads and state dicts."""

from __future__ import annotations

import numpy as np
import pytest
from oracle_nn import F32_TOL, F64_TOL, assert_close

import kiln
from kiln import nn
from kiln.errors import KilnError

torch = pytest.importorskip("torch")

E, H, L, S, N = 8, 2, 4, 5, 3


def _pair(**kwargs):
    dtype = kwargs.pop("dtype", "float64")
    tmod = torch.nn.MultiheadAttention(E, H, dtype=getattr(torch, dtype), **kwargs)
    kmod = nn.MultiheadAttention(E, H, dtype=dtype, **kwargs)
    kmod.load_state_dict(tmod.state_dict())
    return kmod, tmod


def _inputs(shapes, dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
    return ([kiln.tensor(a, dtype=dtype, requires_grad=True) for a in arrays],
            [torch.tensor(a, requires_grad=True) for a in arrays])


def _masks(kind, rng, tgt=L, src=S):
    """(kiln kwargs, torch kwargs) for one mask configuration."""
    if kind == "none":
        return {}, {}
    out_k, out_t = {}, {}
    if kind in ("bool_attn", "both"):
        m = rng.uniform(size=(tgt, src)) < 0.3
        m[:, 0] = False  # every query keeps at least one key (else the row is NaN in both)
        out_k["attn_mask"], out_t["attn_mask"] = kiln.tensor(m), torch.tensor(m)
    if kind == "float_attn":
        m = rng.standard_normal((tgt, src))
        out_k["attn_mask"], out_t["attn_mask"] = kiln.tensor(m, dtype="float64"), \
            torch.tensor(m)
    if kind == "3d_attn":
        m = rng.uniform(size=(N * H, tgt, src)) < 0.3
        m[..., 1] = False
        out_k["attn_mask"], out_t["attn_mask"] = kiln.tensor(m), torch.tensor(m)
    if kind in ("padding", "both"):
        m = np.zeros((N, src), bool)
        m[0, 3:] = True
        m[2, 1] = True
        out_k["key_padding_mask"] = kiln.tensor(m)
        out_t["key_padding_mask"] = torch.tensor(m)
    return out_k, out_t


def _compare(kmod, tmod, kin, tin, kw_k, kw_t, tol=F64_TOL):
    out_k, w_k = kmod(*kin, **kw_k)
    out_t, w_t = tmod(*tin, **kw_t)
    assert_close(out_k, out_t, tol, "output")
    if w_t is None:
        assert w_k is None
    else:
        assert_close(w_k, w_t, tol, "attention weights")
    g = np.random.default_rng(1).standard_normal(tuple(out_t.shape)).astype(
        out_t.detach().numpy().dtype)
    loss_k = (out_k * kiln.tensor(g, dtype=str(g.dtype))).sum()
    loss_t = (out_t * torch.tensor(g)).sum()
    if w_t is not None:
        loss_k = loss_k + (w_k * w_k).sum()
        loss_t = loss_t + (w_t * w_t).sum()
    loss_k.backward()
    loss_t.backward()
    for i, (a, b) in enumerate(zip(kin, tin)):
        if b.grad is not None:
            assert_close(a.grad, b.grad, tol, f"grad of input {i}")
    kp = dict(kmod.named_parameters())
    for name, p in tmod.named_parameters():
        assert_close(kp[name].grad, p.grad, tol, f"grad of {name}")


@pytest.mark.parametrize("mask", ["none", "bool_attn", "float_attn", "3d_attn", "padding",
                                  "both"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_self_attention_with_masks(mask, batch_first):
    kmod, tmod = _pair(batch_first=batch_first)
    shape = (N, S, E) if batch_first else (S, N, E)
    (kx,), (tx,) = _inputs([shape])
    kw_k, kw_t = _masks(mask, np.random.default_rng(2), tgt=S, src=S)
    _compare(kmod, tmod, [kx, kx, kx], [tx, tx, tx], kw_k, kw_t)


@pytest.mark.parametrize("mask", ["none", "bool_attn", "float_attn", "3d_attn", "padding",
                                  "both"])
@pytest.mark.parametrize("need_weights,average", [(True, True), (True, False), (False, True)])
def test_cross_attention_options(mask, need_weights, average):
    kmod, tmod = _pair(batch_first=True)
    kin, tin = _inputs([(N, L, E), (N, S, E), (N, S, E)], seed=3)
    kw_k, kw_t = _masks(mask, np.random.default_rng(4))
    for kw in (kw_k, kw_t):
        kw.update(need_weights=need_weights, average_attn_weights=average)
    _compare(kmod, tmod, kin, tin, kw_k, kw_t)


def test_unbatched_kdim_vdim_bias_kv_and_no_bias():
    for kwargs in ({"kdim": 6, "vdim": 3}, {"add_bias_kv": True}, {"bias": False}):
        kmod, tmod = _pair(**kwargs)
        assert [(k, tuple(v.shape)) for k, v in kmod.state_dict().items()] == \
            [(k, tuple(v.shape)) for k, v in tmod.state_dict().items()]
        kdim, vdim = kwargs.get("kdim", E), kwargs.get("vdim", E)
        kin, tin = _inputs([(L, E), (S, kdim), (S, vdim)], seed=5)
        m = np.zeros(S, bool)
        m[-1] = True
        _compare(kmod, tmod, kin, tin, {"key_padding_mask": kiln.tensor(m)},
                 {"key_padding_mask": torch.tensor(m)})


def test_float32_and_eval_mode():
    kmod, tmod = _pair(dtype="float32", dropout=0.1)
    kmod.eval()
    tmod.eval()
    (kx,), (tx,) = _inputs([(L, N, E)], dtype="float32", seed=6)
    _compare(kmod, tmod, [kx, kx, kx], [tx, tx, tx], {}, {}, F32_TOL)


def test_repr_state_dict_and_init_match_torch():
    kmod = nn.MultiheadAttention(16, 4)
    tmod = torch.nn.MultiheadAttention(16, 4)
    assert repr(kmod) == repr(tmod)
    assert [(k, tuple(v.shape)) for k, v in kmod.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in tmod.state_dict().items()]
    # xavier_uniform_ on in_proj_weight, zero biases
    bound = (6.0 / (16 + 48)) ** 0.5
    w = kmod.in_proj_weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert not kmod.in_proj_bias.detach().numpy().any()
    assert not kmod.out_proj.bias.detach().numpy().any()


def test_bad_arguments_raise_kiln_errors():
    with pytest.raises(KilnError, match="divisible"):
        nn.MultiheadAttention(10, 3)
    mha = nn.MultiheadAttention(E, H, batch_first=True)
    x = kiln.ones(N, L, E)
    with pytest.raises(KilnError, match="attn_mask"):
        mha(x, x, x, attn_mask=kiln.ones(L + 1, L).bool())
    with pytest.raises(KilnError, match="key_padding_mask"):
        mha(x, x, x, key_padding_mask=kiln.ones(N, L + 2).bool())
    with pytest.raises(KilnError, match="last dim"):
        mha(kiln.ones(N, L, E + 1), x, x)
    with pytest.raises(KilnError, match="is_causal"):
        mha(x, x, x, is_causal=True)
