"""``kiln.export``: trace a function or module once, with declared dynamic dims, into an
:class:`ExportedProgram` (graph, signature, state, range constraints).

Export refuses a program that does not keep a declared dim dynamic: every guard the trace
records on a declared dim (``batch == 8`` from a reshape, ``seq != 1`` from a squeeze,
``a == b`` from adding two tensors declared with independent dims) is a
:class:`ConstraintViolationError` naming the dim, the guard, the source line that made it,
and the fix (a narrower range, one shared Dim, or a static dim).

>>> import kiln
>>> ep = kiln.export(lambda x: (x * 2).sum(1), (kiln.ones(4, 3),),
...                  dynamic_shapes={"x": {0: kiln.Dim("batch", min=1, max=64)}})
>>> ep.range_constraints
{'batch': (1, 64)}
>>> ep.module()(kiln.ones(7, 3)).shape
(7,)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, TraceError
from kiln.export.dims import resolve_dynamic_shapes
from kiln.graph.module import GraphModule
from kiln.symbolic.guards import Guard
from kiln.symbolic.sizes import SymInt
from kiln.tracing.trace import is_module, leaf_names, trace_leaves


class ConstraintViolationError(TraceError):
    """A dim declared dynamic was specialized by the program (see the module docstring)."""


@dataclass(frozen=True)
class ExportGraphSignature:
    """Who is who among the graph's inputs and outputs.

    ``user_inputs``: the placeholders, in flat argument order; ``parameters`` and
    ``buffers``: the state's keys (lifted as graph constants); ``user_outputs``: how many
    tensor outputs the caller sees; ``mutated_buffers``: buffers the program writes (their
    new values are the last graph outputs); ``in_spec`` / ``out_spec``: the pytree
    structures of ``(args, kwargs)`` and of the result.
    """

    user_inputs: tuple[str, ...]
    parameters: tuple[str, ...]
    buffers: tuple[str, ...]
    user_outputs: int
    mutated_buffers: tuple[str, ...]
    in_spec: Any
    out_spec: Any

    def __str__(self) -> str:
        return "\n".join([
            f"  user inputs: {', '.join(self.user_inputs) or '-'}",
            f"  parameters: {', '.join(self.parameters) or '-'}",
            f"  buffers: {', '.join(self.buffers) or '-'}",
            f"  user outputs: {self.user_outputs}",
            f"  mutated buffers: {', '.join(self.mutated_buffers) or '-'}",
            f"  in spec: {self.in_spec}",
            f"  out spec: {self.out_spec}",
        ])


class ExportedProgram:
    """A traced program with its signature, state and range constraints.

    ``graph_module`` runs it (the NumPy interpreter); ``graph`` is its graph; ``state_dict``
    holds parameters and buffers by name, ``constants`` the other tensors the function
    closed over; ``range_constraints`` maps each dynamic dim to its ``(min, max)``.
    """

    def __init__(self, graph_module: GraphModule, graph_signature: ExportGraphSignature,
                 range_constraints: dict[str, tuple[int, int]]) -> None:
        self.graph_module = graph_module
        self.graph_signature = graph_signature
        self.range_constraints = dict(range_constraints)

    @property
    def graph(self) -> Any:
        return self.graph_module.graph

    @property
    def state_dict(self) -> dict[str, Tensor]:
        keys = self.graph_signature.parameters + self.graph_signature.buffers
        return {k: self.graph_module.constants[k] for k in keys}

    @property
    def constants(self) -> dict[str, Tensor]:
        state = set(self.graph_signature.parameters + self.graph_signature.buffers)
        return {k: t for k, t in self.graph_module.constants.items() if k not in state}

    def module(self) -> Callable[..., Any]:
        """A callable taking the original ``*args, **kwargs``: checks the structure, dtypes,
        shapes and dim ranges (GuardError naming the input), runs, returns the result
        pytree.

        >>> import kiln
        >>> ep = kiln.export(lambda x: x + 1, (kiln.ones(2, 3),),
        ...                  dynamic_shapes=({0: kiln.Dim("n", min=1, max=4)},))
        >>> ep.module()(kiln.ones(5, 3))
        Traceback (most recent call last):
        ...
        kiln.errors.GuardError: input x: dim 0 (n) must be in [1, 4], got 5
        """
        gm = self.graph_module

        def run(*args: Any, **kwargs: Any) -> Any:
            return gm(*args, **kwargs)

        run.__doc__ = f"The exported program; signature:\n{self.graph_signature}"
        return run

    def __str__(self) -> str:
        ranges = ", ".join(f"{k}: [{lo}, {hi}]" for k, (lo, hi) in
                           sorted(self.range_constraints.items())) or "-"
        return "\n".join([
            "ExportedProgram:",
            *("    " + line for line in self.graph_module.code.strip().splitlines()),
            "Graph signature:",
            str(self.graph_signature),
            f"Range constraints: {ranges}",
        ])

    __repr__ = __str__


def _guard_fix(guard: Guard, dims: dict[str, Any], hints: dict[str, int]) -> str:
    """A suggested fix for a guard on declared dims."""
    syms = sorted(guard.free_symbols)
    if guard.op == "==" and len(syms) == 2 and isinstance(guard.lhs, SymInt) and \
            isinstance(guard.rhs, SymInt) and guard.lhs.plain_symbol and \
            guard.rhs.plain_symbol:
        a, b = guard.lhs.plain_symbol, guard.rhs.plain_symbol
        return (f"the program needs {a} == {b}: declare both dims with one Dim "
                f"(e.g. use {a!r} for both)")
    if len(syms) == 1:
        sym = syms[0]
        dim = dims[sym]
        hint = hints.get(sym)
        if guard.op == "==":
            text = (f"the program only works for {sym} = {hint}: make that dim static "
                    f"(None in dynamic_shapes)")
            if hint is not None and hint <= 1:
                text += f", or export with an example size of at least 2 for {sym}"
            return text
        plain = guard.lhs.plain_symbol if isinstance(guard.lhs, SymInt) else None
        if plain == sym and isinstance(guard.rhs, int):
            c = guard.rhs
            lo, hi = dim.min, dim.max
            if guard.op == "!=":
                lo, hi = (c + 1, hi) if c <= lo else (lo, c - 1) if c >= hi else (lo, hi)
            elif guard.op == ">":
                lo = c + 1
            elif guard.op == ">=":
                lo = c
            elif guard.op == "<":
                hi = c - 1
            elif guard.op == "<=":
                hi = c
            if (lo, hi) != (dim.min, dim.max):
                return f"narrow the range: Dim({sym!r}, min={lo}, max={hi})"
    return ("the program assumes this for every size; narrow the dim's range or make it "
            "static")


def check_constraints(gm: GraphModule, dims: dict[str, Any]) -> None:
    """Raise :class:`ConstraintViolationError` for every guard on a declared dim."""
    problems = []
    for guard in gm.graph.guards:
        hit = sorted(guard.free_symbols & set(dims))
        if not hit:
            continue
        where = f"\n    at {guard.where}" if guard.where else ""
        problems.append(f"- dim {', '.join(hit)} declared dynamic ("
                        f"{', '.join(repr(dims[s]) for s in hit)}), but the program assumes "
                        f"{guard}{where}\n    fix: {_guard_fix(guard, dims, gm.graph.hints)}")
    if problems:
        raise ConstraintViolationError("kiln.export: a dynamic dim was specialized:\n" +
                                       "\n".join(problems))


def export(f: Callable, args: tuple, kwargs: dict | None = None, *,
           dynamic_shapes: Any = None) -> ExportedProgram:
    """Trace ``f(*args, **kwargs)`` into an :class:`ExportedProgram`; ``dynamic_shapes``
    (torch.export's forms, see :mod:`kiln.export.dims`) marks dims dynamic.

    >>> import kiln
    >>> net = kiln.nn.Linear(3, 2)
    >>> ep = kiln.export(net, (kiln.ones(5, 3),),
    ...                  dynamic_shapes={"input": (kiln.Dim("batch"), None)})
    >>> ep.graph_signature.parameters
    ('weight', 'bias')
    >>> ep.module()(kiln.ones(9, 3)).shape
    (9, 2)
    """
    if not isinstance(args, tuple):
        raise ArgumentError(f"kiln.export: args must be a tuple of arguments, got "
                            f"{type(args).__name__} (write (x,) for one argument)")
    kwargs = dict(kwargs or {})
    if not isinstance(kwargs, dict):
        raise ArgumentError(f"kiln.export: kwargs must be a dict, got {type(kwargs).__name__}")
    module = is_module(f)
    target = f.forward if module else f
    if not callable(target):
        raise ArgumentError(f"kiln.export: f must be callable, got {type(f).__name__}")
    dyn = resolve_dynamic_shapes(target, args, kwargs, dynamic_shapes)
    gm = trace_leaves(f, args, kwargs, dyn)
    declared = {d.name: d for dims in dyn.values() for d in dims.values()}
    check_constraints(gm, declared)
    parameters: tuple[str, ...] = ()
    buffers: tuple[str, ...] = ()
    if module:
        parameters = tuple(k for k, _ in f.named_parameters() if k in gm.constants)
        buffers = tuple(k for k, _ in f.named_buffers() if k in gm.constants)
    sig = gm.signature
    assert sig is not None
    n_out = len(gm.graph.outputs) - len(sig.mutations) - len(sig.input_mutations)
    if sig.input_mutations:
        names = leaf_names(target, args, kwargs)
        raise ArgumentError("kiln.export: the program writes to its input(s) "
                            f"{[names[sig.tensor_positions[k]] for k in sig.input_mutations]} "
                            "in place; an exported program may only update its buffers")
    signature = ExportGraphSignature(
        user_inputs=tuple(p.target for p in gm.graph.placeholders), parameters=parameters,
        buffers=buffers, user_outputs=n_out, mutated_buffers=tuple(sig.mutations),
        in_spec=sig.in_spec, out_spec=sig.out_spec)
    ranges = {name: (d.min, d.max) for name, d in sorted(gm.graph.symbols.items())}
    return ExportedProgram(gm, signature, ranges)

