"""``KILN_DEBUG``: how much Kiln prints about what it compiles.

``1`` prints graphs, ``2`` also the generated C and compile commands, ``3`` also per-kernel
timings. Every stage reads the level through :func:`debug_level`, which lives below them all
so that no stage imports another just to ask.
"""

from __future__ import annotations

import os


def debug_level() -> int:
    """The ``KILN_DEBUG`` level (0 when unset or not a number).

    >>> import os
    >>> os.environ["KILN_DEBUG"] = "2"; debug_level()
    2
    >>> del os.environ["KILN_DEBUG"]; debug_level()
    0
    """
    try:
        return int(os.environ.get("KILN_DEBUG", "0"))
    except ValueError:
        return 0
