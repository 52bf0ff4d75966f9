"""The one door every op goes through.

``call(op, *args, **attrs)`` infers the output meta (which validates the arguments with a
KilnError that names the op), then either records a graph node (tracing) or runs the NumPy
kernel (eager), and finally records a tape node when autograd needs one. Tensor methods,
``kiln.*`` functions and ``kiln.nn.functional`` all end here; there is no second path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.core import trace_state as _tc
from kiln.core.autograd.function import record
from kiln.core.autograd.grad_mode import is_grad_enabled
from kiln.core.dtypes import DType
from kiln.core.prims.registry import OpDef
from kiln.core.tensor import Tensor
from kiln.core.views import sync
from kiln.errors import ArgumentError
from kiln.symbolic.sizes import contains_symbolic

_SCALARS = (bool, int, float)


def _normalize_attr(value: Any) -> Any:
    # Attributes are hashable and JSON-friendly: lists become tuples, NumPy ints become ints.
    if isinstance(value, list):
        return tuple(_normalize_attr(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_normalize_attr(v) for v in value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _attr_key(attrs: dict[str, Any]) -> tuple | None:
    """A hashable key for normalized ``attrs``, with types (``0`` and ``0.0`` are different
    attributes), or None for values this cache does not handle (then meta runs every time)."""
    parts = []
    for k, v in attrs.items():
        t = type(v)
        if t is tuple:
            for e in v:
                if type(e) is not int:
                    return None
            parts.append((k, v))
        elif t is DType:
            parts.append((k, v.name))
        elif t in _ATOMS:
            parts.append((k, t, v))
        else:
            return None
    return tuple(parts)


_ATOMS = frozenset((int, float, bool, str, type(None)))
_SCALAR_TYPES = frozenset((int, float, bool))
# (op, argument shapes/dtypes/scalar types, attributes) -> (meta, NumPy dtype, whether the
# output can carry a gradient, op). Meta functions are pure functions of exactly these, so a
# hit skips re-deriving (and re-validating) what an identical call already derived.
_META_CACHE: dict[tuple, tuple[Any, np.dtype, bool, OpDef]] = {}
_META_CACHE_MAX = 4096
_TRACE_STACK = _tc._STACK


def call(op: OpDef, *args: Any, **attrs: Any) -> Tensor:
    """Run or record ``op`` on ``args`` (Tensors or Python scalars) with keyword ``attrs``."""
    if _TRACE_STACK:
        return _general(op, args, attrs)
    # Eager fast path (one function, no helper frames: it runs for every op): no trace is
    # active and every argument is an eager tensor or a plain Python number; anything else
    # (a stale tracer, a NumPy scalar, a bad argument) goes the general way.
    # id(op): OpDef's dataclass hash walks every field; the cached value keeps the op alive,
    # so its id cannot be reused while the entry exists.
    key: list[Any] = [id(op)]
    arrays = []
    wants_grad = False
    for a in args:
        if isinstance(a, Tensor):
            if a._node is not None:
                return _general(op, args, attrs)
            view = a._view  # (root, steps, gen, ...): see kiln.core.views
            if view is not None and view[2] != view[0]._version:
                return _general(op, args, attrs)  # a view whose base changed in place
            data = a._data
            arrays.append(data)
            key.append(data.shape)
            key.append(data.dtype)
            if a.requires_grad:
                wants_grad = True
        elif type(a) in _SCALAR_TYPES:
            arrays.append(a)
            # Pointwise metas read a number's type only (promotion); others its value.
            key.append(type(a) if op.kind == "pointwise" else (type(a), a))
        else:
            return _general(op, args, attrs)
    akey = _attr_key(attrs) if attrs else ()
    if akey is None:
        attrs = {k: _normalize_attr(v) for k, v in attrs.items()}
        akey = _attr_key(attrs)
    hit = None
    if akey is not None:
        key.append(akey)
        ckey = tuple(key)
        hit = _META_CACHE.get(ckey)
    if hit is None:
        metas = [a.meta if isinstance(a, Tensor) else a for a in args]
        out_meta = op.meta(*metas, **attrs)
        dtype = out_meta.dtype
        hit = (out_meta, dtype.np_dtype, op.vjp is not None and dtype.is_floating, op)
        if akey is not None:
            if len(_META_CACHE) >= _META_CACHE_MAX:
                _META_CACHE.clear()
            _META_CACHE[ckey] = hit
    np_dtype = hit[1]
    data = op.eager(*arrays, **attrs)
    if not isinstance(data, np.ndarray):
        data = np.asarray(data, dtype=np_dtype)
    elif data.dtype != np_dtype:
        data = data.astype(np_dtype)
    out = Tensor._wrap(data)
    # Integer and bool results carry no gradient (cast to int, like torch: no grad_fn).
    if wants_grad and hit[2] and is_grad_enabled():
        record(op, args, attrs, out)
    return out


def _root(t: Tensor) -> Tensor:
    return t if t._view is None else t._view[0]


def _general(op: OpDef, args: tuple, attrs: dict) -> Tensor:
    """Any call: tracing, stale tracers, NumPy scalars, bad arguments (with their errors)."""
    metas = []
    tracing = False
    clean_args = []
    for i, a in enumerate(args):
        if isinstance(a, Tensor):
            if a._view is not None:
                sync(a)
            if a._node is not None:
                tracing = True
            metas.append(a.meta)
        elif isinstance(a, _SCALARS):
            metas.append(a)
        elif isinstance(a, (np.generic,)):
            a = a.item()
            metas.append(a)
        else:
            raise ArgumentError(
                f"{op.name}: argument {i} must be a kiln.Tensor or a Python number, got "
                f"{type(a).__name__}"
            )
        clean_args.append(a)
    args = tuple(clean_args)
    attrs = {k: _normalize_attr(v) for k, v in attrs.items()}
    ctx = _tc.current()
    if ctx is not None and not tracing:
        if op.is_random or not op.has_tensor_inputs:
            # Creation and random ops inside a traced function belong to the graph: baking
            # their values in would freeze a dropout mask or a symbolic-size buffer.
            tracing = True
        elif ctx.mutations and any(isinstance(a, Tensor) and id(_root(a)) in ctx.mutations
                                   for a in args):
            tracing = True  # the eager tensor's current value lives in the graph
        elif any(isinstance(a, Tensor) and (a.requires_grad or id(a) in ctx.constant_names)
                 for a in args):
            # Module state and trainable tensors stay graph constants: folding `w.T` at trace
            # time would freeze it against optimizer updates and cut its gradient.
            tracing = True
        elif contains_symbolic(tuple(attrs.values())):
            tracing = True  # a constant expanded to a symbolic size (x[:, idx] = v)
    out_meta = op.meta(*metas, **attrs)
    if tracing:
        if ctx is None:
            raise _tc.stale_tracer_error(op.name)
        out = ctx.record(op, args, attrs, out_meta)
    else:
        arrays = [a._data if isinstance(a, Tensor) else a for a in args]
        data = op.eager(*arrays, **attrs)
        np_dtype = out_meta.dtype.np_dtype
        if not isinstance(data, np.ndarray):
            data = np.asarray(data, dtype=np_dtype)
        elif data.dtype != np_dtype:
            data = data.astype(np_dtype)
        out = Tensor._wrap(data)
    # Integer and bool results carry no gradient (cast to int, like torch: no grad_fn).
    if op.vjp is not None and is_grad_enabled() and out_meta.dtype.is_floating:
        for a in args:
            if isinstance(a, Tensor) and a.requires_grad:
                record(op, args, attrs, out)
                break
    return out
