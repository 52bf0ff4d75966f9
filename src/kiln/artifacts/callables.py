"""``BundledAOTAutogradSerializableCallable``: what AOT autograd compiled, as one artifact.

The counterpart of ``torch._functorch``'s bundled AOT-autograd callable. It wraps one
compiled entry (the forward and backward compiled functions and the glue to eager
autograd), is called like the original function (``loss = f(x); loss.backward()``), and
serializes to one container (:mod:`kiln.artifacts.entries`). Loading needs no tracing and
no C compiler; the module whose parameters the program reads is given at load time.

>>> import kiln
>>> from kiln.aot import aot_function
>>> from kiln.artifacts import BundledAOTAutogradSerializableCallable as Bundled
>>> from kiln.backends import get_backend
>>> f = aot_function(lambda x: (x * x).sum(), get_backend("interpret"))
>>> x = kiln.tensor([1.0, 2.0], requires_grad=True)
>>> _ = f(x)
>>> data = Bundled.serialize_compile_artifacts(Bundled(f.entries()[0]))
>>> g = Bundled.deserialize_compile_artifacts(data)
>>> g(x).backward(); x.grad.tolist()
[2.0, 4.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kiln.aot.entry import CallInfo, InferenceEntry, TrainingEntry, run_entry
from kiln.artifacts import entries
from kiln.backends import container
from kiln.backends.serializable import SerializableCallable
from kiln.core.calls import flatten_call
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, GuardError
from kiln.graph.statics import same_static
from kiln.nn.snapshot import StateSnapshot
from kiln.symbolic.sizes import SymInt


class BundledAOTAutogradSerializableCallable(SerializableCallable):
    """Wraps an AOT entry (``TrainingEntry`` or ``InferenceEntry``); unknown attributes
    (``fw``, ``bw``, ``fw_gm``, ``program``...) come from it.

    >>> import kiln
    >>> from kiln.aot import aot_function
    >>> from kiln.backends import get_backend
    >>> f = aot_function(lambda x: x.exp().sum(), get_backend("interpret"))
    >>> _ = f(kiln.zeros(2, requires_grad=True))
    >>> b = BundledAOTAutogradSerializableCallable(f.entries()[0])
    >>> [p.name for p in b.bw_gm.graph.placeholders]  # delegated to the entry
    ['exp', 'tangents_1']
    """

    def __init__(self, compiled_fn: InferenceEntry | TrainingEntry,
                 call_info: CallInfo | None = None, *, fn: Any = None,
                 module: Any = None) -> None:
        if not isinstance(compiled_fn, (InferenceEntry, TrainingEntry)):
            raise ArgumentError(f"BundledAOTAutogradSerializableCallable: expected what AOT "
                                f"autograd compiled (an entry of AOTFunction.entries()), got "
                                f"{type(compiled_fn).__name__}")
        call = call_info or getattr(compiled_fn, "call_info", None)
        if call is None:
            raise ArgumentError("BundledAOTAutogradSerializableCallable: the entry has no "
                                "call_info (it was not made by AOTFunction.lookup); pass "
                                "call_info=")
        self.compiled_fn = compiled_fn
        self.call_info = call
        self.fn = fn
        self.module = module

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "compiled_fn":
            raise AttributeError(name)
        return getattr(self.compiled_fn, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        flat = flat_inputs(self.compiled_fn, self.call_info, args, kwargs, self.module)
        return run_entry(self.compiled_fn, flat)

    @classmethod
    def serialize_compile_artifacts(cls, fn: Any) -> bytes:
        if not isinstance(fn, cls):
            raise ArgumentError(f"serialize_compile_artifacts: expected a {cls.__name__}, got "
                                f"{type(fn).__name__}")
        return entries.aot_entry_bytes(fn.compiled_fn, fn.call_info, fn=fn.fn, module=fn.module)

    @classmethod
    def deserialize_compile_artifacts(cls, data: bytes, *, fn: Any = None,
                                      module: Any = None) -> Callable:
        """Load; tensors the program reads (module state, closed-over parameters) are bound
        from ``module`` (or the live function ``fn``)."""
        what = f"{cls.__name__} artifact"
        art, program, funcs = entries.read_entry(data, what)
        if art.kind != entries.AOT_KIND:
            raise container.ArtifactError(f"{what}: is a {art.kind!r} artifact, expected "
                                          f"{entries.AOT_KIND!r}")
        got = entries.aot_entry_from(art, program, funcs, what, fn=fn, module=module)
        assert got is not None  # strict: unresolvable paths raise
        entry, call = got
        return cls(entry, call, fn=fn, module=module)


def flat_inputs(entry: Any, call: CallInfo, args: tuple, kwargs: dict, module: Any) -> list:
    """The entry's flat inputs for a call, after checking that the call is one the entry
    was compiled for (a GuardError says what differs)."""
    leaves, spec = flatten_call(args, kwargs)
    if spec != call.spec:
        raise GuardError(f"arguments have structure {spec}, but the function was compiled for "
                         f"{call.spec}")
    for i, value in call.statics.items():
        if not same_static(leaves[i], value):
            raise GuardError(f"argument leaf {i} was specialized to {value!r} when compiling, "
                             f"got {leaves[i]!r}")
    state: list[Tensor] = []
    if call.state_names:
        if module is None:
            raise ArgumentError("this compiled module needs its parameters: pass module= "
                                "(a module with the same structure) when loading")
        snap = StateSnapshot(module)
        if tuple(snap.names) != call.state_names:
            raise GuardError(f"module state is {snap.names[:4]}..., compiled for "
                             f"{list(call.state_names[:4])}...")
        state = snap.tensors
    flat = state + [x for x in leaves if isinstance(x, Tensor)]
    graph = entry.program.interface
    check_inputs(graph, flat, entry.program.input_names)
    if entry.admits is not None and not entry.admits(flat):
        raise GuardError("inputs break the compiled program's assumptions: " +
                         "; ".join(str(g) for g in graph.guards))
    closures = entry.program.closure_inputs
    return flat + list(closures) if closures else flat


def check_inputs(graph: Any, flat: list[Tensor], names: tuple[str, ...]) -> None:
    """Dtype and shape of each flat input against its placeholder (symbolic dims: one size
    per symbol, inside its range)."""
    env: dict[str, int] = {}
    for i, (ph, t) in enumerate(zip(graph.placeholders, flat)):
        name = names[i] if i < len(names) else ph.name
        meta = ph.meta
        if t.dtype != meta.dtype or len(t.shape) != len(meta.shape):
            raise GuardError(f"input {name}: compiled for {meta.dtype}"
                             f"{[str(d) for d in meta.shape]}, got {t.dtype}{list(t.shape)}")
        for d, (want, got) in enumerate(zip(meta.shape, t.shape, strict=True)):
            if isinstance(want, SymInt) and want.plain_symbol is not None:
                sym = want.plain_symbol
                dim = graph.symbols.get(sym)
                if env.setdefault(sym, got) != got or (
                        dim is not None and not dim.min <= got <= dim.max):
                    raise GuardError(f"input {name}: dim {d} is {got}, which does not fit "
                                     f"symbol {sym}")
            elif not isinstance(want, SymInt) and want != got:
                raise GuardError(f"input {name}: compiled for shape "
                                 f"{[str(x) for x in meta.shape]}, got {list(t.shape)}")
