"""The primitives: the op registry (``registry.py``: ``OpDef`` with meta, NumPy kernel, vjp
rule and lowering data), shape helpers, the definitions (``pointwise.py``, ``reductions.py``,
``movement.py``, ``gather.py``, ``conv.py``, ``pool.py``, ``creation_ops.py``) and one
callable per primitive, named after it, that goes through :func:`kiln.core.dispatch.call`.

The public :mod:`kiln.ops` re-exports these callables. Inside the core they are imported as
``from kiln.core import prims as ops``, so a vjp rule reads like a printed graph
(``ops.mul(g, y)``).

Part of the tensor core (kiln.core): a vjp rule runs Tensor operations, and dispatch and the
tape take the ``OpDef``, so the primitives live inside the core package. May import the rest
of kiln.core and kiln.symbolic, kiln.base and kiln.errors below it.

>>> import kiln
>>> from kiln.core import prims
>>> prims.add(kiln.ones(2), 1.0).tolist()
[2.0, 2.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kiln.core.prims import (  # noqa: F401  (each module registers its primitives)
    conv,
    creation_ops,
    gather,
    linalg_prims,
    movement,
    pointwise,
    pointwise_math,
    pointwise_special,
    pool,
    reductions,
)
from kiln.core.prims.registry import REGISTRY, OpDef, TensorMeta, get_op  # noqa: F401


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
