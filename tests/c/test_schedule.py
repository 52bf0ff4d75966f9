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
