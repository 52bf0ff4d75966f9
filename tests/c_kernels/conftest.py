"""Fixtures for the native kernel tests: kiln_conv.h built into small ctypes libraries.

Each build compiles once per test process (ConvKernels caches its library); "native" is the
AVX-512 implicit-GEMM path where the CPU has it, "generic" forces the portable im2col + GEMM
path (-DKILN_CONV_GENERIC) that builds for other ISAs use.
"""

from __future__ import annotations

import numpy as np
import pytest

from kiln.backends.c.conv_kernels import ConvKernels


@pytest.fixture(scope="module", params=["native", "generic"])
def kern(request: pytest.FixtureRequest) -> ConvKernels:
    # An odd workspace address: the kernels promise to need no alignment.
    return ConvKernels(generic=request.param == "generic", ws_offset=4)


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / max |ref| (NaN positions must agree; they are excluded)."""
    assert got.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    if not ok.any():
        return 0.0
    scale = max(float(np.abs(ref[ok]).max()), 1e-30)
    return float(np.abs(got[ok] - ref[ok]).max()) / scale


TOL = {np.float32: 1e-5, np.float64: 1e-12}
