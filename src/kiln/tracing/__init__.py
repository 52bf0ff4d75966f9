"""``kiln.tracing``: run a function on tracer tensors and record a ``GraphModule``.

Stage: tracing, above the graph IR. May import kiln.graph, kiln.nn, kiln.io, the tensor
core (kiln.core, kiln.ops, kiln.autograd), kiln.symbolic, kiln.base and kiln.errors. The
core itself only asks :mod:`kiln.core.trace_state` whether a trace is running.
"""

from kiln.tracing import control as _control  # noqa: E402,F401  (registers control-node tracing)
