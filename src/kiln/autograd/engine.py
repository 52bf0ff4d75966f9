"""Reverse-mode engine: walk the tape from the outputs and run each node's vjp rule.

The same engine runs on eager tensors and on tracer tensors; on tracers every vjp records
nodes into the graph being traced, which is how AOT autograd builds its joint graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kiln.autograd.function import AccumulateGrad, BackwardNode, FunctionNode, OutputSlot
from kiln.autograd.grad_mode import _grad_mode
from kiln.errors import AutogradError, ShapeError


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
                "differentiate (did you forget requires_grad=True?)"
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
    with _grad_mode(create_graph):
        for node in order:
            grad = buf.pop(id(node), None)
            if id(node) in targets and inputs is not None:
                results[targets[id(node)]] = grad
                if isinstance(node, AccumulateGrad):
                    continue
            if isinstance(node, AccumulateGrad):
                if inputs is None and grad is not None:
                    _to_leaf(node.leaf, grad, create_graph)
                continue
            if isinstance(node, OutputSlot):
                _route_to_function(node, grad, multi, keep, inputs is None, create_graph)
                if not retain_graph:
                    node.free()
                continue
            if isinstance(node, FunctionNode):
                slots = multi.pop(id(node), None)
                if slots is None:
                    continue
                grads = node.apply(slots)
                metas = node.input_metas
                what = f"backward of {node.fn.__name__}"
            else:
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
                what = f"vjp of op {node.op.name}"
            for i, (nxt, gi) in enumerate(zip(node.next, grads)):
                if nxt is None or gi is None:
                    continue
                arg = metas[i]
                if tuple(gi.shape) != tuple(arg.shape):
                    raise ShapeError(
                        f"{what} gave argument {i} a gradient of shape "
                        f"{tuple(gi.shape)}, expected {tuple(arg.shape)}"
                    )
                if gi.dtype != arg.dtype:
                    gi = gi.to(arg.dtype)
                keep[id(nxt)] = nxt
                _accumulate(buf, id(nxt), gi)
            if not retain_graph:
                node.free()
    if inputs is None:
        return None
    if not allow_unused:
        for i, r in enumerate(results):
            if r is None:
                raise AutogradError(
                    f"inputs[{i}] was not used to compute outputs; pass allow_unused=True"
                )
    return results


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
    t.grad = grad if t.grad is None else t.grad + grad


_ = BackwardNode  # re-exported for type checkers reading this module
