"""The local store of compiled entries: one directory, owner-only, atomic, locked, capped.

Where: ``<cache root>/compiled`` (the root is ``$KILN_CACHE_DIR``, else the user cache dir
from platformdirs; ``KILN_CACHE_DIR=0`` turns every cache off). Layout::

    compiled/entries/<key[:2]>/<key>.kart   one container per compiled signature
    compiled/warm/<key[:2]>/<key>.json      warm-start index: call fingerprint -> entry key
    compiled/locks/<key>.lock               one process compiles a key at a time

Directories are created 0700; a directory another user can write (or that another user
owns) is refused with one warning, since whoever can write the cache could swap entries
(they are signed, but a refused cache is clearer than a stream of refused entries).
Writes go to a temporary file renamed into place. Reads touch the entry's mtime, and after
each write the least recently used entries go until the store is under
``$KILN_CACHE_MAX_BYTES`` (default 2 GiB). A directory that turns out read-only or full
degrades to no caching, with one warning.

>>> import os, tempfile
>>> saved = os.environ.get("KILN_CACHE_DIR")
>>> os.environ["KILN_CACHE_DIR"] = tempfile.mkdtemp()
>>> store = LocalStore.default()
>>> store.put("ab" * 32, b"entry bytes")
>>> store.get("ab" * 32)
b'entry bytes'
>>> os.environ.pop("KILN_CACHE_DIR") and saved and os.environ.update(KILN_CACHE_DIR=saved)
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import warnings
from collections.abc import Iterator
from pathlib import Path

from kiln.base import cachedir
from kiln.base.atomic import write_atomic

DEFAULT_MAX_BYTES = 2 << 30
_KEY = re.compile(r"[0-9a-f]{64}")


class CacheWarning(UserWarning):
    """The compile cache is off or degraded (said once per directory and reason)."""


_WARNED: set[tuple[str, str]] = set()


def warn_once(where: str, why: str) -> None:
    if (where, why) in _WARNED:
        return
    _WARNED.add((where, why))
    warnings.warn(f"kiln compile cache {where}: {why}", CacheWarning, stacklevel=4)


def max_bytes() -> int:
    env = os.environ.get("KILN_CACHE_MAX_BYTES", "").strip()
    if not env:
        return DEFAULT_MAX_BYTES
    try:
        return max(0, int(env))
    except ValueError:
        warn_once("KILN_CACHE_MAX_BYTES", f"{env!r} is not a number of bytes; using 2 GiB")
        return DEFAULT_MAX_BYTES


def _safe_dir(path: Path) -> str | None:
    """Create ``path`` (0700) if needed; the reason it is unsafe or unusable, or None."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = path.stat()
    except OSError as e:
        return f"cannot create {path}: {e.strerror or e}"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"{path} belongs to another user (uid {st.st_uid}); refusing to use it"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (f"{path} is writable by other users (mode {oct(stat.S_IMODE(st.st_mode))}); "
                f"refusing to use it: chmod 700 it or choose another KILN_CACHE_DIR")
    return None


class LocalStore:
    """Entries by key (64 hex digits) under one directory; see the module docstring."""

    def __init__(self, root: Path, parent_checked: bool = True) -> None:
        self.root = root
        self.writable = True
        self.usable = True
        dirs = [root / sub for sub in ("entries", "warm", "locks")]
        for path in ([root.parent] if parent_checked else []) + [root] + dirs:
            why = _safe_dir(path)
            if why is not None:
                warn_once(str(root), why + "; compiling without the cache")
                self.usable = False
                return

    @staticmethod
    def default() -> LocalStore | None:
        """The store under the cache root, or None when caching is off or unusable."""
        base = cachedir.root()
        if base is None:
            return None
        store = LocalStore(base / "compiled")
        return store if store.usable else None

    # paths -----------------------------------------------------------------------------
    def _path(self, section: str, key: str, suffix: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"cache key {key!r} is not 64 hex digits")
        return self.root / section / key[:2] / f"{key}{suffix}"

    def entry_path(self, key: str) -> Path:
        return self._path("entries", key, ".kart")

    # reading and writing -------------------------------------------------------------------
    def get(self, key: str, section: str = "entries", suffix: str = ".kart") -> bytes | None:
        path = self._path(section, key, suffix)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # least recently *used*: a read counts
        return data

    def put(self, key: str, data: bytes, section: str = "entries", suffix: str = ".kart"
            ) -> None:
        if not self.writable:
            return
        path = self._path(section, key, suffix)
        try:
            path.parent.mkdir(exist_ok=True, mode=0o700)
            write_atomic(path, data)
        except OSError as e:
            self.writable = False
            warn_once(str(self.root), f"cannot write ({e.strerror or e}); compiling without "
                                      "storing entries")
            return
        if section == "entries":
            self.evict(max_bytes())

    def drop(self, key: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.entry_path(key).unlink()

    def lock(self, key: str) -> contextlib.AbstractContextManager:
        """A file lock for compiling ``key`` (one process at a time); a no-op lock when the
        directory is not writable or the ``filelock`` package is missing."""
        try:
            from filelock import FileLock
        except ImportError:
            return contextlib.nullcontext()
        if not self.writable:
            return contextlib.nullcontext()
        return _Lock(FileLock(str(self._path("locks", key, ".lock")), timeout=600))

    # listing and eviction --------------------------------------------------------------
    def entries(self) -> Iterator[tuple[str, Path, os.stat_result]]:
        """(key, path, stat) of every entry."""
        for path in (self.root / "entries").glob("??/*.kart"):
            with contextlib.suppress(OSError):
                yield path.stem, path, path.stat()

    def evict(self, limit: int) -> int:
        """Remove least recently used entries until the total is at most ``limit``; returns
        how many went."""
        items = sorted(self.entries(), key=lambda e: e[2].st_mtime)
        total = sum(st.st_size for _, _, st in items)
        removed = 0
        for _, path, st in items:
            if total <= limit:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                total -= st.st_size
                removed += 1
        return removed

    def clear(self) -> int:
        """Remove every entry and warm index; returns how many files went."""
        n = 0
        for section, pattern in (("entries", "??/*.kart"), ("warm", "??/*.json")):
            for path in (self.root / section).glob(pattern):
                with contextlib.suppress(OSError):
                    path.unlink()
                    n += 1
        return n


class _Lock:
    """A FileLock that, when the lock file cannot be made (read-only directory), gives up
    the locking instead of failing the compile."""

    def __init__(self, lock: object) -> None:
        self.lock = lock
        self.held = False

    def __enter__(self) -> _Lock:
        try:
            self.lock.acquire()  # type: ignore[attr-defined]
            self.held = True
        except OSError:
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self.held:
            self.lock.release()  # type: ignore[attr-defined]
