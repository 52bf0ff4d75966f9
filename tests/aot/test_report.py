"""Saved-activation reports: compiled partitions and the eager tape."""

from __future__ import annotations

import numpy as np

import kiln
from kiln.aot import (
    aot_function,
    aot_module,
    min_cut_rematerialization_partition,
    nop,
    saved_activations,
    tape_saved_activations,
)
from kiln.models import MLP


def f(x, w):
    return (x @ w).tanh().sum()


def _args(requires_grad=True):
    return kiln.ones(4, 3), kiln.ones(3, 2, requires_grad=requires_grad)


def test_report_table_and_totals():
    report = saved_activations(aot_function(f, nop), *_args())
    text = str(report)
    lines = text.splitlines()
    assert lines[0] == "saved for backward by f (default_partition): 2 saved, 80 B"
    assert lines[1].split() == ["name", "shape", "dtype", "bytes", "produced", "by"]
    assert lines[2].split()[:4] == ["primals_1", "(4,", "3)", "float32"]
    assert "input x" in lines[2]
    assert "tanh(matmul)" in lines[3]
    assert lines[-1] == "total 80 bytes (80 B): inputs 48 B, activations 32 B"
    assert (report.total_bytes, report.input_bytes, report.activation_bytes) == (80, 48, 32)
    assert len(report) == 2


def test_report_for_plain_functions_modules_and_compiled():
    # A plain function is analysed with default_partition and the nop compiler.
    assert saved_activations(f, *_args()).total_bytes == 80
    kiln.manual_seed(0)
    mlp = MLP((3, 5, 2), activation="gelu")
    x = kiln.randn(4, 3)
    plain = saved_activations(mlp, x)
    compiled = saved_activations(aot_module(mlp, nop,
                                            partition_fn=min_cut_rematerialization_partition), x)
    assert compiled.total_bytes < plain.total_bytes
    via_compile = saved_activations(kiln.compile(mlp), x)
    assert "min_cut_rematerialization_partition" in via_compile.title
    assert via_compile.total_bytes == compiled.total_bytes
    names = [e.producer for e in compiled]
    # x needs no gradient, so the first layer's weight is not read by the backward.
    assert "input layers.2.weight" in names and "input layers.0.weight" not in names


def test_report_without_grad_is_empty():
    report = saved_activations(aot_function(f, nop), *_args(requires_grad=False))
    assert report.total_bytes == 0 and "nothing is saved" in str(report)


def test_report_does_not_run_the_function():
    calls = []

    def counting(gm, specs):
        calls.append(gm)
        return lambda *a: (_ for _ in ()).throw(AssertionError("executed"))

    saved_activations(aot_function(f, counting), *_args())
    assert len(calls) == 2  # compiled (forward and backward), never called


def test_symbolic_shapes_are_concrete_in_the_report():
    nf = aot_function(lambda x: x.exp().sin(), nop, dynamic={"x": {0: "B"}})
    r = saved_activations(nf, kiln.ones(5, 2, requires_grad=True))
    assert [(e.name, e.shape) for e in r] == [("exp", (5, 2))]


def test_tape_report_counts_what_vjps_read_by_storage():
    w = kiln.ones(3, 2, requires_grad=True)

    def g(x):
        h = x @ w          # matmul's vjp reads x (for w); x needs no gradient
        y = h.exp()        # exp's vjp reads its output
        return (y.reshape(8) * 2.0).sum()  # mul by a constant: reads no tensor

    r = tape_saved_activations(g, kiln.ones(4, 3))
    assert sorted((e.shape, e.producer) for e in r) == [((4, 2), "exp"), ((4, 3), "input")]
    assert r.total_bytes == 4 * 3 * 4 + 4 * 2 * 4


def test_tape_report_matches_default_on_a_small_mlp():
    kiln.manual_seed(1)
    mlp = MLP((6, 8, 3))
    x = kiln.randn(5, 6)
    tape = tape_saved_activations(mlp, x)
    compiled = saved_activations(mlp, x)
    assert tape.total_bytes == compiled.total_bytes
    assert tape.activation_bytes == compiled.activation_bytes
    np.testing.assert_equal(sorted(e.nbytes for e in tape), sorted(e.nbytes for e in compiled))
