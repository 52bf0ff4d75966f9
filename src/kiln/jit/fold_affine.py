"""Folding per-channel scales and shifts into the weights of the conv or linear before them.

After freezing, a BatchNorm in eval mode is arithmetic on constants that follows its conv or
linear layer: ``(y - mean) * rsqrt(var + eps) * weight + bias``, one value per output
channel, applied to every activation. :func:`fold_affine` walks such a chain of ``add``,
``sub``, ``mul`` and ``div`` by per-channel constants after a ``conv2d`` or ``matmul`` whose
weight is a constant, and folds it: the weight is scaled per output channel
(``W' = W * s``) and the chain becomes one ``add`` of a bias (``t``), as
``torch.nn.utils.fuse_conv_bn_eval`` does. Rounding differs from the unfolded program's by a
few float ulps, as it does in torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.core.prims.registry import TensorMeta
from kiln.core.tensor import Tensor
from kiln.graph.module import GraphModule
from kiln.graph.node import Node
from kiln.graph.passes import dce

_CHAIN = ("add", "sub", "mul", "div")


def fold_affine(gm: GraphModule) -> int:
    """Fold every per-channel affine chain after a constant-weight ``conv2d`` or ``matmul``
    of ``gm`` into that weight and one bias; returns how many chains were folded.

    >>> import kiln
    >>> m = kiln.nn.Sequential(kiln.nn.Conv2d(1, 2, 3), kiln.nn.BatchNorm2d(2)).eval()
    >>> s = kiln.jit.script(m); x = kiln.randn(1, 1, 5, 5); _ = s(x)
    >>> [n.target for n in kiln.jit.freeze(s, x).graph.calls()]
    ['conv2d', 'add']
    """
    folded = 0
    for base in list(gm.graph.calls()):
        if base.target in ("conv2d", "matmul") and _fold(gm, base):
            folded += 1
    if folded:
        dce(gm.graph, lint=False)
        gm.graph.lint()
    return folded


def _fold(gm: GraphModule, base: Node) -> bool:
    weight = base.args[1] if len(base.args) > 1 else None
    if not isinstance(weight, Node) or weight.op != "constant" or len(weight.users) != 1 or \
            isinstance(base.args[0], Node) and base.args[0].op == "constant":
        return False
    w = np.asarray(gm.constants[weight.target].numpy())
    out = base.meta
    if not out.dtype.is_floating or any(not isinstance(d, int) for d in out.shape):
        return False
    if base.target == "conv2d":
        if w.ndim != 4 or out.ndim != 4:
            return False
        channels, axis = w.shape[0], 1
    else:
        if w.ndim != 2 or out.ndim < 1:
            return False
        channels, axis = w.shape[1], out.ndim - 1
    scale = np.ones(channels)
    shift = np.zeros(channels)
    node, last, muls = base, None, 0
    while len(node.users) == 1:
        user = next(iter(node.users))
        step = _step(gm, user, node, out, axis, channels)
        if step is None:
            break
        op, c = step
        if op == "add":
            shift = shift + c
        elif op == "sub":
            shift = shift - c
        elif op == "mul":
            scale, shift, muls = scale * c, shift * c, muls + 1
        else:
            scale, shift, muls = scale / c, shift / c, muls + 1
        node = last = user
    if last is None or (muls == 0 and last is next(iter(base.users))):
        return False  # nothing to fold, or one add that is already a bias
    if base.target == "conv2d":
        new_w, bias_shape = w * scale.reshape(-1, 1, 1, 1), (1, channels, 1, 1)
    else:
        new_w, bias_shape = w * scale.reshape(1, -1), (channels,)
    np_dtype = w.dtype
    _retarget(gm, weight, Tensor._wrap(new_w.astype(np_dtype)), "_folded_weight")
    bias = _constant(gm, last, Tensor._wrap(shift.reshape(bias_shape).astype(np_dtype)),
                     "_folded_bias", TensorMeta(bias_shape, out.dtype))
    for inp in last.inputs:
        inp.users.pop(last, None)
    last.target, last.args, last.kwargs = "add", (base, bias), {}
    for inp in last.inputs:
        inp.users[last] = None
    return True


def _step(gm: GraphModule, user: Node, node: Node, out: TensorMeta, axis: int,
          channels: int) -> tuple[str, np.ndarray] | None:
    """(op, per-channel vector) when ``user`` applies one to ``node``, else None."""
    if user.op != "call" or user.target not in _CHAIN or user.kwargs or len(user.args) != 2 \
            or user.meta.shape != out.shape or user.meta.dtype != out.dtype:
        return None
    a, b = user.args
    other = b if a is node else a if b is node and user.target in ("add", "mul") else None
    if other is None or other is node:
        return None
    if isinstance(other, Node):
        if other.op != "constant":
            return None
        c = np.asarray(gm.constants[other.target].numpy(), dtype=np.float64)
    elif isinstance(other, (int, float)) and not isinstance(other, bool):
        c = np.asarray(float(other))
    else:
        return None
    return (user.target, v) if (v := _per_channel(c, out.ndim, axis, channels)) is not None \
        else None


def _per_channel(c: np.ndarray, ndim: int, axis: int, channels: int) -> np.ndarray | None:
    """``c`` as one value per channel, when it broadcasts along ``axis`` of a rank-``ndim``
    value only."""
    if c.ndim > ndim:
        return None
    shape = (1,) * (ndim - c.ndim) + c.shape
    if any(s != 1 for i, s in enumerate(shape) if i != axis) or shape[axis] not in (1, channels):
        return None
    return np.broadcast_to(c.reshape(-1), (channels,)).astype(np.float64)


def _unique_key(gm: GraphModule, base: str) -> str:
    key, n = base, 0
    while key in gm.constants:
        n += 1
        key = f"{base}_{n}"
    return key


def _constant(gm: GraphModule, before: Node, value: Any, base: str, meta: TensorMeta) -> Node:
    key = _unique_key(gm, base)
    gm.constants[key] = value
    graph = gm.graph
    node = Node(graph, graph._unique(key), "constant", key, (), {}, meta)
    graph.nodes.insert(graph.nodes.index(before), node)
    return node


def _retarget(gm: GraphModule, old: Node, value: Any, base: str) -> None:
    """Point ``old``'s only user at a new constant holding ``value``."""
    new = _constant(gm, old, value, base, old.meta)
    old.replace_all_uses_with(new)
