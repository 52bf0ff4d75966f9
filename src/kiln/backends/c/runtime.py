"""Calling a compiled graph: guards, buffers, one ctypes call, outputs.

A :class:`CFunction` is built from a JSON-able *plan* (what the compiler decided), the
shared-library bytes and the graph constants; compiling and deserializing both end here.
A call:

1. binds inputs given by name to their placeholders, then checks every input (count, type,
   rank, dtype, C-contiguity, static sizes, symbolic sizes with their ranges and their
   consistency across inputs) and raises
   :class:`~kiln.errors.GuardError` naming the argument before any native code runs;
2. reads the constants' current arrays (so optimizer updates are seen), draws random
   tensors with the eager kernels (the interpreter's generator, in graph order);
3. takes output arrays from the pool and an arena for temporaries, writes every buffer
   address into one pointer array, the symbol values into one int64 array, and calls
   ``kiln_run`` once (ctypes releases the GIL);
4. wraps the outputs as tensors.
"""

from __future__ import annotations

import ctypes
import sys
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from kiln.backends.c.memory import ArenaCache, output_pool, plan_arena
from kiln.backends.serializable import SerializableCompiledFunction
from kiln.core.dtypes import get_dtype
from kiln.core.prims.registry import get_op
from kiln.core.tensor import Tensor
from kiln.errors import (
    BackendError,
    GuardError,
    IndexError_,
    SerializationError,
    ValueArgumentError,
)
from kiln.graph.serialize import decode_value
from kiln.symbolic.guards import check_guards, guards_from_json
from kiln.symbolic.sizes import SymInt


def _dims(encoded: list) -> tuple:
    return tuple(decode_value(d, {}) for d in encoded)


def _eval(d: Any, env: dict[str, int]) -> int:
    return d if isinstance(d, int) else d.evaluate(env)


class Guards:
    """Input checks and symbol binding for one plan (see the module docstring)."""

    def __init__(self, plan: dict) -> None:
        self.symbols = [s["name"] for s in plan["symbols"]]
        self.ranges = {s["name"]: (s["min"], s["max"]) for s in plan["symbols"]}
        self.inputs = [(i["name"], get_dtype(i["dtype"]).np_dtype, _dims(i["shape"]))
                       for i in plan["inputs"]]
        self.nonzero = [(decode_value(g["size"], {}), g["what"]) for g in plan["nonzero"]]
        # What tracing assumed about the symbolic sizes (kiln.symbolic.guards); absent in older
        # plans.
        self.assumptions = guards_from_json(plan.get("guards", []))
        self.contiguous = plan.get("contiguous", "raise")
        self._fast = self._fast_plan()

    def _fast_plan(self) -> list | None:
        """Per input: (dtype, shape if fully static, rank, static dims, symbol dims, ranges);
        None when some dim is a symbolic expression (solving those is :meth:`bind`'s job)."""
        plan = []
        for _, dtype, dims in self.inputs:
            static, syms = [], []
            for d, want in enumerate(dims):
                if isinstance(want, int):
                    static.append((d, want))
                elif want.plain_symbol is not None:
                    sym = want.plain_symbol
                    syms.append((d, sym, *self.ranges.get(sym, (0, 2**63 - 1))))
                else:
                    return None
            shape = tuple(dims) if not syms else None
            plan.append((dtype, shape, len(dims), tuple(static), tuple(syms)))
        return plan

    def fast_bind(self, inputs: tuple) -> tuple[dict[str, int], list[np.ndarray]] | None:
        """:meth:`bind` for inputs that pass every check as they are (no copy, no symbolic
        expression to solve); None otherwise, and then :meth:`bind` runs (and raises or
        copies) as always. Comparing whole shapes skips the per-dim loop and its
        messages."""
        plan = self._fast
        if plan is None or len(inputs) != len(plan):
            return None
        env: dict[str, int] = {}
        arrays = []
        for value, (dtype, static_shape, rank, static, syms) in zip(inputs, plan):
            if not isinstance(value, Tensor):
                return None
            arr = value._data
            if arr is None or arr.dtype != dtype or not arr.flags.c_contiguous:
                return None
            shape = arr.shape
            if static_shape is not None:
                if shape != static_shape:
                    return None
            else:
                if len(shape) != rank:
                    return None
                for d, want in static:
                    if shape[d] != want:
                        return None
                for d, sym, lo, hi in syms:
                    got = shape[d]
                    have = env.get(sym)
                    if have is None:
                        if not lo <= got <= hi:
                            return None
                        env[sym] = got
                    elif have != got:
                        return None
            arrays.append(arr)
        for size, _ in self.nonzero:
            if _eval(size, env) <= 0:
                return None
        for guard in self.assumptions:
            if not guard.holds(env):
                return None
        return env, arrays

    def bind(self, inputs: tuple) -> tuple[dict[str, int], list[np.ndarray]]:
        if len(inputs) != len(self.inputs):
            names = ", ".join(n for n, _, _ in self.inputs)
            raise GuardError(f"expected {len(self.inputs)} tensor inputs ({names}), got "
                             f"{len(inputs)}")
        env: dict[str, int] = {}
        arrays = []
        deferred = []
        for value, (name, dtype, dims) in zip(inputs, self.inputs, strict=True):
            if not isinstance(value, Tensor):
                raise GuardError(f"input {name}: expected a kiln.Tensor, got "
                                 f"{type(value).__name__}")
            arr = value._data
            if arr is None:
                raise GuardError(f"input {name}: a tracer tensor cannot be passed to compiled "
                                 "code")
            shape = arr.shape
            if len(shape) != len(dims):
                raise GuardError(f"input {name}: expected rank {len(dims)} (shape "
                                 f"{tuple(map(str, dims))}), got shape {shape}")
            if arr.dtype != dtype:
                got = arr.dtype.name if arr.dtype.name != "bool" else "bool"
                raise GuardError(f"input {name}: expected dtype {get_dtype(dtype)}, got {got}")
            for d, (want, got) in enumerate(zip(dims, shape, strict=True)):
                if isinstance(want, int):
                    if want != got:
                        raise GuardError(f"input {name}: expected shape "
                                         f"{tuple(map(str, dims))}, got {shape} (dim {d}: "
                                         f"{want} vs {got})")
                    continue
                sym = want.plain_symbol
                if sym is None:
                    deferred.append((name, d, want, got))
                    continue
                have = env.get(sym)
                if have is not None and have != got:
                    raise GuardError(f"input {name}: dim {d} is {sym}={have} from an earlier "
                                     f"input, got {got}")
                lo, hi = self.ranges.get(sym, (0, 2**63 - 1))
                if not lo <= got <= hi:
                    raise GuardError(f"input {name}: dim {d} ({sym}) must be in [{lo}, {hi}], "
                                     f"got {got}")
                env[sym] = got
            if not arr.flags.c_contiguous:
                if self.contiguous == "copy":
                    arr = np.ascontiguousarray(arr)
                else:
                    raise GuardError(f"input {name}: expected a C-contiguous array, got strides "
                                     f"{arr.strides} for shape {shape}; call .contiguous() "
                                     "first (kiln.compile does it for you)")
            arrays.append(arr)
        if deferred:
            self._solve(deferred, env)
        for size, what in self.nonzero:
            if _eval(size, env) <= 0:
                raise GuardError(f"{what}: the reduced size {size} is 0 for these inputs "
                                 f"({', '.join(f'{k}={v}' for k, v in sorted(env.items()))})")
        check_guards(self.assumptions, env)
        return env, arrays

    def _solve(self, deferred: list, env: dict[str, int]) -> None:
        pending = list(deferred)
        progress = True
        while pending and progress:
            progress = False
            for item in list(pending):
                name, d, expr, got = item
                free = [s for s in expr.free_symbols if s not in env]
                if not free:
                    want = expr.evaluate(env)
                    if want != got:
                        raise GuardError(f"input {name}: dim {d} must equal {expr} = {want}, "
                                         f"got {got}")
                    pending.remove(item)
                    progress = True
                elif len(free) == 1:
                    sym = free[0]
                    value = _solve_linear(expr, sym, env, got)
                    if value is None:
                        continue
                    lo, hi = self.ranges.get(sym, (0, 2**63 - 1))
                    if not lo <= value <= hi:
                        raise GuardError(f"input {name}: dim {d} = {expr} needs {sym}={value}, "
                                         f"outside its range [{lo}, {hi}]")
                    env[sym] = value
                    progress = True
        if pending:
            name, d, expr, got = pending[0]
            raise GuardError(f"input {name}: dim {d} must equal {expr}, which is not "
                             f"satisfiable with size {got}")


def _solve_linear(expr: SymInt, sym: str, env: dict[str, int], got: int) -> int | None:
    """Solve expr(sym) == got when expr is a*sym + b (a, b known); None otherwise."""
    try:
        b0 = SymInt.make({m: c for m, c in expr.terms if sym not in m})
        b = _eval(b0, env)
        a_terms = {}
        for m, c in expr.terms:
            if sym in m:
                rest = list(m)
                rest.remove(sym)
                if sym in rest:
                    return None
                a_terms[tuple(rest)] = c
        a = _eval(SymInt.make(a_terms), env)
    except (GuardError, KeyError, AttributeError, TypeError):
        return None
    if a == 0 or (got - b) % a:
        return None
    return (got - b) // a


class CFunction(SerializableCompiledFunction):
    """A compiled graph (see the module docstring). ``serialize()`` gives portable bytes."""

    backend = "c"

    def __init__(self, plan: dict, library: bytes, constants: dict[str, Tensor],
                 lib_handle: ctypes.CDLL | None = None) -> None:
        from kiln.backends.c.dynlib import load_library

        self.plan = plan
        self.library = library
        self.constants = constants
        self.source = plan["source"]
        self.guards = Guards(plan)
        self._symbols = self.guards.symbols
        self.nbuf = len(plan["buffers"])
        self._buf_shapes = {b["id"]: (_dims(b["shape"]), get_dtype(b["dtype"]).np_dtype)
                            for b in plan["buffers"]}
        self._inputs = [b["id"] for b in plan["buffers"] if b["kind"] == "input"]
        self._consts = [(b["id"], b["key"]) for b in plan["buffers"] if b["kind"] == "constant"]
        self._randoms = [(r["buffer"], r["op"], {k: decode_value(v, {}) for k, v in
                                                  r["attrs"].items()}) for r in plan["randoms"]]
        self._outputs = [b["id"] for b in plan["buffers"] if b["kind"] == "output"]
        self._temps = [(t["buffer"], t["first"], t["last"]) for t in plan["temps"]]
        self._arena_plans: dict[tuple, tuple[dict[int, int], int]] = {}
        self._arenas = ArenaCache()
        self._pool = output_pool()
        # Per-call work prepared once: ctypes types for the pointer and symbol arrays, the
        # output references, and per symbol values a _CallPlan (shapes, arena offsets).
        self._ptr_type = ctypes.c_void_p * max(self.nbuf, 1)
        self._syms_type = ctypes.c_int64 * max(len(self._symbols), 1)
        self._nsyms = len(self._symbols)
        self._out_refs = [(kind, key) for kind, key in plan["outputs"]]
        self._call_plans: dict[tuple, _CallPlan] = {}
        # Constant slot -> (array, address): parameters keep their arrays across calls.
        self._const_addr: dict[int, tuple[np.ndarray, int]] = {}
        self._in_addr: list[Any] = [None] * len(self._inputs)
        self._graph: Any = None  # the Graph compiled (set by compile_c and deserialize)
        self._load_graph: Callable[[], Any] | None = None
        if lib_handle is None:
            _prepare_gemm(plan)
            lib_handle = load_library(library, "kiln_graph")
        _check_plan_hash(lib_handle, plan)  # before anything in the library is called
        from kiln.backends.c.threads import attach

        attach(lib_handle)
        self._lib = lib_handle
        fn = lib_handle.kiln_run
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                       ctypes.c_int64]
        fn.restype = ctypes.c_int64
        self._run = fn
        self.kernel_names = [k["comment"] for k in plan["kernels"]]
        from kiln.base.debug import debug_level

        self._debug = debug_level()  # read once: the environment lookup costs a call's worth

    # the graph -------------------------------------------------------------------------
    @property
    def graph(self) -> Any:
        """The Graph compiled (None if it was built without one). A function loaded from a
        signed container decodes and checks it here, on first use: it runs from its plan."""
        if self._graph is None and self._load_graph is not None:
            self._graph = self._load_graph()  # raises again next time if it fails
            self._load_graph = None
        return self._graph

    @graph.setter
    def graph(self, graph: Any) -> None:
        self._graph = graph
        self._load_graph = None

    def defer_graph(self, load: Callable[[], Any]) -> None:
        """Have :attr:`graph` come from ``load()`` (which validates it) when first asked for."""
        self._graph = None
        self._load_graph = load

    @property
    def num_inputs(self) -> int:
        """How many tensors a call takes (the plan's inputs; no need for the graph)."""
        return len(self.guards.inputs)

    @property
    def num_outputs(self) -> int:
        """How many tensors a call returns."""
        return len(self._out_refs)

    # calling ---------------------------------------------------------------------------
    def __call__(self, *inputs: Any, **named: Any) -> list[Tensor]:
        if named:
            from kiln.graph.binding import bind_inputs

            inputs = bind_inputs([n for n, _, _ in self.guards.inputs], inputs, named,
                                 "compiled function")
        guards = self.guards
        bound = guards.fast_bind(inputs)
        env, arrays = bound if bound is not None else guards.bind(inputs)
        plan = self._call_plan(env)
        ptrs = self._ptr_type()
        # Input slot -> (weak reference to the array, its address): parameters and reused
        # buffers come back call after call, and arr.ctypes.data costs ~0.8 us. A weak
        # reference keeps no activation alive (nor its pooled block from being reused).
        in_addr = self._in_addr
        for k, (bid, arr) in enumerate(zip(self._inputs, arrays, strict=True)):
            hit = in_addr[k]
            if hit is not None and hit[0]() is arr:
                ptrs[bid] = hit[1]
            else:
                addr = arr.ctypes.data
                in_addr[k] = (weakref.ref(arr), addr)
                ptrs[bid] = addr
        consts = []  # keeps copies made for non-contiguous constants alive during the call
        const_addr = self._const_addr
        for bid, key, want, dtype in plan.constants:
            arr = self.constants[key]._data
            if arr is None or arr.shape != want or arr.dtype != dtype:
                self._constant(bid, key, env)  # raises the GuardError that says what changed
            hit = const_addr.get(bid)
            if hit is not None and hit[0] is arr:
                ptrs[bid] = hit[1]
                continue
            if not arr.flags.c_contiguous:
                arr = np.ascontiguousarray(arr)
                consts.append(arr)
                ptrs[bid] = arr.ctypes.data
            else:
                addr = arr.ctypes.data
                const_addr[bid] = (arr, addr)
                ptrs[bid] = addr
        values: dict[int, np.ndarray] = {}
        for bid, opname, attrs in self._randoms:
            arr = self._random(bid, opname, attrs, env)
            values[bid] = arr
            ptrs[bid] = arr.ctypes.data
        pool = self._pool
        for bid, shape, dtype in plan.outputs:
            arr, addr = pool.array_at(shape, dtype)
            values[bid] = arr
            ptrs[bid] = addr
        arena = None
        if plan.arena_bytes:
            arena, base = self._arenas.take_at(plan.arena_bytes)
            for bid, off in plan.offsets:
                ptrs[bid] = base + off
        timings = None
        if self._debug >= 3:
            timings = np.zeros(max(len(self.plan["calls"]), 1), np.float64)
        rc = self._run(ptrs, plan.syms, timings.ctypes.data if timings is not None else None,
                       self.nbuf, self._nsyms)
        if arena is not None:
            self._arenas.give_at((arena, base))
        if timings is not None:
            self._print_timings(timings)
        if rc:
            self._raise(rc)
        out = []
        for kind, key in self._out_refs:
            if kind == "input":
                out.append(inputs[key])
            elif kind == "constant":
                out.append(self.constants[key])
            else:
                out.append(Tensor._wrap(values[key]))
        del consts
        return out

    def _call_plan(self, env: dict[str, int]) -> _CallPlan:
        """Shapes, constant checks, arena offsets and the symbol array for these symbol
        values, evaluated once and cached (a static graph has exactly one plan)."""
        key = tuple(env.get(s, 0) for s in self._symbols)
        plan = self._call_plans.get(key)
        if plan is not None:
            return plan
        shapes = {bid: (tuple(_eval(d, env) for d in dims), dtype)
                  for bid, (dims, dtype) in self._buf_shapes.items()}
        outputs = tuple((bid, *shapes[bid]) for bid in self._outputs)
        constants = tuple((bid, k, *shapes[bid]) for bid, k in self._consts)
        offsets: tuple = ()
        total = 0
        if self._temps:
            placed, total = self._arena_plan(env)
            offsets = tuple(placed.items())
        syms = self._syms_type(*(env[s] for s in self._symbols))
        plan = _CallPlan(outputs, constants, offsets, total, syms)
        if len(self._call_plans) > 64:
            self._call_plans.clear()
        self._call_plans[key] = plan
        return plan

    def _constant(self, bid: int, key: str, env: dict[str, int]) -> np.ndarray:
        t = self.constants[key]
        arr = t._data
        shape, dtype = self._buf_shapes[bid]
        want = tuple(_eval(d, env) for d in shape)
        if arr is None or arr.shape != want or arr.dtype != dtype:
            got = None if arr is None else f"shape {arr.shape} dtype {arr.dtype}"
            raise GuardError(f"constant {key!r}: expected shape {want} dtype "
                             f"{get_dtype(dtype)}, got {got} (was it replaced by a tensor of "
                             "another shape? compile again)")
        return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)

    def _random(self, bid: int, opname: str, attrs: dict, env: dict[str, int]) -> np.ndarray:
        from kiln.symbolic.sizes import evaluate

        op = get_op(opname)
        data = op.eager(**evaluate(attrs, env))
        shape, dtype = self._buf_shapes[bid]
        # not ascontiguousarray: it makes a 0-d draw (shape=()) 1-d
        return np.asarray(data, dtype=dtype, order="C")

    def _arena_plan(self, env: dict[str, int]) -> tuple[dict[int, int], int]:
        key = tuple(env.get(s, 0) for s in self._symbols)
        hit = self._arena_plans.get(key)
        if hit is None:
            items = []
            for bid, first, last in self._temps:
                shape, dtype = self._buf_shapes[bid]
                n = 1
                for d in shape:
                    n *= _eval(d, env)
                items.append((bid, n * dtype.itemsize, first, last))
            hit = plan_arena(items)
            if len(self._arena_plans) > 64:
                self._arena_plans.clear()
            self._arena_plans[key] = hit
        return hit

    def _raise(self, rc: int) -> None:
        if rc < 0:
            raise BackendError("the compiled library refused its arguments (buffer or symbol "
                               "count, or a symbol outside its range): it was not built from "
                               "this plan")
        kid = (rc >> 48) - 1
        bits = rc & ((1 << 48) - 1)
        msgs = self.plan["checks"].get(str(kid), [])
        for j, m in enumerate(msgs):
            if bits >> j & 1:
                if "out of memory" in m:
                    raise BackendError(f"compiled kernel {kid}: {m}")
                if any(v in m for v in _VALUE_CHECKS):
                    raise ValueArgumentError(m)  # as eagerly
                raise IndexError_(m)
        raise BackendError(f"compiled kernel {kid} failed with code {bits}")

    def _print_timings(self, timings: np.ndarray) -> None:
        lines = ["[kiln] per-kernel times (ms):"]
        for pos, kid in enumerate(self.plan["calls"]):
            lines.append(f"[kiln]   {timings[pos] * 1e3:9.3f}  {self.kernel_names[kid]}")
        print("\n".join(lines), file=sys.stderr)

    # views ---------------------------------------------------------------------------
    def schedule_summary(self) -> list[dict]:
        """The kernels as compiled: kind, nodes, loops and passes (see docs/c_backend.md)."""
        return list(self.plan["kernels"])

    def serialize(self) -> bytes:
        from kiln.backends.c.serialize import serialize

        return serialize(self)

    @classmethod
    def deserialize(cls, data: bytes, trust: str = "signed") -> CFunction:
        """The function ``serialize()`` wrote, loaded without a C compiler (the same as
        :func:`kiln.backends.deserialize`, restricted to C-backend artifacts). The library
        must carry a valid signature under this user's key unless ``trust="any"`` (which
        warns); the plan is rebuilt from the validated graph (see docs/security.md).

        >>> import kiln
        >>> from kiln.backends import get_backend
        >>> from kiln.backends.c import CFunction
        >>> fn = get_backend("c")(kiln.trace(lambda x: x * 2.0, kiln.ones(2)), None)
        >>> CFunction.deserialize(fn.serialize())(kiln.ones(2))[0].tolist()
        [2.0, 2.0]
        """
        from kiln.backends.c.serialize import deserialize
        from kiln.backends.envelope import read_envelope

        backend, payload = read_envelope(data)
        if backend != "c":
            raise SerializationError(f"CFunction.deserialize: data is a {backend!r} artifact, "
                                     "expected a C-backend one ('c'); use "
                                     "kiln.backends.deserialize for any backend")
        fn = deserialize(payload, trust=trust)
        assert isinstance(fn, cls)
        return fn


# Checks on values (not on indices) raise what the eager op raises.
_VALUE_CHECKS = ("division by zero", "negative integer powers")


class _CallPlan:
    """The per-call work of one set of symbol values. (Plain classes, not NamedTuples, on
    the load path: creating a NamedTuple type costs a tenth of a millisecond at import.)"""

    __slots__ = ("outputs", "constants", "offsets", "arena_bytes", "syms")

    def __init__(self, outputs: tuple, constants: tuple, offsets: tuple, arena_bytes: int,
                 syms: Any) -> None:
        self.outputs = outputs  # (buffer, shape, NumPy dtype)
        self.constants = constants  # (buffer, key, shape, NumPy dtype)
        self.offsets = offsets  # (buffer, arena offset)
        self.arena_bytes = arena_bytes
        self.syms = syms  # ctypes int64 array of the symbol values (the C side only reads it)


def _check_plan_hash(lib: ctypes.CDLL, plan: dict) -> None:
    """The library must export the hash of exactly this plan (read as data, not called)."""
    from kiln.backends.c.plan import HASH_SYMBOL

    try:
        got = (ctypes.c_char * 65).in_dll(lib, HASH_SYMBOL).value.decode("ascii", "replace")
    except (ValueError, AttributeError):
        got = None
    if got != plan.get("hash"):
        raise SerializationError(f"the compiled library was not built from this plan: it "
                                 f"exports plan hash {got!r}, the plan it is loaded with "
                                 f"hashes to {plan.get('hash')!r}")


def _prepare_gemm(plan: dict) -> None:
    """Load the BLAS the library links (or say which wheel is missing) before ``dlopen``."""
    from kiln.backends.c.blas import prepare_recorded

    prepare_recorded(plan.get("gemm"))
