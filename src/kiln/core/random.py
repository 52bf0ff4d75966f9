"""Kiln's random number generator (``kiln.manual_seed``)."""

from __future__ import annotations

import numpy as np

from kiln.errors import ArgumentError, ValueArgumentError

_state: dict[str, np.random.Generator] = {"gen": np.random.default_rng(0)}


def manual_seed(seed: int) -> None:
    """Seed the generator every random op and initializer draws from.

    >>> import kiln
    >>> kiln.manual_seed(0); a = kiln.rand(2)
    >>> kiln.manual_seed(0); b = kiln.rand(2)
    >>> a.tolist() == b.tolist()
    True
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ArgumentError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    # torch's range: a negative seed is its two's complement as a 64-bit unsigned integer
    if not -(2**63) <= seed < 2**64:
        raise ValueArgumentError(f"manual_seed: seed must be in [-2**63, 2**64), got {seed}")
    _state["gen"] = np.random.default_rng(seed % 2**64)


def generator() -> np.random.Generator:
    return _state["gen"]
