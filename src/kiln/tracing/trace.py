"""``kiln.trace``: run a function on tracer tensors and record a GraphModule.

What becomes what:

- tensor leaves of the (pytree) arguments become placeholders, named after the parameters
  (``x``, ``batch_0``, ``inputs_key``);
- non-tensor leaves (ints, strings, None...) are specialized: baked into the graph and checked
  on every call (a different value raises a GuardError that says to re-trace); only plain
  values are accepted (see ``kiln.graph.statics``);
- tensors the function closes over, and a module's parameters and buffers, are lifted as
  graph **constants** keyed by their qualified names (``fc1.weight``); the GraphModule holds
  the very same Tensor objects, so optimizer updates are seen by the next call.
  (AOT autograd lifts parameters to inputs instead: see ``kiln.aot``.)
- in-place writes to such constants (BatchNorm running stats), and to tensor arguments
  (``x.add_(1)``, ``x[0] = v``), become extra graph outputs that the GraphModule (or the
  compiled function) writes back into those tensors after each call, as eager code would
  have changed them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from kiln.base.pytree import tree_flatten, tree_unflatten
from kiln.core.calls import flatten_call, is_module  # noqa: F401  (re-exported)
from kiln.core.prims.registry import TensorMeta
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, TraceError
from kiln.graph.module import GraphModule, Signature
from kiln.graph.statics import EXACT, static_key
from kiln.symbolic.sizes import Dim, SymInt
from kiln.tracing.context import TraceContext


def _arg_names(fn: Callable, args: tuple, kwargs: dict) -> list[str]:
    """A readable base name for each top-level argument, in flatten order."""
    try:
        sig = inspect.signature(fn)
        bound = sig.bind(*args, **kwargs)
        names = []
        pos = list(sig.parameters)
        for i in range(len(args)):
            p = pos[min(i, len(pos) - 1)]
            kind = sig.parameters[p].kind
            names.append(f"{p}_{i}" if kind == inspect.Parameter.VAR_POSITIONAL else p)
        _ = bound
        return names + sorted(kwargs)
    except (TypeError, ValueError):
        return [f"arg{i}" for i in range(len(args))] + sorted(kwargs)


def leaf_names(fn: Callable, args: tuple, kwargs: dict) -> list[str]:
    names = _arg_names(fn, args, kwargs)
    out: list[str] = []
    items = list(args) + [kwargs[k] for k in sorted(kwargs)]
    for base, item in zip(names, items):
        leaves, _ = tree_flatten(item)
        if len(leaves) == 1 and leaves[0] is item:
            out.append(base)
        else:
            out.extend(f"{base}_{j}" for j in range(len(leaves)))
    return out


def resolve_dynamic(dynamic: Any, fn: Callable, args: tuple, kwargs: dict
                    ) -> dict[int, dict[int, Dim]]:
    """Map ``dynamic=`` to {flat leaf index: {dim: Dim}}.

    Accepted forms: ``{"x": {0: "B"}}`` (by parameter name), ``{0: {0: Dim("B")}}`` (by
    argument position), or a list/tuple aligned with the positional arguments.
    """
    if not dynamic:
        return {}
    arg_names = _arg_names(fn, args, kwargs)
    items = list(args) + [kwargs[k] for k in sorted(kwargs)]
    if isinstance(dynamic, (list, tuple)):
        dynamic = dict(enumerate(dynamic))
    if not isinstance(dynamic, dict):
        raise ArgumentError(f"dynamic: expected a dict {{arg: {{dim: name}}}}, got "
                            f"{type(dynamic).__name__}")
    offsets = []
    start = 0
    for item in items:
        offsets.append(start)
        start += len(tree_flatten(item)[0])
    out: dict[int, dict[int, Dim]] = {}
    for key, dims in dynamic.items():
        if dims is None:
            continue
        if isinstance(key, int):
            if not 0 <= key < len(items):
                raise ArgumentError(f"dynamic: argument position {key} out of range "
                                    f"(the function got {len(items)} arguments)")
            pos = key
        elif key in arg_names:
            pos = arg_names.index(key)
        else:
            raise ArgumentError(f"dynamic: no argument named {key!r}; arguments are "
                                f"{arg_names}")
        leaves = tree_flatten(items[pos])[0]
        if len(leaves) != 1 or not isinstance(leaves[0], Tensor):
            raise ArgumentError(f"dynamic[{key!r}]: argument must be a single tensor")
        spec: dict[int, Dim] = {}
        t = leaves[0]
        for d, dim in dict(dims).items():
            if not isinstance(d, int) or not -t.ndim <= d < t.ndim:
                raise ArgumentError(f"dynamic[{key!r}]: dim {d!r} out of range for a tensor "
                                    f"of rank {t.ndim}")
            dim = Dim(dim) if isinstance(dim, str) else dim
            if not isinstance(dim, Dim):
                raise ArgumentError(f"dynamic[{key!r}][{d}]: expected a name or kiln.Dim, got "
                                    f"{dim!r}")
            spec[d % t.ndim] = dim
        out[offsets[pos]] = spec
    return out


def call_key(leaves: list[Any], dynamic: dict[int, Any], what: str) -> tuple:
    """The cache-key part for the argument leaves of a call (the signature a trace is valid
    for): shape, dtype and ``requires_grad`` of each tensor (``dynamic`` dims as ``"?"``),
    and the value of every other leaf.

    >>> import kiln
    >>> call_key([kiln.ones(2, 3), 4], {0: {0: "B"}}, "f")
    (('T', ('?', 3), kiln.float32, False), ('S', <class 'int'>, 4))
    """
    parts: list[Any] = []
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, Tensor):
            wild = dynamic.get(i, ())
            shape = tuple("?" if d in wild else s for d, s in enumerate(leaf.shape))
            parts.append(("T", shape, leaf.dtype, leaf.requires_grad))
        else:
            parts.append(("S", type(leaf), static_key(leaf, f"{what}: argument leaf {i}")))
    return tuple(parts)


def fast_call_key(leaves: list[Any], dynamic: dict[int, Any], what: str) -> tuple:
    """What :func:`call_key` distinguishes, cheaper to build and hash (NumPy dtypes instead
    of kiln DTypes, no wildcard pass without ``dynamic``); for in-process cache keys."""
    if dynamic:
        return call_key(leaves, dynamic, what)
    parts: list[Any] = []
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, Tensor):
            data = leaf._data
            if data is not None and leaf._node is None:
                parts.append((data.shape, data.dtype, leaf.requires_grad))
            else:
                parts.append(("T", tuple(leaf.shape), leaf.dtype, leaf.requires_grad))
        elif type(leaf) in EXACT:
            parts.append(("S", type(leaf), leaf))  # what static_key returns for these
        else:
            parts.append(("S", type(leaf), static_key(leaf, f"{what}: argument leaf {i}")))
    return tuple(parts)


def note_hint(hints: dict[str, int], dim: Dim, size: int, what: str) -> None:
    """Record ``size`` as the example value of ``dim`` (comparisons on it are decided with
    it, see kiln.symbolic.guards); one symbol must have one size, inside its range."""
    prev = hints.get(dim.name)
    if prev is not None and prev != size:
        raise ArgumentError(f"{what}: dim {dim.name} is {size} here but {prev} in an earlier "
                            "argument; one symbol names one size")
    if not dim.min <= size <= dim.max:
        raise ArgumentError(f"{what}: dim {dim.name} is {size}, outside its range "
                            f"[{dim.min}, {dim.max}]")
    hints[dim.name] = int(size)


def trace(fn: Callable, *args: Any, dynamic: Any = None, **kwargs: Any) -> GraphModule:
    """Trace ``fn(*args, **kwargs)`` into a :class:`GraphModule`.

    ``dynamic`` marks input dims symbolic, so the graph runs on any size there:

    >>> import kiln
    >>> gm = kiln.trace(lambda x: (x * 2).sum(1), kiln.ones(4, 3), dynamic={"x": {0: "B"}})
    >>> gm(kiln.ones(7, 3)).shape
    (7,)
    """
    module = is_module(fn)
    target = fn.forward if module else fn
    if not callable(target):
        raise ArgumentError(f"trace: fn must be callable, got {type(fn).__name__}")
    return trace_leaves(fn, args, kwargs, resolve_dynamic(dynamic, target, args, kwargs))


def trace_leaves(fn: Callable, args: tuple, kwargs: dict, dyn: dict[int, dict[int, Dim]]
                 ) -> GraphModule:
    """:func:`trace` with the dynamic dims given per flat argument leaf (``{leaf index: {dim:
    Dim}}``), for callers that resolve richer forms themselves (``kiln.export``'s
    ``dynamic_shapes``)."""
    from kiln.core.autograd.grad_mode import no_grad

    module = is_module(fn)
    target = fn.forward if module else fn
    if not callable(target):
        raise ArgumentError(f"trace: fn must be callable, got {type(fn).__name__}")
    leaves, in_spec = tree_flatten((args, kwargs))
    names = leaf_names(target, args, kwargs)
    ctx = TraceContext()
    if module:
        for qual, p in fn.named_parameters():
            ctx.constant_names.setdefault(id(p), qual)
        for qual, b in fn.named_buffers():
            ctx.constant_names.setdefault(id(b), qual)
    with ctx, no_grad():
        symbols: dict[str, Dim] = {}
        traced_leaves: list[Any] = []
        placeholders: list[Any] = []
        tensor_positions: list[int] = []
        static: dict[int, Any] = {}
        for i, leaf in enumerate(leaves):
            if isinstance(leaf, Tensor):
                if leaf._node is not None:
                    raise TraceError(f"trace: argument {names[i]} is already a tracer")
                shape = list(leaf.shape)
                for d, dim in dyn.get(i, {}).items():
                    prev = symbols.get(dim.name)
                    if prev is not None and prev != dim:
                        raise ArgumentError(f"dynamic: dim {dim.name} given two ranges")
                    symbols[dim.name] = dim
                    note_hint(ctx.graph.hints, dim, shape[d], f"trace: argument {names[i]}")
                    shape[d] = SymInt.symbol(dim.name)
                meta = TensorMeta(tuple(shape), leaf.dtype)
                traced_leaves.append(ctx.placeholder(names[i], meta))
                placeholders.append(traced_leaves[-1]._node)
                tensor_positions.append(i)
            else:
                static_key(leaf, f"trace: argument {names[i]!r}")  # refuses what it cannot key
                traced_leaves.append(leaf)
                static[i] = leaf
        ctx.graph.symbols = symbols
        t_args, t_kwargs = tree_unflatten(in_spec, traced_leaves)
        # A module is called, not its forward: its own hooks belong to the program too.
        result = (fn if module else target)(*t_args, **t_kwargs)
        out_leaves, out_spec = tree_flatten(result)
        out_nodes = []
        out_static: dict[int, Any] = {}
        for j, leaf in enumerate(out_leaves):
            if isinstance(leaf, Tensor):
                out_nodes.append(ctx.node_of(leaf))
            else:
                out_static[j] = leaf
        # Arguments updated in place: their tracers were rebound to the new values.
        mutated_inputs = []
        for k, i in enumerate(tensor_positions):
            tracer = traced_leaves[i]
            if tracer._node is not placeholders[k]:
                out_nodes.append(ctx.node_of(tracer))
                mutated_inputs.append(k)
        mutated_keys = []
        for target_t, value in ctx.mutations.values():
            out_nodes.append(ctx.node_of(value))
            mutated_keys.append(ctx.constant_key(target_t))
        ctx.graph.output(out_nodes)
    signature = Signature(in_spec=in_spec, tensor_positions=tuple(tensor_positions),
                          static_inputs=static, out_spec=out_spec, static_outputs=out_static,
                          mutations=tuple(mutated_keys), input_mutations=tuple(mutated_inputs))
    gm = GraphModule(ctx.graph, dict(ctx.constants), signature)
    gm.graph.lint()
    return gm
