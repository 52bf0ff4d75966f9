"""``kiln.compiler``: the compile stage (the counterpart of ``torch.compiler``).

:func:`kiln.compile` (in :mod:`.compiled`) traces a function on its first call, hands the
graph to AOT autograd when gradients are needed and to a backend, and keeps one compiled
entry per input signature, guarded.

Stage: compile, above the backends, AOT autograd and the optimizers. May import every
package below it (kiln.artifacts, kiln.aot, kiln.optim, kiln.backends, kiln.tracing,
kiln.graph, kiln.nn, kiln.io, the tensor core, kiln.symbolic, kiln.base, kiln.errors); never
kiln.export, kiln.jit or kiln.cli.

>>> import kiln
>>> from kiln.compiler import compile
>>> compile(lambda x: x * 2.0)(kiln.ones(2)).tolist()
[2.0, 2.0]
"""

from __future__ import annotations

from kiln.base.debug import debug_level
from kiln.compiler.compiled import CompiledCallable, compile

__all__ = ["CompiledCallable", "compile", "debug_level"]
