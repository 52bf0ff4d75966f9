"""``kiln.graph``: the graph IR — nodes, graphs, ``GraphModule``, printing, JSON, passes.

A graph is SSA nodes in topological order; every node carries its shape and dtype. It prints
as runnable Python (``gm.code``), lints itself, round-trips through canonical JSON and runs
in the reference interpreter.

Stage: the graph IR, above kiln.nn. May import kiln.nn,
kiln.io, the tensor core (kiln.core, kiln.ops, kiln.autograd), kiln.symbolic, kiln.base and
kiln.errors; never kiln.tracing or anything above it.
"""
