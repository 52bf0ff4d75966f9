"""``kiln.ops``: one function per registered primitive, named after it.

These are what printed graphs call (``ops.add(x, y)``); users normally reach the same ops
through Tensor methods, ``kiln.*`` functions and ``kiln.nn.functional``. The primitives and
their callables are defined in the tensor core (:mod:`kiln.core.prims`); this package is
their public name, as ``torch.ops`` is torch's.

Layer: just above the tensor core, beside kiln.autograd (the two do not import each other).
May import kiln.core, kiln.symbolic, kiln.base and kiln.errors below it.

>>> import kiln
>>> kiln.ops.add(kiln.ones(2), 1.0).tolist()
[2.0, 2.0]
"""

from __future__ import annotations

from kiln.core import prims
from kiln.core.prims.registry import REGISTRY, OpDef, TensorMeta, get_op  # noqa: F401

globals().update({name: getattr(prims, name) for name in REGISTRY})
