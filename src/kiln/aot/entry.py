"""The runtime of one compiled entry: run it, glue its backward to eager autograd.

What :mod:`kiln.aot.runtime` builds when it traces, and what :mod:`kiln.artifacts` rebuilds
when it loads a stored entry. Kept apart from the tracing runtime so a process that only
loads and runs compiled entries imports no tracer, partitioner or compiler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from kiln.aot.program import TracedProgram
from kiln.core.autograd.function import Function, FunctionCtx, _fresh_output
from kiln.core.autograd.grad_mode import is_grad_enabled, no_grad
from kiln.core.tensor import Tensor
from kiln.errors import AutogradError, BackendError
from kiln.graph.module import GraphModule, rebuild_outputs
from kiln.symbolic.guards import guard_checker, symbol_values
from kiln.symbolic.sizes import contains_symbolic


def _out_shape(prog: TracedProgram) -> Any:
    """How to rebuild the result from the user outputs without the pytree walk: "leaf" for
    one tensor, ``tuple``/``list`` for a flat sequence of tensors, None otherwise."""
    spec = prog.out_spec
    if prog.static_outputs or spec is None:
        return None
    if spec.kind == "leaf":
        return "leaf"
    if spec.kind in ("tuple", "list") and all(c.kind == "leaf" for c in spec.children):
        return tuple if spec.kind == "tuple" else list
    return None


class _Entry:
    """What every call of an entry reads about its ``program``, worked out once.

    Entries are plain classes, not dataclasses: each dataclass costs half a millisecond at
    import, and this module is on the load path of every stored entry."""

    program: TracedProgram

    def _derive(self) -> None:
        prog = self.program
        self.out_shape = _out_shape(prog)
        self.admits = guard_checker(prog.interface)
        self.symbolic_outputs = contains_symbolic(prog.static_outputs)


class InferenceEntry(_Entry):
    """An inference graph's compiled function (no autograd)."""

    def __init__(self, program: TracedProgram, compiled: Callable) -> None:
        self.program = program
        self.compiled = compiled
        self._derive()

    def __repr__(self) -> str:
        return f"InferenceEntry({self.program!r})"

    def run(self, flat: list[Tensor]) -> list[Tensor]:
        outs = list(self.compiled(*flat))
        _check_count(outs, self.program.num_fwd_outputs, "inference graph")
        return outs


class TrainingEntry(_Entry):
    """The forward and backward graphs and their compiled functions; ``function`` is the
    autograd Function whose backward runs the compiled backward."""

    def __init__(self, program: TracedProgram, fw_gm: GraphModule, bw_gm: GraphModule,
                 fw: Callable, bw: Callable, function: type) -> None:
        self.program = program
        self.fw_gm = fw_gm
        self.bw_gm = bw_gm
        self.fw = fw
        self.bw = bw
        self.function = function
        self._derive()

    def __repr__(self) -> str:
        return f"TrainingEntry({self.program!r})"

    @property
    def num_saved(self) -> int:
        return arity(self.fw, self.fw_gm)[1] - self.program.num_fwd_outputs

    def run(self, flat: list[Tensor]) -> list[Tensor]:
        return list(self.function.apply(*flat))


def arity(compiled: Any, gm: GraphModule) -> tuple[int, int]:
    """(inputs, outputs) of a compiled graph: the compiled function's own counts when it has
    them (a C function's plan: a graph it defers stays undecoded), else the graph's."""
    n_in, n_out = getattr(compiled, "num_inputs", None), getattr(compiled, "num_outputs", None)
    if isinstance(n_in, int) and isinstance(n_out, int):
        return n_in, n_out
    return len(gm.graph.placeholders), len(gm.graph.outputs)


def _check_count(outs: list, want: int, what: str) -> None:
    if len(outs) != want:
        raise BackendError(f"compiled {what} returned {len(outs)} values, expected {want}")


def _contiguous(g: Tensor) -> Tensor:
    """A C-contiguous tangent for the compiled backward (``.sum().backward()`` sends a
    broadcast view). Grad mode is off here, so a plain NumPy copy does what ``contiguous()``
    does, without an op dispatch."""
    data = g._data
    if data is None:
        return g.contiguous()
    return g if data.flags.c_contiguous else Tensor._wrap(np.ascontiguousarray(data))


def _autograd_function(entry: TrainingEntry) -> type:
    """The custom autograd node whose backward runs the compiled backward graph."""
    prog = entry.program
    n_fwd = prog.num_fwd_outputs
    diff = prog.diff_outputs
    n_saved = entry.num_saved

    non_diff = [j for j in range(n_fwd) if j not in diff]
    n_grads = len(prog.grad_inputs)

    def forward(ctx: FunctionCtx, *flat: Tensor) -> tuple:
        outs = list(entry.fw(*flat))
        _check_count(outs, n_fwd + n_saved, "forward graph")
        seen: set[int] = set()
        for j in range(n_fwd):
            # One object per output: grad_fn slots (and non-differentiable marks) go by
            # identity, and a graph may return one value twice.
            if id(outs[j]) in seen:
                outs[j] = _fresh_output(outs[j])
            seen.add(id(outs[j]))
        ctx.save_for_backward(*outs[n_fwd:])
        for j in non_diff:
            ctx.mark_non_differentiable(outs[j])
        return tuple(outs[:n_fwd])

    def backward(ctx: FunctionCtx, *grads: Tensor) -> tuple:
        if is_grad_enabled():
            raise AutogradError(
                "double backward (create_graph=True) through an AOT-compiled function is not "
                "supported: its backward is a compiled graph. Differentiate the eager "
                "function instead"
            )
        tangents = [_contiguous(grads[j]) for j in diff]
        res = list(entry.bw(*ctx.saved_tensors, *tangents))
        _check_count(res, n_grads, "backward graph")
        out: list[Any] = [None] * len(ctx.needs_input_grad)
        for i, g in zip(prog.grad_inputs, res, strict=True):
            out[i] = g
        return tuple(out)

    return type("CompiledFunction", (Function,), {
        "forward": staticmethod(forward), "backward": staticmethod(backward),
    })


def run_entry(entry: InferenceEntry | TrainingEntry, flat: list[Tensor]) -> Any:
    """Run a compiled entry on its flat inputs: write mutated inputs back, rebuild the
    result pytree."""
    outs = entry.run(flat)
    prog = entry.program
    n_user = prog.num_user_outputs
    if prog.mutation_targets:
        with no_grad():
            for target, value in zip(prog.mutation_targets, outs[n_user:], strict=True):
                dest = flat[target] if isinstance(target, int) else target
                dest.copy_(value.detach())
    shape = entry.out_shape
    if shape == "leaf":
        return outs[0]
    if shape is not None:
        return shape(outs[:n_user])
    env = symbol_values(prog.interface.placeholders, flat) if entry.symbolic_outputs \
        else None
    return rebuild_outputs(prog.out_spec, prog.static_outputs, outs[:n_user], env)


class CallInfo:
    """The call an entry was traced for: the argument structure (``spec`` of ``(args,
    kwargs)``), the specialized non-tensor leaves (leaf index -> value) and the names of
    the module state inputs that come first among the flat inputs."""

    __slots__ = ("spec", "statics", "state_names")

    def __init__(self, spec: Any, statics: dict[int, Any], state_names: tuple[str, ...]
                 ) -> None:
        self.spec = spec
        self.statics = statics
        self.state_names = state_names

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CallInfo):
            return NotImplemented
        return (self.spec, self.statics, self.state_names) == \
            (other.spec, other.statics, other.state_names)

    __hash__ = None  # type: ignore[assignment]  (statics is a dict)

    def __repr__(self) -> str:
        return (f"CallInfo(spec={self.spec!r}, statics={self.statics!r}, "
                f"state_names={self.state_names!r})")
