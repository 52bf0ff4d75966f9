"""Shared-library bytes loaded into this process (``dlopen``), leaving no file behind.

Apart from the toolchain so that loading a compiled artifact imports ctypes and os only: no
subprocess, shutil or tempfile on the warm-start path, which never runs a compiler.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading

from kiln.backends.c.threads import prepare_openmp
from kiln.errors import ToolchainError

_lock = threading.Lock()

# ctypes never dlcloses, but holding the CDLL keeps its functions valid by construction.
_loaded: list[ctypes.CDLL] = []
_dl_names: set[str] = set()


def _unique_fd_path(fd: int) -> str:
    """``/proc/self/fd/N`` made unique for this process.

    glibc's dlopen returns an already-loaded library whose *name* matches before looking at the
    file, and fd numbers are reused once closed: the second library loaded through fd 5 would
    silently be the first one. ``/./`` and ``//`` segments spell the same path differently, so a
    counter written in them (binary, one segment per bit) keeps every name distinct.
    """
    plain = f"/proc/self/fd/{fd}"
    if plain not in _dl_names:
        return plain
    k = len(_dl_names)
    while True:
        middle = "".join("/." if bit == "1" else "//" for bit in bin(k)[2:])
        path = f"/proc/self/fd{middle}/{fd}"
        if path not in _dl_names:
            return path
        k += 1


def load_library(lib_bytes: bytes, name: str, *, mode: int = ctypes.RTLD_LOCAL) -> ctypes.CDLL:
    """Load shared-library bytes into this process, leaving no file behind.

    Uses an anonymous ``memfd`` where the platform has one (Linux), else a temp file that is
    unlinked right after ``dlopen``. The returned CDLL is also kept alive by this module.

    >>> from kiln.backends.c.toolchain import compile_shared
    >>> lib = compile_shared({"one.c": "int one(void) { return 1; }"})
    >>> load_library(lib.data, "one").one()
    1
    """
    prepare_openmp()  # before any library that needs libgomp loads it with its defaults
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        try:
            fd = os.memfd_create(f"kiln-{name}", getattr(os, "MFD_CLOEXEC", 0))
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                with os.fdopen(os.dup(fd), "wb") as f:
                    f.write(lib_bytes)
                with _lock:
                    path = _unique_fd_path(fd)
                    try:
                        lib = ctypes.CDLL(path, mode=mode)
                    except OSError as exc:
                        raise ToolchainError(f"cannot load library {name!r}: {exc}") from exc
                    _dl_names.add(path)
                    _loaded.append(lib)
                return lib
            finally:
                os.close(fd)
    return _load_via_tempfile(lib_bytes, name, mode)


def _load_via_tempfile(lib_bytes: bytes, name: str, mode: int) -> ctypes.CDLL:
    suffix = ".dylib" if sys.platform == "darwin" else ".so"
    import tempfile

    fd, path = tempfile.mkstemp(prefix=f"kiln-{name}-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(lib_bytes)
        try:
            lib = ctypes.CDLL(path, mode=mode)
        except OSError as exc:
            raise ToolchainError(
                f"cannot load library {name!r} from {path} (is {tempfile.gettempdir()} "
                f"mounted noexec? set TMPDIR elsewhere): {exc}"
            ) from exc
    finally:
        os.unlink(path)
    with _lock:
        _loaded.append(lib)
    return lib
