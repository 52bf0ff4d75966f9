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

NumPy's BLAS on the same team
-----------------------------
Fewer spins are not enough: NumPy's bundled OpenBLAS keeps a pthread pool of its own whose
workers busy-wait for about 0.1 s (2^28 cycles) after every threaded call, so a NumPy matmul
before each Kiln call still left a worker spinning on the core Kiln's team needed (the W3
MLP 1.7x slower). OpenBLAS (>= 0.3.27) can hand its jobs to its caller instead: every
compiled library carries ``kiln_blas_threads`` (``runtime/kiln_blas_share.h``), and the
first one loaded registers it with NumPy's OpenBLAS (:func:`share_numpy_blas`). From then on
NumPy's threaded BLAS calls run on Kiln's OpenMP team: one pool for both, idle after
:data:`SPIN_COUNT` iterations. ``KILN_SHARE_BLAS=0`` leaves NumPy's pool alone.

Fork
----
libgomp's team does not survive ``fork``: a child that opens a parallel region after its
parent used one waits forever for threads that were not copied. A forked child therefore
hands NumPy's BLAS back to OpenBLAS's own pool (which re-creates itself after fork) and runs
Kiln's compiled code on one thread (as PyTorch does in a forked child); ``kiln.set_num_threads``
in the child raises the count again at the child's own risk.
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Any

from kiln.base import threads as _threads

__all__ = ["SPIN_COUNT", "SYMBOL", "attach", "blas_sharing", "prepare_openmp",
           "share_numpy_blas", "spin_setting"]

SYMBOL = "kiln_num_threads"
LIBGOMP = "libgomp.so.1"
# Iterations an idle libgomp worker spins before it sleeps; see the module docstring.
SPIN_COUNT = "10000"

_lock = threading.Lock()
_keep: list[ctypes.CDLL] = []
_slots: list[ctypes.c_int] = []  # kiln_num_threads of every library loaded (never unloaded)
_prepared = False
_spin: str = "not loaded by Kiln"
CALLBACK = "kiln_blas_threads"
# NumPy wheels bundle scipy-openblas with a suffix on every symbol: 64_ for the ILP64 build
# NumPy 2 uses, none for a 32-bit one; older wheels bundled libopenblas64_ without the prefix.
_REGISTER = ("scipy_openblas_set_threads_callback_function64_",
             "scipy_openblas_set_threads_callback_function",
             "openblas_set_threads_callback_function64_",
             "openblas_set_threads_callback_function")
_OFF = "off (KILN_SHARE_BLAS=0): NumPy's OpenBLAS keeps its own threads"
_NO = "no: NumPy's BLAS is not an OpenBLAS that takes a thread callback"
_sharing: str | None = None  # None: not decided yet; else what blas_sharing() reports
_numpy_blas: Any = None  # NumPy's OpenBLAS registration function, once sharing


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
            os.register_at_fork(after_in_child=_after_fork_in_child)
        _slots.append(slot)
        slot.value = _threads.get_num_threads()
    if _sharing is None:
        share_numpy_blas(lib)


def share_numpy_blas(lib: ctypes.CDLL) -> str:
    """Register ``lib``'s ``kiln_blas_threads`` with NumPy's OpenBLAS, once per process, so
    NumPy's threaded BLAS calls run on Kiln's OpenMP team (module docstring). Returns what
    :func:`blas_sharing` reports; a NumPy without a bundled OpenBLAS that takes a callback,
    a library built without OpenMP, or ``KILN_SHARE_BLAS=0`` leaves NumPy alone."""
    global _sharing, _numpy_blas
    with _lock:
        if _sharing is not None:
            return _sharing
        if _disabled():
            _sharing = _OFF
            return _sharing
        try:
            callback = ctypes.cast(getattr(lib, CALLBACK), ctypes.c_void_p)
        except AttributeError:  # built without OpenMP, or by an older Kiln: try the next
            return "not yet"
        register = _numpy_openblas_register()
        if register is None:
            _sharing = _NO
            return _sharing
        register(callback)
        _numpy_blas = register
        _keep.append(lib)  # the callback's code must outlive every NumPy call
        _sharing = "yes: NumPy's OpenBLAS runs its threads on Kiln's OpenMP team"
        return _sharing


def blas_sharing() -> str:
    """Whether NumPy's OpenBLAS runs on Kiln's OpenMP team in this process, for ``kiln env``.

    >>> isinstance(blas_sharing(), str)
    True
    """
    if _sharing is not None:
        return _sharing
    if _disabled():
        return _OFF
    if _numpy_openblas_register() is None:
        return _NO
    return "at the first compiled call: NumPy's OpenBLAS will run on Kiln's OpenMP team"


def _disabled() -> bool:
    return os.environ.get("KILN_SHARE_BLAS", "1").lower() in ("0", "", "false", "no", "off")


def _numpy_openblas_register() -> Any:
    """The callback-registration function of the OpenBLAS NumPy loaded, or None."""
    import numpy

    noload = getattr(os, "RTLD_NOLOAD", 0)
    libs = os.path.join(os.path.dirname(os.path.dirname(numpy.__file__)), "numpy.libs")
    try:
        names = sorted(n for n in os.listdir(libs) if "openblas" in n and ".so" in n)
    except OSError:  # a NumPy without bundled libraries (a distribution's build)
        return None
    for name in names:
        try:  # only the copy NumPy already loaded: never a second OpenBLAS in the process
            handle = ctypes.CDLL(os.path.join(libs, name), mode=noload)
        except OSError:
            continue
        for name in _REGISTER:
            fn = getattr(handle, name, None)
            if fn is not None:
                fn.argtypes, fn.restype = [ctypes.c_void_p], None
                return fn
    return None


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread of the parent may have held it at the fork
    if _numpy_blas is not None:
        _numpy_blas(None)
    _threads.set_num_threads(1)


def _apply(n: int) -> None:
    with _lock:
        for slot in _slots:
            slot.value = n
