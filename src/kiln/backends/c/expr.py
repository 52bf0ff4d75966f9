"""Value expressions of generated loops: loads, constants, op calls, index values.

Expressions are interned by a :class:`Builder` (one per compilation), so structurally equal
expressions are the same object: common subexpressions are shared by construction, and a
kernel emits each node once. Every expression has a Kiln dtype.

Kinds (``Expr.kind``):

- ``load``:  ``data = (buffer id, offset IX)``; ``args`` = the data-index expressions the
  offset reads (gather), so dependencies stay visible;
- ``const``: ``data`` = a Python number already converted to ``dtype``;
- ``op``:    ``data`` = an op name (a registry pointwise op, or ``cast``); ``args`` operands,
  already converted to the op's compute dtype;
- ``idx``:   ``data`` = an IX whose value is used as data (arange, eye, argmax positions);
- ``row``:   ``data`` = a kernel-local name of a per-row scalar (a reduction result inside a
  row kernel), resolved by the code generator;
- ``scratch``: ``data = (scratch id, offset IX)``: a value cached in a kernel's row scratch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from kiln.backends.c.ix import IX
from kiln.core import dtypes as dt
from kiln.core.dtypes import DType


class Expr:
    """One interned expression node (see the module docstring)."""

    __slots__ = ("kind", "data", "args", "dtype", "id")

    def __init__(self, kind: str, data: Any, args: tuple, dtype: DType, id_: int) -> None:
        self.kind = kind
        self.data = data
        self.args = args
        self.dtype = dtype
        self.id = id_

    def __repr__(self) -> str:
        if self.kind == "const":
            return f"{self.data!r}"
        if self.kind == "load":
            return f"b{self.data[0]}[{self.data[1]}]"
        if self.kind == "op":
            return f"{self.data}({', '.join(map(repr, self.args))})"
        return f"{self.kind}({self.data})"


def cast_value(value: Any, dtype: DType) -> Any:
    """A Python scalar converted the way NumPy converts it to ``dtype``."""
    with np.errstate(all="ignore"):
        v = np.asarray(value).astype(dtype.np_dtype)
    return v.item()


class Builder:
    """Interns expressions and resolves loads of buffers computed in the current kernel.

    ``local`` maps a buffer id to ``(offset, expr)``: a load of that buffer at exactly
    ``offset`` returns ``expr`` (the value computed in this kernel); a load at any other
    offset sets ``foreign`` (the kernel cannot host that consumer). ``loads`` records
    every buffer id read from memory.
    """

    def __init__(self) -> None:
        self._table: dict[tuple, Expr] = {}
        self.local: dict[int, tuple[IX, Expr]] = {}
        self.loads: set[int] = set()
        self.foreign = False
        self.data_atoms: dict[str, Expr] = {}
        self.checks: dict[int, tuple[Expr, str]] = {}

    def begin_kernel(self, local: dict[int, tuple[IX, Expr]] | None = None) -> None:
        """Start building the expressions of one kernel."""
        self.local = dict(local or {})
        self.loads = set()
        self.foreign = False
        self.checks = {}

    def check(self, bad: Expr, message: str) -> None:
        """Record that ``bad`` must be false wherever the current expression is computed."""
        self.checks.setdefault(bad.id, (bad, message))

    def _make(self, kind: str, data: Any, args: tuple, dtype: DType) -> Expr:
        key = (kind, data, tuple(a.id for a in args), dtype.name)
        e = self._table.get(key)
        if e is None:
            e = Expr(kind, data, args, dtype, len(self._table))
            self._table[key] = e
        return e

    # leaves ---------------------------------------------------------------------------
    def const(self, value: Any, dtype: DType) -> Expr:
        v = cast_value(value, dtype)
        # -0.0 == 0.0 and nan != nan would confuse interning; key on the exact bits
        key = (v, np.asarray(v, dtype.np_dtype).tobytes()) if dtype.is_floating else v
        return self._make("const", key, (), dtype)

    def idx(self, ix: IX, dtype: DType = dt.int64) -> Expr:
        keys = sorted(ix.data_keys())
        e = self._make("idx", ix, tuple(self.data_atoms[k] for k in keys), dt.int64)
        return e if dtype == dt.int64 else self.cast(e, dtype)

    def row(self, name: str, dtype: DType) -> Expr:
        return self._make("row", name, (), dtype)

    def scratch(self, sid: int, offset: IX, dtype: DType) -> Expr:
        return self._make("scratch", (sid, offset), (), dtype)

    def raw_load(self, buf: int, offset: IX, dtype: DType) -> Expr:
        keys = sorted(offset.data_keys())
        return self._make("load", (buf, offset), tuple(self.data_atoms[k] for k in keys), dtype)

    def load(self, buf: int, offset: IX, dtype: DType) -> Expr:
        hit = self.local.get(buf)
        if hit is not None:
            off, e = hit
            if off == offset:
                return e
            self.foreign = True
        self.loads.add(buf)
        return self.raw_load(buf, offset, dtype)

    # operations -------------------------------------------------------------------------
    def cast(self, e: Expr, dtype: DType) -> Expr:
        if e.dtype == dtype:
            return e
        if e.kind == "const":
            v = e.data[0] if isinstance(e.data, tuple) else e.data
            return self.const(v, dtype)
        return self._make("op", "cast", (e,), dtype)

    def op(self, name: str, args: Iterable[Expr], dtype: DType,
           compute: DType | None = None) -> Expr:
        """``name(*args)`` with operands converted to ``compute`` (default ``dtype``)."""
        compute = compute or dtype
        conv = tuple(self.cast(a, compute) if name not in ("where",) else a for a in args)
        if name == "where":
            c, a, b = conv
            conv = (self.cast(c, dt.bool_), self.cast(a, dtype), self.cast(b, dtype))
        return self._make("op", name, conv, dtype)

    def substitute(self, e: Expr, fn: Callable[[Expr], Expr | None],
                   memo: dict[int, Expr] | None = None) -> Expr:
        """Rebuild ``e`` bottom-up, replacing nodes for which ``fn`` returns an Expr."""
        memo = {} if memo is None else memo
        stack = [e]
        while stack:
            n = stack[-1]
            if n.id in memo:
                stack.pop()
                continue
            rep = fn(n)
            if rep is not None:
                memo[n.id] = rep
                stack.pop()
                continue
            pending = [a for a in n.args if a.id not in memo]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            new_args = tuple(memo[a.id] for a in n.args)
            if all(x is y for x, y in zip(new_args, n.args, strict=True)):
                memo[n.id] = n
            else:
                memo[n.id] = self._make(n.kind, n.data, new_args, n.dtype)
        return memo[e.id]


def walk(roots: Iterable[Expr]) -> list[Expr]:
    """Every node reachable from ``roots``, children before parents (each once)."""
    out: list[Expr] = []
    seen: set[int] = set()
    for r in roots:
        stack: list[tuple[Expr, bool]] = [(r, False)]
        while stack:
            n, done = stack.pop()
            if done:
                out.append(n)
                continue
            if n.id in seen:
                continue
            seen.add(n.id)
            stack.append((n, True))
            for a in reversed(n.args):
                if a.id not in seen:
                    stack.append((a, False))
    return out


# Relative cost of evaluating one op per element (for fusion heuristics).
_EXPENSIVE = {"exp", "exp_nonpos", "log", "log1p", "expm1", "sin", "cos", "tanh", "sigmoid",
              "erf", "pow", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh",
              "tan", "atan2", "hypot", "log2", "log10"}
_MEDIUM = {"div", "sqrt", "rsqrt", "reciprocal"}


def op_cost(name: str) -> int:
    if name in _EXPENSIVE:
        return 8
    if name in _MEDIUM:
        return 2
    return 1


def transform(b: Builder, roots: list[Expr],
              fn: Callable[[Expr, tuple], Expr | None]) -> dict[int, Expr]:
    """Rebuild ``roots`` bottom-up: ``fn(node, new_args)`` may return a replacement; old id ->
    new expression. Index atoms naming rebuilt data-index expressions are renamed."""
    from kiln.backends.c.ix import rename_data

    memo: dict[int, Expr] = {}
    for n in walk(roots):
        args = tuple(memo[a.id] for a in n.args)
        rep = fn(n, args)
        if rep is None:
            if all(x is y for x, y in zip(args, n.args, strict=True)):
                rep = n
            elif n.kind in ("load", "idx", "scratch"):
                keymap = {f"t{a.id}": f"t{new.id}" for a, new in zip(n.args, args, strict=True)}
                for a in args:
                    b.data_atoms[f"t{a.id}"] = a
                if n.kind == "idx":
                    rep = b.idx(rename_data(n.data, keymap))
                elif n.kind == "load":
                    rep = b.raw_load(n.data[0], rename_data(n.data[1], keymap), n.dtype)
                else:
                    rep = b.scratch(n.data[0], rename_data(n.data[1], keymap), n.dtype)
            else:
                rep = b._make(n.kind, n.data, args, n.dtype)
        memo[n.id] = rep
    return memo


def reciprocal_divisions(b: Builder, roots: list[Expr], varies: Callable[[Expr], bool]
                         ) -> dict[int, Expr]:
    """``a / d`` -> ``a * (1 / d)`` for floating ``d`` that does not vary in the loop (one
    division per row instead of one per element; at most 1 ulp more error, documented)."""
    def fn(n: Expr, args: tuple) -> Expr | None:
        if n.kind == "op" and n.data == "div" and n.dtype.is_floating and not varies(n.args[1]) \
                and varies(n.args[0]):
            rec = b._make("op", "reciprocal", (args[1],), n.dtype)
            return b._make("op", "mul", (args[0], rec), n.dtype)
        return None

    return transform(b, roots, fn)
