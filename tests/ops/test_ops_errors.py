"""Bad inputs raise the documented KilnError subclass naming the op and argument, in the
same builtin exception family as NumPy raises for the same inputs."""

from __future__ import annotations

import pytest
from opinfo import OP_DB, Sample, to_kiln

import kiln
from kiln.errors import KilnError

_FAMILIES = (ValueError, TypeError, IndexError, KeyError, RuntimeError, ArithmeticError,
             NotImplementedError)


def _params() -> list:
    return [pytest.param(info, id=info.name) for info in OP_DB if info.error_fn is not None]


@pytest.mark.parametrize("info", _params())
def test_bad_inputs_raise_kiln_errors(info):
    for case in info.errors():
        args = tuple(to_kiln(a) for a in case.args)
        with pytest.raises(case.exc, match=case.match) as caught:
            info.op(*args, **case.kwargs)
        assert isinstance(caught.value, KilnError)
        if case.ref_raises:
            with pytest.raises(Exception) as ref:  # noqa: B017 (any NumPy error type)
                info.ref(*case.args, **case.kwargs)
            families = [c for c in type(ref.value).__mro__ if c in _FAMILIES]
            assert families, f"NumPy raised {type(ref.value).__name__}, not a builtin family"
            assert isinstance(caught.value, tuple(families)), (
                f"{info.name}: Kiln raised {type(caught.value).__name__} "
                f"({type(caught.value).__mro__[1:]}), NumPy {type(ref.value).__name__} "
                f"({families})")


@pytest.mark.parametrize("info", _params())
def test_bad_inputs_raise_the_same_error_under_tracing(info):
    """Tracing raises what eager raises (meta checks), or the graph raises it when run
    (checks that need values, like out-of-range indices)."""
    for case in info.errors():
        sample = Sample(case.args, case.kwargs)
        tensors = [kiln.from_numpy(a) for a in sample.arrays()]
        fn = info.flat_bind(sample)
        try:
            gm = kiln.trace(fn, *tensors)
        except case.exc:
            continue
        with pytest.raises(case.exc, match=case.match):
            gm(*tensors)


def test_error_cases_exist_for_primitives_of_every_kind():
    from kiln.core.prims.registry import REGISTRY

    kinds = {REGISTRY[p].kind for info in OP_DB if info.error_fn for p in info.primitives}
    assert kinds >= {"pointwise", "reduction", "movement", "matmul", "conv", "pool", "gather",
                     "creation", "random"}, kinds
