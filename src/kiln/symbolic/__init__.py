"""Symbolic sizes (:mod:`.sizes`: ``SymInt``, ``Dim``) and the guards that record what a
trace assumed about them (:mod:`.guards`: ``Guard``, ``ShapeEnv``).

Layer: below the tensor core (shapes are SymInts everywhere). May import kiln.base and
kiln.errors only.
"""
