"""A scripted or traced program as a graph: what ``kiln.jit.trace`` returns, what
``save`` writes and ``kiln.jit.load`` gives back (no Python class of the model needed)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, KilnError, SerializationError
from kiln.graph.module import GraphModule
from kiln.io import weights
from kiln.jit import archive


class ScriptProgram:
    """A program with a graph: callable, printable, savable.

    >>> import kiln
    >>> p = kiln.jit.trace(lambda x: x.exp() + 1, (kiln.zeros(2),))
    >>> q = kiln.jit.load(p.save_to_buffer(_extra_files={"note.txt": "hi"}))
    >>> q(kiln.zeros(2)).tolist()
    [2.0, 2.0]
    """

    def __init__(self, gm: GraphModule) -> None:
        self._gm = gm
        self.training = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._gm(*args, **kwargs)

    @property
    def graph(self) -> Any:
        return self._gm.graph

    inlined_graph = graph

    @property
    def graph_module(self) -> GraphModule:
        return self._gm

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
        from kiln.core.autograd.grad_mode import no_grad

        for key, t in self._gm.constants.items():
            if key not in state:
                raise ArgumentError(f"load_state_dict: missing key {key!r}")
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
        program = self._gm.to_json()
        # The code of the program as a loader sees it (attributes in JSON order), so that
        # saving a loaded program gives the same bytes.
        code = GraphModule.from_json(program, self._gm.constants).code
        return archive.write(program, _tensor_bytes(self._gm), code, dict(_extra_files or {}))

    def save(self, path: str | os.PathLike[str],
             _extra_files: Mapping[str, Any] | None = None) -> None:
        from kiln.base.atomic import write_atomic

        write_atomic(path, self.save_to_buffer(_extra_files))

    def __repr__(self) -> str:
        return f"ScriptProgram(\n{self._gm.graph}\n)"


def _tensor_bytes(gm: GraphModule) -> bytes:
    arrays = {k: np.ascontiguousarray(t._concrete("saving")).reshape(t.shape)
              for k, t in sorted(gm.constants.items())}
    return weights.save_bytes(arrays)


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
    program, tensors, code, extra = archive.read(data)
    try:
        arrays, _ = weights.load_bytes(tensors)
        gm = GraphModule.from_json(program, {k: Tensor._wrap(v) for k, v in arrays.items()})
        if set(arrays) != set(gm.constants):
            raise SerializationError("the tensors do not match the program's constants")
        rebuilt = ScriptProgram(gm)
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
    del code  # for people only: the rebuilt bytes already showed it is the program's code
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
