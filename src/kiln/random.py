"""Kiln's random number generator (``kiln.manual_seed``)."""

from __future__ import annotations

import numpy as np

_state: dict[str, np.random.Generator] = {"gen": np.random.default_rng(0)}


def manual_seed(seed: int) -> None:
    """Seed the generator every random op and initializer draws from.

    >>> import kiln
    >>> kiln.manual_seed(0); a = kiln.rand(2)
    >>> kiln.manual_seed(0); b = kiln.rand(2)
    >>> a.tolist() == b.tolist()
    True
    """
    from kiln.errors import ArgumentError, ValueArgumentError

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ArgumentError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueArgumentError(f"manual_seed: seed must be non-negative, got {seed}")
    _state["gen"] = np.random.default_rng(int(seed))


def generator() -> np.random.Generator:
    return _state["gen"]
