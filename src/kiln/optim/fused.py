"""Fused optimizer steps in C: one native call updates every tensor of a parameter group.

``SGD``, ``Adam`` and ``AdamW`` take ``fused=None | True | False`` as in PyTorch. ``None``
(the default) fuses whenever it can, ``True`` requires it (a KilnError says why it cannot),
``False`` never fuses. The kernels (``csrc/kiln_optim.c``) run the operations of the NumPy
fast path (:mod:`kiln.optim.fast`), element by element in the same order and precision, so
the results are bit for bit the same; what changes is that every tensor of a group is done in
one pass over memory (instead of ~8 ufunc passes per chunk) and split over the OpenMP threads
as one concatenated range.

The library is compiled on the first fused step (``toolchain.compile_shared``, ~0.2 s) and
kept in Kiln's on-disk cache (:mod:`kiln.base.cachedir`), so later processes only load it;
importing ``kiln.optim`` compiles nothing. Without a C
compiler ``fused=None`` quietly keeps the NumPy path (``KILN_DEBUG=1`` says so).

A tensor is fused when it qualifies for the NumPy fast path and more: the parameter, its
gradient and its state are eager, C-contiguous, aligned, native float32 or float64 arrays of
one dtype; the parameter and state are writable; and no array written by the step overlaps
any other array of the step (the threads would race). The hyper-parameters must be Python
numbers (a NumPy float64 ``lr`` makes NumPy compute in float64, which the kernels do not
mimic; ``fused=None`` then leaves the group to the fast path, ``fused=True`` rounds it).
Other tensors of the group take the per-tensor path; inside ``kiln.trace`` every tensor does.

Each group keeps a *plan*: the validated parameter and state arrays, their addresses in a
descriptor array, and the sorted written byte ranges. A step re-checks the plan cheaply (the
same tensors, the same arrays by identity, still writable), writes the gradients' addresses
(checked against the written ranges by bisection) and makes one ctypes call.

>>> import kiln
>>> w = kiln.nn.Parameter(kiln.ones(3))
>>> opt = kiln.optim.SGD([w], lr=0.5, fused=None)
>>> w.grad = kiln.ones(3)
>>> opt.step()
>>> w.tolist()
[0.5, 0.5, 0.5]
"""

from __future__ import annotations

import bisect
import ctypes
import os
import sys
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from kiln.base import cachedir
from kiln.base import threads as _threads
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, BackendError, CompileError, KilnError, ToolchainError

__all__ = ["available", "library", "check_group"]

_CSRC = os.path.join(os.path.dirname(__file__), "csrc")
SOURCES = ("kiln_optim.c", "kiln_optim_impl.h")  # in _CSRC
ABI = 1
# Descriptor columns, as in kiln_optim.c.
P, G, S0, S1, S2, N, FIRST, WIDTH = range(8)
DTYPES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
_F64 = np.dtype(np.float64)
_MAX_EXACT_INT = 2**53

_lock = threading.Lock()
_lib: _Library | None = None
_failures: dict[tuple[str | None, str | None], KilnError] = {}


def _debug(msg: str) -> None:
    try:
        level = int(os.environ.get("KILN_DEBUG", "0"))
    except ValueError:
        level = 0
    if level >= 1:
        print(f"[kiln] optim: {msg}", file=sys.stderr)


class _Library:
    """The loaded kernels: ``fn[("sgd" | "adam", np.dtype)]``."""

    def __init__(self, cdll: ctypes.CDLL, flags: tuple[str, ...]) -> None:
        if cdll.kiln_optim_abi() != ABI:
            raise BackendError("kiln_optim: the library's ABI does not match kiln.optim.fused")
        self.flags = flags
        self.fn: dict[tuple[str, np.dtype], Callable[..., int]] = {}
        for algo in ("sgd", "adam"):
            for dtype, sfx in DTYPES.items():
                f = getattr(cdll, f"kiln_optim_{algo}_{sfx}")
                f.restype = ctypes.c_int
                f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                              ctypes.c_int64, ctypes.c_int64]
                self.fn[(algo, dtype)] = f
        self._cdll = cdll  # keeps the functions alive


def _build() -> _Library:
    import hashlib

    from kiln.backends.c import dynlib, toolchain

    tc = toolchain.find_compiler()
    extra = []
    if tc.kind == "gcc":
        # The options are loop-invariant branches; unswitching them all multiplies the loops
        # (172 vectorized copies, 0.9 s to compile) for no measurable gain on these
        # memory-bound loops: selects keep each element's arithmetic exactly its branch's.
        extra.append("-fno-unswitch-loops")
    sources = {}
    for name in SOURCES:
        with open(os.path.join(_CSRC, name), encoding="utf-8") as f:
            sources[name] = f.read()
    flags = (*tc.flags_for("native"), *extra)
    key = "\n".join([*sources.values(), tc.fingerprint("native"), " ".join(flags), str(ABI)])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    cached = cachedir.cache_path("optim", f"kiln_optim-{digest}.so")
    data = cachedir.load(cached)
    if data is not None:
        try:
            lib = _Library(dynlib.load_library(data, "kiln_optim"), tuple(flags))
            _debug(f"loaded kiln_optim ({digest}) from {cached}")
            return lib
        except (OSError, KilnError, AttributeError) as exc:  # a damaged entry: build again
            _debug(f"cached {cached} does not load ({exc}); compiling")
    built = toolchain.compile_shared(sources, target="native", extra_flags=extra,
                                     libraries=["m"])
    lib = _Library(dynlib.load_library(built.data, "kiln_optim"), tuple(built.flags))
    cachedir.store(cached, built.data)
    _debug(f"compiled kiln_optim.c ({digest}) with {' '.join(built.flags)}")
    return lib


def library(required: bool = False, who: str = "optimizer") -> _Library | None:
    """The compiled kernels (built on first use, once per process), or None if there is no
    working C compiler; with ``required`` that is a KilnError saying how to get one."""
    lib = _lib
    if lib is not None:
        return lib
    return _load(required, who)


def _load(required: bool, who: str) -> _Library | None:
    global _lib
    key = (os.environ.get("CC"), os.environ.get("PATH"))
    with _lock:
        if _lib is not None:
            return _lib
        err = _failures.get(key)
        if err is None:
            try:
                _lib = _build()
                return _lib
            except (KilnError, OSError) as exc:  # no compiler, or it failed: remembered
                if isinstance(exc, OSError):
                    from kiln.backends.c.toolchain import os_error

                    exc = os_error(exc, "building the fused optimizer kernels")
                err = exc
                _failures[key] = exc
                _debug(f"fused steps unavailable, using the NumPy path: {exc}")
                if isinstance(exc, CompileError) and not required:
                    # A compiler that rejects this file is a bug worth seeing, once.
                    warnings.warn(f"kiln.optim: the fused kernels did not compile, using the "
                                  f"NumPy path: {exc}", RuntimeWarning, stacklevel=4)
    if required:
        if isinstance(err, CompileError) or not isinstance(err, ToolchainError):
            # The compiler is there: say what went wrong (a full disk, a rejected file), not
            # "install a C compiler".
            raise ToolchainError(
                f"{who}(fused=True): building the fused kernels failed: {err}. Pass "
                "fused=None to fall back to the NumPy path") from err
        raise ToolchainError(
            f"{who}(fused=True) compiles its fused kernels with a C compiler, and none works: "
            f"{err}. Install a C compiler (gcc or clang: `apt-get install gcc`, "
            "`xcode-select --install`, or `pip install kiln[zig]`), or pass fused=None to "
            "fall back to the NumPy path") from err
    return None


def available() -> bool:
    """Whether fused steps can run in this process (compiles the kernels if needed).

    >>> isinstance(available(), bool)
    True
    """
    return library() is not None


def check_group(who: str, group: dict[str, Any]) -> None:
    """Validate a group's ``fused`` option when it is added (as PyTorch does)."""
    mode = group.get("fused")
    if mode is not None and not isinstance(mode, bool):
        raise ArgumentError(f"{who}: fused must be None, True or False, got {mode!r}")
    if mode is not True:
        return
    if group.get("foreach"):
        raise ArgumentError(f"{who}: `fused` and `foreach` cannot be `True` together")
    for i, p in enumerate(group["params"]):
        arr = p._data
        if not isinstance(arr, np.ndarray) or arr.dtype not in DTYPES:
            raise ArgumentError(f"{who}(fused=True) updates float32 and float64 parameters, "
                                f"but params[{i}] is {p.dtype}; use fused=None")
    from kiln.backends.c import toolchain

    try:
        toolchain.find_compiler()  # cheap; compiling waits for the first step
    except KilnError as exc:
        raise ToolchainError(
            f"{who}(fused=True) needs a C compiler to build its fused kernels: {exc}. Or pass "
            "fused=None to fall back to the NumPy path") from exc


# --------------------------------------------------------------------------------------------
# Checks


def scalar_ok(value: Any, dtype: np.dtype) -> bool:
    """Whether NumPy computes ``array(dtype) * value`` in ``dtype`` with ``value`` rounded
    once to it: true for Python numbers (NEP 50 "weak" scalars), not for a NumPy float64
    next to float32."""
    t = type(value)
    if t is float:
        return True
    if t is int:
        return -_MAX_EXACT_INT <= value <= _MAX_EXACT_INT
    if isinstance(value, (np.floating, np.integer)):
        return np.promote_types(value.dtype, dtype) == dtype
    return False


def param_array(p: Tensor) -> np.ndarray | None:
    """``p``'s flat array if the kernels can update it in place, else None."""
    arr = p._data
    if p._node is not None or not isinstance(arr, np.ndarray) or arr.dtype not in DTYPES:
        return None
    flags = arr.flags
    if not (flags.c_contiguous and flags.writeable and flags.aligned):
        return None
    return arr.reshape(-1)


def grad_array(g: Any, like: np.ndarray) -> np.ndarray | None:
    """The gradient's array if it fits the parameter's array ``like``, else None."""
    if not isinstance(g, Tensor) or g._node is not None or g.requires_grad:
        return None
    arr = g._data
    if not isinstance(arr, np.ndarray) or arr.dtype != like.dtype or arr.shape != like.shape:
        return None
    flags = arr.flags
    if not (flags.c_contiguous and flags.aligned):
        return None
    return arr


def state_array(t: Any, like: np.ndarray) -> np.ndarray | None:
    """A state tensor's flat array if the kernels can update it in place, else None."""
    if not isinstance(t, Tensor) or t._node is not None or t.requires_grad:
        return None
    arr = t._data
    if not isinstance(arr, np.ndarray) or arr.dtype != like.dtype or arr.size != like.size:
        return None
    flags = arr.flags
    if not (flags.c_contiguous and flags.writeable and flags.aligned):
        return None
    return arr.reshape(-1)


def _address(arr: np.ndarray) -> int:
    return arr.ctypes.data if arr.size else 0


def _disjoint(ranges: list[tuple[int, int]]) -> tuple[list[int], list[int]] | None:
    """Sorted starts and ends of non-empty byte ranges, or None if two of them overlap."""
    ranges = sorted(r for r in ranges if r[1] > r[0])
    for (_, end), (start, _) in zip(ranges, ranges[1:]):
        if start < end:
            return None
    return [r[0] for r in ranges], [r[1] for r in ranges]


def _hits(starts: list[int], ends: list[int], lo: int, hi: int) -> bool:
    """Whether [lo, hi) overlaps one of the disjoint sorted ranges."""
    k = bisect.bisect_right(ends, lo)
    return hi > lo and k < len(starts) and starts[k] < hi


def _bounds(arr: np.ndarray) -> tuple[int, int]:
    """First and one-past-last byte of any array (strided, negative strides too)."""
    if arr.size == 0:
        return 0, 0
    utils = getattr(np.lib, "array_utils", None)  # NumPy 2; np.byte_bounds before
    lo, hi = utils.byte_bounds(arr) if utils is not None else np.byte_bounds(arr)
    return lo, hi


# --------------------------------------------------------------------------------------------
# Plans


class Entry:
    """One fused tensor: the parameter, its state tensors and their flat arrays.

    ``datas`` are the tensors' ``_data`` objects when the plan was made (a step checks them
    by identity: ``p.data = ...`` rebinds). ``tensors[k]`` may be None, with ``arrays[k]`` a
    fresh buffer that the step fills (SGD's first momentum step); the optimizer's
    ``_fused_after`` then puts it in ``state``.
    """

    __slots__ = ("param", "data", "array", "tensors", "datas", "arrays", "extra", "grad")

    def __init__(self, param: Tensor, array: np.ndarray, tensors: list[Tensor | None],
                 arrays: list[np.ndarray], extra: Any = None) -> None:
        self.param, self.data, self.array = param, param._data, array
        self.tensors, self.arrays = tensors, arrays
        self.datas = [t._data if t is not None else None for t in tensors]
        self.extra = extra  # per algorithm: Adam's step tensor and its array
        self.grad: weakref.ref | None = None  # the gradient array bound last

    def ranges(self) -> list[tuple[int, int]]:
        """The byte ranges the step writes."""
        out = []
        for arr in (self.array, *self.arrays):
            lo = _address(arr)
            out.append((lo, lo + arr.nbytes))
        return out


class Batch:
    """The fused tensors of one dtype in a group, with the arrays the kernel reads.

    ``desc`` (``WIDTH`` words per tensor), ``ts`` (two doubles per tensor) and ``h`` (the
    group's scalars) are ctypes arrays: item writes cost a few tens of nanoseconds, and their
    addresses are taken once.
    """

    __slots__ = ("dtype", "entries", "desc", "ts", "h", "fn", "args")

    def __init__(self, dtype: np.dtype, entries: list[Entry], fn: Callable[..., int]) -> None:
        self.dtype, self.entries, self.fn = dtype, entries, fn
        n = len(entries)
        self.desc = (ctypes.c_uint64 * (n * WIDTH))()
        self.ts = (ctypes.c_double * (2 * n))()  # Adam: -step_size, sqrt(bias_correction2)
        self.h = (ctypes.c_double * 8)()
        for k, e in enumerate(entries):
            row = k * WIDTH
            self.desc[row + P] = _address(e.array)
            self.desc[row + N] = e.array.size
            for col, arr in zip((S0, S1, S2), e.arrays):
                self.desc[row + col] = _address(arr)
            self.desc[row + FIRST] = any(t is None for t in e.tensors)
        self.args = (ctypes.addressof(self.desc), ctypes.addressof(self.ts), n,
                     ctypes.addressof(self.h))

    def run(self, hyper: tuple, flags: int) -> None:
        h = self.h
        for i, v in enumerate(hyper):
            h[i] = v
        desc, ts, n, hp = self.args
        rc = self.fn(desc, ts, n, hp, flags, _threads.get_num_threads())
        if rc != 0:
            raise BackendError(f"kiln_optim: the fused kernel refused its arguments (code {rc})")

    def clear_first(self) -> None:
        """After a first momentum step: the buffers now hold values."""
        for k in range(len(self.entries)):
            self.desc[k * WIDTH + FIRST] = 0


class Plan:
    """What one group's fused step needs, valid while the tensors and arrays stay the same."""

    __slots__ = ("group", "active", "structure", "batches", "rest", "starts", "ends")

    def __init__(self, group: dict, active: list[Tensor], structure: Any) -> None:
        self.group, self.active, self.structure = group, active, structure
        self.batches: list[Batch] = []
        self.rest: list[Tensor] = []
        self.starts: list[int] = []
        self.ends: list[int] = []

    def still_valid(self, opt: Any, group: dict, active: list[Tensor], structure: Any) -> bool:
        """The same tensors, state tensors and arrays (by identity), all still writable."""
        if self.group is not group or self.structure != structure or \
                len(active) != len(self.active):
            return False
        for a, b in zip(active, self.active):
            if a is not b:
                return False
        state = opt.state
        keys = opt._fused_keys(structure)
        for batch in self.batches:
            for e in batch.entries:
                data = e.data
                if e.param._data is not data or not data.flags.writeable:
                    return False
                if not e.tensors and e.extra is None:
                    continue
                st = state.get(e.param)
                if st is None:
                    return False
                for key, t, d in zip(keys, e.tensors, e.datas):
                    if t is None or st.get(key) is not t or t._data is not d or \
                            t.requires_grad or not d.flags.writeable:
                        return False
                if e.extra is not None and not opt._fused_extra_valid(st, e):
                    return False
        return True


class PlanCache:
    """Per-optimizer plans by group. Copies of an optimizer start empty: a plan holds raw
    addresses of this optimizer's arrays, which a deep copy must never write through."""

    def __init__(self) -> None:
        self.plans: dict[int, Plan] = {}

    def __deepcopy__(self, memo: dict) -> PlanCache:
        return PlanCache()

    def __copy__(self) -> PlanCache:
        return PlanCache()

    def clear(self) -> None:
        self.plans.clear()


def _make_plan(opt: Any, group: dict, active: list[Tensor], structure: Any,
               lib: _Library) -> Plan:
    plan = Plan(group, active, structure)
    by_dtype: dict[np.dtype, list[Entry]] = {}
    for p in active:
        arr = param_array(p)
        entry = None
        if arr is not None and grad_array(p.grad, p._data) is not None:
            entry = opt._fused_entry(p, arr, group, structure)
        if entry is None:
            plan.rest.append(p)
        else:
            by_dtype.setdefault(arr.dtype, []).append(entry)
    written = [r for entries in by_dtype.values() for e in entries for r in e.ranges()]
    disjoint = _disjoint(written)
    if disjoint is not None and plan.rest:
        # A per-tensor update after the fused one must not touch memory the fused one
        # wrote (in sequence it might have run first), or the order would show.
        for p in plan.rest:
            for arr in (p._data, getattr(p.grad, "_data", None)):
                if isinstance(arr, np.ndarray) and _hits(*disjoint, *_bounds(arr)):
                    disjoint = None
                    break
            if disjoint is None:
                break
    if disjoint is None:
        # Rare by construction; the plan is then redone every step (cheap next to the
        # per-tensor updates that follow).
        _debug(f"{type(opt).__name__}: arrays of a group overlap; per-tensor updates")
        plan.rest = list(active)
        return plan
    plan.starts, plan.ends = disjoint
    for dtype, entries in by_dtype.items():
        plan.batches.append(Batch(dtype, entries, lib.fn[(opt._fused_algo, dtype)]))
    return plan


def _bind_grads(plan: Plan) -> bool:
    """Write the gradients' addresses into the descriptors; False if one no longer fits."""
    starts, ends = plan.starts, plan.ends
    nranges = len(starts)
    for batch in plan.batches:
        desc, dtype = batch.desc, batch.dtype
        for k, e in enumerate(batch.entries):
            g = e.param.grad
            if not isinstance(g, Tensor) or g._node is not None or g.requires_grad:
                return False
            arr = g._data
            if e.grad is not None and e.grad() is arr:
                continue  # the same array as last step (accumulated in place): checked then
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype or \
                    arr.shape != e.data.shape:
                return False
            flags = arr.flags
            if not (flags.c_contiguous and flags.aligned):
                return False
            if arr.size:
                try:  # 3x cheaper than arr.ctypes.data, for writable arrays
                    lo = ctypes.addressof(ctypes.c_char.from_buffer(arr))
                except (TypeError, ValueError):
                    lo = arr.ctypes.data
                i = bisect.bisect_right(ends, lo)  # _hits, inlined: this runs every step
                if i < nranges and starts[i] < lo + arr.nbytes:
                    return False
                desc[k * WIDTH + G] = lo
            # A weak reference: holding the gradient would keep it alive past zero_grad().
            e.grad = weakref.ref(arr)
    return True


def _rest_unchanged(plan: Plan) -> bool:
    """The per-tensor leftovers of a plan still do not qualify (else the plan is redone)."""
    for p in plan.rest:
        arr = param_array(p)
        if arr is not None and grad_array(p.grad, p._data) is not None:
            return False
    return True


def _plan(opt: Any, group: dict, active: list[Tensor], lib: _Library) -> Plan:
    structure = opt._fused_structure(group)
    cache = opt._fused_plans.plans
    if len(cache) > len(opt.param_groups):  # a group was removed: drop its plan (and arrays)
        live = {id(g) for g in opt.param_groups}
        for key in [k for k in cache if k not in live]:
            del cache[key]
    plan = cache.get(id(group))
    if plan is not None and plan.still_valid(opt, group, active, structure) and \
            (not plan.rest or _rest_unchanged(plan)) and _bind_grads(plan):
        return plan
    plan = _make_plan(opt, group, active, structure, lib)
    if not _bind_grads(plan):  # a gradient overlaps an array the step writes
        plan = Plan(group, active, structure)
        plan.rest = list(active)
    cache[id(group)] = plan
    return plan


def kernel_scalars(values: tuple, dtype: np.dtype, force: bool) -> tuple | None:
    """The hyper-parameters ``values`` as the kernel takes them (doubles it rounds to
    ``dtype``), or None when NumPy would not round them that way (see :func:`scalar_ok`);
    ``force`` (fused=True) takes them as doubles regardless."""
    if force:
        return tuple(float(v) for v in values)
    if not all(scalar_ok(v, dtype) for v in values):
        return None
    return values


def step_group(opt: Any, group: dict, active: list[Tensor]) -> list[Tensor]:
    """Run the fused kernels over ``active`` (the group's tensors with a gradient); return
    the tensors left to the per-tensor path. The caller checked that no trace is active."""
    mode = group.get("fused")
    if mode is False or not active:
        return active
    who = type(opt).__name__
    lib = library(required=mode is True, who=who)
    if lib is None:
        return active
    force = mode is True
    values, flags = opt._fused_hyper(group)
    if not force and kernel_scalars(values, _F64, force) is None:
        # (what does not fit float64 fits no dtype): leave the group before planning it
        _debug(f"{who}: hyper-parameters of NumPy types; per-tensor updates")
        return active
    plan = _plan(opt, group, active, lib)
    if plan.rest and force:
        raise ArgumentError(f"{who}(fused=True): {why_not_fused(plan.rest[0], group)}; "
                            "pass fused=None to update such tensors on the NumPy path")
    calls, left = [], plan.rest
    for batch in plan.batches:
        hyper = kernel_scalars(values, batch.dtype, force)
        if hyper is None:  # e.g. a NumPy float64 lr next to float32 tensors
            left = left + [e.param for e in batch.entries]
        else:
            calls.append((batch, hyper, flags))
    for batch, hyper, flags in calls:
        opt._fused_before(batch, group)
        batch.run(hyper, flags)
        opt._fused_after(batch)
    return left


def why_not_fused(p: Tensor, group: dict) -> str:
    """Why parameter ``p`` cannot take the fused path (for fused=True's error)."""
    index = next(i for i, q in enumerate(group["params"]) if q is p)
    arr = p._data
    what = f"params[{index}] (shape {tuple(p.shape)}, {p.dtype})"
    if not isinstance(arr, np.ndarray) or arr.dtype not in DTYPES:
        return f"{what} is not a float32 or float64 array"
    if not arr.flags.c_contiguous or not arr.flags.aligned:
        return f"{what} is not C-contiguous"
    if not arr.flags.writeable:
        return f"{what} is read-only"
    g = p.grad
    if not isinstance(g, Tensor) or g._node is not None or g.requires_grad:
        return f"the gradient of {what} requires grad (create_graph=True)"
    garr = g._data
    if garr.dtype != arr.dtype or garr.size != arr.size:
        return f"the gradient of {what} has dtype {garr.dtype} and {garr.size} elements"
    if not garr.flags.c_contiguous or not garr.flags.aligned:
        return f"the gradient of {what} is not C-contiguous"
    return f"the optimizer state of {what} is not a set of contiguous {arr.dtype} arrays " \
        "of its size, or it shares memory with another array of the step"
