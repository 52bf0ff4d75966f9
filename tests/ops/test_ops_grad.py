"""Gradients of every differentiable entry vs central finite differences in float64, the
inner-product identity <t, vjp(c)> = <jvp(t), c>, and second derivatives (create_graph)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from opinfo import OP_DB
from opinfo_checks import check_grad, check_grad2

GRAD2_SAMPLES = 3  # Hessian-vector products on the first few samples of an entry


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def _params(flag: str) -> list:
    out = []
    for info in OP_DB:
        if not info.supports_grad or "float64" not in info.dtypes or not info.supports_float64:
            continue
        if flag == "grad2" and not info.supports_grad2:
            continue
        marks = [pytest.mark.skip(reason=info.skips[flag])] if flag in info.skips else []
        out.append(pytest.param(info, id=info.name, marks=marks))
    return out


@pytest.mark.parametrize("info", _params("grad"))
def test_grad_matches_finite_differences(info):
    rng = _rng(info.name)
    checked = 0
    for sample in info.samples("float64"):
        if info.skip_reason("grad", sample) or not info.diff_positions(sample):
            continue
        check_grad(info, sample, rng)
        checked += 1
    assert checked, f"{info.name}: no sample has differentiable inputs"


@pytest.mark.parametrize("info", _params("grad2"))
def test_second_derivative_matches_finite_differences(info):
    rng = _rng(info.name + "/2")
    samples = [s for s in info.samples("float64")
               if not info.skip_reason("grad2", s) and info.diff_positions(s)]
    for sample in samples[:GRAD2_SAMPLES]:
        check_grad2(info, sample, rng)


def test_every_pointwise_primitive_checks_second_derivatives():
    from kiln.core.prims.registry import REGISTRY

    missing = [info.name for info in OP_DB for p in info.primitives
               if REGISTRY[p].is_pointwise and REGISTRY[p].differentiable
               and not info.supports_grad2]
    assert not missing, missing
