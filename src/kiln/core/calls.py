"""The argument leaves of a call, and telling a module from a function: what running a
compiled function needs of the tracer, without importing it.

:mod:`kiln.tracing.trace` re-exports both; a process that only loads and runs stored
entries (:mod:`kiln.artifacts`) imports this module instead of the tracing package.
"""

from __future__ import annotations

from typing import Any

from kiln.base.pytree import _CUSTOM, TreeSpec, tree_flatten
from kiln.core.tensor import Tensor


def is_module(fn: Any) -> bool:
    """True for a ``kiln.nn.Module`` (duck-typed, so that tracing does not import kiln.nn)."""
    return hasattr(fn, "named_parameters") and hasattr(fn, "forward")


# (number of custom pytree node types, argument types) -> TreeSpec of ``(args, {})`` when every
# argument is a tensor leaf: calls of compiled functions skip re-deriving that structure.
_FLAT_SPECS: dict[tuple, TreeSpec] = {}


def flatten_call(args: tuple, kwargs: dict) -> tuple[list[Any], TreeSpec]:
    """``tree_flatten((args, kwargs))``, fast for the common call ``f(tensor, ...)``.

    >>> import kiln
    >>> leaves, spec = flatten_call((kiln.ones(2),), {})
    >>> spec == tree_flatten(((kiln.ones(2),), {}))[1]
    True
    """
    if not kwargs:
        for a in args:
            if not isinstance(a, Tensor):
                break
        else:
            key = (len(_CUSTOM), *map(type, args))
            spec = _FLAT_SPECS.get(key)
            if spec is None:
                leaves, spec = tree_flatten((args, kwargs))
                if len(leaves) != len(args) or any(a is not b for a, b in zip(leaves, args)):
                    return leaves, spec  # a tensor type registered as a pytree node
                if len(_FLAT_SPECS) > 256:
                    _FLAT_SPECS.clear()
                _FLAT_SPECS[key] = spec
            return list(args), spec
    return tree_flatten((args, kwargs))
