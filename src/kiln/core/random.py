"""Kiln's random number generators: ``kiln.manual_seed`` and ``kiln.Generator``.

Every random op and initializer draws from the *active* generator: the default one
(``kiln.default_generator``, seeded by ``kiln.manual_seed``), or the one passed as
``generator=`` for the length of one call (:func:`using`). A generator is a NumPy PCG64
stream; its state is a small int64 tensor (``get_state``/``set_state``).

>>> import kiln
>>> g = kiln.Generator().manual_seed(3)
>>> a = kiln.rand(2, generator=g)
>>> kiln.rand(2, generator=kiln.Generator().manual_seed(3)).tolist() == a.tolist()
True
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from typing import Any

import numpy as np

from kiln.errors import ArgumentError, ValueArgumentError

_MASK64 = 2**64 - 1


def _check_seed(where: str, seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ArgumentError(f"{where}: seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    # torch's range: a negative seed is its two's complement as a 64-bit unsigned integer
    if not -(2**63) <= seed < 2**64:
        raise ValueArgumentError(f"{where}: seed must be in [-2**63, 2**64), got {seed}")
    return seed % 2**64


def _i64(u: int) -> int:
    """An unsigned 64-bit value as the signed int64 with the same bits."""
    return u - 2**64 if u >= 2**63 else u


class Generator:
    """A random number generator, as ``torch.Generator`` (CPU only): pass it as
    ``generator=`` to ``kiln.rand``/``randn``/``randint``/``randperm`` and to
    ``kiln.utils.data.DataLoader``.

    >>> import kiln
    >>> g = kiln.Generator()
    >>> g.manual_seed(7).initial_seed()
    7
    >>> state = g.get_state(); x = kiln.randn(3, generator=g)
    >>> y = kiln.randn(3, generator=g.set_state(state))
    >>> x.tolist() == y.tolist()
    True
    """

    def __init__(self, device: Any = "cpu") -> None:
        from kiln.core.devices import check_device

        check_device("kiln.Generator", device)
        self.device = "cpu"
        self._seed = 67280421310721  # torch's default initial seed
        self._rng = np.random.Generator(np.random.PCG64(self._seed))

    def manual_seed(self, seed: int) -> Generator:
        """Reseed; returns the generator (as torch)."""
        self._seed = _check_seed("Generator.manual_seed", seed)
        self._rng = np.random.Generator(np.random.PCG64(self._seed))
        return self

    def seed(self) -> int:
        """Reseed from the operating system's entropy and return the new seed."""
        seed = secrets.randbits(63)
        self.manual_seed(seed)
        return seed

    def initial_seed(self) -> int:
        """The seed the generator was last seeded with."""
        return self._seed

    def get_state(self) -> Any:
        """The generator's state as an int64 tensor of 7 values (for :meth:`set_state`)."""
        from kiln.core.creation import tensor

        st = self._rng.bit_generator.state
        s, inc = st["state"]["state"], st["state"]["inc"]
        words = [s >> 64, s & _MASK64, inc >> 64, inc & _MASK64, st["has_uint32"],
                 st["uinteger"], self._seed]
        return tensor([_i64(w) for w in words], dtype="int64")

    def set_state(self, new_state: Any) -> Generator:
        """Restore a state from :meth:`get_state`; returns the generator."""
        from kiln.core.tensor import Tensor

        if not isinstance(new_state, Tensor) or new_state.dtype.name != "int64" or \
                tuple(new_state.shape) != (7,):
            raise ArgumentError("Generator.set_state: expected the int64 tensor of 7 values "
                                f"that get_state() returns, got {new_state!r}")
        w = [int(v) & _MASK64 for v in new_state.tolist()]
        bitgen = np.random.PCG64()
        bitgen.state = {"bit_generator": "PCG64",
                        "state": {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]},
                        "has_uint32": int(w[4] != 0), "uinteger": w[5] & 0xFFFFFFFF}
        self._rng = np.random.Generator(bitgen)
        self._seed = w[6]
        return self

    def __repr__(self) -> str:
        return f"<kiln.Generator seed={self._seed}>"


default_generator = Generator()
default_generator.manual_seed(0)
_active: list[Generator] = [default_generator]


def manual_seed(seed: int) -> None:
    """Seed the default generator, which every random op and initializer draws from.

    >>> import kiln
    >>> kiln.manual_seed(0); a = kiln.rand(2)
    >>> kiln.manual_seed(0); b = kiln.rand(2)
    >>> a.tolist() == b.tolist()
    True
    """
    default_generator.manual_seed(_check_seed("manual_seed", seed))


def seed() -> int:
    """Seed the default generator from the operating system and return the seed.

    >>> import kiln
    >>> s = kiln.seed(); kiln.initial_seed() == s
    True
    """
    return default_generator.seed()


def initial_seed() -> int:
    """The default generator's last seed.

    >>> import kiln
    >>> kiln.manual_seed(4); kiln.initial_seed()
    4
    """
    return default_generator.initial_seed()


def get_rng_state() -> Any:
    """The default generator's state (see :meth:`Generator.get_state`).

    >>> import kiln
    >>> state = kiln.get_rng_state(); a = kiln.rand(2)
    >>> kiln.set_rng_state(state); kiln.rand(2).tolist() == a.tolist()
    True
    """
    return default_generator.get_state()


def set_rng_state(new_state: Any) -> None:
    """Restore the default generator's state (an example is in :func:`get_rng_state`).

    >>> import kiln
    >>> kiln.set_rng_state(kiln.get_rng_state())
    """
    default_generator.set_state(new_state)


def generator() -> np.random.Generator:
    """The NumPy generator random kernels draw from: the active Kiln generator's."""
    return _active[-1]._rng


@contextlib.contextmanager
def using(gen: Generator | None, where: str) -> Iterator[None]:
    """Draw from ``gen`` (when not None) inside the block: ``generator=`` of one call.

    Inside ``kiln.trace`` a generator cannot be honoured (the graph draws from the default
    generator when it runs), so it is refused there."""
    if gen is None:
        yield
        return
    if not isinstance(gen, Generator):
        raise ArgumentError(f"{where}: generator must be a kiln.Generator, got "
                            f"{type(gen).__name__}")
    from kiln.core.trace_state import current

    if current() is not None:
        raise ArgumentError(f"{where}: generator= is eager-only; a traced or compiled "
                            "function draws from the default generator (kiln.manual_seed)")
    _active.append(gen)
    try:
        yield
    finally:
        _active.pop()
