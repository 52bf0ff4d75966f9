"""The C backend: fused loops emitted as C, compiled to a shared library, called via ctypes.

``CFunction`` loads on first use, so that light modules of this package (``cpu``, which
``kiln.aot_load`` checks a library's CPU features with) import without the runtime.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CFunction"]


def __getattr__(name: str) -> Any:
    if name == "CFunction":
        from kiln.backends.c.runtime import CFunction

        return CFunction
    raise AttributeError(f"module 'kiln.backends.c' has no attribute {name!r}")
