"""GEMM for generated C: MKL or OpenBLAS from a wheel, or a built-in kernel, behind ``kiln_gemm.h``.

Decision
--------
Generated kernels call ``kiln_sgemm`` / ``kiln_dgemm`` (``runtime/kiln_gemm.h``). Three
backends, chosen once per process by :func:`gemm_support` (``KILN_GEMM`` forces one):

``"mkl"``
    Intel MKL (``cblas_sgemm`` from the ``mkl`` wheel) with its GNU threading layer: MKL
    forks the same libgomp team as our ``-fopenmp`` kernels, so there is still one thread
    pool, and ``kiln_sgemm`` hands each GEMM to MKL whole. ``auto`` takes it on GenuineIntel
    CPUs when the wheel is installed and the kernels' OpenMP is gcc's libgomp.
``"openblas"``
    OpenBLAS (``scipy_cblas_sgemm`` from ``scipy-openblas32``), single-threaded, with
    ``kiln_gemm.h`` splitting the larger of M and N over the OpenMP team. ``auto`` takes it
    elsewhere (MKL is slow on other vendors' CPUs) when the wheel is installed.
``"builtin"``
    A hand-written packed AVX-512/AVX2 kernel (``runtime/kiln_gemm_builtin.h``), the fallback.

Why, measured by ``benchmarks/native_gemm.py`` (float32, 2 threads, median ms):

* MKL (GNU threading, 2 threads) matches or beats ``torch.matmul`` (PyTorch's own MKL) on
  every transformer and MLP shape, where OpenBLAS split over OpenMP is 4-29 % slower (Xeon,
  AVX-512): 128x784 @ (1024x784)^T 0.67 vs 0.83 ms (torch 0.71), 32 x 128x64@64x128
  0.20 vs 0.29 ms (torch 0.23). Our M/N split of single-threaded MKL calls measured the same
  as MKL's own threading; we keep MKL's, which needs no per-shape tuning, except for skinny
  GEMMs (M or N < 16) that MKL leaves on one thread.
* OpenBLAS matches NumPy's own matmul within a few percent on every workload shape, and beats
  it where NumPy's threading is poor (batched 32 x 128x64@64x128; N=10) because we choose
  the split.
* The built-in kernel is within ~10 % of OpenBLAS on the big square-ish shapes, but 1.8x
  slower on (512x4608)@(4608x49) and 8x slower on N=10: packing A costs more than the few
  columns of B repay, and the BLAS libraries have tuned small-N paths.
* Threading: a BLAS's own pool next to OpenMP-parallel kernels is a trap. A 1M-element OpenMP
  pointwise loop followed by an OpenBLAS-threaded GEMM took 8.0 ms per iteration instead of
  1.5 ms: the OpenMP workers spin after their loop on the very cores the BLAS threads need.
  Hence OpenBLAS at 1 thread, and MKL on libgomp (never its Intel OpenMP layer).

Linking and loading
-------------------
Kernel libraries link the wheel's libraries by path, which records only their sonames
(``DT_NEEDED``), no rpath, so the library bytes do not depend on where the venv lives.
:meth:`GemmSupport.prepare` loads them into the process first; the dynamic loader then
resolves the kernel library's dependencies to the already-loaded copies, which works for a
library loaded from a memfd, whose ``$ORIGIN`` is meaningless.

* OpenBLAS: ``libscipy_openblas.so``, loaded ``RTLD_GLOBAL`` (its symbols are prefixed).
* MKL: kernels link ``libmkl_intel_lp64.so.N`` (32-bit ints); it, ``libmkl_gnu_thread.so.N``
  and ``libmkl_core.so.N`` are loaded ``RTLD_LOCAL`` by :mod:`kiln.backends.c.mkl`, through a
  generated stub library that needs all three. Not ``libmkl_rt``: it makes
  its layers global, and a PyTorch imported later then binds its own statically linked MKL
  to ours (see that module). MKL's GNU layer follows ``omp_get_max_threads`` (so
  ``OMP_NUM_THREADS``); ``MKL_NUM_THREADS`` still overrides it. No environment variable is set.

A C program using an exported library links ``-lscipy_openblas`` or
``-lmkl_intel_lp64 -lmkl_gnu_thread -lmkl_core -lgomp`` itself.

>>> support = gemm_support()
>>> support.backend in ("mkl", "openblas", "builtin")
True
>>> support.header
'#include "kiln_gemm.h"\\n'
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import sys
import threading
import types
from pathlib import Path

from kiln.base import threads as _threads
from kiln.errors import BackendError

__all__ = [
    "BACKENDS",
    "GemmSupport",
    "RUNTIME_DIR",
    "cpu_vendor",
    "gemm_support",
    "prepare_recorded",
    "runtime_headers",
]

RUNTIME_DIR = Path(__file__).parent / "runtime"
BACKENDS = ("mkl", "openblas", "builtin")

_INSTALL = {
    "mkl": "`pip install mkl` (Linux x86-64; part of `pip install kiln[c]` there)",
    "openblas": "`pip install scipy-openblas32` (part of `pip install kiln[c]`)",
}
_HEADER = '#include "kiln_gemm.h"\n'


def runtime_headers() -> dict[str, str]:
    """Every header in ``runtime/`` (name -> text), for embedding in an exported C package.

    >>> "kiln_gemm.h" in runtime_headers() and "kiln_math.h" in runtime_headers()
    True
    """
    return {p.name: p.read_text() for p in sorted(RUNTIME_DIR.glob("*.h"))}


class GemmSupport:
    """What a kernel library that calls ``kiln_sgemm``/``kiln_dgemm`` needs.

    ``header`` goes at the top of the generated C; ``extra_flags`` and ``libraries`` go to
    :func:`~kiln.backends.c.toolchain.compile_shared`; :meth:`prepare` must run before the
    library is loaded. ``blas_threads`` is the thread count OpenBLAS is set to: 1 inside the
    OpenMP team's split, 0 for "follows :func:`kiln.set_num_threads`" (OpenBLAS without
    OpenMP, and MKL and the built-in kernel, which use the OpenMP team). ``sonames`` name the
    BLAS libraries the kernel library needs at load time (recorded in serialized functions).
    A hashable value; a plain class because a dataclass would cost a warm start half a
    millisecond.
    """

    __slots__ = ("backend", "header", "extra_flags", "libraries", "runtime_library",
                 "blas_threads", "version", "sonames")

    def __init__(self, backend: str, header: str, extra_flags: tuple[str, ...],
                 libraries: tuple[str, ...], runtime_library: str | None, blas_threads: int,
                 version: str, sonames: tuple[str, ...] = ()) -> None:
        self.backend = backend
        self.header = header
        self.extra_flags = extra_flags
        self.libraries = libraries
        self.runtime_library = runtime_library
        self.blas_threads = blas_threads
        self.version = version
        self.sonames = sonames

    def _fields(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GemmSupport):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"GemmSupport(backend={self.backend!r}, version={self.version!r})"

    def prepare(self) -> None:
        """Load the BLAS into the process and set its threads (idempotent, thread-safe)."""
        if self.backend == "mkl":
            _prepare_mkl()
        elif self.runtime_library is not None:
            _prepare_openblas(self.runtime_library, self.blas_threads)

    def fingerprint(self) -> str:
        """Names the GEMM code a library embeds or links, for cache keys.

        >>> gemm_support("builtin").fingerprint().startswith("builtin:builtin:headers=")
        True
        """
        return f"{self.backend}:{self.version}:headers={_headers_digest()}"

    def record(self) -> dict:
        """What a compiled function records about its GEMM (``plan["gemm"]``), for
        :func:`prepare_recorded` in the process that loads it.

        >>> gemm_support("builtin").record()["backend"]
        'builtin'
        """
        return {"backend": self.backend, "threads": self.blas_threads, "version": self.version,
                "libraries": list(self.sonames)}


@functools.cache
def _headers_digest() -> str:
    text = "".join(runtime_headers().values())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_keep: list[ctypes.CDLL] = []
_lock = threading.RLock()


@functools.cache
def _prepare_openblas(path: str, threads: int) -> None:
    """Load OpenBLAS globally; ``threads`` 1 keeps it on one thread (it runs inside the OpenMP
    team's split), anything else has it follow :func:`kiln.set_num_threads` (no OpenMP: its
    own pool is the only one; records from before set_num_threads stored a core count)."""
    lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    _keep.append(lib)
    setter = lib.scipy_openblas_set_num_threads
    setter.argtypes = [ctypes.c_int]
    if threads == 1:
        setter(1)
        return
    setter(_threads.get_num_threads())
    _threads.on_change(setter)


def _mkl() -> types.ModuleType:
    """:mod:`kiln.backends.c.mkl`, imported when MKL is asked about: loading a library
    that links OpenBLAS never needs it (a millisecond of every warm start)."""
    from kiln.backends.c import mkl

    return mkl


def _prepare_mkl() -> None:
    wheel = _mkl().find()
    if wheel is None:
        raise BackendError(f"MKL is not installed: {_INSTALL['mkl']}")
    _mkl().load(wheel)


@functools.cache
def cpu_vendor() -> str:
    """The CPU's vendor string (``"GenuineIntel"``, ``"AuthenticAMD"``...), ``""`` if unknown.

    >>> isinstance(cpu_vendor(), str)
    True
    """
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:  # the first processor's block has it within a few lines
                key, _, value = line.partition(":")
                if key.strip() == "vendor_id":
                    return value.strip()
    except OSError:
        pass
    return ""


@functools.cache
def _find_openblas() -> tuple[str, str] | None:
    """(library path, version) of the scipy-openblas32 wheel, or None.

    Found on disk, without importing the package: its ``__init__`` imports
    importlib.metadata for its version, tens of milliseconds of a warm start that only
    needs the library's path."""
    import importlib.machinery

    # PathFinder is what importlib.util.find_spec asks for a wheel on sys.path; importlib.util
    # itself costs milliseconds to import
    spec = importlib.machinery.PathFinder.find_spec("scipy_openblas32")
    if spec is None:
        import importlib.util

        spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = next(iter(spec.submodule_search_locations))
    # os.listdir, not Path.glob: a glob compiles a pattern, half a millisecond of a warm start
    libs = sorted(name for name in _listdir(os.path.join(package, "lib"))
                  if name.startswith("libscipy_openblas") and ".so" in name)
    if not libs:
        return None
    prefix, suffix = "scipy_openblas32-", ".dist-info"
    infos = sorted(name for name in _listdir(os.path.dirname(package))
                   if name.startswith(prefix) and name.endswith(suffix))
    version = infos[-1][len(prefix):-len(suffix)] if infos else "unknown"
    return os.path.join(package, "lib", libs[0]), version


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def gemm_support(prefer: str | None = None) -> GemmSupport:
    """The GEMM backend for kernel libraries (see the module docstring for the choice).

    ``prefer`` (or the ``KILN_GEMM`` environment variable) forces ``"mkl"``, ``"openblas"`` or
    ``"builtin"``; forcing a BLAS whose wheel is missing is a BackendError. ``auto`` (unset)
    picks MKL on Intel CPUs with the ``mkl`` wheel and gcc's OpenMP, else OpenBLAS if its
    wheel is installed, else the built-in kernel.

    >>> gemm_support("builtin").libraries
    ()
    """
    choice = prefer or os.environ.get("KILN_GEMM") or "auto"
    if choice not in ("auto", *BACKENDS):
        raise BackendError(f"KILN_GEMM={choice!r}: expected 'mkl', 'openblas', 'builtin' or "
                           "unset")
    from kiln.backends.c.toolchain import (  # not on the path that only loads
        find_compiler,
        openmp_enabled,
    )

    tc = find_compiler()
    openmp = tc.supports_openmp and openmp_enabled()  # KILN_OPENMP=0 builds without it
    with _lock:
        return _gemm_support(choice, openmp, openmp and tc.kind != "gcc")


@functools.cache
def _gemm_support(choice: str, openmp: bool, foreign_openmp: bool) -> GemmSupport:
    if choice in ("auto", "mkl"):
        support = _mkl_support(choice, foreign_openmp)
        if support is not None:
            return support
    if choice in ("auto", "openblas"):
        found = _find_openblas()
        if found is None and choice == "openblas":
            raise BackendError(f"KILN_GEMM=openblas but scipy-openblas32 is not installed: "
                               f"{_INSTALL['openblas']}")
        if found is not None:
            lib, version = found
            return GemmSupport(
                backend="openblas",
                header=_HEADER,
                extra_flags=("-DKILN_GEMM_OPENBLAS",),
                libraries=(lib,),
                runtime_library=lib,
                # One pool: OpenMP kernels split GEMMs themselves (see module docstring);
                # without OpenMP nothing else competes, so OpenBLAS takes kiln.set_num_threads'
                # count (0).
                blas_threads=1 if openmp else 0,
                version=f"scipy-openblas32-{version}",
                sonames=(Path(lib).name,),
            )
    return GemmSupport(backend="builtin", header=_HEADER, extra_flags=(), libraries=(),
                       runtime_library=None, blas_threads=0, version="builtin")


def _mkl_support(choice: str, foreign_openmp: bool) -> GemmSupport | None:
    """MKL's GemmSupport, loaded; None if ``auto`` should look further; raises if forced."""
    wheel = _mkl().find()
    if choice == "auto" and (wheel is None or foreign_openmp or cpu_vendor() != "GenuineIntel"):
        return None
    if wheel is None:
        raise BackendError(f"KILN_GEMM=mkl but the mkl wheel is not installed: {_INSTALL['mkl']}")
    if foreign_openmp:
        raise BackendError("KILN_GEMM=mkl needs gcc's OpenMP (libgomp) for MKL's GNU threading "
                           "layer, but the C compiler is not gcc; set KILN_GEMM=openblas or "
                           "CC=gcc")
    try:
        _mkl().load(wheel)  # now rather than at the first kernel load, so that auto can fall back
    except BackendError as exc:
        if choice == "mkl":
            raise
        if os.environ.get("KILN_DEBUG", "0") not in ("", "0"):
            print(f"[kiln] GEMM: not using MKL: {exc}", file=sys.stderr)
        return None
    return GemmSupport(
        backend="mkl",
        header=_HEADER,
        extra_flags=("-DKILN_GEMM_MKL",),
        # Only the interface layer, whose cblas_* the kernels call: the loaded stub puts the
        # other two in its scope. Linking all three costs ~40 ms more per library (ld reads
        # libmkl_core's symbol table); a standalone program links the full line itself.
        libraries=(wheel.libraries[0],),
        runtime_library=None,
        blas_threads=0,
        version=f"mkl-{wheel.version}",
        sonames=wheel.sonames,
    )


def prepare_recorded(record: dict | None) -> None:
    """Make the GEMM a deserialized library links (its ``plan["gemm"]``) available, or raise.

    Loading a library whose BLAS is missing would otherwise fail inside ``dlopen``; this names
    the wheel to install instead. Needs no C compiler.

    >>> prepare_recorded(None)
    >>> prepare_recorded({"backend": "builtin", "threads": 0})
    """
    if not record or record.get("backend") == "builtin":
        return
    backend = record.get("backend")
    if backend not in BACKENDS:
        raise BackendError(f"this compiled function links GEMM backend {backend!r}; this Kiln "
                           f"knows {BACKENDS}")
    what = "MKL (the mkl wheel)" if backend == "mkl" else "OpenBLAS (scipy-openblas32)"
    if backend == "mkl":
        wheel = _mkl().find()
        found = None if wheel is None else (wheel.sonames, wheel.version)
    else:
        ob = _find_openblas()
        found = None if ob is None else ((Path(ob[0]).name,), ob[1])
    if found is None:
        raise BackendError(f"this compiled function calls {what} for its matrix products, "
                           f"which is not installed: {_INSTALL[backend]}")
    sonames, version = found
    wanted = record.get("libraries")
    if wanted and list(wanted) != list(sonames):
        raise BackendError(f"this compiled function links {', '.join(wanted)} "
                           f"({record.get('version')}), but the installed {what} {version} "
                           f"provides {', '.join(sonames)}; install a matching version or "
                           f"recompile")
    if backend == "mkl":
        _prepare_mkl()
    else:
        ob = _find_openblas()
        assert ob is not None
        _prepare_openblas(ob[0], int(record.get("threads", 1)))
