"""Load Intel MKL from the ``mkl`` wheel so that nothing of it enters the global symbol scope.

Why not ``libmkl_rt.so``: its dispatcher ``dlopen``\\ s the interface, threading and core
layers with ``RTLD_GLOBAL``. PyTorch's wheel links its own (older) MKL statically and exports
those same symbols from ``libtorch_cpu.so``; a torch imported *after* MKL is global binds
thousands of its MKL-internal references (``mkl_blas_xsgemm``, ``mkl_serv_*``...) to our
copy — ``torch.__config__.show()`` then reports our MKL version — a mixed-MKL process of the
kind that segfaults in the wild (pytorch/pytorch#122284, #182263). It also handed torch's
``torch.set_num_threads`` (``mkl_set_dynamic(0)``) to our MKL.

Instead we use the three layers directly (the classic
``-lmkl_intel_lp64 -lmkl_gnu_thread -lmkl_core`` line: 32-bit ints, GNU OpenMP): kernel
libraries link the interface layer, and :func:`load` brings all three into the process with
``RTLD_LOCAL``. They cannot be loaded one by one (each needs the others' symbols at load
time, and none records the others as ``DT_NEEDED``), so :func:`load` loads a stub: a
data-only ELF shared object whose ``DT_NEEDED`` entries are the layers' absolute paths and
``libgomp.so.1``. The stub is written here, in a few hundred bytes, because the process that
loads a serialized kernel library may have no C compiler. Once the stub is loaded, a kernel
library's ``DT_NEEDED libmkl_intel_lp64.so.N`` resolves to the already-loaded layer (whose
own lookups see the stub's other dependencies), and ``libgomp.so.1`` to whatever copy the
process already has (torch's or the system's): one OpenMP pool.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import platform
import struct
import sys
import threading
from pathlib import Path

from kiln.errors import BackendError

__all__ = ["MklWheel", "find", "load", "stub_elf", "version_string"]

LAYERS = ("mkl_intel_lp64", "mkl_gnu_thread", "mkl_core")  # link order: interface first
OPENMP = "libgomp.so.1"

_lock = threading.Lock()
_loaded: dict[tuple[str, ...], ctypes.CDLL] = {}


@dataclasses.dataclass(frozen=True)
class MklWheel:
    """The installed ``mkl`` wheel: its version and the three layer libraries (paths)."""

    version: str
    libraries: tuple[str, ...]

    @property
    def sonames(self) -> tuple[str, ...]:
        """The layers' sonames (their file names): what the loader registers them under."""
        return tuple(Path(p).name for p in self.libraries)


@functools.cache
def find() -> MklWheel | None:
    """The ``mkl`` wheel's layer libraries, if it is installed on Linux x86-64 (cached).

    >>> wheel = find()
    >>> wheel is None or all(Path(p).is_file() for p in wheel.libraries)
    True
    """
    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "AMD64"):
        return None
    from importlib import metadata

    try:
        dist = metadata.distribution("mkl")
    except metadata.PackageNotFoundError:
        return None
    # The wheel is data-only: the libraries land in <prefix>/lib, listed in its RECORD.
    by_name = {f.name: Path(str(f.locate())) for f in dist.files or ()
               if f.name.startswith("libmkl_")}
    paths = []
    for layer in LAYERS:
        hits = sorted(p for n, p in by_name.items() if n.startswith(f"lib{layer}.so."))
        hits = hits or sorted(Path(sys.prefix, "lib").glob(f"lib{layer}.so.*"))
        hits = [p for p in hits if p.is_file()]
        if not hits:
            return None
        paths.append(str(hits[-1].resolve()))
    return MklWheel(version=dist.version, libraries=tuple(paths))


def load(wheel: MklWheel) -> ctypes.CDLL:
    """Bring MKL's layers into the process, locally (idempotent). Returns the stub's handle,
    through which MKL's functions can be looked up (``dlsym`` searches its dependencies).

    >>> wheel = find()
    >>> wheel is None or version_string(load(wheel)).startswith("Intel(R) oneAPI Math Kernel")
    True
    """
    from kiln.backends.c.dynlib import load_library

    key = wheel.libraries
    with _lock:
        if key in _loaded:
            return _loaded[key]
        foreign = _global_mkl()
        if foreign:
            raise BackendError(f"KILN_GEMM=mkl: another MKL is already loaded into the global "
                               f"symbol scope ({foreign}); it would take over Kiln's MKL calls. "
                               f"Set KILN_GEMM=openblas")
        try:
            handle = load_library(stub_elf([*wheel.libraries, OPENMP]), "mkl-stub")
        except Exception as exc:  # ToolchainError from dlopen: a broken or partial wheel
            raise BackendError(f"KILN_GEMM=mkl: cannot load MKL from the mkl wheel: {exc}") \
                from exc
        _loaded[key] = handle
        return handle


def version_string(handle: ctypes.CDLL) -> str:
    """MKL's own version banner, through a handle returned by :func:`load`."""
    buf = ctypes.create_string_buffer(256)
    handle.MKL_Get_Version_String(buf, ctypes.c_int(len(buf)))
    return buf.value.decode(errors="replace")


def _global_mkl() -> str:
    """The name of an MKL function visible in the global scope (another MKL), or ``""``."""
    process = ctypes.CDLL(None)
    for name in ("mkl_blas_xsgemm", "MKL_Get_Version"):
        if hasattr(process, name):
            return name
    return ""


def stub_elf(needed: list[str]) -> bytes:
    """A minimal x86-64 ELF shared object that defines nothing and needs ``needed``.

    Only what glibc's loader reads: the ELF header; one read-write PT_LOAD mapping the whole
    file (glibc may relocate the dynamic section in place); PT_DYNAMIC; PT_GNU_STACK (else
    the loader would want an executable stack); a dynamic section with DT_NEEDED, DT_HASH,
    DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT; a one-bucket hash table and the null symbol.
    An entry with a ``/`` is loaded by that path, and registered under its soname.

    >>> data = stub_elf(["libm.so.6"])
    >>> data[:4], len(data) < 512
    (b'\\x7fELF', True)
    """
    strtab = b"\0"
    offsets = []
    for name in needed:
        offsets.append(len(strtab))
        strtab += name.encode() + b"\0"
    ehdr_size, phdr_size, nphdr = 64, 56, 3
    dyn_off = ehdr_size + phdr_size * nphdr
    dyn = [(1, off) for off in offsets]  # DT_NEEDED
    ndyn = len(dyn) + 6
    hash_off = dyn_off + 16 * ndyn
    sym_off = hash_off + 16
    str_off = sym_off + 24
    dyn += [(4, hash_off), (5, str_off), (6, sym_off), (10, len(strtab)), (11, 24), (0, 0)]
    total = str_off + len(strtab)
    rw, pt_load, pt_dynamic, pt_gnu_stack = 6, 1, 2, 0x6474E551
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, SysV
    out = ident + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, ehdr_size, 0, 0, ehdr_size,
                              phdr_size, nphdr, 64, 0, 0)  # ET_DYN, EM_X86_64, no sections
    out += struct.pack("<IIQQQQQQ", pt_load, rw, 0, 0, 0, total, total, 0x1000)
    out += struct.pack("<IIQQQQQQ", pt_dynamic, rw, dyn_off, dyn_off, dyn_off, 16 * ndyn,
                       16 * ndyn, 8)
    out += struct.pack("<IIQQQQQQ", pt_gnu_stack, rw, 0, 0, 0, 0, 0, 16)
    out += b"".join(struct.pack("<qQ", tag, val) for tag, val in dyn)
    out += struct.pack("<IIII", 1, 1, 0, 0)  # nbucket, nchain, bucket[0], chain[0]
    out += bytes(24)  # the null symbol
    out += strtab
    assert len(out) == total
    return out
