"""What a backward keeps alive: saved-activation reports (JAX's ``print_saved_residuals``).

Two measurements share one report type:

- :func:`saved_activations` (compiled): the values the forward graph hands to the backward
  graph of an AOT-compiled function, for given example arguments;
- :func:`tape_saved_activations` (eager): what Kiln's eager tape keeps for backward,
  defined as *the tensors referenced by tape nodes that their vjp rule reads* (a rule
  that only looks at an argument's shape does not count), deduplicated by storage (a
  view and its base count once, at the base's size), plus the tensors a custom
  ``kiln.autograd.Function`` saved with ``ctx.save_for_backward``. Which values a vjp
  reads is found by tracing the rule once per (op, attributes, input metas) on tracers.

Both count inputs (parameters, the batch) that the backward reads as saved; the report
splits the total into inputs and activations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kiln.base.pytree import tree_flatten
from kiln.core.autograd.function import AccumulateGrad, BackwardNode, FunctionNode, OutputSlot
from kiln.core.autograd.grad_mode import enable_grad, no_grad
from kiln.core.dtypes import DType
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError
from kiln.graph.node import Node
from kiln.graph.passes import dce
from kiln.symbolic.sizes import SymInt
from kiln.tracing.context import TraceContext
from kiln.tracing.trace import is_module


@dataclass(frozen=True)
class SavedTensor:
    """One saved value: its name, concrete shape, dtype, bytes and where it comes from.

    >>> import kiln
    >>> from kiln.aot import aot_function, nop, saved_activations
    >>> f = aot_function(lambda x: x.exp().sum(), nop)
    >>> (entry,) = saved_activations(f, kiln.ones(3, requires_grad=True))
    >>> entry.name, entry.shape, entry.nbytes, entry.producer, entry.is_input
    ('exp', (3,), 12, 'exp(primals_1)', False)
    """

    name: str
    shape: tuple[int, ...]
    dtype: DType
    nbytes: int
    producer: str
    is_input: bool


def _fmt_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


@dataclass
class SavedActivationsReport:
    """A table of saved tensors; ``str(report)`` prints it, ``total_bytes`` sums it.

    >>> import kiln
    >>> from kiln.aot import aot_function, nop, saved_activations
    >>> f = aot_function(lambda x: (x * x).sum(), nop)
    >>> report = saved_activations(f, kiln.ones(3, requires_grad=True))
    >>> print(report)
    saved for backward by <lambda> (default_partition): 1 saved, 12 B
    name       shape  dtype    bytes  produced by
    primals_1  (3,)   float32     12  input x
    total 12 bytes (12 B): inputs 12 B, activations 0 B
    >>> report.total_bytes, report.input_bytes, len(report)
    (12, 12, 1)
    """

    title: str
    entries: list[SavedTensor] = field(default_factory=list)
    note: str = ""

    @property
    def total_bytes(self) -> int:
        return sum(e.nbytes for e in self.entries)

    @property
    def input_bytes(self) -> int:
        return sum(e.nbytes for e in self.entries if e.is_input)

    @property
    def activation_bytes(self) -> int:
        return self.total_bytes - self.input_bytes

    def __iter__(self) -> Any:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __str__(self) -> str:
        head = ("name", "shape", "dtype", "bytes", "produced by")
        rows = [(e.name, str(e.shape), e.dtype.name, str(e.nbytes), e.producer)
                for e in self.entries]
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head)]

        def line(cells: tuple) -> str:
            return "  ".join(c.rjust(w) if i == 3 else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        out = [f"{self.title}: {len(self.entries)} saved, {_fmt_bytes(self.total_bytes)}"]
        if self.note:
            out.append(self.note)
        out += [line(head)] + [line(r) for r in rows]
        out.append(f"total {self.total_bytes} bytes ({_fmt_bytes(self.total_bytes)}): inputs "
                   f"{_fmt_bytes(self.input_bytes)}, activations "
                   f"{_fmt_bytes(self.activation_bytes)}")
        return "\n".join(out)

    def __repr__(self) -> str:
        return (f"SavedActivationsReport({self.title!r}, {len(self.entries)} tensors, "
                f"{self.total_bytes} bytes)")


# --------------------------------------------------------------------------------------
# compiled functions


def _as_aot(fn: Any) -> Any:
    from kiln.aot.compilers import nop
    from kiln.aot.runtime import AOTFunction

    if isinstance(fn, AOTFunction):
        return fn
    inner = getattr(fn, "_aot_function", None)
    if callable(inner):  # an AOTModule or a kiln.compile'd callable
        return inner()
    if is_module(fn):
        return AOTFunction(fn, nop, module=fn)
    if callable(fn):
        return AOTFunction(fn, nop)
    raise ArgumentError(f"saved_activations: expected a compiled function, module or "
                        f"function, got {type(fn).__name__}")


def _hints(placeholders: list[Node], flat: list[Tensor]) -> dict[str, int]:
    hints: dict[str, int] = {}
    for p, t in zip(placeholders, flat):
        for want, got in zip(p.meta.shape, t.shape):
            if isinstance(want, SymInt) and want.plain_symbol:
                hints[want.plain_symbol] = int(got)
    return hints


def _shape(node: Node, hints: dict[str, int]) -> tuple[int, ...]:
    return tuple(d.evaluate({s: hints.get(s, 1) for s in d.free_symbols})
                 if isinstance(d, SymInt) else int(d) for d in node.meta.shape)


def _view_base(node: Node) -> Node | None:
    """The placeholder ``node`` is, or is a movement-only view of (``w.T``); else None."""
    from kiln.core.prims.registry import REGISTRY

    while node.op == "call" and REGISTRY[node.target].is_movement and \
            REGISTRY[node.target].name != "pad" and len(node.inputs) == 1:
        node = node.inputs[0]
    return node if node.op == "placeholder" else None


def saved_activations(compiled_fn: Any, *args: Any, **kwargs: Any) -> SavedActivationsReport:
    """Report what ``compiled_fn`` saves for backward when called on these arguments.

    ``compiled_fn`` is an ``aot_function``/``aot_module`` result, a ``kiln.compile``'d
    function or module, or a plain function/module (analysed with ``default_partition``).
    Building the entry traces and compiles like a call would; nothing is executed.

    >>> import kiln
    >>> from kiln.aot import aot_function, nop, saved_activations
    >>> f = aot_function(lambda x, w: (x @ w).relu().sum(), nop)
    >>> r = saved_activations(f, kiln.ones(4, 3), kiln.ones(3, 2, requires_grad=True))
    >>> [(e.name, e.shape, e.nbytes) for e in r]
    [('primals_1', (4, 3), 48), ('relu', (4, 2), 32)]
    >>> r.total_bytes
    80
    """
    from kiln.aot.runtime import InferenceEntry

    aot = _as_aot(compiled_fn)
    with enable_grad():
        entry, flat = aot.lookup(args, kwargs)
    title = f"saved for backward by {aot.__name__}"
    if isinstance(entry, InferenceEntry):
        return SavedActivationsReport(title, [], note="no input requires grad: nothing is "
                                                      "saved (inference graph only)")
    fw = entry.fw_gm.graph
    placeholders = fw.placeholders
    hints = _hints(placeholders, flat)
    names = entry.program.input_names
    index = {p: i for i, p in enumerate(placeholders)}
    rows = []
    for n in fw.outputs[entry.program.num_fwd_outputs:]:
        shape = _shape(n, hints)
        nbytes = int(np.prod(shape, dtype=np.int64)) * n.meta.dtype.np_dtype.itemsize
        base = _view_base(n)
        if n.op == "placeholder":
            producer = f"input {names[index[n]]}"
        else:
            producer = f"{n.target}({', '.join(i.name for i in n.inputs)})"
            if base is not None:
                producer += f", a view of input {names[index[base]]}"
        rows.append(SavedTensor(n.name, shape, n.meta.dtype, nbytes, producer,
                                base is not None))
    partition = getattr(aot.partition_fn, "__name__", "partition_fn")
    return SavedActivationsReport(f"{title} ({partition})", rows)


# --------------------------------------------------------------------------------------
# the eager tape


_READS: dict[Any, tuple[frozenset[int], bool]] = {}


def _reads_key(node: BackwardNode) -> Any:
    args = tuple((tuple(a.shape), a.dtype) if isinstance(a, Tensor) else ("scalar", a)
                 for a in node._args)
    return (node.op.name, repr(sorted(node.attrs.items())), args,
            tuple(n is not None for n in node.next))


def vjp_reads(node: BackwardNode) -> tuple[frozenset[int], bool]:
    """(indices of the arguments, reads-its-output) that ``node``'s vjp rule reads."""
    key = _reads_key(node)
    hit = _READS.get(key)
    if hit is not None:
        return hit
    ctx = TraceContext()
    with ctx, no_grad():
        targs: list[Any] = []
        for i, a in enumerate(node._args):
            if isinstance(a, Tensor):
                tr = ctx.placeholder(f"arg{i}", a.meta)
                tr.requires_grad = node.next[i] is not None
                targs.append(tr)
            else:
                targs.append(a)
        out = ctx.placeholder("out", node._out.meta)
        g = ctx.placeholder("grad", node._out.meta)
        fake = BackwardNode(node.op, tuple(targs), node.attrs, out)
        grads = node.op.vjp(fake, g)
        ctx.graph.output([ctx.node_of(x) for x in grads if isinstance(x, Tensor)])
    dce(ctx.graph)
    read_args = frozenset(i for i, a in enumerate(targs)
                          if isinstance(a, Tensor) and a._node.users)
    result = (read_args, bool(out._node.users))
    _READS[key] = result
    return result


def _storage(t: Tensor) -> np.ndarray:
    root = t._data
    while isinstance(root.base, np.ndarray):
        root = root.base
    return root  # type: ignore[return-value]


def tape_saved_activations(fn: Callable, *args: Any, **kwargs: Any) -> SavedActivationsReport:
    """Run ``fn`` eagerly with grad and report what its tape keeps for backward.

    See the module docstring for the exact definition.

    >>> import kiln
    >>> from kiln.aot import tape_saved_activations
    >>> w = kiln.ones(3, 2, requires_grad=True)
    >>> r = tape_saved_activations(lambda x: (x @ w).relu().sum(), kiln.ones(4, 3))
    >>> sorted((e.shape, e.is_input) for e in r)  # x (matmul's vjp for w) and relu's output
    [((4, 2), False), ((4, 3), True)]
    """
    with enable_grad():
        result = fn(*args, **kwargs)
    roots = [t._grad_fn for t in tree_flatten(result)[0]
             if isinstance(t, Tensor) and t._grad_fn is not None]
    # The tape of ``fn`` ends at its inputs: history recorded before the call is not its.
    arg_tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, Tensor)]
    boundary = {id(t._grad_fn) for t in arg_tensors if t._grad_fn is not None}
    inputs = {id(_storage(t)) for t in arg_tensors if t._data is not None}
    saved: dict[int, tuple[Tensor, str]] = {}

    def keep(t: Tensor | None, producer: str) -> None:
        if t is not None and t._data is not None:
            saved.setdefault(id(_storage(t)), (t, producer))

    seen: set[int] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if isinstance(node, AccumulateGrad) and node.leaf._data is not None:
            inputs.add(id(_storage(node.leaf)))  # a parameter or input leaf
        if node is None or id(node) in seen or id(node) in boundary or \
                isinstance(node, AccumulateGrad):
            continue
        seen.add(id(node))
        stack.extend(node.next)
        if isinstance(node, BackwardNode):
            read_args, read_out = vjp_reads(node)
            for i in sorted(read_args):
                keep(node._args[i], _producer(node._args[i]))
            if read_out:
                keep(node._out, node.op.name)
        elif isinstance(node, FunctionNode):
            for t in node.ctx._saved:
                keep(t, _producer(t) if t is not None else "")
        elif not isinstance(node, OutputSlot):  # pragma: no cover - future node kinds
            raise ArgumentError(f"tape_saved_activations: unknown tape node {node!r}")
    rows = []
    for k, (key, (t, producer)) in enumerate(saved.items()):
        root = _storage(t)
        # A view of a leaf (w.T read by matmul's vjp) shares the leaf's storage: an input.
        is_input = t._grad_fn is None or key in inputs
        rows.append(SavedTensor(f"t{k}", tuple(root.shape), t.dtype, int(root.nbytes),
                                "input" if is_input else producer, is_input))
    name = getattr(fn, "__name__", type(fn).__name__)
    return SavedActivationsReport(f"saved by the eager tape of {name}", rows)


def _producer(t: Tensor) -> str:
    fn = t._grad_fn
    if fn is None:
        return "input"
    return fn.op.name if isinstance(fn, BackwardNode) else fn.name
