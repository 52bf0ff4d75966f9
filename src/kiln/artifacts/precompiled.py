"""``AOTCompiledFunction``: compiled signatures saved to a file and run in another process.

The counterpart of ``torch.compiler``'s precompile API (PyTorch 2.13)::

    aot = kiln.compile(fn, backend="c").aot_compile(((x, y), {}))
    aot.save_compiled_function("step.kiln")
    # another process, no tracing, no C compiler:
    step = kiln.compiler.load_compiled_function("step.kiln", module=model)

The file is a container (kind ``"precompiled"``) whose sections ``entry0``, ``entry1``...
are compile-cache entries (:mod:`kiln.artifacts.entries`), each checked and, when it holds
native code, signature-verified on load. A call runs the first signature whose guards
pass (argument structure, specialized values, dtypes and sizes, symbolic-size guards);
a call that fits none is a GuardError that lists why each one refused it.

Module parameters are bound at load time from ``module=`` (never baked in), so a model
trained after saving runs with its new weights.

>>> import kiln, io
>>> aot = kiln.compile(lambda x: (x * 2.0).relu()).aot_compile(((kiln.ones(3),), {}))
>>> buf = io.BytesIO(aot.serialize())
>>> from kiln.artifacts import load_compiled_function
>>> load_compiled_function(buf)(kiln.tensor([-1.0, 2.0, 3.0])).tolist()
[0.0, 4.0, 6.0]
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

from kiln.aot.entry import run_entry
from kiln.artifacts import entries
from kiln.artifacts.callables import check_inputs, flat_inputs
from kiln.backends import container
from kiln.base.gcpause import gc_paused
from kiln.core.autograd.grad_mode import is_grad_enabled
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, GuardError

KIND = "precompiled"


class Signature:
    """One compiled signature: ``kind`` "aot" (an AOT entry and its call) or "graph"
    (a GraphModule and its compiled function)."""

    __slots__ = ("kind", "entry", "extra")

    def __init__(self, kind: str, entry: Any, extra: Any = None) -> None:
        self.kind = kind
        self.entry = entry
        self.extra = extra  # "aot": CallInfo; "graph": the compiled function

    def __repr__(self) -> str:
        return f"Signature({self.kind!r}, {self.entry!r})"

    def pack(self, fn: Any, module: Any) -> bytes:
        if self.kind == "aot":
            return entries.aot_entry_bytes(self.entry, self.extra, fn=fn, module=module)
        return entries.graph_entry_bytes(self.entry, self.extra, fn=fn, module=module)

    def inputs(self, args: tuple, kwargs: dict, module: Any) -> list[Tensor]:
        """The flat inputs of a call, or a GuardError saying why this signature refuses it."""
        if self.kind == "aot":
            return flat_inputs(self.entry, self.extra, args, kwargs, module)
        gm = self.entry
        if gm.signature is None:
            raise GuardError("the graph has no call signature")
        flat = gm.signature.flatten_inputs(args, kwargs)
        if is_grad_enabled() and any(t.requires_grad for t in flat):
            raise GuardError("compiled without autograd, and an input requires grad")
        names = tuple(p.name for p in gm.graph.placeholders)
        check_inputs(gm.graph, flat, names)
        from kiln.symbolic.guards import guard_checker

        admits = guard_checker(gm.graph)
        if admits is not None and not admits(flat):
            raise GuardError("inputs break: " + "; ".join(str(g) for g in gm.graph.guards))
        return flat

    def run(self, flat: list[Tensor]) -> Any:
        if self.kind == "aot":
            return run_entry(self.entry, flat)
        return self.entry.finish(list(self.extra(*flat)), flat)


class AOTCompiledFunction:
    """Compiled signatures of one function, callable, savable and loadable.

    >>> import kiln
    >>> aot = kiln.compile(lambda x: x.exp()).aot_compile(((kiln.zeros(2),), {}))
    >>> aot(kiln.zeros(2)).tolist(), aot.guard_check(kiln.zeros(5))
    ([1.0, 1.0], False)
    """

    def __init__(self, signatures: list[Signature], *, fn: Any = None, module: Any = None,
                 name: str = "fn") -> None:
        if not signatures:
            raise ArgumentError("AOTCompiledFunction: no compiled signature (call the compiled "
                                "function, or aot_compile, first)")
        self.signatures = signatures
        self.fn = fn
        self.module = module
        self.__name__ = name
        self._check_guards = True

    def _pick(self, args: tuple, kwargs: dict) -> tuple[Signature | None, list, list[str]]:
        reasons = []
        for i, sig in enumerate(self.signatures):
            try:
                return sig, sig.inputs(args, kwargs, self.module), reasons
            except GuardError as e:
                reasons.append(f"signature {i}: {e}")
        return None, [], reasons

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self._check_guards:
            sig = self.signatures[0]
            return sig.run(sig.inputs(args, kwargs, self.module))
        sig, flat, reasons = self._pick(args, kwargs)
        if sig is None:
            raise GuardError(f"{self.__name__}: no compiled signature fits this call ("
                             + "; ".join(reasons) + "); compile it for these inputs")
        return sig.run(flat)

    def guard_check(self, *args: Any, **kwargs: Any) -> bool:
        """Whether some compiled signature accepts this call."""
        return self._pick(args, kwargs)[0] is not None

    def disable_guard_check(self) -> None:
        """Run the first signature without choosing by guards (its own input checks stay:
        a wrong shape is still an error, never a crash)."""
        self._check_guards = False

    def serialize(self) -> bytes:
        """The bytes :meth:`deserialize` and ``load_compiled_function`` read."""
        sections = {f"entry{i}": sig.pack(self.fn, self.module)
                    for i, sig in enumerate(self.signatures)}
        # Signed as a whole when an entry is (native code): the file cannot be edited either.
        signed = any(container.peek_header(b)["signature"] for b in sections.values())
        return container.write(KIND, sections, meta={"name": self.__name__,
                                                     "signatures": len(sections)}, sign=signed)

    def save_compiled_function(self, path: str | os.PathLike) -> None:
        """Write :meth:`serialize` to ``path`` atomically."""
        from kiln.base.atomic import write_atomic  # here: loading never writes

        write_atomic(path, self.serialize())

    @classmethod
    def deserialize(cls, data: bytes, *, module: Any = None) -> AOTCompiledFunction:
        """Load what :meth:`serialize` wrote; ``module`` supplies the parameters."""
        with gc_paused():
            return cls._deserialize(data, module)

    @classmethod
    def _deserialize(cls, data: bytes, module: Any) -> AOTCompiledFunction:
        art = container.read(data, kinds=(KIND,), what="precompiled function")
        sigs = []
        for i, (name, body) in enumerate(art.sections.items()):
            what = f"precompiled function, signature {i}"
            if name != f"entry{i}":
                raise container.ArtifactError(f"{what}: unexpected section {name!r}")
            art_i, program, funcs = entries.read_entry(body, what)
            if art_i.signed and not art.signed:
                raise container.ArtifactError(f"{what}: holds native code, but the file is "
                                              "not signed as a whole (altered)")
            if art_i.kind == entries.AOT_KIND:
                got = entries.aot_entry_from(art_i, program, funcs, what, module=module)
                assert got is not None  # strict
                sigs.append(Signature("aot", got[0], got[1]))
            else:
                pair = entries.graph_entry_from(program, funcs, what, module=module)
                assert pair is not None
                sigs.append(Signature("graph", pair[0], pair[1]))
        name = art.meta.get("name")
        return cls(sigs, module=module, name=name if isinstance(name, str) else "fn")


def load_compiled_function(file: str | os.PathLike | BinaryIO, *,
                           module: Any = None) -> AOTCompiledFunction:
    """Load a precompiled function from a path or a binary file object; ``module`` is the
    module whose parameters the function reads (the one it was compiled with, or one of
    the same structure).

    >>> import kiln, io
    >>> aot = kiln.compile(lambda x: x + 1.0).aot_compile(((kiln.zeros(2),), {}))
    >>> load_compiled_function(io.BytesIO(aot.serialize()))(kiln.ones(2)).tolist()
    [2.0, 2.0]
    """
    if hasattr(file, "read"):
        data = file.read()  # type: ignore[union-attr]
    elif isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as f:
            data = f.read()
    else:
        raise ArgumentError(f"load_compiled_function: file should be a path or a binary file "
                            f"object, got {type(file).__name__}")
    return AOTCompiledFunction.deserialize(data, module=module)


def signatures_of(cache_values: list[Any], aot_entries: list[Any]) -> list[Signature]:
    """Signatures from a compiled callable's traced entries (plain and AOT)."""
    sigs = [Signature("graph", e.gm, e.compiled) for e in cache_values]
    sigs += [Signature("aot", e, e.call_info) for e in aot_entries]
    return sigs

