"""Every entry with a PyTorch equivalent vs PyTorch (the oracle): values, dtypes and, in
float64, vector-Jacobian products with the same cotangents."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from opinfo import OP_DB, as_arrays, assert_close, flat_outputs

torch = pytest.importorskip("torch")

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64,
           "int32": torch.int32, "bool": torch.bool}


def _params() -> list:
    out = []
    for info in OP_DB:
        if info.torch_ref is None:
            continue
        marks = [pytest.mark.skip(reason=info.skips["torch"])] if "torch" in info.skips else []
        for d in info.dtypes:
            if d != "float64":
                out.append(pytest.param(info, d, id=f"{info.name}-{d}", marks=marks))
    return out


def _dtype_name(t) -> str:
    return next(k for k, v in _DTYPES.items() if v == t.dtype)


@pytest.mark.parametrize("info, dtype", _params())
def test_matches_torch(info, dtype):
    for sample in info.samples(dtype):
        if info.skip_reason("torch", sample):
            continue
        ours = flat_outputs(info.run(sample))
        theirs = flat_outputs(info.run_torch(sample))
        what = f"{info.name} {sample!r} vs torch"
        assert_close(as_arrays(ours), as_arrays(theirs), *info.torch_tolerance(dtype), what)
        for i, (a, b) in enumerate(zip(ours, theirs)):
            if isinstance(b, torch.Tensor):
                assert a.dtype.name == _dtype_name(b), \
                    f"{what}: output {i} dtype {a.dtype} vs torch {b.dtype}"


def _grad_params() -> list:
    return [pytest.param(info, id=info.name) for info in OP_DB
            if info.torch_ref is not None and "torch" not in info.skips and info.supports_grad
            and "float64" in info.dtypes]


@pytest.mark.parametrize("info", _grad_params())
def test_vjp_matches_torch(info):
    rng = np.random.default_rng(zlib.crc32(info.name.encode()))
    for sample in info.samples("float64"):
        pos = info.diff_positions(sample)
        if info.skip_reason("torch", sample) or info.skip_reason("torch_grad", sample) \
                or not pos:
            continue
        k_args = sample.kiln_args(requires_grad=pos)
        t_args = sample.torch_args(requires_grad=pos)
        k_outs = flat_outputs(info.run(sample, k_args))
        t_outs = flat_outputs(info.run_torch(sample, t_args))
        pairs = [(k, t) for k, t in zip(k_outs, t_outs) if getattr(k, "requires_grad", False)]
        if not pairs:
            continue
        cots = [rng.standard_normal(k.shape) for k, _ in pairs]
        k_in = [t for t in _leaves(k_args, pos)]
        t_in = [t for t in _leaves(t_args, pos)]
        import kiln

        k_g = kiln.autograd.grad([k for k, _ in pairs], k_in,
                                 [kiln.tensor(c, dtype=k.dtype) for c, (k, _) in
                                  zip(cots, pairs)], allow_unused=True)
        t_g = torch.autograd.grad([t for _, t in pairs], t_in,
                                  [torch.from_numpy(c) for c in cots], allow_unused=True)
        for j, (a, b, x) in enumerate(zip(k_g, t_g, k_in)):
            a = np.zeros(x.shape) if a is None else np.asarray(a._data)
            b = np.zeros(x.shape) if b is None else b.numpy()
            np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9,
                                       err_msg=f"{info.name} {sample!r}: grad {j} vs torch")


def _leaves(args, positions):
    out = []

    def walk(v):
        if isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        elif getattr(v, "requires_grad", False):
            out.append(v)

    for i in positions:
        walk(args[i])
    return out
