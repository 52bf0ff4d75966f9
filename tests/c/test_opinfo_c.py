"""The C backend against the interpreter (the spec) on the ONE shared op table (tests/opinfo.py):
every entry (registry primitives and composites), every sample, every dtype the entry has.

Per entry, every case (dtype x sample) plus two variants of each sample -- NaN/+inf/-inf
planted in its floating arrays, and a large version (a new leading dim, >= 40k elements:
parallel loops, full vector blocks) -- is compiled as ONE graph (tests/c/opinfo_batch.py
explains the batching and the one-by-one fallback that names a failing sample), then run:

- through ``kiln.compile(fn, backend="c")`` on the sample's own arrays (transposed, strided,
  permuted views: the front door copies them);
- through ``compile_c`` directly on contiguous copies (it refuses non-contiguous inputs);
- through ``deserialize(fn.serialize())`` of that function: the same library bytes and
  bit-identical results.

Each is compared with the interpreter on the same graph: shapes and dtypes equal, integer and
bool outputs exactly, NaN/inf positions equal, floats within the tolerances below. Random
entries draw in Python from Kiln's generator, reseeded before every run: identical results.

Gradients: every differentiable entry's float64 samples through AOT autograd with the C
backend as forward and backward compiler vs eager autograd (both partitioners: one graph
pair each per entry).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from opinfo import OP_DB as _ALL_ENTRIES
from opinfo import OpInfo, flat_outputs

import kiln
from kiln.aot import aot_function, default_partition, min_cut_rematerialization_partition
from kiln.backends import deserialize, get_backend
from kiln.backends.c.backend import compile_c
from kiln.core.prims.registry import REGISTRY
from kiln.core.tensor import Tensor
from tests.c.opinfo_batch import (
    Case,
    batch_function,
    cases_of,
    large_variant,
    run_cases,
    seeded,
    specials_variant,
    split,
)

# The C backend refuses the linear-algebra decompositions by design (no LAPACK kernels yet;
# tests/c/test_primitives.py checks the refusal): their entries are not run here.
OP_DB = [i for i in _ALL_ENTRIES if not any(REGISTRY[p].kind == "linalg" for p in i.primitives)]

ALL = ("float32", "float64", "int64", "int32", "bool")

# float64 is compared tightly: the C code computes in double like NumPy; what differs is the
# order of additions in reductions (blocked/vector sums vs NumPy's pairwise sums) and libm
# vs NumPy's own float64 loops (both within 1 ulp).
FLOAT64_TOL = (1e-12, 1e-13)
# float32 uses the entry's own tolerance against NumPy (rtol 1e-5, atol 1e-6 unless the entry
# says otherwise): the C backend's float32 math is within ~4 ulp (~5e-7 relative) of NumPy's
# (docs/c_backend.md, "Numerics"), and float32 sums accumulate in blocks like NumPy's pairwise
# sums. Entries that need more say why here:
FLOAT32_TOL: dict[str, tuple[tuple[float, float], str]] = {}

# Large variants (a leading dim, >= 40k elements) reduce over thousands of terms, and then the
# reference is the less accurate side: NumPy adds float32 along a non-contiguous axis one by one
# (error ~ n eps: 2e-5 relative for 8000 terms, measured on `sum` dims=(0,)), where the C kernels
# add in blocks and in double. There the error is relative to the output's scale (the largest
# finite |value|), not to each element:
LARGE_TOL = {"float32": 2e-4, "float64": 1e-11}

# Entries whose large variant has no order-independent answer, and why:
_PROD_ORDER = ("a product of 40k samples overflows in some partial products and underflows "
               "in others, so the result (inf * 0 = NaN, or 0) depends on the multiplication "
               "order")
NO_LARGE = {"prod": _PROD_ORDER, "Tensor.prod": _PROD_ORDER + " (its samples hold zeros)"}

GRAD_TOL = (1e-6, 1e-10)  # float64 AOT (C) vs eager, like tests/aot/test_op_grads.py


def _tol(info: OpInfo, dtype: np.dtype) -> tuple[float, float]:
    if info.exact:
        return 0.0, 0.0
    if dtype == np.float64:
        return FLOAT64_TOL
    if info.name in FLOAT32_TOL:
        return FLOAT32_TOL[info.name][0]
    return info.tolerance("float32")


def _arrays(values: list) -> list[np.ndarray]:
    return [np.asarray(v.detach().numpy() if isinstance(v, Tensor) else v) for v in values]


def assert_matches(got: list, want: list, case: Case, what: str) -> None:
    """C outputs ``got`` == interpreter outputs ``want`` (see the module docstring)."""
    got, want = _arrays(got), _arrays(want)
    assert len(got) == len(want), f"{what}: {len(got)} outputs, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        where = f"{what}, output {i}"
        assert g.shape == w.shape, f"{where}: shape {g.shape}, interpreter {w.shape}"
        assert g.dtype == w.dtype, f"{where}: dtype {g.dtype}, interpreter {w.dtype}"
        if g.dtype.kind == "f":
            rtol, atol = _tol(case.info, g.dtype)
            if case.variant.startswith("+leading") and not case.info.exact:
                finite = np.abs(w[np.isfinite(w)])
                rtol = LARGE_TOL[g.dtype.name]
                atol = max(atol, rtol * float(finite.max(initial=1.0)))
            # equal_nan and assert_allclose's inf handling: NaN and +-inf at the same places
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, equal_nan=True,
                                       err_msg=where)
        else:
            np.testing.assert_array_equal(g, w, err_msg=where)


def assert_identical(got: list, want: list, what: str) -> None:
    for i, (g, w) in enumerate(zip(_arrays(got), _arrays(want), strict=True)):
        assert g.dtype == w.dtype and g.shape == w.shape, f"{what}, output {i}"
        assert g.tobytes() == w.tobytes(), f"{what}, output {i}: not bit-identical"


# ------------------------------------------------------------------------------------------
# forward: compiled, front door, reloaded


def check_forward(cases: list[Case]) -> None:
    batch, arrays, counts = batch_function(cases)
    tensors = [kiln.from_numpy(a) for a in arrays]
    gm = kiln.trace(batch, *tensors)
    want = split(seeded(gm.forward, *tensors), counts)

    front = kiln.compile(batch, backend="c")  # copies the non-contiguous inputs
    got = split(flat_outputs(seeded(front, *tensors)), counts)
    for case, g, w in zip(cases, got, want, strict=True):
        assert_matches(g, w, case, f"{case.name}: kiln.compile(backend='c')")

    direct = compile_c(gm, None)  # raises on non-contiguous inputs: give it copies
    contiguous = [kiln.from_numpy(np.array(a, order="C", copy=True)) for a in arrays]
    flat_direct = seeded(direct, *contiguous)
    for case, g, w in zip(cases, split(flat_direct, counts), want, strict=True):
        assert_matches(g, w, case, f"{case.name}: compile_c")

    again = deserialize(direct.serialize())
    assert again.library == direct.library, "reloaded library bytes differ"
    assert_identical(seeded(again, *contiguous), flat_direct,
                     f"reloaded ({', '.join(c.name for c in cases[:3])}...)")


def forward_cases(info: OpInfo) -> list[Case]:
    """Every traceable case of ``info`` in every dtype, plus its NaN/inf and large variants."""
    out = []
    for case in cases_of(info, ALL):
        if info.skip_reason("trace", case.sample):
            continue  # data-dependent shapes (boolean masks...): eager only, by design
        out.append(case)
        if info.random:
            continue  # no arrays to vary
        large = None if info.name in NO_LARGE else large_variant(case)
        for variant in (specials_variant(case), large):
            if variant is not None:
                out.append(variant)
    return out


@pytest.mark.parametrize("info", OP_DB, ids=lambda i: i.name)
def test_forward_matches_interpreter(info):
    cases = forward_cases(info)
    assert cases, f"{info.name}: no traceable sample"
    failures: list[str] = []
    run_cases(cases, check_forward, failures)
    assert not failures, "\n".join(failures)


# ------------------------------------------------------------------------------------------
# gradients: AOT autograd with the C backend vs eager


def _differentiable(info: OpInfo) -> bool:
    return info.supports_grad and "grad" not in info.skips and "float64" in info.dtypes \
        and info.supports_float64


def _grad_run(cases: list[Case], fn) -> tuple[list, list]:
    """Outputs, and gradients of a weighted sum of the floating outputs w.r.t. every
    differentiable input, of ``fn`` (the batch or its AOT-compiled twin)."""
    leaves: list[Tensor] = []
    for c in cases:
        args = c.sample.kiln_args(requires_grad=c.info.diff_positions(c.sample))
        leaves.extend(_tensors(args))
    outs = [o for o in flat_outputs(seeded(fn, *leaves)) if isinstance(o, Tensor)]
    values = [o.detach().numpy().copy() for o in outs]
    diff = [o for o in outs if o.requires_grad and o.dtype.is_floating]
    inputs = [t for t in leaves if t.requires_grad]
    if diff:
        rng = np.random.default_rng(1)
        loss = sum((o * kiln.tensor(rng.uniform(-1, 1, tuple(o.shape)), dtype=o.dtype)).sum()
                   for o in diff)
        with np.errstate(all="ignore"):
            loss.backward()
    return values, [None if t.grad is None else t.grad.numpy() for t in inputs]


def _tensors(value) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def check_grads(cases: list[Case], partition) -> None:
    batch, _, _ = batch_function(cases)
    want_out, want = _grad_run(cases, batch)
    got_out, got = _grad_run(cases, aot_function(batch, get_backend("c"),
                                                 partition_fn=partition))
    what = f"{', '.join(c.name for c in cases)} ({partition.__name__}, C backend)"
    for g, w in zip(got_out, want_out, strict=True):
        np.testing.assert_allclose(g, w, rtol=GRAD_TOL[0], atol=1e-12, equal_nan=True,
                                   err_msg=f"{what}: output")
    for g, w in zip(got, want, strict=True):
        assert (g is None) == (w is None), f"{what}: gradient presence"
        if w is not None:
            np.testing.assert_allclose(g, w, rtol=GRAD_TOL[0], atol=GRAD_TOL[1],
                                       equal_nan=True, err_msg=f"{what}: gradient")


def grad_cases(info: OpInfo) -> list[Case]:
    out = []
    for case in cases_of(info, ("float64",)):
        s = case.sample
        if info.skip_reason("grad", s) or info.skip_reason("trace", s) \
                or not info.diff_positions(s):
            continue
        out.append(case)
    return out


@pytest.mark.parametrize("info", [i for i in OP_DB if _differentiable(i)], ids=lambda i: i.name)
def test_grads_through_aot_match_eager(info):
    cases = grad_cases(info)
    assert cases, f"{info.name}: no differentiable float64 sample"
    failures: list[str] = []
    for partition in (default_partition, min_cut_rematerialization_partition):
        run_cases(cases, functools.partial(check_grads, partition=partition), failures)
    assert not failures, "\n".join(failures)
