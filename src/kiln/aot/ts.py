"""``ts_compile`` (also ``script_compile``): the functorch README's TorchScript compiler.

In functorch, ``ts_compile`` scripts the fw/bw graph with TorchScript and freezes it. A
Kiln graph already is a program that keeps its control flow, so this compiler freezes:
on a copy of the graph it folds what is constant (literal and creation subgraphs), merges
common subexpressions and drops dead code, and returns it to run in the reference
interpreter. Parameters are inputs of AOT graphs (an optimizer step changes them), so they
are not inlined here.
"""

from __future__ import annotations

from typing import Any

from kiln.graph.module import GraphModule
from kiln.graph.passes import constant_fold, cse, dce


def ts_compile(gm: GraphModule, example_specs: Any = None) -> GraphModule:
    """A fw/bw compiler for ``aot_function``: the graph, frozen (see the module docstring).

    >>> import kiln
    >>> from kiln.aot import aot_function, ts_compile
    >>> f = aot_function(lambda x: (x * kiln.arange(2.0).exp()).sin(), fw_compiler=ts_compile,
    ...                  bw_compiler=ts_compile)
    >>> x = kiln.ones(2, requires_grad=True)
    >>> f(x).sum().backward()
    >>> [round(v, 4) for v in x.grad.tolist()]
    [0.5403, -2.4784]
    """
    graph, _ = gm.graph.copy()
    frozen = GraphModule(graph, dict(gm.constants), gm.signature)
    constant_fold(frozen)
    cse(frozen)
    dce(frozen)
    return frozen


script_compile = ts_compile
