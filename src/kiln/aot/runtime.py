"""``aot_function`` / ``aot_module``: trace once per input signature, compile, run.

On a call, the inputs are flattened (module parameters and buffers first, then the tensor
leaves of the arguments) and looked up in a cache keyed by the input signature. A miss
traces:

- when grad mode is on and some input requires grad: the joint graph, split by
  ``partition_fn`` into forward and backward, compiled by ``fw_compiler`` and
  ``bw_compiler``; calls go through a :class:`kiln.autograd.Function` whose backward runs
  the compiled backward on the saved values and the incoming gradients;
- otherwise: the inference graph only, compiled by ``inference_compiler``.

Mutated inputs (BatchNorm running stats) come back as extra outputs and are written into
the caller's tensors after every call.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

from kiln.aot.entry import (  # noqa: F401  (re-exported: the names callers import from here)
    CallInfo,
    InferenceEntry,
    TrainingEntry,
    _autograd_function,
    _check_count,
    run_entry,
)
from kiln.aot.joint import TracedProgram, check_decompositions, trace_program
from kiln.aot.partition import default_partition
from kiln.backends import InputSpec
from kiln.base.pytree import tree_unflatten
from kiln.core.autograd.function import Function
from kiln.core.autograd.grad_mode import is_grad_enabled
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, describe
from kiln.graph.module import GraphModule
from kiln.nn.snapshot import StateSnapshot
from kiln.symbolic.guards import GuardedCache
from kiln.symbolic.sizes import SymInt
from kiln.tracing.trace import (
    fast_call_key,
    flatten_call,
    leaf_names,
    resolve_dynamic,
)

Compiler = Callable[[GraphModule, list], Callable]


def _name(obj: Any) -> str:
    return getattr(obj, "__name__", None) or type(obj).__name__


# How each role is called, for the signature check: (positional count, keywords, the call,
# what it returns).
_PARTITION_CALL = (2, ("num_fwd_outputs",),
                   "partition_fn(joint_graph, joint_inputs, *, num_fwd_outputs=...)",
                   "a pair (forward GraphModule, backward GraphModule), like "
                   "default_partition (functools.partial sets other options)")
_COMPILER_CALL = (2, (), "compiler(GraphModule, example_specs)", "a callable, like nop")


def _check_callable(role: str, fn: Any) -> None:
    """Refuse, when the AOT function is made, what cannot be called the way ``role`` is:
    the TypeError would otherwise come from deep inside the first call."""
    if not callable(fn):
        raise ArgumentError(f"aot_function: {role} must be callable, got {describe(fn)}")
    # fn can be draw_graph only if its module is loaded: do not import it (and subprocess)
    compilers = sys.modules.get("kiln.aot.compilers")
    if compilers is not None and fn is compilers.draw_graph:
        raise ArgumentError(
            f"aot_function: {role} is draw_graph, which takes (GraphModule, path), not a "
            "compiler's (GraphModule, example_specs); pass graph_drawer(path), or a lambda "
            "such as `lambda gm, specs: draw_graph(gm, path) and gm`")
    n_pos, keywords, call, returns = _PARTITION_CALL if role == "partition_fn" else \
        _COMPILER_CALL
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin or C callable without a signature: it is called as it is
    try:
        sig.bind(*([None] * n_pos), **dict.fromkeys(keywords))
    except TypeError as e:
        raise ArgumentError(f"aot_function: {role} {_name(fn)!r} takes {sig}, so it cannot be "
                            f"called as {call} ({e}); expected a function of that call "
                            f"returning {returns}") from None


def _compile(compiler: Compiler, gm: GraphModule, role: str) -> Callable:
    specs = [InputSpec(tuple(p.meta.shape), p.meta.dtype) for p in gm.graph.placeholders]
    compiled = compiler(gm, specs)
    if not callable(compiled):
        raise ArgumentError(f"{role} {_name(compiler)!r} returned {describe(compiled)}, which "
                            "is not callable; a compiler maps (GraphModule, example_specs) "
                            "to a callable")
    return compiled


def _debug(title: str, gm: GraphModule) -> None:
    from kiln.base.debug import debug_level

    if debug_level() >= 1:
        print(f"[kiln.aot] {title}:\n{gm.graph}", file=sys.stderr)


class AOTFunction:
    """What :func:`aot_function` returns: call it like the function it wraps.

    ``cache_info()`` counts signatures and traces; ``entries()`` gives the compiled entries
    (``program.gm`` is the joint or inference graph; training entries also hold ``fw_gm``
    and ``bw_gm``).

    >>> import kiln
    >>> from kiln.aot import aot_function, nop
    >>> f = aot_function(lambda x: (x * x).sum(), nop)
    >>> x = kiln.tensor([1.0, 2.0], requires_grad=True)
    >>> f(x).backward(); x.grad.tolist()
    [2.0, 4.0]
    >>> (entry,) = f.entries()
    >>> [p.name for p in entry.bw_gm.graph.placeholders]
    ['primals_1', 'tangents_1']
    """

    def __init__(self, fn: Callable, fw_compiler: Compiler, bw_compiler: Compiler | None = None,
                 partition_fn: Callable = default_partition, decompositions: Any = None,
                 inference_compiler: Compiler | None = None, dynamic: Any = None,
                 module: Any = None) -> None:
        for role, c in (("fw_compiler", fw_compiler), ("bw_compiler", bw_compiler),
                        ("inference_compiler", inference_compiler),
                        ("partition_fn", partition_fn)):
            if c is not None:
                _check_callable(role, c)
        if not callable(fn):
            raise ArgumentError(f"aot_function: fn must be callable, got {type(fn).__name__}")
        if fw_compiler is None:
            raise ArgumentError("aot_function: fw_compiler is required")
        self.fn = fn
        self.module = module
        self.fw_compiler = fw_compiler
        self.bw_compiler = bw_compiler or fw_compiler
        self.inference_compiler = inference_compiler or fw_compiler
        self.partition_fn = partition_fn
        self.decompositions = check_decompositions(decompositions)
        self.dynamic = dynamic
        self._cache = GuardedCache()
        self.traces = 0
        # Tensors the function closes over that required grad in an earlier trace.
        self._closures: list[Tensor] = []
        self.__name__ = _name(module if module is not None else fn)
        # kiln.artifacts' compile cache (set by kiln.compile): consulted before compiling.
        self.artifact_cache: Any = None

    # inputs ----------------------------------------------------------------------------
    def _target(self) -> Callable:
        return self.module.forward if self.module is not None else self.fn

    def _snapshot(self) -> StateSnapshot | None:
        return StateSnapshot(self.module) if self.module is not None else None

    def _state(self, snap: StateSnapshot | None = None) -> list[tuple[str, Tensor]]:
        if self.module is None:
            return []
        snap = snap or self._snapshot()
        return list(zip(snap.names, snap.tensors, strict=True))  # type: ignore[union-attr]

    def _flatten(self, args: tuple, kwargs: dict, leaves: list[Any] | None = None,
                 spec: Any = None, snap: StateSnapshot | None = None
                 ) -> tuple[list[Tensor], list[Any], Any, StateSnapshot | None]:
        if leaves is None:
            leaves, spec = flatten_call(args, kwargs)
        if snap is None and self.module is not None:
            snap = self._snapshot()
        state = snap.tensors if snap is not None else []
        flat = state + [x for x in leaves if isinstance(x, Tensor)]
        return flat, leaves, spec, snap

    def _key(self, args: tuple, kwargs: dict, leaves: list[Any], spec: Any,
             snap: StateSnapshot | None, needs_grad: bool) -> tuple:
        dyn = resolve_dynamic(self.dynamic, self._target(), args, kwargs) if self.dynamic \
            else {}
        if snap is None:
            return (spec, needs_grad, (), fast_call_key(leaves, dyn, self.__name__), ())
        return (spec, needs_grad, snap.key(), fast_call_key(leaves, dyn, self.__name__),
                snap.training)

    def _flat_dynamic(self, args: tuple, kwargs: dict, leaves: list[Any], n_state: int
                      ) -> dict[int, dict]:
        """{flat input index: {dim: Dim}} from the user's ``dynamic=``."""
        resolved = resolve_dynamic(self.dynamic, self._target(), args, kwargs)
        positions = [i for i, x in enumerate(leaves) if isinstance(x, Tensor)]
        return {n_state + positions.index(i): dims for i, dims in resolved.items()}

    # calling ---------------------------------------------------------------------------
    def lookup(self, args: tuple, kwargs: dict, leaves: list[Any] | None = None,
               spec: Any = None, snap: StateSnapshot | None = None
               ) -> tuple[InferenceEntry | TrainingEntry, list[Tensor]]:
        """The compiled entry for these arguments (built on a miss) and the flat inputs.

        ``leaves``/``spec`` (the flattened arguments) and ``snap`` (the module's state) may
        be given by a caller that has them already."""
        flat, leaves, spec, snap = self._flatten(args, kwargs, leaves, spec, snap)
        grad_mode = is_grad_enabled()
        needs_grad = grad_mode and (any(t.requires_grad for t in flat) or any(
            t.requires_grad for t in self._closures))
        key = self._key(args, kwargs, leaves, spec, snap, needs_grad)
        entry = self._cache.get(key, flat)  # the first whose guards hold
        if entry is None and self.artifact_cache is not None:
            # kiln.artifacts: a stored entry for this call, found without tracing
            entry = self.artifact_cache.warm_aot(self, flat, leaves, spec, needs_grad)
            if entry is not None:
                self._closures.extend(t for t in entry.program.closure_inputs
                                      if all(t is not c for c in self._closures))
                self._cache.add(key, entry)
        if entry is None:
            state = self._state(snap)
            dyn = self._flat_dynamic(args, kwargs, leaves, len(state))
            program = self._trace(args, kwargs, flat, leaves, spec, state, dyn, needs_grad)
            trainable = program.trainable_constants
            if grad_mode and not needs_grad and trainable:
                # The function closes over tensors that require grad (a loss function using
                # a model): remember them, and trace the joint graph, which lifts them.
                self._closures.extend(t for t in trainable
                                      if all(t is not c for c in self._closures))
                needs_grad = True
                key = self._key(args, kwargs, leaves, spec, snap, needs_grad)
                program = self._trace(args, kwargs, flat, leaves, spec, state, dyn, True)
            entry = self._cache.get(key, flat)
            if entry is None:
                call = CallInfo(spec, {i: x for i, x in enumerate(leaves)
                                       if not isinstance(x, Tensor)},
                                tuple(n for n, _ in state))
                if self.artifact_cache is not None:  # kiln.artifacts: load or build + store
                    entry = self.artifact_cache.aot_entry(self, program, call,
                                                          lambda: self._build(program))
                else:
                    entry = self._build(program)
                entry.call_info = call
                self._cache.add(key, entry)
        closures = entry.program.closure_inputs
        return entry, (flat + list(closures) if closures else flat)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.call(args, kwargs)

    def call(self, args: tuple, kwargs: dict, leaves: list[Any] | None = None, spec: Any = None,
             snap: StateSnapshot | None = None) -> Any:
        """``self(*args, **kwargs)``, reusing a caller's flattened arguments and snapshot."""
        entry, flat = self.lookup(args, kwargs, leaves, spec, snap)
        return run_entry(entry, flat)

    def add_entry(self, key: tuple, entry: InferenceEntry | TrainingEntry) -> None:
        """Put an entry built elsewhere (loaded by ``kiln.artifacts``) under ``key``."""
        self._cache.add(key, entry)

    def key_of(self, args: tuple, kwargs: dict, needs_grad: bool) -> tuple:
        """The in-memory cache key of a call, as :meth:`lookup` forms it."""
        leaves, spec = flatten_call(args, kwargs)
        return self._key(args, kwargs, leaves, spec, self._snapshot(), needs_grad)

    def _call_for_trace(self, leaves: list[Any], spec: Any, state: list
                        ) -> Callable[[list[Tensor]], tuple]:
        n_state = len(state)
        positions = [i for i, x in enumerate(leaves) if isinstance(x, Tensor)]

        def call(tracers: list[Tensor]) -> tuple:
            filled = list(leaves)
            for pos, tr in zip(positions, tracers[n_state:], strict=True):
                filled[pos] = tr
            a, kw = tree_unflatten(spec, filled)
            if self.module is None:
                return self.fn(*a, **kw), {}
            from kiln.aot.module_state import swapped_state

            with swapped_state(self.module, [t for _, t in state], tracers[:n_state]) as new:
                result = self.module(*a, **kw)
            return result, new

        return call

    def _names(self, args: tuple, kwargs: dict, leaves: list[Any], state: list) -> list[str]:
        names = leaf_names(self._target(), args, kwargs)
        user = [n for n, x in zip(names, leaves) if isinstance(x, Tensor)]
        return [n for n, _ in state] + user

    def _trace(self, args: tuple, kwargs: dict, flat: list[Tensor], leaves: list[Any],
               spec: Any, state: list, dyn: dict, needs_grad: bool) -> TracedProgram:
        program = trace_program(
            self._call_for_trace(leaves, spec, state), flat,
            names=self._names(args, kwargs, leaves, state), joint=needs_grad,
            decompositions=self.decompositions, dynamic=dyn, what=self.__name__,
        )
        self.traces += 1
        return program

    def _build(self, program: TracedProgram) -> InferenceEntry | TrainingEntry:
        if not program.joint:
            _debug(f"inference graph of {self.__name__}", program.gm)
            return InferenceEntry(program, _compile(self.inference_compiler, program.gm,
                                                    "inference_compiler"))
        _debug(f"joint graph of {self.__name__}", program.gm)
        fw_gm, bw_gm = self._partition(program)
        _debug(f"forward graph of {self.__name__}", fw_gm)
        _debug(f"backward graph of {self.__name__}", bw_gm)
        fw = _compile(self.fw_compiler, fw_gm, "fw_compiler")
        bw = _compile(self.bw_compiler, bw_gm, "bw_compiler")
        entry = TrainingEntry(program, fw_gm, bw_gm, fw, bw, Function)
        entry.function = _autograd_function(entry)
        return entry

    def _partition(self, program: TracedProgram) -> tuple[GraphModule, GraphModule]:
        hints = program.symbol_hints
        examples = [InputSpec(tuple(_concrete(d, hints) for d in p.meta.shape), p.meta.dtype)
                    for p in program.gm.graph.placeholders]
        name = _name(self.partition_fn)
        parts = self.partition_fn(program.gm, examples,
                                  num_fwd_outputs=program.num_fwd_outputs)
        if not isinstance(parts, (tuple, list)) or len(parts) != 2 or not all(
                isinstance(p, GraphModule) for p in parts):
            got = (f"{len(parts)} values" if isinstance(parts, (tuple, list))
                   else describe(parts))
            raise ArgumentError(f"partition_fn {name!r} returned {got}; expected a pair "
                                "(forward GraphModule, backward GraphModule)")
        fw_gm, bw_gm = parts
        n_in = len(program.gm.graph.placeholders) - len(program.diff_outputs)
        n_fw_in = len(fw_gm.graph.placeholders)
        n_saved = len(fw_gm.graph.outputs) - program.num_fwd_outputs
        checks = [
            (n_fw_in == n_in, f"its forward graph takes {n_fw_in} inputs, expected {n_in} "
                              "(the primals)"),
            (n_saved >= 0, f"its forward graph returns {len(fw_gm.graph.outputs)} values, "
                           f"fewer than the {program.num_fwd_outputs} forward outputs"),
            (len(bw_gm.graph.placeholders) == n_saved + len(program.diff_outputs),
             f"its backward graph takes {len(bw_gm.graph.placeholders)} inputs, expected "
             f"{n_saved} saved + {len(program.diff_outputs)} tangents"),
            (len(bw_gm.graph.outputs) == len(program.grad_inputs),
             f"its backward graph returns {len(bw_gm.graph.outputs)} gradients, expected "
             f"{len(program.grad_inputs)}"),
        ]
        for ok, why in checks:
            if not ok:
                raise ArgumentError(f"partition_fn {name!r}: {why}")
        return fw_gm, bw_gm

    # introspection ---------------------------------------------------------------------
    def cache_info(self) -> dict[str, int]:
        return {"signatures": len(self._cache), "traces": self.traces}

    def entries(self) -> list[InferenceEntry | TrainingEntry]:
        return self._cache.values()


def _concrete(d: Any, hints: dict[str, int]) -> int:
    if isinstance(d, SymInt):
        return d.evaluate({s: hints.get(s, 1) for s in d.free_symbols})
    return int(d)
