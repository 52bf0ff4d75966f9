"""Python's cyclic garbage collector paused while a loader builds a graph.

Decoding a stored entry allocates tens of thousands of small objects (parsed JSON, nodes,
metas) and none of them in a cycle that needs collecting; the collections those
allocations trigger are a millisecond or two of a warm start spent finding nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off (restored after, errors included).

    >>> import gc
    >>> with gc_paused():
    ...     gc.isenabled()
    False
    >>> gc.isenabled()
    True
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
