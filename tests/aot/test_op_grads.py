"""Every op of the shared table (tests/opinfo.py) through aot_function equals eager Kiln:
outputs always, gradients (float64, rtol 1e-6) for differentiable entries, with both
partitioners."""

from __future__ import annotations

import numpy as np
import pytest
from opinfo import OP_DB, SEED, OpInfo, Sample, flat_outputs

import kiln
from kiln.aot import aot_function, default_partition, min_cut_rematerialization_partition, nop
from kiln.core.prims.registry import REGISTRY
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, TraceError

PARTITIONS = (default_partition, min_cut_rematerialization_partition)


def _differentiable(info: OpInfo) -> bool:
    return info.supports_grad and "grad" not in info.skips and "float64" in info.dtypes


def _leaves(value):
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _leaves(v)]
    return []


def _run(info: OpInfo, sample: Sample, fn, positions):
    """Outputs and input gradients of a weighted sum of ``fn``'s outputs."""
    # Samples with -inf/nan on purpose would warn (an error under filterwarnings=error).
    with np.errstate(all="ignore"):
        return _run_quiet(info, sample, fn, positions)


def _run_quiet(info: OpInfo, sample: Sample, fn, positions):
    args = sample.kiln_args(requires_grad=positions)
    if info.random:
        kiln.manual_seed(SEED)
    outs = [o for o in flat_outputs(fn(*args)) if isinstance(o, Tensor)]
    values = [o.detach().numpy().copy() for o in outs]
    # Only floating outputs carry gradients (integer and bool outputs are never on the tape,
    # and AOT, like torch, marks them non-differentiable).
    diff = [o for o in outs if o.requires_grad and o.dtype.is_floating]
    inputs = [t for t in _leaves(args) if t.requires_grad]
    if not diff:
        return values, [None] * len(inputs)
    rng = np.random.default_rng(1)
    loss = sum((o * kiln.tensor(rng.uniform(-1, 1, tuple(o.shape)), dtype=o.dtype)).sum()
               for o in diff)
    loss.backward()
    return values, [None if t.grad is None else t.grad.numpy() for t in inputs]


def test_table_covers_the_registry():
    covered = {p for info in OP_DB for p in info.primitives}
    assert not sorted(set(REGISTRY) - covered)


@pytest.mark.parametrize("info", OP_DB, ids=lambda i: i.name)
def test_aot_matches_eager(info):
    dtype = "float64" if "float64" in info.dtypes else info.dtypes[0]
    rtol, atol = info.grad_tol if _differentiable(info) else info.tolerance(dtype)
    for sample in info.samples(dtype):
        positions = info.diff_positions(sample) if _differentiable(info) else ()
        fn = info.bind(sample)
        try:
            want_out, want = _run(info, sample, fn, positions)
        except Exception as e:  # eager refuses the sample: AOT must refuse it the same way
            with pytest.raises(type(e)):
                _run(info, sample, aot_function(fn, nop), positions)
            continue
        if not _traceable(fn, sample):
            continue  # data-dependent (one_hot without num_classes): not an AOT matter
        for partition in PARTITIONS if positions else PARTITIONS[:1]:
            got_out, got = _run(info, sample, aot_function(fn, nop, partition_fn=partition),
                                positions)
            what = f"{info.name} {sample} ({partition.__name__})"
            for g, w in zip(got_out, want_out, strict=True):
                np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-12, err_msg=what,
                                           equal_nan=True)
            for g, w in zip(got, want, strict=True):
                assert (g is None) == (w is None), what
                if w is not None:
                    np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-10, err_msg=what,
                                               equal_nan=True)


def _traceable(fn, sample: Sample) -> bool:
    try:
        with np.errstate(all="ignore"):
            kiln.trace(fn, *sample.kiln_args())
    except TraceError:
        return False
    except ArgumentError as e:
        return "tracing" not in str(e)
    return True
