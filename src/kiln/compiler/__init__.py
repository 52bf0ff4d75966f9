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
from kiln.base.lazy import lazy_attributes

# Loaded on first use: a process that only loads a precompiled function never imports the
# tracer behind ``compile``.
_LAZY = {
    "CompiledCallable": "compiled", "compile": "compiled",
    "load_cache_artifacts": "precompile", "load_compiled_function": "precompile",
    "save_cache_artifacts": "precompile",
}

__getattr__, __dir__ = lazy_attributes("kiln.compiler", _LAZY, globals())

__all__ = ["CompiledCallable", "compile", "debug_level", "load_cache_artifacts",
           "load_compiled_function", "save_cache_artifacts"]
