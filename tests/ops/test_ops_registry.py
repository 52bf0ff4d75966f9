"""The registry walk: every primitive has its fields and an entry in the op table."""

from __future__ import annotations

import inspect

import pytest
from opinfo import OP_DB

from kiln.ops.registry import KINDS, REGISTRY


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
