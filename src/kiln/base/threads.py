"""How many threads Kiln's compiled code uses: ``kiln.set_num_threads`` / ``get_num_threads``.

One number for everything native Kiln runs: the OpenMP parallel regions of compiled
functions and of the fused optimizer kernels, and the BLAS their matrix products call (which
either runs inside those regions, or follows the OpenMP setting, or — without OpenMP — is set
to this count). NumPy's own BLAS threads are NumPy's business and are left alone.

The default is the number of cores this process may run on (``os.sched_getaffinity``: a
``taskset`` or container CPU set counts, not the machine's total), unless the environment
says otherwise: ``KILN_NUM_THREADS``, else ``OMP_NUM_THREADS`` (its first entry, as OpenMP
reads it). An environment value that is not a positive integer is ignored, as OpenMP does.

The backends apply the number: they register a callback with :func:`on_change` (this module
sits below them and knows nothing of OpenMP or BLAS libraries).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from kiln.errors import ArgumentError, ValueArgumentError

__all__ = ["default_num_threads", "get_num_threads", "on_change", "set_num_threads"]

_lock = threading.Lock()
_requested: int | None = None  # set_num_threads' value; None: the default, not read yet
_listeners: list[Callable[[int], None]] = []
# Beyond this a request is a typo, not a machine (libgomp caps teams far lower anyway).
MAX_THREADS = 4096


def usable_cores() -> int:
    """The number of cores this process may run on (affinity-aware).

    >>> usable_cores() >= 1
    True
    """
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _from_env() -> int | None:
    for var in ("KILN_NUM_THREADS", "OMP_NUM_THREADS"):
        text = os.environ.get(var, "").split(",")[0].strip()
        if text.isdigit() and 0 < int(text) <= MAX_THREADS:
            return int(text)
    return None


def default_num_threads() -> int:
    """What :func:`get_num_threads` returns before any :func:`set_num_threads`: the
    environment's ``KILN_NUM_THREADS`` or ``OMP_NUM_THREADS``, else :func:`usable_cores`.

    >>> default_num_threads() >= 1
    True
    """
    return _from_env() or usable_cores()


def get_num_threads() -> int:
    """The number of threads Kiln's compiled code runs on (see :func:`set_num_threads`).

    >>> import kiln
    >>> kiln.get_num_threads() >= 1
    True
    """
    global _requested
    n = _requested
    if n is None:  # the default, read once (as OpenMP reads its environment once)
        with _lock:
            if _requested is None:
                _requested = default_num_threads()
            n = _requested
    return n


def set_num_threads(n: int) -> None:
    """Run Kiln's compiled code on ``n`` threads: the OpenMP parallel regions of compiled
    functions and fused optimizers, and the BLAS their matrix products call, together.

    Takes effect at the next call of any compiled function, already loaded or not, from any
    Python thread. NumPy's thread count is not changed (its threaded BLAS calls do run on
    Kiln's OpenMP team once a compiled function is loaded: docs/c_backend.md, "Threads").
    The default is the number of cores the process may use (``os.sched_getaffinity``), or
    ``KILN_NUM_THREADS`` / ``OMP_NUM_THREADS`` when set.

    >>> import kiln
    >>> before = kiln.get_num_threads()
    >>> kiln.set_num_threads(1)
    >>> kiln.get_num_threads()
    1
    >>> kiln.set_num_threads(before)
    """
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise ArgumentError(f"set_num_threads: n must be an int (a number of threads), got "
                            f"{type(n).__name__} {n!r}")
    n = int(n.__index__())
    if not 1 <= n <= MAX_THREADS:
        raise ValueArgumentError(f"set_num_threads: n must be between 1 and {MAX_THREADS}, "
                                 f"got {n}")
    global _requested
    with _lock:
        _requested = n
        listeners = list(_listeners)
    for apply in listeners:
        apply(n)


def on_change(apply: Callable[[int], None]) -> None:
    """Have ``apply(n)`` called on every :func:`set_num_threads` (by the backends, which
    apply the number to the native libraries they loaded)."""
    with _lock:
        if apply not in _listeners:
            _listeners.append(apply)
