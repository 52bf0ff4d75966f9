"""Eager forward of every op-table entry vs its NumPy reference, on every supported dtype."""

from __future__ import annotations

import pytest
from opinfo import OP_DB, dtype_params
from opinfo_checks import check_forward


def _params() -> list:
    return [pytest.param(info, d, id=f"{info.name}-{d}") for info, d in dtype_params()
            if info.ref is not None]


@pytest.mark.parametrize("info, dtype", _params())
def test_forward_matches_numpy(info, dtype):
    samples = info.samples(dtype)
    assert samples, f"{info.name} has no samples for {dtype}"
    for sample in samples:
        check_forward(info, sample, dtype)


def test_every_entry_has_a_reference():
    missing = [info.name for info in OP_DB if info.ref is None]
    assert not missing, f"entries without a NumPy reference: {missing}"
