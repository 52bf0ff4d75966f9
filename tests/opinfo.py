"""The op table: ONE list of every primitive and composite, driving every layer of testing.

Usage (any test under tests/ can ``import opinfo``; tests/conftest.py puts tests/ on the path):

    from opinfo import OP_DB, get
    for info in OP_DB:                       # OpInfo entries
        for dtype in info.dtypes:            # "float32", "float64", "int64", "int32", "bool"
            for sample in info.samples(dtype):   # deterministic Sample objects
                args = sample.kiln_args()        # Kiln tensors (odd strides kept)
                out = info.op(*args, **sample.kwargs)           # or info.run(sample)
                ref = info.run_ref(sample)                      # NumPy, list of arrays
                assert_close(as_arrays(out), ref, *info.tolerance(dtype), info.name)
                # For trace/compile/backends: a function of the sample's arrays only.
                fn = info.flat_bind(sample)      # everything else closed over; seeded
                xs = [kiln.from_numpy(a) for a in sample.arrays()]
                gm = kiln.trace(fn, *xs)         # or kiln.compile(fn, backend="c")(*xs)

- ``info.run_torch(sample)`` calls the PyTorch oracle (``info.torch_ref``), when there is one;
  ``info.skip_reason(check, sample)`` says why a check does not apply to an entry or a sample
  (checks: forward, torch, torch_grad, trace, grad, grad2), else None.
- Reusable checks (forward, finite-difference grads, Hessian-vector products, traced/JSON/
  exec equality) are in opinfo_checks.py.
- ``info.diff_positions(sample)`` gives the differentiable argument positions;
  ``sample.kiln_args(requires_grad=positions)`` makes those tensors require grad.
- ``info.errors()`` lists :class:`ErrorCase` s: bad inputs and the KilnError they raise.
- ``info.primitives`` names the registry ops an entry covers (every primitive has one).

Entries live in opinfo_prims.py and opinfo_kernels.py (registry primitives through ``kiln.ops``),
opinfo_composites.py (shape/math composites, Tensor methods, indexing), opinfo_nn.py and
opinfo_losses.py (``kiln.nn.functional``), opinfo_inplace.py (in-place updates through views
and over values with a history); NumPy references for conv/pool in opinfo_refs.py.
"""

from __future__ import annotations

import opinfo_composites
import opinfo_inplace
import opinfo_kernels
import opinfo_layers
import opinfo_linalg  # noqa: F401  (its entries join opinfo_prims.ENTRIES)
import opinfo_losses
import opinfo_math  # noqa: F401  (its entries join opinfo_prims.ENTRIES)
import opinfo_nn
import opinfo_prims
from opinfo_base import (  # noqa: F401  (the public API of the table)
    ALL_DTYPES,
    FLOAT_DTYPES,
    INT_DTYPES,
    SEED,
    ErrorCase,
    OpInfo,
    Sample,
    as_arrays,
    assert_close,
    describe_args,
    flat_outputs,
    make,
    to_kiln,
    to_torch,
)

OP_DB: list[OpInfo] = (opinfo_prims.ENTRIES + opinfo_kernels.ENTRIES + opinfo_composites.ENTRIES
                       + opinfo_nn.ENTRIES + opinfo_losses.ENTRIES + opinfo_inplace.ENTRIES
                       + opinfo_layers.ENTRIES)

_BY_NAME = {info.name: info for info in OP_DB}
assert len(_BY_NAME) == len(OP_DB), "duplicate OpInfo names"


def get(name: str) -> OpInfo:
    """The entry called ``name`` (``"add"``, ``"F.softmax"``, ``"Tensor.__getitem__"``...)."""
    return _BY_NAME[name]


def entries(*, grad: bool | None = None, torch: bool | None = None,
            primitive: bool | None = None) -> list[OpInfo]:
    """Entries filtered by gradient support, torch oracle presence, primitive or not."""
    out = []
    for info in OP_DB:
        if grad is not None and info.supports_grad != grad:
            continue
        if torch is not None and (info.torch_ref is not None and "torch" not in info.skips) \
                != torch:
            continue
        if primitive is not None and bool(info.primitives) != primitive:
            continue
        out.append(info)
    return out


def dtype_params(infos: list[OpInfo] | None = None, dtypes: tuple[str, ...] = ALL_DTYPES
                 ) -> list[tuple[OpInfo, str]]:
    """(entry, dtype) pairs for ``pytest.mark.parametrize`` (only dtypes an entry supports)."""
    return [(info, d) for info in (OP_DB if infos is None else infos) for d in info.dtypes
            if d in dtypes]
