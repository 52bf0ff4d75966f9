"""The registry walk: every primitive has its fields and an entry in the op table."""

from __future__ import annotations

import inspect

import pytest
from opinfo import OP_DB

from kiln.core.prims.registry import KINDS, REGISTRY


def test_every_primitive_has_an_opinfo_entry():
    covered = {p for info in OP_DB for p in info.primitives}
    missing = sorted(set(REGISTRY) - covered)
    assert not missing, f"primitives without an entry in tests/opinfo.py: {missing}"
    unknown = sorted(covered - set(REGISTRY))
    assert not unknown, f"entries name primitives that do not exist: {unknown}"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_opdef_fields(name):
    op = REGISTRY[name]
    assert op.name == name
    assert callable(op.meta) and callable(op.eager)
    assert op.kind in KINDS
    assert op.doc and op.doc.strip()
    assert (op.vjp is not None) == op.differentiable, "vjp present iff differentiable"
    if op.is_pointwise:
        assert op.c_expr, "pointwise ops need a C expression"
    # The declared attrs are exactly the meta function's keyword-only parameters.
    params = inspect.signature(op.meta).parameters.values()
    kwonly = tuple(p.name for p in params if p.kind == p.KEYWORD_ONLY)
    if not any(p.kind == p.VAR_KEYWORD for p in params):
        assert kwonly == op.attrs, f"meta keywords {kwonly} vs attrs {op.attrs}"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_table_agrees_with_registry_on_gradients(name):
    op = REGISTRY[name]
    infos = [info for info in OP_DB if name in info.primitives]
    for info in infos:
        assert info.supports_grad == op.differentiable, info.name


def _edge_needs(info) -> dict[str, bool]:
    arrays = [a for d in info.dtypes for s in info.samples(d) for a in s.arrays()]
    return {
        "size-0": any(0 in a.shape for a in arrays),
        "size-1": any(1 in a.shape for a in arrays),
        "non-contiguous": any(a.size > 1 and not a.flags.c_contiguous for a in arrays),
    }


@pytest.mark.parametrize("info", [i for i in OP_DB if any(s.arrays() for d in i.dtypes
                                                          for s in i.samples(d))],
                         ids=lambda i: i.name)
def test_samples_cover_edge_shapes_and_layouts(info):
    """The issue's bar for every op: inputs with size-0 and size-1 dims and non-contiguous
    inputs. Every layer of testing (forward, grads, torch, trace, AOT) runs these samples. An
    entry that cannot have one says why in ``skips`` ("size-0", "size-1", "non-contiguous")."""
    needs = _edge_needs(info)
    missing = [k for k, ok in needs.items() if not ok and k not in info.skips]
    assert not missing, f"{info.name}: no sample has an input with {', '.join(missing)}"
    stale = [k for k in needs if needs[k] and k in info.skips]
    assert not stale, f"{info.name}: skips {stale} no longer apply"


def test_pointwise_binary_samples_broadcast():
    for info in OP_DB:
        ops = [REGISTRY[p] for p in info.primitives]
        if not ops or not all(op.is_pointwise for op in ops):
            continue
        for d in info.dtypes:
            shapes = [[a.shape for a in s.arrays()] for s in info.samples(d)]
            if max(map(len, shapes)) < 2:
                break
            assert any(len(set(sh)) > 1 or len(sh) < len(s.args)
                       for sh, s in zip(shapes, info.samples(d))), \
                f"{info.name} ({d}): no sample broadcasts"
