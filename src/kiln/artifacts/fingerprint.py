"""Fingerprints of a function's code and closure, for warm starts without tracing.

A trace is a function of the code that runs and of the non-tensor values it reads; the
tensors' *values* do not change the graph (they are bound at call time). So a fingerprint
describes, recursively: the function's bytecode, constants and names; every closure cell
and every global its code names; for a ``kiln.nn.Module``, every submodule's class (its
methods' bytecode), plain attributes, training flag and the names, shapes, dtypes and
``requires_grad`` of its parameters and buffers; for a tensor, its shape, dtype and
``requires_grad``. Python modules (``kiln``, ``F``) count by name: Kiln's own version is in
the key.

A value the fingerprint cannot describe (an arbitrary object, a generator, a module with
hooks) makes the whole fingerprint None: that function has no trace-free warm path, and the
cache falls back to tracing and the full key (correct, only slower). The warm path trusts
that what the fingerprint covers determines the graph; the entry's guards still check
every call's sizes.

>>> import kiln
>>> a = fingerprint(lambda x: x * 2.0)
>>> a == fingerprint(lambda x: x * 2.0), a == fingerprint(lambda x: x * 3.0)
(True, False)
"""

from __future__ import annotations

import enum
import functools
import hashlib
import os
import sys
import types
from typing import Any

from kiln.base import canonical
from kiln.core.calls import is_module
from kiln.core.dtypes import DType
from kiln.core.tensor import Tensor

_MAX_DEPTH = 6
# Functions whose code lives in Kiln's own source files (not ones a user defines in a
# module named kiln.*, or in a doctest of one).
_KILN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_MODULE_SKIP = frozenset({"_parameters", "_buffers", "_modules", "training",
                          "_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                          "_state_dict_hooks", "_load_state_dict_pre_hooks"})


class _Opaque(Exception):
    """A value the fingerprint cannot describe."""


def fingerprint(fn: Any) -> str | None:
    """sha256 over the description of ``fn`` (see the module docstring), or None."""
    try:
        desc = _describe(fn, 0, {})
    except (_Opaque, RecursionError):
        return None
    desc = [list(sys.version_info[:2]), desc]
    return hashlib.sha256(canonical.dumps(desc).encode()).hexdigest()


def _code(code: types.CodeType) -> list:
    consts = [_code(c) if isinstance(c, types.CodeType) else [type(c).__name__, repr(c)]
              for c in code.co_consts]
    return [code.co_code.hex(), consts, list(code.co_names), list(code.co_varnames),
            list(code.co_freevars), code.co_argcount, code.co_kwonlyargcount, code.co_flags]


def _describe(v: Any, depth: int, seen: dict[int, int]) -> Any:
    if v is None or isinstance(v, (bool, int, float, str, bytes)):
        return [type(v).__name__, repr(v)]
    if isinstance(v, Tensor):
        return ["tensor", [int(d) if isinstance(d, int) else str(d) for d in v.shape],
                v.dtype.name, bool(v.requires_grad)]
    if isinstance(v, DType):
        return ["dtype", v.name]
    if isinstance(v, types.ModuleType):
        return ["pymodule", v.__name__]
    if isinstance(v, (types.BuiltinFunctionType, types.BuiltinMethodType)):
        return ["builtin", getattr(v, "__module__", None), getattr(v, "__qualname__", "")]
    if isinstance(v, enum.Enum):
        return ["enum", type(v).__module__, type(v).__qualname__, v.name]
    if isinstance(v, slice):
        return ["slice", _describe((v.start, v.stop, v.step), depth, seen)]
    if depth > _MAX_DEPTH:
        raise _Opaque("too deep")
    if id(v) in seen:  # a cycle (a function naming itself): refer to its first visit
        return ["seen", seen[id(v)]]
    seen[id(v)] = len(seen)
    if isinstance(v, (list, tuple)):
        return [type(v).__name__, [_describe(x, depth + 1, seen) for x in v]]
    if isinstance(v, (set, frozenset)):
        return [type(v).__name__, sorted(canonical.dumps(_describe(x, depth + 1, seen))
                                         for x in v)]
    if isinstance(v, dict):
        return ["dict", [[_describe(k, depth + 1, seen), _describe(x, depth + 1, seen)]
                         for k, x in v.items()]]
    if isinstance(v, type):
        return ["type", v.__module__, v.__qualname__, _class_code(v)]
    if isinstance(v, types.FunctionType):
        if v.__code__.co_filename.startswith(_KILN_DIR):  # Kiln's own: its version is in
            return ["kiln-function", v.__module__, v.__qualname__]  # the key
        return _function(v, depth, seen)
    if isinstance(v, types.MethodType):
        return ["method", _describe(v.__self__, depth + 1, seen),
                _describe(v.__func__, depth + 1, seen)]
    if isinstance(v, functools.partial):
        return ["partial", _describe(v.func, depth + 1, seen),
                _describe(v.args, depth + 1, seen), _describe(v.keywords, depth + 1, seen)]
    if is_module(v):
        return _module(v, depth, seen)
    if type(v).__module__.startswith("kiln.") and hasattr(v, "_modules"):
        return _module(v, depth, seen)
    raise _Opaque(type(v).__name__)


def _function(fn: types.FunctionType, depth: int, seen: dict[int, int]) -> list:
    code = fn.__code__
    cells = []
    for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=True):
        try:
            value = cell.cell_contents
        except ValueError:
            value = None
        cells.append([name, _describe(value, depth + 1, seen)])
    glob = fn.__globals__
    from kiln.artifacts.bindings import _names

    names = [[n, _describe(glob[n], depth + 1, seen)] for n in _names(code) if n in glob]
    return ["function", fn.__module__, fn.__qualname__, _code(code),
            _describe(fn.__defaults__, depth + 1, seen),
            _describe(fn.__kwdefaults__, depth + 1, seen), cells, names]


@functools.lru_cache(maxsize=256)
def _class_code(cls: type) -> str:
    """Hash of the bytecode of every method a class defines (up to Kiln's own bases)."""
    parts = []
    for klass in cls.__mro__:
        if klass.__module__.startswith("kiln.") or klass is object:
            parts.append(klass.__module__ + "." + klass.__qualname__)
            continue
        for name, member in sorted(vars(klass).items()):
            func = getattr(member, "__func__", member)
            if isinstance(func, types.FunctionType):
                parts.append([name, _code(func.__code__)])
    return hashlib.sha256(canonical.dumps(parts).encode()).hexdigest()


def _module(m: Any, depth: int, seen: dict[int, int]) -> list:
    for hooks in ("_forward_hooks", "_forward_pre_hooks"):
        if getattr(m, hooks, None):
            raise _Opaque("a module with hooks")
    attrs = []
    for name, value in sorted(vars(m).items()):
        if name in _MODULE_SKIP:
            continue
        attrs.append([name, _describe(value, depth + 1, seen)])
    state = [[kind, name, _describe(t, depth + 1, seen) if t is not None else None]
             for kind in ("_parameters", "_buffers")
             for name, t in getattr(m, kind, {}).items()]
    subs = [[name, _describe(sub, depth + 1, seen) if sub is not None else None]
            for name, sub in getattr(m, "_modules", {}).items()]
    return ["nn", type(m).__module__, type(m).__qualname__, _class_code(type(m)),
            bool(getattr(m, "training", False)), attrs, state, subs]
