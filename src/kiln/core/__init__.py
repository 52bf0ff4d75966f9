"""The tensor core: ``Tensor``, its methods and in-place ops, views, indexing, creation,
dtypes, random numbers, the functional API of ``kiln.*`` and the one dispatch door every op
goes through (:mod:`kiln.core.dispatch`).

Layer: the tensor core, together with kiln.ops (the primitives) and kiln.autograd (the
tape); the three import each other. May import kiln.symbolic, kiln.base and kiln.errors.
One import reaches up, named in the import-linter contract: Tensor methods that are
composites (``x.softmax()``) call :mod:`kiln.nn.functional`.
"""
