"""Helpers for the C backend's differential tests: trace, compile with "c", compare with the
interpreter (the reference). Compiled libraries are cached in-process by source hash, so a
graph that recurs costs one compile."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import kiln
from kiln.backends.c.backend import compile_c

pytest.importorskip("kiln.backends.c.toolchain").find_compiler()

TOL = {"float32": (2e-5, 2e-6), "float64": (1e-12, 1e-13)}


def assert_same(got: Any, ref: Any, rtol: float | None = None, atol: float | None = None,
                what: str = "") -> None:
    """Compiled output ``got`` equals reference ``ref``: shape, dtype, values (NaN == NaN)."""
    g = got.detach().numpy() if hasattr(got, "numpy") else np.asarray(got)
    r = ref.detach().numpy() if hasattr(ref, "numpy") else np.asarray(ref)
    assert g.shape == r.shape, f"{what}: shape {g.shape} != {r.shape}"
    assert g.dtype == r.dtype, f"{what}: dtype {g.dtype} != {r.dtype}"
    if g.dtype.kind == "f":
        d_rtol, d_atol = TOL[g.dtype.name]
        np.testing.assert_allclose(g, r, rtol=rtol if rtol is not None else d_rtol,
                                   atol=atol if atol is not None else d_atol, equal_nan=True,
                                   err_msg=what)
    else:
        np.testing.assert_array_equal(g, r, err_msg=what)


def compile_fn(f: Any, *args: Any, dynamic: Any = None, **options: Any) -> tuple[Any, Any]:
    """(GraphModule, CFunction) for ``f`` traced on ``args``."""
    gm = kiln.trace(f, *args, dynamic=dynamic)
    return gm, compile_c(gm, None, **options)


def check(f: Any, *args: Any, dynamic: Any = None, rtol: float | None = None,
          atol: float | None = None, names: list[str] | None = None,
          inputs: list | None = None) -> Any:
    """Compile ``f`` and compare every output with the interpreter; returns the CFunction.

    ``inputs`` (flat tensors) runs the compiled function on other inputs than the traced ones.
    """
    gm, fn = compile_fn(f, *args, dynamic=dynamic)
    flat = inputs if inputs is not None else gm.signature.flatten_inputs(args, {})
    got = fn(*flat)
    ref = gm.forward(*flat)
    assert len(got) == len(ref)
    for i, (g, r) in enumerate(zip(got, ref, strict=True)):
        assert_same(g, r, rtol, atol, what=names[i] if names else f"output {i}")
    return fn


def special_values(dtype: str, n: int = 64, seed: int = 0) -> np.ndarray:
    """Random values plus NaN, +-inf, +-0, tiny and huge numbers."""
    rng = np.random.default_rng(seed)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.5, -2.5,
                         1e-30, -1e-30, 1e30, -1e30, 88.0, -88.0, 100.0, -100.0, 3.0, 1e-3])
    vals = np.concatenate([specials, rng.standard_normal(n) * 3])
    return vals.astype(dtype)
