"""The tensor core: ``Tensor``, its methods and in-place ops, views, indexing, creation,
dtypes, random numbers, the functional API of ``kiln.*``, the one dispatch door every op
goes through (:mod:`kiln.core.dispatch`), the primitives (:mod:`kiln.core.prims`) and the
eager autograd tape (:mod:`kiln.core.autograd`). These import each other (a vjp rule runs
Tensor operations, dispatch records onto the tape), so they are one package; the public
``kiln.ops`` and ``kiln.autograd`` are the layer above, and re-export from here.

Layer: the tensor core. May import kiln.symbolic, kiln.base and kiln.errors.
One import reaches up, named in the import-linter contract: Tensor methods that are
composites (``x.softmax()``) call :mod:`kiln.nn.functional`.
"""
