"""kiln.trace of every entry == eager: gm(...), the JSON round trip, and exec(gm.code)."""

from __future__ import annotations

import pytest
from opinfo import dtype_params
from opinfo_checks import check_traced


def _params() -> list:
    out = []
    for info, d in dtype_params(dtypes=("float32", "int64", "bool")):
        marks = [pytest.mark.skip(reason=info.skips["trace"])] if "trace" in info.skips else []
        out.append(pytest.param(info, d, id=f"{info.name}-{d}", marks=marks))
    return out


@pytest.mark.parametrize("info, dtype", _params())
def test_traced_matches_eager(info, dtype):
    for sample in info.samples(dtype):
        if info.skip_reason("trace", sample):
            continue
        check_traced(info, sample)
