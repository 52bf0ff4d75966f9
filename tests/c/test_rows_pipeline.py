"""Pipelined rows kernels (the next row's first phase inside this row's second-phase loop,
the output row as the row scratch) give bit-identical results to the plain schedule: rows
of NaN, -inf, +inf and signed zeros, row counts of 1, odd, and below the thread count, rows
longer than a float-summation block, and chunk boundaries of the parallel row loop."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from kiln.backends.c import rows
from tests.c.conftest import assert_same, compile_fn

SHAPES = [(1, 1024), (2, 3000), (3, 77), (5, 1), (65, 1000), (129, 1025), (1, 40000),
          (3, 20000)]


PROGRAMS = {
    "softmax": lambda x, w, b, t: F.softmax(x, -1),
    "log_softmax": lambda x, w, b, t: F.log_softmax(x, -1),
    "layer_norm": lambda x, w, b, t: F.layer_norm(x, (x.shape[-1],), w, b),
    "var": lambda x, w, b, t: x.var(-1),
    "cross_entropy": lambda x, w, b, t: F.cross_entropy(x, t),
    "all": lambda x, w, b, t: (F.softmax(x, -1), F.log_softmax(x, -1),
                               F.layer_norm(x, (x.shape[-1],), w, b),
                               F.layer_norm(x, (x.shape[-1],)), x.var(-1),
                               F.cross_entropy(x, t)),
}


def _inputs(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    n, c = shape
    x[0, c // 2] = -np.inf  # one -inf in the first row
    if n > 1:
        x[1, :] = -np.inf
    if n > 2:
        x[2, c // 3] = np.nan
    if n > 3:
        x[3, :] = np.where(np.arange(c) % 3 == 0, -0.0, 0.0)  # only signed zeros
    if n > 4:
        x[4, -1] = np.inf
    if n > 33:
        x[32:34, ::7] = -np.inf  # around the chunk boundary of two threads
    w = rng.standard_normal(c).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    t = (np.arange(n) % c).astype(np.int64)
    return [kiln.tensor(x), kiln.tensor(w), kiln.tensor(b), kiln.tensor(t)]


def _run(program, args, monkeypatch, on: bool):
    monkeypatch.setattr(rows, "PIPELINE", on)
    monkeypatch.setattr(rows, "OUTPUT_SCRATCH", on)
    gm, fn = compile_fn(PROGRAMS[program], *args)
    out = fn(*args)
    return gm, fn, out if isinstance(out, (tuple, list)) else (out,)


@pytest.mark.parametrize("program", sorted(PROGRAMS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_pipelined_rows_are_bit_identical(program, shape, dtype, monkeypatch):
    args = _inputs(shape, dtype)
    gm, fn, got = _run(program, args, monkeypatch, True)
    _, plain, ref = _run(program, args, monkeypatch, False)
    assert "r0n" not in plain.source and "r0_x" not in plain.source
    if shape[0] > 1 and shape[1] > 1 and dtype == "float32" and program != "cross_entropy":
        assert "r0n" in fn.source, program  # the first rows kernel pipelines
    want = gm.forward(*args)
    want = want if isinstance(want, (tuple, list)) else (want,)
    for i, (g, r, w) in enumerate(zip(got, ref, want, strict=True)):
        g, r = g.numpy(), r.numpy()
        assert g.tobytes() == r.tobytes(), f"output {i} differs from the plain schedule"
        assert_same(g, w, rtol=1e-4 if dtype == "float32" else None, atol=1e-5
                    if dtype == "float32" else None, what=f"output {i}")


def test_softmax_schedule(monkeypatch):
    x = kiln.randn(64, 300)
    _, fn = compile_fn(lambda x: F.softmax(x, -1), x)
    (k,) = [k for k in fn.plan["kernels"] if k["emitted"]]
    # one loop reads this row (exp) and the next (max), one rescales the output in place
    assert (k["loops"], k["passes"]) == (2, 2)
    assert "malloc" not in fn.source  # the exp values wait in the output row
