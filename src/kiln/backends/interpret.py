"""The "interpret" backend: run the graph with the eager NumPy kernels (the reference)."""

from __future__ import annotations

from typing import Any

from kiln.backends import register_backend
from kiln.backends.envelope import write_envelope
from kiln.graph.module import GraphModule


class InterpretedFunction:
    """A GraphModule run node by node; autograd records through it like eager code."""

    backend = "interpret"

    def __init__(self, gm: GraphModule) -> None:
        self.gm = gm

    def __call__(self, *inputs: Any) -> list[Any]:
        return self.gm.forward(*inputs)

    def serialize(self) -> bytes:
        return write_envelope(self.backend, self.gm.serialize())

    @staticmethod
    def deserialize(payload: bytes) -> InterpretedFunction:
        return InterpretedFunction(GraphModule.deserialize(payload))


def compile_interpret(
    gm: GraphModule, example_specs: Any = None, **options: Any
) -> InterpretedFunction:
    """Compile (trivially) for the interpreter; options are not used."""
    return InterpretedFunction(gm)


register_backend("interpret", compile_interpret, InterpretedFunction.deserialize)
