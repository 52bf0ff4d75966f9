"""Kiln's on-disk cache of build products that outlive a process.

Some native code does not depend on the user's program: the C backend's conv and pooling
runtime (several seconds of compiler time) and the fused optimizer kernels. They are built
once per machine and toolchain, keyed by a hash of their sources, the compiler's fingerprint
and the flags, and reused by every later process.

Where: ``$KILN_CACHE_DIR`` if set (``0``, ``off`` or an empty value turns the cache off),
else the platform's user cache directory (``~/.cache/kiln`` on Linux, via platformdirs).

The cache trusts no one by default (see docs/security.md):

- its directory must be owned by the current user and not writable by group or others;
  otherwise Kiln warns once and runs without a cache. Directories it creates are 0700 and
  files 0600, whatever the umask;
- every entry is signed (HMAC-SHA256 under the user's key, :mod:`kiln.base.trust`) when
  stored, and an entry whose signature is missing or wrong is a miss: it is never handed
  to a loader or a linker, and the next build replaces it.

A cache that cannot be created or written is otherwise skipped silently: it only saves
time. Entries are written to a temporary name and renamed into place, so concurrent
processes never see a half-written file.

>>> import os, tempfile
>>> os.environ["KILN_CACHE_DIR"] = tempfile.mkdtemp()
>>> path = cache_path("example", "k-1234.bin")
>>> store(path, b"payload")
>>> load(path)
b'payload'
>>> _ = path.write_bytes(path.read_bytes().replace(b"payload", b"PAYLOAD"))
>>> load(path) is None  # an entry changed behind Kiln's back is a miss
True
>>> del os.environ["KILN_CACHE_DIR"]
"""

from __future__ import annotations

import os
import stat
import sys
import threading
import warnings
from pathlib import Path

_OFF = ("", "0", "off", "none", "false")
# Entry layout: magic, the HMAC-SHA256 of the content, the content.
ENTRY_MAGIC = b"KILNSIG1"
_SIG = 32
DIR_MODE = 0o700
FILE_MODE = 0o600

_lock = threading.Lock()
_checked: dict[str, bool] = {}


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


def _debug(msg: str) -> None:
    if os.environ.get("KILN_DEBUG", "0").strip() not in ("", "0"):
        print(f"[kiln] cache: {msg}", file=sys.stderr)


def directory_problem(path: Path) -> str | None:
    """Why ``path`` is not a directory Kiln may keep native code in, or None if it is:
    it must be a directory owned by the current user, not writable by group or others.

    >>> import tempfile, pathlib
    >>> directory_problem(pathlib.Path(tempfile.mkdtemp())) is None
    True
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"cannot stat it ({exc})"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"it is owned by uid {st.st_uid}, not by this user ({os.getuid()})"
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        return f"its mode {oct(mode)} lets group or others write to it"
    return None


def _make_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) as 0700 whatever the umask."""
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(d, DIR_MODE)


def _usable(path: Path, what: str) -> bool:
    key = str(path)
    with _lock:
        hit = _checked.get(key)
    if hit is not None:
        return hit
    try:
        _make_dir(path)
    except OSError as exc:
        _debug(f"cannot create {path} ({exc}); running without a cache")
        with _lock:
            _checked[key] = False
        return False
    problem = directory_problem(path) if path.is_dir() else "it is not a directory"
    if problem is not None and path.is_dir():
        warnings.warn(f"kiln: not using the {what} {path}: {problem}. Kiln runs without an "
                      "on-disk cache (builds are not reused across processes); fix its owner "
                      "or mode (chmod 700), or point KILN_CACHE_DIR elsewhere",
                      RuntimeWarning, stacklevel=4)
    with _lock:
        _checked[key] = problem is None
    return problem is None


def usable_root() -> Path | None:
    """:func:`root`, created 0700 if missing, when it passes :func:`directory_problem`'s
    checks; None (after one warning per directory and process) when it does not."""
    base = root()
    if base is None or not _usable(base, "cache directory"):
        return None
    return base


def cache_path(section: str, name: str) -> Path | None:
    """``<root>/<section>/<name>``, its directory created; None if there is no usable cache."""
    base = usable_root()
    if base is None:
        return None
    directory = base / section
    if not _usable(directory, "cache section"):
        return None
    return directory / name


def load(path: Path | None) -> bytes | None:
    """The entry's content, or None if it is missing, unreadable or its signature does not
    verify (checked on the bytes, before any caller can hand them to a loader)."""
    from kiln.base import trust

    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head = len(ENTRY_MAGIC) + _SIG
    if len(data) < head or not data.startswith(ENTRY_MAGIC):
        _debug(f"{path} is not a signed entry; ignoring it")
        return None
    content = data[head:]
    if not trust.verify(content, data[len(ENTRY_MAGIC):head]):
        _debug(f"{path} fails its signature check; ignoring it")
        return None
    return content


def store(path: Path | None, data: bytes) -> None:
    """Sign and write an entry atomically (temporary file + rename, mode 0600); errors are
    ignored."""
    from kiln.base import trust
    from kiln.base.atomic import write_atomic  # here: a process that only reads never writes

    if path is None:
        return
    try:
        write_atomic(path, [ENTRY_MAGIC, trust.sign(data), data], mode=FILE_MODE)
    except OSError:
        pass
