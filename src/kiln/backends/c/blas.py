"""GEMM for generated C: OpenBLAS from the scipy-openblas32 wheel, behind ``kiln_gemm.h``.

Decision
--------
Generated kernels call ``kiln_sgemm`` / ``kiln_dgemm`` (``runtime/kiln_gemm.h``). They run on
OpenBLAS (``scipy_cblas_sgemm`` from the ``scipy-openblas32`` wheel, ``pip install kiln[c]``),
single-threaded, with ``kiln_gemm.h`` splitting the larger of M and N over the OpenMP team.
A hand-written packed AVX-512 kernel (``runtime/kiln_gemm_builtin.h``) is the fallback when
the wheel is missing, or forced with ``KILN_GEMM=builtin``.

Why, measured by ``benchmarks/native_gemm.py`` (float32, 2 threads, Zen 4 with AVX-512,
median ms; full table in the report of that script):

* OpenBLAS matches NumPy's own matmul within a few percent on every workload shape, and beats
  it where NumPy's threading is poor (batched 32 x 128x64@64x128: 0.39 vs 0.70 ms; N=10:
  0.022 vs 0.039 ms) because we choose the split.
* The built-in kernel is as fast on the big square-ish shapes (~180 GFLOP/s, ~90 % of peak),
  but 2.7x slower on (512x4608)@(4608x49) and 2.5x slower on N=10: packing A costs more than
  the few columns of B repay, and OpenBLAS has tuned small-N paths. Closing that is months of
  work OpenBLAS has done, for every ISA (AVX2, NEON, SVE, POWER) and not just ours.
* Threading: OpenBLAS's own pthreads pool next to OpenMP-parallel kernels is a trap. A
  1M-element OpenMP pointwise loop followed by an OpenBLAS-threaded GEMM took 8.0 ms per
  iteration instead of 1.5 ms: the OpenMP workers spin after their loop on the very cores the
  BLAS threads need. With OpenBLAS at 1 thread and our OpenMP split, the pair takes
  GEMM + pointwise time, and there is one pool to size (``OMP_NUM_THREADS``).

Linking and loading
-------------------
Kernel libraries link the wheel's ``libscipy_openblas.so`` by path, which records only its
soname (``DT_NEEDED libscipy_openblas.so``), no rpath, so the library bytes do not depend on
where the venv lives. :meth:`GemmSupport.prepare` loads that soname into the process first
(``RTLD_GLOBAL``); the dynamic loader then resolves the kernel library's dependency to the
already-loaded copy, which works for a library loaded from a memfd, whose ``$ORIGIN`` is
meaningless. A C program using an exported library links ``-lscipy_openblas`` itself.

>>> support = gemm_support()
>>> support.backend in ("openblas", "builtin")
True
>>> support.header
'#include "kiln_gemm.h"\\n'
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import os
import threading
from pathlib import Path

from kiln.backends.c.toolchain import find_compiler
from kiln.errors import BackendError

__all__ = ["GemmSupport", "RUNTIME_DIR", "gemm_support", "runtime_headers"]

RUNTIME_DIR = Path(__file__).parent / "runtime"


def runtime_headers() -> dict[str, str]:
    """Every header in ``runtime/`` (name -> text), for embedding in an exported C package.

    >>> "kiln_gemm.h" in runtime_headers() and "kiln_math.h" in runtime_headers()
    True
    """
    return {p.name: p.read_text() for p in sorted(RUNTIME_DIR.glob("*.h"))}


@dataclasses.dataclass(frozen=True)
class GemmSupport:
    """What a kernel library that calls ``kiln_sgemm``/``kiln_dgemm`` needs.

    ``header`` goes at the top of the generated C; ``extra_flags`` and ``libraries`` go to
    :func:`~kiln.backends.c.toolchain.compile_shared`; :meth:`prepare` must run before the
    library is loaded. ``blas_threads`` is the thread count OpenBLAS is set to.
    """

    backend: str
    header: str
    extra_flags: tuple[str, ...]
    libraries: tuple[str, ...]
    runtime_library: str | None
    blas_threads: int
    version: str

    def prepare(self) -> None:
        """Load the BLAS into the process and set its threads (idempotent, thread-safe)."""
        if self.runtime_library is not None:
            _prepare_openblas(self.runtime_library, self.blas_threads)

    def fingerprint(self) -> str:
        """Names the GEMM code a library embeds or links, for cache keys."""
        text = "".join(runtime_headers().values())
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        return f"{self.backend}:{self.version}:headers={digest}"


@functools.cache
def _prepare_openblas(path: str, threads: int) -> None:
    lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    _keep.append(lib)
    lib.scipy_openblas_set_num_threads(ctypes.c_int(threads))


_keep: list[ctypes.CDLL] = []
_lock = threading.Lock()


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def gemm_support(prefer: str | None = None) -> GemmSupport:
    """The GEMM backend for kernel libraries: ``"openblas"`` if the wheel imports, else builtin.

    ``prefer`` (or the ``KILN_GEMM`` environment variable) forces ``"openblas"`` or
    ``"builtin"``; forcing OpenBLAS without the wheel is a BackendError.

    >>> gemm_support("builtin").libraries
    ()
    """
    choice = prefer or os.environ.get("KILN_GEMM") or "auto"
    if choice not in ("auto", "openblas", "builtin"):
        raise BackendError(f"KILN_GEMM={choice!r}: expected 'openblas', 'builtin' or unset")
    with _lock:
        return _gemm_support(choice, find_compiler().supports_openmp)


@functools.cache
def _gemm_support(choice: str, openmp: bool) -> GemmSupport:
    header = '#include "kiln_gemm.h"\n'
    if choice != "builtin":
        try:
            import scipy_openblas32
        except ImportError as exc:
            if choice == "openblas":
                raise BackendError(
                    "KILN_GEMM=openblas but scipy-openblas32 is not installed; "
                    "`pip install kiln[c]`"
                ) from exc
        else:
            lib = Path(scipy_openblas32.get_lib_dir()) / scipy_openblas32.get_library(True)
            version = getattr(scipy_openblas32, "__version__", "unknown")
            return GemmSupport(
                backend="openblas",
                header=header,
                extra_flags=("-DKILN_GEMM_OPENBLAS",),
                libraries=(str(lib),),
                runtime_library=str(lib),
                # One pool: OpenMP kernels split GEMMs themselves (see module docstring);
                # without OpenMP nothing else competes, so OpenBLAS takes the cores.
                blas_threads=1 if openmp else _cpu_count(),
                version=f"scipy-openblas32-{version}",
            )
    return GemmSupport(
        backend="builtin",
        header=header,
        extra_flags=(),
        libraries=(),
        runtime_library=None,
        blas_threads=0,
        version="builtin",
    )
