"""``kiln.ops``: one function per registered primitive, named after it.

These are what printed graphs call (``ops.add(x, y)``); users normally reach the same ops
through Tensor methods, ``kiln.*`` functions and ``kiln.nn.functional``.

Layer: the tensor core, beside kiln.core and kiln.autograd (the three import each other). May
import kiln.symbolic, kiln.base and kiln.errors below it.

>>> import kiln
>>> kiln.ops.add(kiln.ones(2), 1.0).tolist()
[2.0, 2.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kiln.ops import (  # noqa: F401  (each module registers its primitives)
    conv,
    creation_ops,
    gather,
    movement,
    pointwise,
    pool,
    reductions,
)
from kiln.ops.registry import REGISTRY, OpDef, TensorMeta, get_op  # noqa: F401


def _make(op: OpDef) -> Callable[..., Any]:
    from kiln.core.dispatch import call
    from kiln.core.views import VIEW_OPS, view_op

    if op.name in VIEW_OPS:
        # The result shares memory with the input: it remembers how (kiln.core.views), so an
        # in-place op on it reaches the input under autograd and tracing too.
        fn = view_op(op, call)
    else:
        def fn(*args: Any, **attrs: Any) -> Any:
            return call(op, *args, **attrs)

    fn.__name__ = op.name
    fn.__qualname__ = op.name
    fn.__doc__ = op.doc
    return fn


def _export_all() -> None:
    for name, op in REGISTRY.items():
        if name not in globals() or not callable(globals()[name]) or \
                getattr(globals()[name], "__name__", None) != name:
            globals()[name] = _make(op)


_export_all()
