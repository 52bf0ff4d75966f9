"""Every entry traced with a symbolic leading dim: tracing either refuses with a KilnError, or
the graph computes what eager does at another size, or refuses that size with a KilnError.
Never a crash, never a silent wrong result."""

from __future__ import annotations

import numpy as np
import pytest
from opinfo import OP_DB, SEED, as_arrays

import kiln
from kiln.errors import KilnError


def _params() -> list:
    return [pytest.param(info, id=info.name) for info in OP_DB
            if "trace" not in info.skips and "float32" in info.dtypes]


def _resized(arrays: list[np.ndarray], dynamic: dict, n: int) -> list[kiln.Tensor]:
    out = []
    for i, a in enumerate(arrays):
        if i in dynamic:
            reps = -(-n // a.shape[0])
            a = np.concatenate([a] * reps, axis=0)[:n]
        out.append(kiln.from_numpy(np.array(a, copy=True)))
    return out


@pytest.mark.parametrize("info", _params())
def test_symbolic_leading_dim(info):
    outcomes = {"same": 0, "refused": 0}
    for sample in info.samples("float32"):
        arrays = sample.arrays()
        if info.skip_reason("trace", sample) or not arrays or arrays[0].ndim == 0 \
                or arrays[0].shape[0] < 2:
            continue
        b = arrays[0].shape[0]
        dynamic = {i: {0: "B"} for i, a in enumerate(arrays) if a.ndim and a.shape[0] == b}
        fn = info.flat_bind(sample)
        try:
            gm = kiln.trace(fn, *[kiln.from_numpy(a) for a in arrays], dynamic=dynamic)
        except KilnError:
            outcomes["refused"] += 1
            continue
        for n in (b - 1, b + 2):
            xs = _resized(arrays, dynamic, n)
            try:
                want = as_arrays(fn(*xs))
            except KilnError:
                continue  # the op itself refuses this size
            kiln.manual_seed(SEED)
            try:
                got = as_arrays(gm(*xs))
            except KilnError:
                outcomes["refused"] += 1
                continue
            what = f"{info.name} {sample!r} traced with B={b}, run with B={n}"
            assert len(got) == len(want), what
            for g, w in zip(got, want):
                assert g.shape == w.shape, f"{what}: shape {g.shape} vs eager {w.shape}"
                np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64),
                                           rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=what)
            outcomes["same"] += 1
