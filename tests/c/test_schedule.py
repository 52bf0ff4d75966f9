"""What the scheduler fuses, asserted on the schedule (never on time), and golden snapshots of
the generated C for four canonical programs (``KILN_UPDATE_GOLDEN=1`` rewrites them)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from tests.c.conftest import check

GOLDEN = Path(__file__).parent / "golden"


def kernels(fn):
    return [k for k in fn.plan["kernels"] if k["emitted"]]


def test_cos_cos_is_one_kernel():
    fn = check(lambda x: x.cos().cos(), kiln.randn(1000))
    (k,) = kernels(fn)
    assert k["kind"] == "pointwise" and "fuses cos" in k["comment"]


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_is_one_kernel_with_at_most_two_passes(op):
    fn = check(lambda x: getattr(F, op)(x, -1), kiln.randn(64, 300))
    (k,) = kernels(fn)
    assert k["kind"] == "rows"
    # a pass = one row's data streamed by a loop: the pipelined loop reads the next row (max)
    # and this row (exp), the final loop only this row's exp values, cached in the output
    assert k["passes"] <= 2, k
    assert k["loops"] <= 2


def test_layer_norm_and_cross_entropy_fuse():
    w, b = kiln.randn(96), kiln.randn(96)
    fn = check(lambda x: F.layer_norm(x, (96,), w, b), kiln.randn(32, 96))
    (k,) = kernels(fn)
    assert k["kind"] == "rows" and k["loops"] == 2  # mean of the next row in the variance loop
    fn = check(lambda x, t: F.cross_entropy(x, t), kiln.randn(32, 10),
               kiln.tensor(np.arange(32) % 10), rtol=1e-5)
    ks = kernels(fn)
    assert len(ks) <= 2 and ks[0]["kind"] == "rows" and ks[0]["passes"] <= 2, ks


def test_movement_is_index_arithmetic():
    x = kiln.randn(6, 8)
    fn = check(lambda x: (x.T[::2].flip(0) + 1.0).reshape(-1) * x.T.reshape(-1)[:24], x)
    assert len(kernels(fn)) == 1
    fn = check(lambda x: F.pad(x, (1, 1)) * 2 + kiln.cat([x, x], 1)[:, :10], x)
    assert len(kernels(fn)) == 1


def test_linear_gelu_is_gemm_with_fused_epilogue():
    lin = kiln.nn.Linear(24, 16)  # parameters stay graph constants (w.T is not folded)
    fn = check(lambda x: F.gelu(lin(x)), kiln.randn(8, 24), rtol=1e-5, atol=1e-5)
    (k,) = kernels(fn)
    assert k["kind"] == "matmul" and "erf" in k["comment"]
    assert "A @ B^T" in fn.source  # the transpose of w is absorbed, never copied


def test_outer_reduction_uses_column_accumulators():
    fn = check(lambda g: g.sum(0), kiln.randn(64, 33))
    (k,) = kernels(fn)
    assert k["kind"] == "cols"


def test_realization_reasons_are_recorded():
    fn = check(lambda x: (x.exp() * 2, x.exp().sum()), kiln.randn(8, 4))
    assert fn.plan["realized"]  # why each buffer exists (outputs, reductions...)


# -----------------------------------------------------------------------------------------
# golden snapshots

def _pointwise_chain(x, w):
    return ((x * w + 1.0).tanh() * 0.5).relu()


def _softmax(x):
    return F.softmax(x, -1)


def _layer_norm(x, w, b):
    return F.layer_norm(x, (64,), w, b)


def _linear_gelu(x, w, b):
    return F.gelu(F.linear(x, w, b))  # w, b are inputs: the transpose is absorbed


CANONICAL = {
    "pointwise_chain": (_pointwise_chain, lambda: (kiln.randn(32, 64), kiln.randn(64))),
    "softmax": (_softmax, lambda: (kiln.randn(32, 64),)),
    "layer_norm": (_layer_norm, lambda: (kiln.randn(32, 64), kiln.randn(64), kiln.randn(64))),
    "linear_gelu": (_linear_gelu, lambda: (kiln.randn(32, 64), kiln.randn(48, 64),
                                            kiln.randn(48))),
}


@pytest.mark.parametrize("name", sorted(CANONICAL))
def test_golden_c(name):
    f, make = CANONICAL[name]
    kiln.manual_seed(0)
    args = make()
    fn = check(f, *args, rtol=1e-5, atol=1e-5)
    path = GOLDEN / f"{name}.c"
    text = fn.source.replace(kiln.__version__, "<version>")
    if os.environ.get("KILN_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run with KILN_UPDATE_GOLDEN=1"
    assert text == path.read_text(), (
        f"generated C for {name} changed; inspect the diff and run with KILN_UPDATE_GOLDEN=1 "
        "if the change is intended")


@pytest.mark.parametrize("cols,dtype", [(1024, "float32"), (1000, "float32"),
                                        (512, "float64")])
def test_large_memory_bound_rows_stream_their_output(cols, dtype):
    """layer_norm over >= 8 MiB writes its output with non-temporal stores (blocks of 64 in
    registers; a row's tail, here 1000 = 15 * 64 + 40, stored plainly); results unchanged."""
    kiln.manual_seed(0)
    x = kiln.randn(4096, cols).to(getattr(kiln, dtype))
    w, b = kiln.randn(cols).to(x.dtype), kiln.randn(cols).to(x.dtype)
    fn = check(lambda x, w, b: F.layer_norm(x, (cols,), w, b), x, w, b, rtol=1e-5, atol=1e-5)
    suffix = "f32" if dtype == "float32" else "f64"
    assert f"kiln_stream_{suffix}(" in fn.source and "kiln_sfence();" in fn.source
    (k,) = kernels(fn)
    assert k["kind"] == "rows" and k["loops"] == 2  # the final loop reads x again from L1


def test_exp_bound_and_small_rows_keep_plain_stores():
    kiln.manual_seed(0)
    big = check(lambda x: F.softmax(x, -1), kiln.randn(4096, 1024))  # exp-bound: no gain
    small = check(lambda x, w, b: F.layer_norm(x, (64,), w, b), kiln.randn(32, 64),
                  kiln.randn(64), kiln.randn(64))
    assert "kiln_stream" not in big.source and "kiln_stream" not in small.source


def test_softmax_drops_the_nan_flag_of_its_max_and_keeps_nan_results():
    """A NaN in a row makes softmax/log_softmax all NaN through the sum of exp(x - max), so
    the max needs no NaN flag, and exp(x - max) needs no overflow test; a stored max keeps
    its flag (amax of a row with NaN is NaN)."""
    x = np.random.default_rng(0).standard_normal((6, 37)).astype(np.float32)
    x[1, 0] = x[2, 36] = np.nan
    x[3, :] = np.nan
    x[4, 5] = np.inf
    x[5, :] = -np.inf
    t = kiln.Tensor(x)
    for f in (lambda x: F.softmax(x, -1), lambda x: F.log_softmax(x, -1)):
        fn = check(f, t, rtol=1e-5, atol=1e-6)
        assert "_nan" not in fn.source and "k_exp_nonpos(" in fn.source
    kept = check(lambda x: (F.softmax(x, -1), x.amax(-1)), t, rtol=1e-5, atol=1e-6)
    assert "_nan |=" in kept.source
    check(lambda x: x - x.amax(-1, keepdim=True), t)  # no later sum: the flag stays
