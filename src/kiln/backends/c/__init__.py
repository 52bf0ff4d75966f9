"""The C backend: fused loops emitted as C, compiled to a shared library, called via ctypes."""

from kiln.backends.c.runtime import CFunction

__all__ = ["CFunction"]
