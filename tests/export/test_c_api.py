"""kiln_model.h from plain C: examples/c/run_model.c, built with the system compiler, runs
an exported library in a process with no Python and matches Python's outputs."""

from __future__ import annotations

import os

import numpy as np
import pytest

import kiln
from tests.export.conftest import run_exe as _run


def _model(inputs, bias):
    h = inputs["x"] @ inputs["w"] + bias
    return h.relu(), {"sum": h.sum(1), "n": inputs["x"] * 1.0}


@pytest.fixture(scope="module", params=["embed", "external"])
def library(tmp_path_factory, request):
    kiln.manual_seed(1)
    bias = kiln.randn(5)
    n = kiln.Dim("n", min=1, max=100)
    d = tmp_path_factory.mktemp("lib")
    path = kiln.aot_compile(lambda inputs: _model(inputs, bias),
                            ({"x": kiln.randn(3, 4), "w": kiln.randn(4, 5)},),
                            dynamic_shapes=({"x": {0: n}, "w": None},),
                            options={"output_path": str(d / "m.so"),
                                     "weights": request.param})
    return path, bias


def test_c_matches_python(run_model, library, tmp_path):
    lib, bias = library
    x = np.random.default_rng(0).standard_normal((7, 4)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    x.tofile(tmp_path / "x.bin")
    w.tofile(tmp_path / "w.bin")
    # flat inputs: dict leaves in sorted key order (w, x); outputs: relu, n, sum
    res = _run(run_model, lib, ["-t", "4", "4x5:w.bin", "7x4:x.bin", "--", "o0", "o1", "o2"],
               tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["7x5", "7x4", "7"]
    want = kiln.aot_load(lib)({"x": kiln.from_numpy(x), "w": kiln.from_numpy(w)})
    got0 = np.fromfile(tmp_path / "o0", np.float32).reshape(7, 5)
    got1 = np.fromfile(tmp_path / "o1", np.float32).reshape(7, 4)
    got2 = np.fromfile(tmp_path / "o2", np.float32)
    np.testing.assert_array_equal(got0, want[0].numpy())
    np.testing.assert_array_equal(got1, want[1]["n"].numpy())
    np.testing.assert_array_equal(got2, want[1]["sum"].numpy())
    eager = _model({"x": kiln.from_numpy(x), "w": kiln.from_numpy(w)}, bias)
    np.testing.assert_allclose(got0, eager[0].numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("args, match", [
    (["4x5:w.bin", "7x4:short.bin"], "holds 100 bytes, its shape needs 112"),
    (["4x5:w.bin", "101x4:x.bin"], r"\(n\) must be in \[1, 100\], got 101"),
    (["4x5:w.bin", "0x4:x.bin"], r"\(n\) must be in \[1, 100\], got 0"),
    (["4x6:w.bin", "7x4:x.bin"], "dim 1 must be 5, got 6"),
])
def test_c_entry_point_checks_sizes(run_model, library, tmp_path, args, match):
    lib, _ = library
    np.zeros((7, 4), np.float32).tofile(tmp_path / "x.bin")
    np.zeros((4, 5), np.float32).tofile(tmp_path / "w.bin")
    np.zeros(25, np.float32).tofile(tmp_path / "short.bin")
    res = _run(run_model, lib, [*args, "--", "o0", "o1", "o2"], tmp_path)
    assert res.returncode == 4, (res.returncode, res.stderr)
    assert __import__("re").search(match, res.stderr), res.stderr


def test_c_api_from_ctypes_small_output_buffer(library):
    """The run entry refuses an output buffer smaller than the output (never writes past)."""
    import ctypes

    lib_path, _ = library
    model = kiln.aot_load(lib_path)
    lib = model._lib
    x = np.ones((3, 4), np.float32)
    w = np.ones((4, 5), np.float32)
    ins = (ctypes.c_void_p * 2)(w.ctypes.data, x.ctypes.data)
    dims = np.array([4, 5, 3, 4], np.int64)
    in_bytes = (ctypes.c_int64 * 2)(w.nbytes, x.nbytes)
    outs = [np.zeros(15, np.float32), np.zeros(12, np.float32), np.zeros(3, np.float32)]
    guard = np.full(4, 7, np.float32)
    optrs = (ctypes.c_void_p * 3)(*(o.ctypes.data for o in outs))
    obytes = (ctypes.c_int64 * 3)(60, 12 * 4, 8)  # the third holds 2 of its 3 floats
    rc = lib.kiln_model_run(model._handle, ins, dims.ctypes.data, in_bytes, optrs, obytes)
    assert rc == 4 and b"output 2" in lib.kiln_model_last_error()
    assert not outs[0].any() and (guard == 7).all()


def test_weights_beside_library_found_without_a_path(run_model, library, tmp_path):
    lib, _ = library
    if not os.path.exists(lib[:-3] + ".safetensors"):
        pytest.skip("embedded weights")
    np.zeros((7, 4), np.float32).tofile(tmp_path / "x.bin")
    np.zeros((4, 5), np.float32).tofile(tmp_path / "w.bin")
    res = _run(run_model, lib, ["-w", str(tmp_path / "nope.safetensors"), "4x5:w.bin",
                                "7x4:x.bin", "--", "a", "b", "c"], tmp_path)
    assert res.returncode == 3 and "cannot read weights" in res.stderr
