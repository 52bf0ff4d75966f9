"""The "interpret" backend: run the graph with the eager NumPy kernels (the reference)."""

from __future__ import annotations

from typing import Any

from kiln.backends import register_backend
from kiln.backends.envelope import read_envelope, write_envelope
from kiln.errors import SerializationError
from kiln.graph.binding import bind_inputs
from kiln.graph.module import GraphModule


class InterpretedFunction:
    """A GraphModule run node by node; autograd records through it like eager code. Inputs
    go by position or by placeholder name, as for every compiled function."""

    backend = "interpret"

    def __init__(self, gm: GraphModule) -> None:
        self.gm = gm

    def __call__(self, *inputs: Any, **named: Any) -> list[Any]:
        if named:
            names = [p.target for p in self.gm.graph.placeholders]
            inputs = bind_inputs(names, inputs, named, "interpreted function")
        return self.gm.forward(*inputs)

    def serialize(self) -> bytes:
        return write_envelope(self.backend, self.gm.serialize())

    @classmethod
    def deserialize(cls, data: bytes) -> InterpretedFunction:
        """The function ``serialize()`` wrote (envelope included).

        >>> import kiln
        >>> fn = compile_interpret(kiln.trace(lambda x: x + 1.0, kiln.ones(2)))
        >>> InterpretedFunction.deserialize(fn.serialize())(kiln.zeros(2))[0].tolist()
        [1.0, 1.0]
        """
        backend, payload = read_envelope(data)
        if backend != cls.backend:
            raise SerializationError(f"InterpretedFunction.deserialize: data is a {backend!r} "
                                     "artifact, expected an 'interpret' one; use "
                                     "kiln.backends.deserialize for any backend")
        return cls._from_payload(payload)

    @staticmethod
    def _from_payload(payload: bytes) -> InterpretedFunction:
        return InterpretedFunction(GraphModule.deserialize(payload))


def compile_interpret(
    gm: GraphModule, example_specs: Any = None, **options: Any
) -> InterpretedFunction:
    """Compile (trivially) for the interpreter; options are not used."""
    return InterpretedFunction(gm)


register_backend("interpret", compile_interpret, InterpretedFunction._from_payload)
