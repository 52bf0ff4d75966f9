"""Applying ``kiln.set_num_threads`` to native code, and OpenMP that does not spin when idle.

Thread count
------------
Every compiled graph library exports ``int kiln_num_threads`` (:data:`SYMBOL`, emitted by
:mod:`~kiln.backends.c.codegen`), and its ``kiln_run`` starts with
``if (kiln_num_threads > 0 && omp_get_max_threads() != kiln_num_threads)
omp_set_num_threads(kiln_num_threads)``. OpenMP's thread count is a per-thread setting, so
setting it from Python would reach only the calling thread; done at the entry point, it
reaches every thread that calls compiled code, for the cost of one thread-local read.
:func:`attach` writes the current count into a library as it is loaded, and a
:func:`kiln.base.threads.on_change` hook rewrites every loaded library's on
``set_num_threads``. The BLAS follows: OpenBLAS runs single-threaded inside the OpenMP team's
split of each product, MKL (GNU threading layer) and the built-in kernel take
``omp_get_max_threads``; without OpenMP, OpenBLAS's own thread count is set
(:mod:`~kiln.backends.c.blas`). The fused optimizer kernels take the count as an argument.
A library exported as C code (``kiln.export``) keeps ``kiln_num_threads = 0``: OpenMP's own
setting (``OMP_NUM_THREADS``) applies there.

Idle threads
------------
After a parallel region, libgomp's workers busy-wait for new work (``GOMP_SPINCOUNT``
iterations, 300 000 by default: milliseconds) before they sleep. Between two Kiln calls that
is exactly when NumPy runs its own BLAS threads on the same cores, and the two fight
(issue 13: the W3 MLP took 1.5-1.9x longer with a NumPy matmul before each call).
:func:`prepare_openmp` therefore loads libgomp itself, before the first OpenMP library,
with ``GOMP_SPINCOUNT`` set to :data:`SPIN_COUNT` (libgomp reads its environment once, when
it is loaded; the variable is removed again right after, so a PyTorch imported later is not
affected). Measured by ``benchmarks/threads.py``: see docs/c_backend.md, "Threads". A user
who sets ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` keeps their own; a libgomp already
loaded by someone else (a process that imported an OpenMP library first) keeps its settings.
"""

from __future__ import annotations

import ctypes
import os
import threading

from kiln.base import threads as _threads

__all__ = ["SPIN_COUNT", "SYMBOL", "attach", "prepare_openmp", "spin_setting"]

SYMBOL = "kiln_num_threads"
LIBGOMP = "libgomp.so.1"
# Iterations an idle libgomp worker spins before it sleeps; see the module docstring.
SPIN_COUNT = "10000"

_lock = threading.Lock()
_slots: list[ctypes.c_int] = []  # kiln_num_threads of every library loaded (never unloaded)
_prepared = False
_spin: str = "not loaded by Kiln"


def prepare_openmp() -> None:
    """Load libgomp with Kiln's idle-spin setting if nothing loaded it yet (idempotent; call
    before loading any library that needs OpenMP)."""
    global _prepared, _spin
    if _prepared:
        return
    with _lock:
        if _prepared:
            return
        _prepared = True
        noload = getattr(os, "RTLD_NOLOAD", 0)
        if not noload:  # not Linux/glibc: nothing to decide
            return
        try:
            ctypes.CDLL(LIBGOMP, mode=noload)
            _spin = "libgomp was loaded before Kiln: its own settings"
            return
        except OSError:
            pass  # not loaded yet: ours to configure
        user = {k: os.environ[k] for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
                if k in os.environ}
        if user:
            _spin = "from the environment: " + ", ".join(f"{k}={v}" for k, v in user.items())
            return
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
        try:
            ctypes.CDLL(LIBGOMP)  # stays loaded: kernel libraries' DT_NEEDED resolve to it
            _spin = f"GOMP_SPINCOUNT={SPIN_COUNT} (Kiln's)"
        except OSError:
            _spin = "no libgomp.so.1 (another OpenMP runtime or none)"
        finally:
            os.environ.pop("GOMP_SPINCOUNT", None)


def spin_setting() -> str:
    """How idle OpenMP threads wait in this process, for ``kiln env``.

    >>> isinstance(spin_setting(), str)
    True
    """
    return _spin


def attach(lib: ctypes.CDLL) -> None:
    """Give a just-loaded graph library the current thread count, and later ones."""
    try:
        slot = ctypes.c_int.in_dll(lib, SYMBOL)
    except ValueError:  # built before Kiln had set_num_threads: OpenMP's own setting
        return
    with _lock:
        if not _slots:
            _threads.on_change(_apply)
        _slots.append(slot)
        slot.value = _threads.get_num_threads()


def _apply(n: int) -> None:
    with _lock:
        for slot in _slots:
            slot.value = n
