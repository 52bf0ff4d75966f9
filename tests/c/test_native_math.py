"""Accuracy of the float32 math the generated C calls (runtime/kiln_math_fast.h), measured
through compiled graphs on ~300k arguments: special values, a log-uniform sweep of the whole
float range, and dense sweeps where the functions bend. The bounds asserted here are the ones
documented in kiln_math_fast.h and docs/c_backend.md (an exhaustive sweep of every float32,
run when the polynomials were fitted, gives the same maxima)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import kiln
from kiln import ops
from tests.c.conftest import compile_fn


def _arguments() -> np.ndarray:
    rng = np.random.default_rng(0)
    mag = np.exp2(rng.uniform(-149, 128, 120_000))
    sweep = np.concatenate([mag, -mag])
    dense = np.concatenate([np.linspace(-12, 12, 100_001), np.linspace(-110, 95, 40_001),
                            rng.uniform(-1e4, 1e4, 20_000), rng.uniform(-2**31, 2**31, 5_000)])
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.17549435e-38,
                        88.72283, 88.72284, -87.33654, -103.97, -104.0, 0.625, 0.9, 4.0,
                        9.5, 2**30, 2**31, 3.4028235e38, -3.4028235e38])
    with np.errstate(over="ignore"):
        return np.concatenate([special, sweep, dense]).astype(np.float32)


ARGS = _arguments()
_erf = np.frompyfunc(math.erf, 1, 1)


def _reference(name: str, x: np.ndarray) -> np.ndarray:
    d = x.astype(np.float64)
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            return 1.0 / (1.0 + np.exp(-d))
        if name == "erf":
            return _erf(d).astype(np.float64)
        return getattr(np, name)(d)


def _ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """|got - want| in units of the float32 spacing at want (0 where both are NaN or equal)."""
    with np.errstate(over="ignore"):
        w32 = want.astype(np.float32)
    same = (got == w32) | (np.isnan(got) & np.isnan(want))
    with np.errstate(all="ignore"):
        spacing = np.spacing(np.abs(w32)).astype(np.float64)
        err = np.abs(got.astype(np.float64) - want) / spacing
    err[same] = 0.0
    err[np.isnan(err)] = np.inf
    return err


# max ulp vs the correctly rounded result; vs NumPy's own float32 function (None: no such op)
BOUNDS = {"exp": (1.0, 3.0), "log": (1.0, 3.0), "tanh": (1.5, 2.5), "sigmoid": (2.5, None),
          "erf": (2.0, None), "sin": (2.5, 3.0), "cos": (2.5, 3.0)}


@pytest.fixture(scope="module")
def results():
    names = sorted(BOUNDS)
    _, fn = compile_fn(lambda x: tuple(getattr(ops, n)(x) for n in names), kiln.Tensor(ARGS))
    return dict(zip(names, (t.numpy() for t in fn(kiln.Tensor(ARGS))), strict=True))


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_ulp_error_within_documented_bounds(results, name):
    got = results[name]
    want = _reference(name, ARGS)
    err = _ulps(got, want)
    worst = int(np.argmax(err))
    bound, np_bound = BOUNDS[name]
    assert err[worst] <= bound, (f"{name}({ARGS[worst]!r}) = {got[worst]!r}, want "
                                 f"{want[worst]!r}: {err[worst]:.2f} ulp > {bound}")
    if np_bound is not None:
        with np.errstate(all="ignore"):
            ref32 = getattr(np, name)(ARGS)
        err_np = _ulps(got, ref32.astype(np.float64))
        assert err_np.max() <= np_bound, f"{name}: {err_np.max():.2f} ulp from NumPy"


def test_special_values(results):
    x = ARGS[:5]  # 0, -0, inf, -inf, nan
    np.testing.assert_array_equal(results["exp"][:5], [1, 1, np.inf, 0, np.nan])
    np.testing.assert_array_equal(results["log"][:5], [-np.inf, -np.inf, np.inf, np.nan,
                                                       np.nan])
    np.testing.assert_array_equal(results["tanh"][:5], [0, -0.0, 1, -1, np.nan])
    np.testing.assert_array_equal(results["sigmoid"][:5], [0.5, 0.5, 1, 0, np.nan])
    np.testing.assert_array_equal(results["erf"][:5], [0, -0.0, 1, -1, np.nan])
    assert np.signbit(results["tanh"][1]) and np.signbit(results["erf"][1])
    assert np.signbit(results["sin"][1])
    assert np.isnan(results["sin"][2:5]).all() and np.isnan(results["cos"][2:5]).all()
    assert x.dtype == np.float32
