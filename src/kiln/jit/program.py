"""A scripted or traced program as a graph: what ``kiln.jit.trace`` returns, what
``save`` writes and ``kiln.jit.load`` gives back (no Python class of the model needed)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, GuardError, KilnError, SerializationError
from kiln.graph.module import GraphModule
from kiln.io import weights
from kiln.jit import archive


class ScriptProgram:
    """A program with a graph per input signature: callable, printable, savable.

    A program traced for several signatures (a scripted function called with several input
    shapes before ``save``) runs each call on the first of its graphs whose input checks
    pass; a call that fits none is a GuardError that lists why each refused. The views
    (``graph``, ``code``, ``state_dict`` ...) show the first graph.

    >>> import kiln
    >>> p = kiln.jit.trace(lambda x: x.exp() + 1, (kiln.zeros(2),))
    >>> q = kiln.jit.load(p.save_to_buffer(_extra_files={"note.txt": "hi"}))
    >>> q(kiln.zeros(2)).tolist()
    [2.0, 2.0]
    """

    def __init__(self, gm: GraphModule | Sequence[GraphModule]) -> None:
        gms = [gm] if isinstance(gm, GraphModule) else list(gm)
        if not gms or not all(isinstance(g, GraphModule) for g in gms):
            raise ArgumentError("ScriptProgram: expected a GraphModule or a non-empty list of "
                                f"them, got {type(gm).__name__}")
        if len(gms) > archive.MAX_PROGRAMS:
            raise ArgumentError(f"ScriptProgram: at most {archive.MAX_PROGRAMS} signatures, "
                                f"got {len(gms)}")
        self._gms = gms
        self._gm = gms[0]
        self.training = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if len(self._gms) == 1:
            return self._gm(*args, **kwargs)
        refusals = []
        for k, gm in enumerate(self._gms):
            try:  # the input checks run before any computation or write-back
                return gm(*args, **kwargs)
            except GuardError as e:
                refusals.append(f"signature {k}: {e}")
        raise GuardError("no saved signature of this program accepts these arguments:\n  " +
                         "\n  ".join(refusals))

    @property
    def graph(self) -> Any:
        return self._gm.graph

    inlined_graph = graph

    @property
    def graph_module(self) -> GraphModule:
        return self._gm

    @property
    def graph_modules(self) -> list[GraphModule]:
        """One GraphModule per saved input signature (the first is :attr:`graph_module`)."""
        return list(self._gms)

    @property
    def code(self) -> str:
        return self._gm.code

    @property
    def code_with_constants(self) -> tuple[str, dict[str, Tensor]]:
        """The code and the constants it reads (``self.constants[...]``), by key."""
        return self.code, dict(self._gm.constants)

    def dump_to_str(self, code: bool = True, attrs: bool = True, params: bool = True) -> str:
        parts = []
        if code:
            parts.append(self.code)
        if params or attrs:
            parts += [f"{k}: {t.meta}" for k, t in self._gm.constants.items()]
        return "\n".join(parts)

    def dump(self, code: bool = True, attrs: bool = True, params: bool = True) -> None:
        print(self.dump_to_str(code, attrs, params))

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        return iter(self._gm.constants.items())

    def parameters(self) -> Iterator[Tensor]:
        return iter(self._gm.constants.values())

    def state_dict(self) -> dict[str, Tensor]:
        return dict(self._gm.constants)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Copy ``state`` into the first graph's constants, and into the same keys of the
        other signatures' graphs."""
        from kiln.core.autograd.grad_mode import no_grad

        for key in self._gm.constants:
            if key not in state:
                raise ArgumentError(f"load_state_dict: missing key {key!r}")
        for gm in self._gms:
            for key, t in gm.constants.items():
                if key not in state:
                    continue
                with no_grad():
                    t.copy_(state[key] if isinstance(state[key], Tensor) else Tensor._wrap(
                        np.asarray(state[key])))

    def train(self, mode: bool = True) -> ScriptProgram:
        self.training = bool(mode)
        return self

    def eval(self) -> ScriptProgram:
        return self.train(False)

    # saving ------------------------------------------------------------------------------
    def save_to_buffer(self, _extra_files: Mapping[str, Any] | None = None) -> bytes:
        programs = [gm.to_json() for gm in self._gms]
        stored, names = _stored_constants(self._gms)
        # The code of each program as a loader sees it (attributes in JSON order), so that
        # saving a loaded program gives the same bytes.
        codes = [GraphModule.from_json(p, gm.constants).code
                 for p, gm in zip(programs, self._gms, strict=True)]
        return archive.write(programs, weights.save_bytes(stored), codes,
                             dict(_extra_files or {}), names)

    def save(self, path: str | os.PathLike[str],
             _extra_files: Mapping[str, Any] | None = None) -> None:
        from kiln.base.atomic import write_atomic

        write_atomic(path, self.save_to_buffer(_extra_files))

    def __repr__(self) -> str:
        more = f", and {len(self._gms) - 1} more signatures" if len(self._gms) > 1 else ""
        return f"ScriptProgram(\n{self._gm.graph}\n{more})"


def _array(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t._concrete("saving")).reshape(t.shape)


def _stored_constants(gms: list[GraphModule]
                      ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, str]]]:
    """The tensors to store, and for each program its keys -> stored names. The first
    program's constants keep their keys; a further program's constant equal (dtype,
    shape, bytes) to one already stored under the same key shares it, else it is stored as
    ``<k>/<key>``: deterministic, so a loaded program saves to the same bytes."""
    stored = {k: _array(t) for k, t in sorted(gms[0].constants.items())}
    names: dict[str, dict[str, str]] = {"0": {k: k for k in stored}}
    for k, gm in enumerate(gms[1:], start=1):
        mine: dict[str, str] = {}
        for key, t in sorted(gm.constants.items()):
            a = _array(t)
            have = stored.get(key)
            if have is not None and have.dtype == a.dtype and have.shape == a.shape and \
                    np.array_equal(have, a, equal_nan=a.dtype.kind == "f"):
                mine[key] = key
            else:
                mine[key] = f"{k}/{key}"
                stored[mine[key]] = a
        names[str(k)] = mine
    return stored, names


def load(source: Any, _extra_files: dict[str, Any] | None = None) -> ScriptProgram:
    """Load a file written by ``save`` (a path, bytes or a binary buffer).

    Every checksum and the version are checked before anything is built; the program is
    data (graph JSON and safetensors), never imported or evaluated. ``_extra_files`` is
    filled with the stored extra files (all of them if it is empty, else the names it
    holds).

    >>> import kiln
    >>> data = kiln.jit.trace(lambda x: x + 1, kiln.zeros(1)).save_to_buffer({"a.txt": "A"})
    >>> extra = {}
    >>> kiln.jit.load(data, _extra_files=extra)(kiln.zeros(1)).tolist(), extra
    ([1.0], {'a.txt': b'A'})
    """
    data = archive.load_bytes_or_path(source)
    contents = archive.read(data)
    extra = contents.extra
    try:
        arrays, _ = weights.load_bytes(contents.tensors)
        tensors = {k: Tensor._wrap(v) for k, v in arrays.items()}
        gms = []
        used: set[str] = set()
        for k, program in enumerate(contents.programs):
            if not contents.constants:  # one program: it reads every tensor
                consts = dict(tensors)
            else:
                names = contents.constants[str(k)]
                missing = sorted(set(names.values()) - set(tensors))
                if missing:
                    raise SerializationError(f"program {k} names constants {missing[:4]} "
                                             "that the file does not hold")
                consts = {key: tensors[name] for key, name in names.items()}
            gm = GraphModule.from_json(program, consts)
            if set(consts) != set(gm.constants):
                raise SerializationError(f"the tensors do not match the constants of "
                                         f"program {k}")
            used |= {id(t) for t in consts.values()}
            gms.append(gm)
        if len(used) != len(tensors):
            raise SerializationError("the file holds tensors that no program reads")
        rebuilt = ScriptProgram(gms)
        archive.same_bytes(data, rebuilt.save_to_buffer(extra))
    except KilnError as e:
        if isinstance(e, SerializationError):
            raise
        raise SerializationError(f"script file does not describe a valid program: {e}") \
            from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as e:
        raise SerializationError(f"script file does not describe a valid program: "
                                 f"{type(e).__name__}: {e}") from None
    if _extra_files is not None:
        wanted = list(_extra_files) or sorted(extra)
        for name in wanted:
            if name not in extra:
                raise SerializationError(f"_extra_files: the file holds no extra file "
                                         f"{name!r} (it holds {sorted(extra)})")
            _extra_files[name] = extra[name]
    return rebuilt


def trace(fn_or_module: Any, example_inputs: Any) -> ScriptProgram:
    """Trace ``fn_or_module`` on ``example_inputs`` (a tuple, or one tensor) into a program
    (TorchScript's ``torch.jit.trace``); control flow written with ``kiln.cond`` and the
    loops, or in scripted code, is kept.

    >>> import kiln
    >>> kiln.jit.trace(lambda x: x * 2, kiln.ones(2))(kiln.ones(2)).tolist()
    [2.0, 2.0]
    """
    from kiln.tracing.trace import trace as kiln_trace

    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    return ScriptProgram(kiln_trace(fn_or_module, *args))
