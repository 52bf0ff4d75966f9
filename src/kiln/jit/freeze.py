"""``kiln.jit.freeze``: parameters and attributes become constants, what only depends on
constants is computed once, and a BatchNorm (any per-channel scale and shift) after a conv
or linear layer is folded into that layer's weight and bias (:mod:`kiln.jit.fold_affine`).
"""

from __future__ import annotations

from typing import Any

from kiln.core.autograd.grad_mode import no_grad
from kiln.core.dispatch import call
from kiln.core.prims.registry import get_op
from kiln.errors import ArgumentError
from kiln.graph.module import GraphModule
from kiln.graph.node import Node, map_args
from kiln.graph.passes import cse, dce, replace_with_constant
from kiln.jit.fold_affine import fold_affine
from kiln.symbolic.sizes import contains_symbolic


def fold_constants(gm: GraphModule) -> int:
    """Replace every call whose inputs are all constants or literals by a constant of
    ``gm`` (random ops and symbolic sizes excepted); returns how many calls went."""
    graph = gm.graph
    known: dict[Node, Any] = {}
    for node in graph.nodes:
        if node.op == "constant":
            known[node] = gm.constants[node.target]
        elif node.op == "call" and not get_op(node.target).is_random \
                and not contains_symbolic(node.kwargs) \
                and not contains_symbolic(tuple(node.meta.shape)) \
                and all(i in known for i in node.inputs):
            with no_grad():
                known[node] = call(get_op(node.target),
                                   *map_args(node.args, known.__getitem__), **node.kwargs)
    before = sum(1 for _ in graph.calls())
    for node in list(graph.nodes):
        if node.op != "call" or node not in known or all(u in known for u in node.users):
            continue  # not foldable, or folded with its users
        replace_with_constant(gm, node, known[node].detach(), f"_frozen_{node.name}")
    dce(graph, lint=False)
    graph.lint()
    return before - sum(1 for _ in graph.calls())


def freeze(mod: Any, *args: Any) -> Any:
    """The frozen program of a scripted module in eval mode (of the last call's signature,
    or of ``args``): parameters inlined as constants, constant work done once.

    >>> import kiln
    >>> m = kiln.jit.script(kiln.nn.Linear(2, 2).eval())
    >>> frozen = kiln.jit.freeze(m, kiln.ones(1, 2))
    >>> [n.target for n in frozen.graph.calls()]
    ['matmul', 'add']
    """
    from kiln.jit.program import ScriptProgram
    from kiln.jit.script import ScriptFunction, ScriptModule

    if isinstance(mod, ScriptModule):
        if mod.training:
            raise ArgumentError("kiln.jit.freeze: call .eval() first (freezing bakes in "
                                "inference behaviour: dropout off, BatchNorm statistics)")
        fn = mod._get_method("forward")
    elif isinstance(mod, ScriptFunction):
        fn = mod
    else:
        raise ArgumentError(f"kiln.jit.freeze: expected a ScriptModule, got "
                            f"{type(mod).__name__}")
    gm = fn.graph_module(*args)
    graph, _ = gm.graph.copy()
    frozen = GraphModule(graph, {k: t.detach() for k, t in gm.constants.items()},
                         gm.signature)
    fold_constants(frozen)
    fold_affine(frozen)
    cse(frozen)
    dce(frozen)
    used = {n.target for n in frozen.graph.nodes if n.op == "constant"}
    frozen.constants = {k: v for k, v in frozen.constants.items() if k in used}
    return ScriptProgram(frozen)
