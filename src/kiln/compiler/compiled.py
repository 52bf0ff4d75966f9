"""``kiln.compile``: trace on first call, compile with a backend, cache per input signature."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from kiln.aot.entry import run_entry
from kiln.backends import InputSpec, get_backend
from kiln.base.debug import debug_level  # noqa: F401  (kiln.compiler.debug_level)
from kiln.compiler.precompile import (  # noqa: F401  (callers import them from here too)
    load_cache_artifacts,
    load_compiled_function,
    save_cache_artifacts,
)
from kiln.core.autograd.grad_mode import is_grad_enabled
from kiln.core.tensor import Tensor
from kiln.core.trace_state import _STACK as _TRACE_STACK
from kiln.errors import ArgumentError
from kiln.nn.snapshot import StateSnapshot
from kiln.symbolic.guards import GuardedCache, guard_checker
from kiln.tracing.trace import (
    fast_call_key,
    flatten_call,
    is_module,
    resolve_dynamic,
    trace,
)


class CompiledCallable:
    """What :func:`kiln.compile` returns: call it like the original function or module.

    ``cache_info()`` says how many signatures were traced; ``graphs()`` returns the traced
    GraphModules (one per signature).

    When grad mode is on and a tensor input, a module parameter or a tensor the function
    closes over requires grad, calls go through AOT autograd (``kiln.aot``): the joint graph
    is split by min-cut rematerialization (``default_partition`` when networkx is not
    installed) and the backend compiles the forward and the backward graphs, so
    ``loss.backward()`` runs compiled code too. Otherwise nothing changes.

    >>> import kiln
    >>> f = kiln.compile(lambda x: x.sin() * 2.0)
    >>> _ = f(kiln.ones(3)); _ = f(kiln.ones(4))
    >>> len(f.graphs())
    2
    """

    def __init__(self, fn: Callable, backend: Any, dynamic: Any, options: dict) -> None:
        self.fn = fn
        self.backend_name = backend if isinstance(backend, str) else getattr(
            backend, "__name__", "custom")
        self._backend = get_backend(backend)
        self.dynamic = dynamic
        self.options = options
        self._cache = GuardedCache()
        self.traces = 0
        self._aot: Any = None
        self._is_module = is_module(fn)
        # Closed-over tensors seen requiring grad: calls with grad mode on go through AOT.
        self._closures: list[Tensor] = []
        functools.update_wrapper(self, self._target(), updated=())
        # The compile cache (kiln.artifacts) for named backends: a callable has no stable key.
        self._artifacts = compile_cache_binding(fn, backend, dynamic, self.options)
        self._backend_arg = backend

    def _key(self, args: tuple, kwargs: dict, leaves: list[Any] | None = None,
             spec: Any = None, training: tuple = ()) -> tuple:
        if leaves is None:
            leaves, spec = flatten_call(args, kwargs)
            training = StateSnapshot(self.fn).training if is_module(self.fn) else ()
        dyn = resolve_dynamic(self.dynamic, self._target(), args, kwargs) if self.dynamic \
            else {}
        return (spec, is_grad_enabled(), fast_call_key(leaves, dyn, "compile"), training)

    def _target(self) -> Callable:
        return self.fn.forward if is_module(self.fn) else self.fn

    def _wants_grad(self, leaves: list[Any], state: StateSnapshot | None = None) -> bool:
        if not is_grad_enabled():
            return False
        if any(isinstance(leaf, Tensor) and leaf.requires_grad for leaf in leaves):
            return True
        if any(t.requires_grad for t in self._closures):
            return True
        if state is not None:
            return state.params_require_grad()
        return is_module(self.fn) and any(p.requires_grad for p in self.fn.parameters())

    def _aot_function(self) -> Any:
        """The AOT-autograd twin of this function, used for calls that need gradients."""
        if self._aot is None:
            from kiln.aot.runtime import AOTFunction

            def backend_compiler(gm: Any, specs: Any) -> Any:
                return self._backend(gm, specs, **self.options)

            backend_compiler.__name__ = f"backend {self.backend_name!r}"
            self._aot = AOTFunction(self.fn, backend_compiler, partition_fn=_partitioner(),
                                    dynamic=self.dynamic,
                                    module=self.fn if is_module(self.fn) else None)
            self._aot._closures = self._closures  # one list: what either one discovers
            self._aot.artifact_cache = self._artifacts
        return self._aot

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _TRACE_STACK:
            # Called while another function is traced (a compiled helper inside a compiled
            # model): inline it, so the outer graph holds its ops and the outer compile
            # compiles them.
            return self.fn(*args, **kwargs)
        entry, flat = self._lookup(args, kwargs)
        if entry.__class__ is _Entry:
            return entry.finish(entry.compiled(*flat), flat)
        return run_entry(entry, flat)  # an AOT entry (autograd)

    def _lookup(self, args: tuple, kwargs: dict) -> tuple[Any, list[Tensor]]:
        """The compiled entry of a call (traced and compiled on a miss) and its flat inputs:
        an ``_Entry`` without autograd, or the AOT-autograd entry of a training call."""
        leaves, spec = flatten_call(args, kwargs)
        # One walk over the module per call: its state, and the training flags in the key.
        state = StateSnapshot(self.fn) if self._is_module else None
        if self._wants_grad(leaves, state):
            return self._aot_function().lookup(args, kwargs, leaves, spec, state)
        key = self._key(args, kwargs, leaves, spec, state.training if state else ())
        # The key holds the argument structure and the type and exact key of every
        # specialized value (NaN included), so the checks of Signature.flatten_inputs hold;
        # the graph's inputs are the tensor leaves.
        flat = [leaf for leaf in leaves if isinstance(leaf, Tensor)]
        # A key may hold several traces: one per set of assumptions on symbolic sizes (a
        # graph traced with B=3 that assumed B != 1 does not serve B=1: that traces again).
        entry = self._cache.get(key, flat)
        if entry is not None:
            return entry, flat
        return self._miss(args, kwargs, leaves, spec, state, key, flat)

    def _miss(self, args: tuple, kwargs: dict, leaves: list[Any], spec: Any, state: Any,
              key: tuple, flat: list[Tensor]) -> tuple[Any, list[Tensor]]:
        if self._artifacts is not None:
            warm = self._artifacts.warm("compile", leaves, spec, is_grad_enabled(),
                                        self.fn if self._is_module else None)
            if warm is not None and warm[0] == "aot":
                # Stored as a training program (the function closes over trainable
                # tensors): take the AOT path with the tensors the entry binds.
                self._note_closures(warm[1].program.closure_inputs)
                aot = self._aot_function()
                aot.add_entry(aot.key_of(args, kwargs, True), warm[1])
                return aot.lookup(args, kwargs, leaves, spec, state)
            if warm is not None:
                entry = _Entry(*warm[1])
                if entry.admits is None or entry.admits(flat):
                    self._cache.add(key, entry)
                    return entry, flat
        gm = self._trace(args, kwargs)
        trainable = [t for t in gm.constants.values() if t.requires_grad]
        if trainable and is_grad_enabled():
            # The function closes over tensors that need gradients (a module used inside
            # a loss function): only the AOT path gives its outputs a backward.
            self._note_closures(trainable)
            return self._aot_function().lookup(args, kwargs, leaves, spec, state)
        entry = _Entry(gm, self._compile_graph(gm))
        self._cache.add(key, entry)
        return entry, flat

    def _note_closures(self, tensors: Any) -> None:
        self._closures.extend(t for t in tensors if all(t is not c for c in self._closures))

    def aot_compile(self, example_inputs: tuple) -> Any:
        """Compile for ``example_inputs = (args, kwargs)`` without running, and return an
        ``AOTCompiledFunction`` (callable; ``save_compiled_function(path)``, ``serialize()``,
        ``guard_check``): the precompile API of ``torch.compiler``.

        >>> import kiln
        >>> aot = kiln.compile(lambda x: x * 2.0).aot_compile(((kiln.ones(2),), {}))
        >>> aot(kiln.ones(2)).tolist()
        [2.0, 2.0]
        """
        from kiln.artifacts.precompiled import AOTCompiledFunction, signatures_of

        if not (isinstance(example_inputs, tuple) and len(example_inputs) == 2
                and isinstance(example_inputs[0], (tuple, list))
                and isinstance(example_inputs[1], dict)):
            raise ArgumentError(f"aot_compile: expected example_inputs = (args tuple, kwargs "
                                f"dict), got {type(example_inputs).__name__}")
        args, kwargs = tuple(example_inputs[0]), example_inputs[1]
        entry, _ = self._lookup(args, kwargs)
        sigs = signatures_of([entry], []) if entry.__class__ is _Entry else \
            signatures_of([], [entry])
        return AOTCompiledFunction(sigs, fn=self.fn, module=self._module_arg(),
                                   name=self.__name__)

    def save(self, path: Any) -> None:
        """Save every signature traced so far as one precompiled function
        (``kiln.load_compiled(path, module=...)`` loads it; a call runs the signature whose
        guards pass).

        >>> import kiln, os, tempfile
        >>> f = kiln.compile(lambda x: x + 1.0)
        >>> _ = f(kiln.ones(2)); _ = f(kiln.ones(3))
        >>> path = os.path.join(tempfile.mkdtemp(), "f.kiln")
        >>> f.save(path)
        >>> kiln.load_compiled(path)(kiln.zeros(3)).tolist()
        [1.0, 1.0, 1.0]
        """
        from kiln.artifacts.precompiled import AOTCompiledFunction, signatures_of

        aot = self._aot.entries() if self._aot is not None else []
        sigs = signatures_of(self._cache.values(), aot)
        AOTCompiledFunction(sigs, fn=self.fn, module=self._module_arg(),
                            name=self.__name__).save_compiled_function(path)

    def _module_arg(self) -> Any:
        return self.fn if self._is_module else None

    def _trace(self, args: tuple, kwargs: dict) -> Any:
        gm = trace(self.fn, *args, dynamic=self.dynamic, **kwargs)
        self.traces += 1
        if debug_level() >= 1:
            print(f"[kiln] traced {self.__name__ if hasattr(self, '__name__') else 'fn'} "
                  f"for backend {self.backend_name!r}:\n{gm.graph}", file=sys.stderr)
        return gm

    def _compile_graph(self, gm: Any) -> Any:
        if self._artifacts is not None:
            return self._artifacts.graph_entry(gm, lambda: self._compile_uncached(gm))
        return self._compile_uncached(gm)

    def _compile_uncached(self, gm: Any) -> Any:
        specs = [InputSpec(tuple(p.meta.shape), p.meta.dtype) for p in gm.graph.placeholders]
        compiled = self._backend(gm, specs, **self.options)
        if not callable(compiled):
            raise ArgumentError(f"compile: backend {self.backend_name!r} returned "
                                f"{type(compiled).__name__}, which is not callable")
        return compiled

    def _cache_ingredients(self, args: tuple, kwargs: dict) -> Any:
        """The compile-cache ingredients of a call (it is traced, not compiled): what
        ``kiln.artifacts.explain_miss`` compares with the stored entries."""
        from kiln.artifacts.cache import DryRun

        twin = CompiledCallable(self.fn, self._backend_arg, self.dynamic, self.options)
        if twin._artifacts is None:
            return None
        twin._artifacts.dry = True
        try:
            twin(*args, **kwargs)
        except DryRun as run:
            return run.parts
        return None

    def cache_info(self) -> dict[str, int]:
        aot = self._aot.cache_info() if self._aot is not None else {"signatures": 0,
                                                                      "traces": 0}
        return {"signatures": len(self._cache) + aot["signatures"],
                "traces": self.traces + aot["traces"]}

    def graphs(self) -> list[Any]:
        """Traced GraphModules, one per signature (the joint graph for training calls)."""
        aot = [e.program.gm for e in self._aot.entries()] if self._aot is not None else []
        return [e.gm for e in self._cache.values()] + aot


class _Entry:
    """A traced GraphModule and its compiled function, with what a call needs at hand."""

    __slots__ = ("gm", "compiled", "finish", "admits")

    def __init__(self, gm: Any, compiled: Any) -> None:
        self.gm = gm
        self.compiled = compiled
        self.finish = _finisher(gm)
        self.admits = guard_checker(gm.graph)


def _finisher(gm: Any) -> Callable[[list[Any], list[Any]], Any]:
    """``gm.finish`` (write back mutations, rebuild the output pytree, evaluate returned
    sizes) as a function of the outputs and the flat inputs, or a shortcut for a graph that
    returns one tensor or a flat tuple/list of tensors and mutates nothing."""
    sig = gm.signature
    spec = sig.out_spec
    if sig.mutations or sig.input_mutations or sig.static_outputs or spec is None:
        return lambda outs, flat: gm.finish(list(outs), flat)
    if spec.kind == "leaf":
        return lambda outs, flat: outs[0]
    if spec.kind in ("tuple", "list") and all(c.kind == "leaf" for c in spec.children):
        kind = tuple if spec.kind == "tuple" else list
        return lambda outs, flat: kind(outs)
    return lambda outs, flat: gm.finish(list(outs), flat)


def compile_cache_binding(fn: Callable, backend: Any, dynamic: Any, options: dict) -> Any:
    """The compile cache's view of one compiled callable (None for a backend given as a
    callable: it has no name to key entries by)."""
    if not isinstance(backend, str):
        return None
    from kiln.artifacts.cache import Binding

    return Binding(fn, backend, options, dynamic, _partitioner().__name__)


def _partitioner() -> Callable:
    """Min-cut rematerialization when networkx (the ``aot`` extra) is installed; otherwise
    the default partition, so that training through kiln.compile needs NumPy only. (Found,
    not imported: networkx takes ~0.4 s to import, which a warm start from the compile
    cache never needs; the partitioner imports it when it runs.)"""
    import importlib.util

    from kiln.aot.mincut import min_cut_rematerialization_partition
    from kiln.aot.partition import default_partition

    try:
        found = importlib.util.find_spec("networkx") is not None
    except (ImportError, ValueError):  # sys.modules["networkx"] is None: import refused
        found = False
    return min_cut_rematerialization_partition if found else default_partition


def compile(fn_or_module: Callable, backend: Any = "interpret", *, dynamic: Any = None,
            options: dict | None = None) -> CompiledCallable:
    """Compile a function or ``kiln.nn.Module``; it traces on first call per input signature.

    >>> import kiln
    >>> f = kiln.compile(lambda x: (x * 2).relu())
    >>> f(kiln.tensor([-1.0, 3.0])).tolist()
    [0.0, 6.0]
    >>> f.cache_info()
    {'signatures': 1, 'traces': 1}
    """
    if not callable(fn_or_module):
        raise ArgumentError(f"compile: expected a function or module, got "
                            f"{type(fn_or_module).__name__}")
    return CompiledCallable(fn_or_module, backend, dynamic, dict(options or {}))
