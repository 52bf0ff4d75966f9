"""Atomic file writes, shared by every Kiln writer (weights, drawings, the on-disk cache).

A file is written to a temporary name beside its destination and renamed over it, so a
reader sees the old file or the new one, never a half-written mix. ``tempfile.mkstemp``
creates the temporary file with mode 0600; the file then gets the mode an ordinary
``open(path, "w")`` would give: the mode of the file it replaces, or ``0666 & ~umask`` for a
new one (0644 under the usual umask 022).
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Iterable
from pathlib import Path

_UMASK_LOCK = threading.Lock()
_PROC_STATUS = "/proc/self/status"  # Linux >= 4.7 shows the umask there


def current_umask() -> int:
    """The process umask, read without changing it where the platform allows."""
    with contextlib.suppress(OSError, ValueError):
        with open(_PROC_STATUS, encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    # Elsewhere the only way is to set it and put it back; the lock keeps Kiln's own
    # threads from seeing the temporary value.
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def file_mode(path: str | os.PathLike) -> int:
    """The mode a write to ``path`` should leave: the existing file's, else 0666 & ~umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def write_atomic(path: str | os.PathLike, data: bytes | Iterable[bytes], *,
                 durable: bool = False, mode: int | None = None) -> None:
    """Write ``data`` (bytes, or an iterable of byte chunks written one after the other) to
    ``path`` atomically. ``durable=True`` also fsyncs the file and its directory, so the new
    content survives a power loss. ``mode`` (e.g. ``0o600``) sets the file's mode whatever
    the umask and the file it replaces. On error the temporary file is removed and the error
    propagates; ``path`` is untouched.

    >>> import os, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> old = os.umask(0o022)
    >>> write_atomic(d / "a.txt", [b"hel", b"lo"])
    >>> _ = os.umask(old)
    >>> (d / "a.txt").read_bytes(), oct((d / "a.txt").stat().st_mode & 0o777)
    (b'hello', '0o644')
    """
    target = Path(path)
    directory = target.parent  # Path("name").parent is Path(".")
    if mode is None:
        mode = file_mode(target)
    import tempfile  # here: it imports shutil (and bz2, lzma), a cost only writers pay

    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in ([data] if isinstance(data, (bytes, bytearray, memoryview)) else data):
                f.write(chunk)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        # Make the rename itself durable; not every platform can open a directory.
        with contextlib.suppress(OSError):
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
