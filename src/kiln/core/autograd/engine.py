"""Reverse-mode engine: walk the tape from the outputs and run each node's vjp rule.

The same engine runs on eager tensors and on tracer tensors; on tracers every vjp records
nodes into the graph being traced, which is how AOT autograd builds its joint graph.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from kiln.core.autograd.function import AccumulateGrad, BackwardNode, FunctionNode, OutputSlot
from kiln.core.autograd.grad_mode import _set_enabled, is_grad_enabled
from kiln.errors import AutogradError, ShapeError

_OTHER_NODES = (AccumulateGrad, OutputSlot, FunctionNode)
# _add_into counts references; CPython up to 3.13 counts every local and argument (3.14 may
# borrow stack references, which would make a count low: the check is off there).
_EXACT_REFCOUNTS = sys.implementation.name == "cpython" and sys.version_info < (3, 14)


def _toposort(roots: list[Any]) -> list[Any]:
    """Nodes reachable from ``roots``, every node after all nodes that feed it gradient."""
    order: list[Any] = []
    seen: set[int] = set()
    for root in roots:
        if id(root) in seen:
            continue
        stack = [(root, iter(root.next))]
        seen.add(id(root))
        while stack:
            node, it = stack[-1]
            advanced = False
            for nxt in it:
                if nxt is not None and id(nxt) not in seen:
                    seen.add(id(nxt))
                    stack.append((nxt, iter(nxt.next)))
                    advanced = True
                    break
            if not advanced:
                order.append(node)
                stack.pop()
    order.reverse()  # postorder reversed: consumers before producers
    return order


def _accumulate(buf: dict, key: Any, grad: Any) -> None:
    prev = buf.get(key)
    buf[key] = grad if prev is None else prev + grad


def run_backward(
    outputs: Sequence[Any],
    grad_outputs: Sequence[Any],
    *,
    retain_graph: bool,
    create_graph: bool,
    inputs: Sequence[Any] | None = None,
    allow_unused: bool = True,
) -> list[Any] | None:
    """Propagate ``grad_outputs`` from ``outputs``.

    With ``inputs`` None, gradients accumulate into the ``.grad`` of leaves (``backward``);
    otherwise the gradients of ``inputs`` are returned and no ``.grad`` is touched (``grad``).
    """
    roots = []
    buf: dict[int, Any] = {}
    keep: dict[int, Any] = {}
    for out, g in zip(outputs, grad_outputs, strict=True):
        if not out.requires_grad:
            raise AutogradError(
                "element of outputs does not require grad and has no grad_fn: nothing to "
                "differentiate (did you forget requires_grad=True?)" + _trace_hint()
            )
        node = out._grad_fn if out._grad_fn is not None else out._get_accumulator()
        roots.append(node)
        keep[id(node)] = node
        _accumulate(buf, id(node), g)

    targets: dict[int, int] = {}
    if inputs is not None:
        for i, t in enumerate(inputs):
            if not t.requires_grad:
                raise AutogradError(f"inputs[{i}] does not require grad")
            node = t._grad_fn if t._grad_fn is not None else t._get_accumulator()
            targets.setdefault(id(node), i)

    order = _toposort(roots)
    if inputs is not None:
        # Only nodes from which some input is reachable need their vjp run.
        needed: set[int] = set()
        for node in reversed(order):
            if id(node) in targets or any(
                n is not None and id(n) in needed for n in node.next
            ):
                needed.add(id(node))
        order = [n for n in order if id(n) in needed]

    results: list[Any] = [None] * (len(inputs) if inputs is not None else 0)
    # Gradients of the outputs of multi-output nodes (kiln.autograd.Function), per output.
    multi: dict[int, list[Any]] = {}
    previous = is_grad_enabled()
    _set_enabled(create_graph)  # a try block: cheaper than the context manager
    try:
        for node in order:
            grad = buf.pop(id(node), None)
            if targets and id(node) in targets:
                results[targets[id(node)]] = grad
                if isinstance(node, AccumulateGrad):
                    continue
            # The common case (an op's node) is tested first, by exact type.
            if type(node) is BackwardNode or not isinstance(node, _OTHER_NODES):
                if grad is None:
                    continue
                node._check_freed()
                out = node._out
                if out._retains_grad and inputs is None:
                    _to_leaf(out, grad, create_graph)
                grads = node.op.vjp(node, grad)
                if len(grads) != len(node.next):
                    raise AutogradError(
                        f"vjp of op {node.op.name} returned {len(grads)} gradients for "
                        f"{len(node.next)} arguments"
                    )
                metas = node._args
            elif isinstance(node, AccumulateGrad):
                if inputs is None and grad is not None:
                    _to_leaf(node.leaf, grad, create_graph)
                continue
            elif isinstance(node, OutputSlot):
                _route_to_function(node, grad, multi, keep, inputs is None, create_graph)
                if not retain_graph:
                    node.free()
                continue
            else:
                slots = multi.pop(id(node), None)
                if slots is None:
                    continue
                grads = node.apply(slots)
                metas = node.input_metas
            for i, (nxt, gi) in enumerate(zip(node.next, grads)):
                if nxt is None or gi is None:
                    continue
                arg = metas[i]
                if gi.shape != arg.shape and tuple(gi.shape) != tuple(arg.shape):
                    raise ShapeError(
                        f"{_what(node)} gave argument {i} a gradient of shape "
                        f"{tuple(gi.shape)}, expected {tuple(arg.shape)}"
                    )
                gd, ad = gi.dtype, arg.dtype
                if gd is not ad and gd != ad:
                    gi = gi.to(ad)
                key = id(nxt)
                keep[key] = nxt
                prev = buf.get(key)
                if prev is None:
                    buf[key] = gi
                # refs to prev: the dict value, this name, getrefcount's argument
                elif create_graph or sys.getrefcount(prev) != 3 or not _add_into(prev, gi):
                    buf[key] = prev + gi
            if not retain_graph:
                node.free()
    finally:
        _set_enabled(previous)
    if inputs is None:
        return None
    if not allow_unused:
        for i, r in enumerate(results):
            if r is None:
                raise AutogradError(
                    f"inputs[{i}] was not used to compute outputs; pass allow_unused=True"
                )
    return results


def _what(node: Any) -> str:
    if isinstance(node, FunctionNode):
        return f"backward of {node.fn.__name__}"
    return f"vjp of op {node.op.name}"


def _route_to_function(slot: OutputSlot, grad: Any, multi: dict, keep: dict, to_leaves: bool,
                       create_graph: bool) -> None:
    """Park the gradient of one output of a multi-output node until the node runs."""
    if grad is None:
        return
    out = slot._out
    if out is not None and out._retains_grad and to_leaves:
        _to_leaf(out, grad, create_graph)
    node = slot.node
    slots = multi.setdefault(id(node), [None] * len(node.out_metas))
    prev = slots[slot.index]
    slots[slot.index] = grad if prev is None else prev + grad
    keep[id(node)] = node


def _to_leaf(t: Any, grad: Any, create_graph: bool) -> None:
    if not create_graph:
        grad = grad.detach()
    prev = t.grad
    if prev is None:
        t.grad = grad
    # refs to prev: the .grad slot, this name, getrefcount's argument
    elif create_graph or sys.getrefcount(prev) != 3 or not _add_into(prev, grad):
        t.grad = prev + grad


def _add_into(prev: Any, grad: Any) -> bool:
    """``prev += grad`` in place, when nothing but its one holder (a ``.grad`` slot or an
    engine buffer, checked by the caller) can see ``prev`` or its memory; else False.

    Accumulating into a fresh array costs an allocation and a page-faulting first touch per
    parameter per step; torch accumulates in place too. Reference counts make it invisible:
    a ``.grad`` tensor (or its array, or a view of it) that anyone kept is never changed.
    """
    a, b = prev._data, grad._data
    if not _EXACT_REFCOUNTS or prev._node is not None or grad._node is not None or \
            prev.requires_grad or a is None or b is None:
        return False
    if a.shape != b.shape or a.dtype != b.dtype or not a.flags.writeable:
        return False
    if sys.getrefcount(a) != 3:  # prev._data, the name a, getrefcount's argument
        return False
    base = a.base
    if base is not None and (sys.getrefcount(base) != 3 or
                             (isinstance(base, np.ndarray) and base.base is not None)):
        return False
    with np.errstate(all="ignore"):  # as the add op's kernel: inf - inf is nan, silently
        np.add(a, b, out=a)
    prev._version += 1
    return True


def _trace_hint() -> str:
    from kiln.core.trace_state import current

    if current() is None:
        return ""
    # kiln.trace lifts parameters as constants, so a loss computed in a trace has no grad_fn
    return ("; inside kiln.trace, parameters are graph constants and backward() has nothing "
            "to differentiate: compile the loss with kiln.compile (AOT autograd derives the "
            "backward graph) and call backward() and opt.step() outside the compiled function")
