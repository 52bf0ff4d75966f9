"""Min-cut rematerialization: save the fewest bytes, recompute cheap ops in the backward.

The choice of saved values is a minimum s-t cut (computed with networkx max-flow) in a
flow network built from the joint graph:

- every joint node ``v`` becomes two vertices ``v_in -> v_out``; the edge's capacity is
  the bytes of ``v``'s value, so *cutting it means saving v*;
- a dataflow edge ``u -> v`` becomes ``u_out -> v_in`` with infinite capacity;
- ``source -> v_in`` (infinite) for primals (only the forward has them) and for forward
  nodes that must never be recomputed (matmul, conv, pooling, gather/scatter, random
  draws, large reductions): they are computed in the forward, full stop;
- ``v_in -> sink`` (infinite) for nodes that read a tangent (they exist only in the
  backward) and ``v_out -> sink`` for gradients that do not read one.

A finite cut separates "computed in the forward" (source side) from "needed in the
backward" (sink side). A node whose ``in`` lies on the source side and ``out`` on the sink
side is saved; sink-side forward nodes are recomputed in the backward from the saved
values. Capacities are integers: ``bytes * (n + 1) + topological index``, so among cuts of
equal bytes the one saving earlier values (ideally the primals, which the caller holds
anyway) wins, deterministically.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kiln.aot.partition import JointInfo, default_saved, split_joint
from kiln.core.prims.registry import REGISTRY
from kiln.errors import ArgumentError, KilnError
from kiln.graph.module import GraphModule
from kiln.graph.node import Node
from kiln.symbolic.sizes import SymInt

# A symbol with no example size (no joint_inputs given) weighs as this many elements.
DEFAULT_SYMBOL_HINT = 128

# Op kinds whose forward values are never recomputed: they cost far more than the bytes
# they free (matmul, conv, pool), read memory irregularly (gather) or would change value
# (random).
_NEVER_RECOMPUTE_KINDS = frozenset({"matmul", "conv", "pool", "gather", "random"})

# A reduction whose output is this many times smaller than its input is "large": its
# result is cheap to save and expensive to recompute (the rule functorch uses, too).
_REDUCTION_RATIO = 4


class AOTError(KilnError, RuntimeError):
    """A requirement of ahead-of-time autograd that is not met (e.g. networkx missing)."""


def symbol_hints(joint: GraphModule, joint_inputs: Any) -> dict[str, int]:
    """Concrete sizes for symbolic dims, read from the example inputs of the joint graph."""
    hints: dict[str, int] = {}
    if joint_inputs is None:
        return hints
    for p, example in zip(joint.graph.placeholders, joint_inputs):
        shape = getattr(example, "shape", None)
        if shape is None:
            continue
        for want, got in zip(p.meta.shape, shape):
            if isinstance(want, SymInt) and want.plain_symbol and isinstance(got, int):
                hints[want.plain_symbol] = got
    return hints


def numel(node: Node, hints: dict[str, int]) -> int:
    """Elements of ``node``'s value, symbolic sizes replaced by their hints."""
    total = 1
    for d in node.meta.shape:
        if isinstance(d, SymInt):
            env = {s: hints.get(s, DEFAULT_SYMBOL_HINT) for s in d.free_symbols}
            d = d.evaluate(env)
        total *= int(d)
    return total


def nbytes(node: Node, hints: dict[str, int]) -> int:
    return numel(node, hints) * node.meta.dtype.np_dtype.itemsize


def never_recompute(node: Node, hints: dict[str, int]) -> bool:
    """True for forward ops the backward must not recompute (see the module docstring)."""
    if node.op == "control":
        return True  # a whole loop or branch: never run twice
    if node.op != "call":
        return False
    op = REGISTRY[node.target]
    if op.kind in _NEVER_RECOMPUTE_KINDS:
        return True
    if op.is_reduction:
        size_in = sum(numel(i, hints) for i in node.inputs)
        return numel(node, hints) * _REDUCTION_RATIO < size_in
    return False


def _solve(info: JointInfo, banned: set[Node], hints: dict[str, int]) -> list[Node]:
    """The saved set of a minimum cut, with ``banned`` forward nodes kept in the forward."""
    try:
        import networkx as nx
    except ImportError:  # pragma: no cover - networkx ships with the "aot" extra
        raise AOTError("min_cut_rematerialization_partition needs networkx: "
                       "pip install 'kiln[aot]'") from None
    scale = len(info.order) + 1
    g = nx.DiGraph()
    g.add_node("source")
    g.add_node("sink")
    bwd_outputs = set(info.bwd_outputs)
    for node in info.graph.nodes:
        if node.op in ("output", "constant"):
            continue  # constants live beside both graphs: never saved, never cut
        v_in, v_out = (node, "in"), (node, "out")
        if node in info.tangent_dependent:
            # Reads a tangent: exists only in the backward, so it can never be saved.
            g.add_edge(v_in, "sink")
        else:
            if node.op == "placeholder" or node in banned:
                # Primals exist only in the forward; banned ops are computed there once.
                g.add_edge("source", v_in)
            if node in bwd_outputs:
                g.add_edge(v_out, "sink")  # a gradient that reads no tangent
            if node.op == "control":
                # Its value is a tuple that no graph can pass on: save its results (the
                # item nodes) instead. No capacity: networkx reads it as infinite.
                g.add_edge(v_in, v_out)
            else:
                g.add_edge(v_in, v_out,
                           capacity=nbytes(node, hints) * scale + info.order[node])
        for user in node.users:
            if user.op != "output":
                g.add_edge(v_out, (user, "in"))
    _, (source_side, _) = nx.minimum_cut(g, "source", "sink")
    saved = [n for n in info.graph.nodes
             if (n, "in") in source_side and (n, "out") in g and (n, "out") not in source_side
             and n not in info.tangent_dependent and n.op not in ("output", "constant")]
    return info.sorted(saved)


def saved_bytes(nodes: Iterable[Node], hints: dict[str, int]) -> int:
    return sum(nbytes(n, hints) for n in nodes)


def _recompute_order(info: JointInfo, banned: set[Node], hints: dict[str, int]) -> list[Node]:
    """Recomputable forward ops, the most expensive to recompute first (reductions, then
    the largest pointwise/movement ops): the budget knob bans them in this order."""
    cands = [n for n in info.forward
             if n.op == "call" and n not in banned and REGISTRY[n.target].kind != "creation"]
    return sorted(cands, key=lambda n: (not REGISTRY[n.target].is_reduction,
                                        -numel(n, hints), info.order[n]))


def min_cut_saved(info: JointInfo, hints: dict[str, int], memory_budget: float) -> list[Node]:
    """The saved set for ``memory_budget`` (see :func:`min_cut_rematerialization_partition`)."""
    if memory_budget >= 1.0:
        return default_saved(info)  # "save all": the backward recomputes nothing
    banned = {n for n in info.forward if never_recompute(n, hints)}
    best = _solve(info, banned, hints)
    if memory_budget <= 0.0:
        return best
    low = saved_bytes(best, hints)
    high = saved_bytes(default_saved(info), hints)
    target = low + memory_budget * (high - low)
    order = _recompute_order(info, banned, hints)
    # Banning more recomputation can only grow the cut (more constraints), so the number
    # of banned candidates that still fits the target is found by bisection.
    lo, hi = 0, len(order)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        trial = _solve(info, banned | set(order[:mid]), hints)
        if saved_bytes(trial, hints) <= target:
            lo, best = mid, trial
        else:
            hi = mid - 1
    return best


def min_cut_rematerialization_partition(
    joint: GraphModule, joint_inputs: Any = None, *, num_fwd_outputs: int,
    memory_budget: float = 0.0,
) -> tuple[GraphModule, GraphModule]:
    """Partition by a minimum cut over tensor bytes; recompute cheap ops in the backward.

    ``memory_budget`` in [0, 1] moves between the two ends, in bytes saved:
    ``0.0`` (default) saves the minimum the cut finds, recomputing every cheap op it can;
    ``1.0`` saves everything the backward reads (the same set as ``default_partition``);
    in between, the saved bytes stay under ``min + budget * (all - min)``, buying back the
    most expensive recomputations first. Smaller budget = less memory, more recompute,
    the same direction as functorch's ``activation_memory_budget``.

    Symbolic sizes weigh as the sizes of the example inputs (``joint_inputs``), or
    ``DEFAULT_SYMBOL_HINT`` elements when none are given.

    >>> import kiln
    >>> from kiln.aot import aot_function, min_cut_rematerialization_partition, nop
    >>> f = aot_function(lambda x: x.cos().cos(), nop,
    ...                  partition_fn=min_cut_rematerialization_partition)
    >>> x = kiln.randn(3, requires_grad=True)
    >>> [e.name for e in kiln.aot.saved_activations(f, x).entries]
    ['primals_1']
    """
    if not isinstance(memory_budget, (int, float)) or not 0.0 <= memory_budget <= 1.0:
        raise ArgumentError(f"min_cut_rematerialization_partition: memory_budget must be a "
                            f"number in [0, 1], got {memory_budget!r}")
    info = JointInfo(joint, num_fwd_outputs)
    hints = symbol_hints(joint, joint_inputs)
    saved = min_cut_saved(info, hints, float(memory_budget))
    return split_joint(joint, num_fwd_outputs, saved, info)
