"""Helpers for comparing Kiln layers with their PyTorch counterparts."""

from __future__ import annotations

from typing import Any

import numpy as np

import kiln

F64_TOL = {"rtol": 1e-9, "atol": 1e-11}
F32_TOL = {"rtol": 1e-5, "atol": 1e-6}


def to_numpy(t: Any) -> np.ndarray:
    if isinstance(t, kiln.Tensor):
        return np.asarray(t.detach().numpy())
    return t.detach().cpu().numpy()


def copy_weights(kmod: kiln.nn.Module, tmod: Any) -> None:
    """Load the torch module's state dict (torch tensors, read through NumPy) into Kiln."""
    kmod.load_state_dict(tmod.state_dict())


def pair_inputs(arrays: list[np.ndarray], torch: Any, grad: bool = True) -> tuple[list, list]:
    kin, tin = [], []
    for a in arrays:
        floating = a.dtype.kind == "f"
        k = kiln.tensor(a, dtype=str(a.dtype))
        t = torch.tensor(a.copy())
        if floating and grad:
            k.requires_grad_(True)
            t.requires_grad_(True)
        kin.append(k)
        tin.append(t)
    return kin, tin


def assert_close(a: Any, b: Any, tol: dict, what: str) -> None:
    a, b = to_numpy(a), to_numpy(b)
    assert a.shape == b.shape, f"{what}: shape {a.shape} vs torch {b.shape}"
    np.testing.assert_allclose(a, b, err_msg=what, equal_nan=True, **tol)


def check_against_torch(kmod: kiln.nn.Module, tmod: Any, arrays: list[np.ndarray], torch: Any,
                        tol: dict = F64_TOL, grads: bool = True, seed: int = 0,
                        call: Any = None) -> None:
    """Same forward values, input grads, parameter grads and buffers as PyTorch."""
    copy_weights(kmod, tmod)
    kin, tin = pair_inputs(arrays, torch, grad=grads)
    call = call or (lambda m, xs: m(*xs))
    out_k, out_t = call(kmod, kin), call(tmod, tin)
    if isinstance(out_t, tuple):
        out_k, out_t = out_k[0], out_t[0]
    assert_close(out_k, out_t, tol, "forward")
    for name, buf in tmod.named_buffers():
        assert_close(dict(kmod.named_buffers())[name], buf, tol, f"buffer {name}")
    if not grads:
        return
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(tuple(out_t.shape)).astype(to_numpy(out_t).dtype)
    (out_k * kiln.tensor(g, dtype=str(g.dtype))).sum().backward()
    (out_t * torch.tensor(g)).sum().backward()
    for i, (k, t) in enumerate(zip(kin, tin)):
        if t.grad is not None:
            assert k.grad is not None, f"input {i} has no grad in Kiln"
            assert_close(k.grad, t.grad, tol, f"grad of input {i}")
    kparams = dict(kmod.named_parameters())
    for name, p in tmod.named_parameters():
        if p.grad is None:
            assert kparams[name].grad is None, f"{name}: Kiln has a grad, torch has none"
            continue
        assert kparams[name].grad is not None, f"{name}: no grad in Kiln"
        assert_close(kparams[name].grad, p.grad, tol, f"grad of {name}")
