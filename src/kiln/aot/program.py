"""``TracedProgram``: a traced joint (or inference) graph and the glue the runtime needs.

Its own small module because loading a stored entry needs the record but none of the
tracing machinery of :mod:`kiln.aot.joint`.
"""

from __future__ import annotations

from typing import Any

from kiln.base.pytree import TreeSpec
from kiln.core.tensor import Tensor
from kiln.graph.graph import Graph
from kiln.graph.module import GraphModule


class TracedProgram:
    """A traced joint (or inference) graph and what the runtime needs to call it.

    Flat inputs are the module's parameters and buffers (for ``aot_module``) followed by
    the tensor leaves of the user's arguments. Forward outputs are the user's tensor
    outputs followed by one value per mutated input (``mutated_inputs``).

    A plain class, not a dataclass: building one costs half a millisecond at import, and
    this module is on the load path of every stored entry.
    """

    __slots__ = ("gm", "joint", "num_user_outputs", "out_spec", "static_outputs",
                 "input_names", "mutation_targets", "diff_outputs", "grad_inputs",
                 "symbol_hints", "closure_inputs", "trainable_constants", "_interface")

    def __init__(self, gm: GraphModule, joint: bool, num_user_outputs: int,
                 out_spec: TreeSpec, static_outputs: dict[int, Any],
                 input_names: tuple[str, ...], mutation_targets: tuple[Any, ...] = (),
                 diff_outputs: tuple[int, ...] = (), grad_inputs: tuple[int, ...] = (),
                 symbol_hints: dict[str, int] | None = None,
                 closure_inputs: tuple[Tensor, ...] = (),
                 trainable_constants: tuple[Tensor, ...] = (),
                 interface: Graph | None = None) -> None:
        self.gm = gm
        self.joint = joint
        self.num_user_outputs = num_user_outputs
        self.out_spec = out_spec
        self.static_outputs = static_outputs
        self.input_names = input_names
        # Flat input index (int) or an eager closed-over tensor, one per mutation output.
        self.mutation_targets = mutation_targets
        # Forward outputs (user + mutation positions) that get a tangent, in tangent order.
        self.diff_outputs = diff_outputs
        # Flat inputs whose gradient the joint graph returns, in output order.
        self.grad_inputs = grad_inputs
        self.symbol_hints = {} if symbol_hints is None else symbol_hints
        # Closed-over tensors that require grad, lifted to extra inputs after the flat ones
        # (a joint graph), or kept as constants (an inference graph: ``trainable_constants``).
        self.closure_inputs = closure_inputs
        self.trainable_constants = trainable_constants
        # A loaded program whose graph waits until used: its inputs, decoded already
        self._interface = interface

    def __repr__(self) -> str:
        return (f"TracedProgram(joint={self.joint}, inputs={len(self.input_names)}, "
                f"user_outputs={self.num_user_outputs}, "
                f"mutations={len(self.mutation_targets)}, grad_inputs={self.grad_inputs})")

    @property
    def interface(self) -> Graph:
        """What calling the program checks: a graph whose ``placeholders``, ``symbols`` and
        ``guards`` are the program's (the graph itself, or, for a loaded program whose graph
        is decoded on first use, those parts of it)."""
        return self._interface if self._interface is not None else self.gm.graph

    @property
    def num_fwd_outputs(self) -> int:
        return self.num_user_outputs + len(self.mutation_targets)
