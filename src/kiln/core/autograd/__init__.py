"""Eager reverse-mode autograd, the machinery behind the public :mod:`kiln.autograd`: grad
mode (``grad_mode.py``), the tape's nodes and custom ``Function`` (``function.py``), the
engine that walks the tape (``engine.py``) and its two entry points ``backward`` and
``grad`` (``api.py``).

Part of the tensor core (kiln.core): dispatch records a node through ``function.record``,
``Tensor`` keeps its ``AccumulateGrad``, and every vjp rule runs Tensor operations, so the
tape lives inside the core package. May import the rest of kiln.core and kiln.symbolic,
kiln.base and kiln.errors below it.
"""
