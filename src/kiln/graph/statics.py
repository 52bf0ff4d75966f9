"""Non-tensor arguments of traced functions: which are accepted, and how they are keyed.

Tracing specializes a non-tensor argument: its value is baked into the graph, cache keys
hold it, and guards compare it on later calls. That is sound only for values that cannot
change behind the cache's back, so only **plain values** are accepted:

- ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, ``...``;
- slices of those, Kiln and NumPy dtypes, NumPy scalars, ``enum`` members;
- functions (``def``/``lambda``/builtins), keyed by identity like the compiled function's own
  code: what they read is read when tracing;
- ``kiln.nn.Module`` objects (``step(model, x)``), keyed by identity, their submodules'
  training flags and the identity of their parameters and buffers (:func:`module_key`);
- and any pytree of these (tuples, lists, dicts, dataclasses, namedtuples): containers are
  flattened before their leaves get here.

Any other object (a config object) is refused: it would be keyed by identity, so mutating one
of its attributes after tracing would run a stale graph.

Keys compare values exactly: ``2``, ``2.0`` and ``True`` are three keys (the type is part of
the key), ``0.0`` and ``-0.0`` are two, and every NaN is the same key as every other NaN (a
NaN never equals itself, which used to re-trace on every call).
"""

from __future__ import annotations

import enum
import types
from typing import Any

import numpy as np

from kiln.core.dtypes import DType
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError

# Types whose value is its own exact key (floats are not: NaN != NaN, 0.0 == -0.0).
EXACT = frozenset((int, bool, str, bytes, type(None), type(Ellipsis)))
_BY_IDENTITY = (DType, np.dtype, enum.Enum, types.FunctionType)


def refuse_array(leaf: Any, what: str) -> None:
    """Refuse an array that is not a kiln.Tensor (NumPy, torch...) where a traced function
    takes an argument: it would be specialized, i.e. baked into the graph as a value."""
    if isinstance(leaf, (Tensor, np.generic)) or not (hasattr(leaf, "__array__")
                                                      and hasattr(leaf, "shape")):
        return  # NumPy scalars are numbers, specialized like Python's
    kind = f"{type(leaf).__module__.split('.')[0]}.{type(leaf).__name__}"
    raise ArgumentError(
        f"{what} is a {kind} of shape {tuple(leaf.shape)}, not a kiln.Tensor; tensors must be "
        "kiln.Tensor to become graph inputs (convert with kiln.from_numpy(array) or "
        "kiln.tensor(data)), other values are specialized"
    )


def _float_key(x: float) -> str:
    return x.hex()  # exact; "nan" for every NaN, and -0.0 apart from 0.0


def static_key(leaf: Any, what: str) -> Any:
    """A hashable key for a non-tensor argument leaf, equal for equal values (NaN included).

    >>> static_key(float("nan"), "f") == static_key(float("nan"), "f")
    True
    >>> static_key(slice(1, 3), "f: argument leaf 1")
    ('slice', 1, 3, None)
    >>> static_key({1}, "f: argument leaf 1")
    Traceback (most recent call last):
    ...
    kiln.errors.ArgumentError: f: argument leaf 1 (set) is not a tensor and not hashable, \
so it cannot be specialized; pass plain values (None, bool, int, float, str, dtypes...) \
in tuples, lists or dicts, or tensors
    """
    t = type(leaf)
    if t in EXACT:
        return leaf
    if t is float:
        return _float_key(leaf)
    if t is complex:
        return (_float_key(leaf.real), _float_key(leaf.imag))
    if isinstance(leaf, np.generic):
        if isinstance(leaf, np.inexact):
            return "nan" if np.isnan(leaf) else (leaf.dtype.str, leaf.tobytes())
        if isinstance(leaf, (np.integer, np.bool_, np.str_, np.bytes_)):
            return leaf
    refuse_array(leaf, what)
    if t is slice:
        return ("slice", static_key(leaf.start, what), static_key(leaf.stop, what),
                static_key(leaf.step, what))
    if isinstance(leaf, _BY_IDENTITY) or (
            isinstance(leaf, types.BuiltinFunctionType)
            and isinstance(getattr(leaf, "__self__", None), (types.ModuleType, type(None)))):
        return leaf
    if _is_module(leaf):
        return module_key(leaf)
    try:
        hash(leaf)
    except TypeError:
        raise ArgumentError(f"{what} ({t.__name__}) is not a tensor and not hashable, so it "
                            "cannot be specialized; pass plain values (None, bool, int, float, "
                            "str, dtypes...) in tuples, lists or dicts, or tensors") from None
    raise ArgumentError(
        f"{what} is a {t.__module__}.{t.__qualname__} object, not a tensor or a plain value: "
        "tracing would key it by identity, and a change to it after tracing (an attribute "
        "set) would run a stale graph. Pass the tensors and numbers it holds as arguments, "
        "or close over the object in the function (it is then read once, when tracing); "
        "plain values are None, bool, int, float, complex, str, bytes, slices, dtypes, enum "
        "members and functions, in tuples, lists, dicts, dataclasses or namedtuples")


def _is_module(leaf: Any) -> bool:
    from kiln.nn.module import Module

    return isinstance(leaf, Module)


def module_key(module: Any) -> tuple:
    """The key of a module passed as an argument: the module itself (by identity), the
    ``training`` flag of every submodule, and which tensor objects its parameters and buffers
    are. Their values are read when the graph runs (they are the graph's constants, lifted to
    inputs when they need gradients), so an optimizer step needs no new trace; ``eval()`` or
    a replaced parameter does, as in torch.compile's guards."""
    from kiln.nn.snapshot import StateSnapshot

    snap = StateSnapshot(module)
    return ("module", module, snap.training, tuple(id(t) for t in snap.tensors))


def same_static(got: Any, value: Any) -> bool:
    """Whether a call's non-tensor leaf ``got`` matches the specialized ``value`` (same type,
    same key: NaN matches NaN, ``2`` does not match ``2.0``)."""
    if type(got) is not type(value):
        return False
    try:
        return bool(static_key(got, "") == static_key(value, ""))
    except ArgumentError:
        return False
