"""Kiln's on-disk cache of build products that outlive a process.

Some native code does not depend on the user's program: the C backend's conv and pooling
runtime (several seconds of compiler time) and the fused optimizer kernels. They are built
once per machine and toolchain, keyed by a hash of their sources, the compiler's fingerprint
and the flags, and reused by every later process.

Where: ``$KILN_CACHE_DIR`` if set (``0``, ``off`` or an empty value turns the cache off),
else the platform's user cache directory (``~/.cache/kiln`` on Linux, via platformdirs).
A cache that cannot be created or written is skipped silently: it only saves time. Entries
are written to a temporary name and renamed into place, so concurrent processes never see a
half-written file.

>>> import os, tempfile
>>> os.environ["KILN_CACHE_DIR"] = tempfile.mkdtemp()
>>> path = cache_path("example", "k-1234.bin")
>>> store(path, b"payload")
>>> load(path)
b'payload'
>>> del os.environ["KILN_CACHE_DIR"]
"""

from __future__ import annotations

import os
from pathlib import Path

from kiln.base.atomic import write_atomic

_OFF = ("", "0", "off", "none", "false")


def root() -> Path | None:
    """The cache's root directory, or None when the cache is turned off."""
    env = os.environ.get("KILN_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in _OFF else Path(env).expanduser()
    try:
        import platformdirs
    except ImportError:
        return None
    return Path(platformdirs.user_cache_dir("kiln", appauthor=False))


def cache_path(section: str, name: str) -> Path | None:
    """``<root>/<section>/<name>``, its directory created; None if there is no usable cache."""
    base = root()
    if base is None:
        return None
    directory = base / section
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return directory / name


def load(path: Path | None) -> bytes | None:
    """The entry's bytes, or None if it is missing or unreadable."""
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError:
        return None


def store(path: Path | None, data: bytes) -> None:
    """Write an entry atomically (temporary file + rename); errors are ignored."""
    if path is None:
        return
    try:
        write_atomic(path, data)
    except OSError:
        pass
