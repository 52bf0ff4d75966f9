"""Guards: what a trace assumed about its symbolic sizes, checked on every call.

A comparison on a symbolic size (``B == 1`` inside ``squeeze``, ``x.shape[0] == 3`` in user
code, ``B < 4``) has no answer a graph could hold for every size. As in torch, tracing
answers it from the *hint* (the example input's size), and records the answer as a
:class:`Guard` on the graph (``B != 1``). Every way of running the graph (the interpreter,
``gm.code``, the C backend, reloaded artifacts) checks the guards first and refuses sizes
that break one with a GuardError naming the assumption; ``kiln.compile`` and
``aot_function`` trace again for such sizes instead.

Comparisons that hold for every size a symbol may take (``B >= 1``, ``2*B == 1``) need no
guard; identical expressions are equal without one. Outside tracing (lint re-inferring
metas, backends), decisions come from the graph's recorded guards; a decision nothing
recorded falls back to what holds structurally (distinct expressions are unequal) and an
order comparison is a TraceError.

>>> from kiln.graph.graph import Graph
>>> from kiln.symbolic.sizes import SymInt
>>> B = SymInt.symbol("B")
>>> graph = Graph()
>>> graph.hints["B"] = 3
>>> with ShapeEnv(graph):
...     B == 3, B != 1, B >= 1
(True, True, True)
>>> [str(g) for g in graph.guards]
['B == 3', 'B != 1']
>>> Guard(B, "!=", 1).check({"B": 1})
Traceback (most recent call last):
...
kiln.errors.GuardError: traced assuming B != 1; got B=1 (trace again for these sizes)
"""

from __future__ import annotations

import math
import operator
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kiln.errors import GuardError, SerializationError, TraceError
from kiln.symbolic.sizes import FloorDiv, SymInt

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge}
_NEGATE = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

# Without a range (no graph at hand), a symbol is a size of at least 1, as Dim's default.
_DEFAULT_RANGE = (1, None)


@dataclass(frozen=True)
class Guard:
    """``lhs op rhs`` over sizes, assumed by a trace; ``where`` is the source line that
    took the decision (for messages only: two guards that differ in it are the same)."""

    lhs: Any
    op: str
    rhs: Any
    where: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.lhs} {self.op} {self.rhs}"

    @property
    def free_symbols(self) -> set[str]:
        out: set[str] = set()
        for side in (self.lhs, self.rhs):
            if isinstance(side, SymInt):
                out |= side.free_symbols
        return out

    def holds(self, env: dict[str, int]) -> bool:
        lhs = self.lhs.evaluate(env) if isinstance(self.lhs, SymInt) else self.lhs
        rhs = self.rhs.evaluate(env) if isinstance(self.rhs, SymInt) else self.rhs
        return _OPS[self.op](lhs, rhs)

    def check(self, env: dict[str, int]) -> None:
        """Raise a GuardError naming the assumption when it does not hold under ``env``."""
        if self.holds(env):
            return
        got = ", ".join(f"{s}={env[s]}" for s in sorted(self.free_symbols) if s in env)
        at = f" (decided at {self.where})" if self.where else ""
        raise GuardError(f"traced assuming {self}{at}; got {got} (trace again for these sizes)")

    def key(self) -> tuple:
        """(expression, op): ``lhs - rhs`` compared with 0, its sign made canonical."""
        return _canonical(self.lhs - self.rhs, self.op)

    # JSON --------------------------------------------------------------------------------
    def to_json(self, where: bool = False) -> dict:
        """``where`` is left out unless asked for: a graph's JSON (and so its cache key) does
        not depend on source lines; a compiled plan keeps it for its messages."""
        obj = {"lhs": _size_json(self.lhs), "op": self.op, "rhs": _size_json(self.rhs)}
        if where and self.where:
            obj["where"] = self.where
        return obj

    @staticmethod
    def from_json(obj: Any) -> Guard:
        try:
            op = obj["op"]
            where = obj.get("where", "")
            if op not in _OPS or not isinstance(where, str):
                raise ValueError(op)
            return Guard(_size_from_json(obj["lhs"]), op, _size_from_json(obj["rhs"]), where)
        except (KeyError, TypeError, ValueError) as e:
            raise SerializationError(f"bad guard in JSON: {obj!r}") from e


def _size_json(v: Any) -> Any:
    return v.to_json() if isinstance(v, SymInt) else v


def _size_from_json(obj: Any) -> Any:
    if isinstance(obj, dict):
        return SymInt.from_json(obj)
    if isinstance(obj, bool) or not isinstance(obj, int):
        raise ValueError(obj)
    return obj


def guards_to_json(guards: Iterable[Guard], where: bool = False) -> list:
    return [g.to_json(where) for g in guards]


def guards_from_json(obj: Any) -> list[Guard]:
    if not isinstance(obj, list):
        raise SerializationError(f"guards: expected a list, got {type(obj).__name__}")
    return [Guard.from_json(g) for g in obj]


def check_guards(guards: Iterable[Guard], env: dict[str, int]) -> None:
    """Check every guard under the symbol values ``env`` (GuardError on the first broken)."""
    for g in guards:
        g.check(env)


def _canonical(diff: Any, op: str) -> tuple:
    """``diff op 0`` in one form: coefficients divided by their gcd, the first positive
    (``3*B - 3 == 0`` and ``1 - B == 0`` are both ``B - 1 == 0``)."""
    if not isinstance(diff, SymInt) or not diff.terms:
        return (diff, op)
    g = math.gcd(*(c for _, c in diff.terms))
    if diff.terms[0][1] < 0:
        g, op = -g, _FLIP[op]
    return (SymInt.make({m: c // g for m, c in diff.terms}), op)


# --------------------------------------------------------------------------------------
# the environment decisions are taken in


class ShapeEnv:
    """Where comparisons on symbolic sizes of ``graph`` are decided: its ``hints`` (example
    sizes) answer them, its ``guards`` record the answers, its ``symbols`` hold the ranges.
    They are read live: tracing fills them in while the environment is active.

    Used as a context manager (a stack: the innermost one decides). A trace context holds
    one for its graph; ``graph.lint()`` uses one with the graph's guards as known facts.
    """

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self._facts: dict[tuple, bool] = {}
        self._counted = -1  # how many of the graph's guards _facts holds (-1: none yet)

    def __enter__(self) -> ShapeEnv:
        _STACK.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _STACK.remove(self)

    def _range(self, sym: str) -> tuple[int, int | None]:
        dim = self.graph.symbols.get(sym)
        return (dim.min, dim.max) if dim is not None else _DEFAULT_RANGE

    def fact(self, diff: Any, op: str) -> bool | None:
        """What the recorded guards say about ``diff op 0``, or None."""
        guards = self.graph.guards
        if self._counted != len(guards):  # guards were recorded since (by any environment)
            self._facts = {}
            for g in guards:
                expr, gop = g.key()
                self._facts[(expr, gop)] = True
                self._facts[(expr, _NEGATE[gop])] = False
            self._counted = len(guards)
        return self._facts.get(_canonical(diff, op))


_STACK: list[ShapeEnv] = []


# --------------------------------------------------------------------------------------
# deciding


def _bounds(e: Any, rng: Callable[[str], tuple[int, int | None]]) -> tuple[Any, Any] | None:
    """(lowest, highest) value of SymInt ``e`` over the symbols' ranges (None = unbounded);
    None when unknown (a floor division of something that may be negative)."""
    lo_total: Any = 0
    hi_total: Any = 0
    for m, c in e.terms:
        lo, hi = 1, 1
        for a in m:
            if isinstance(a, FloorDiv):
                inner = _bounds(a.num, rng)
                if inner is None or inner[0] is None or inner[0] < 0:
                    return None
                alo = inner[0] // a.den
                ahi = None if inner[1] is None else inner[1] // a.den
            else:
                alo, ahi = rng(a)
            lo = lo * alo
            hi = None if hi is None or ahi is None else hi * ahi
        mlo, mhi = (c * lo, None if hi is None else c * hi) if c > 0 else \
            (None if hi is None else c * hi, c * lo)
        lo_total = None if lo_total is None or mlo is None else lo_total + mlo
        hi_total = None if hi_total is None or mhi is None else hi_total + mhi
    return lo_total, hi_total


def _by_range(diff: SymInt, op: str, env: ShapeEnv | None) -> bool | None:
    """``diff op 0`` when it holds (or fails) for every value the symbols may take."""
    rng = env._range if env is not None else (lambda _s: _DEFAULT_RANGE)
    b = _bounds(diff, rng)
    if b is None:
        return None
    lo, hi = b
    above = lo is not None and lo > 0  # diff > 0 always
    at_least = lo is not None and lo >= 0
    below = hi is not None and hi < 0
    at_most = hi is not None and hi <= 0
    if op in ("==", "!="):
        if above or below:
            return op == "!="
        return None
    if op == "<":
        return True if below else (False if at_least else None)
    if op == "<=":
        return True if at_most else (False if above else None)
    if op == ">":
        return True if above else (False if at_most else None)
    return True if at_least else (False if below else None)  # ">="


def decide(lhs: Any, op: str, rhs: Any) -> bool:
    """The answer to ``lhs op rhs`` (ints and SymInts); see the module docstring."""
    diff = lhs - rhs
    if not isinstance(diff, SymInt):
        return _OPS[op](diff, 0)
    env = _STACK[-1] if _STACK else None
    known = _by_range(diff, op, env)
    if known is not None:
        return known
    if env is not None:
        fact = env.fact(diff, op)
        if fact is not None:
            return fact
        hints = env.graph.hints
        if hints and all(s in hints for s in diff.free_symbols):
            value = _OPS[op](diff.evaluate(hints), 0)
            # A new guard: fact() found neither this comparison nor its negation.
            env.graph.guards.append(Guard(lhs, op if value else _NEGATE[op], rhs,
                                          where=user_line()))
            return value
    if op == "==":
        return False  # no hint and no record: distinct expressions are unequal
    if op == "!=":
        return True
    raise TraceError(
        f"comparison '{lhs} {op} {rhs}' on a symbolic size has no answer here: the sizes are "
        "unknown (no trace is running to decide it from the example inputs). Write shape "
        "logic that holds for every size, or leave this dim static."
    )


def same(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` are equal for every value of the symbols, without deciding
    (or guarding) anything: for shortcuts whose other branch is also right.

    >>> B = SymInt.symbol("B")
    >>> same(B * 2, B + B), same(B, 1)
    (True, False)
    """
    if type(a) is int and type(b) is int:  # the eager hot path: plain sizes
        return a == b
    if isinstance(a, SymInt) or isinstance(b, SymInt):
        if not all(isinstance(v, (int, SymInt)) for v in (a, b)):
            return False
        diff = a - b
        return isinstance(diff, int) and diff == 0
    return bool(a == b)


def same_shape(a: Iterable[Any], b: Iterable[Any]) -> bool:
    """:func:`same` over two shapes (also False for different ranks)."""
    a, b = tuple(a), tuple(b)
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        # plain ints compare inline: this runs on every eager reshape, index and backward
        if not (x == y if type(x) is int and type(y) is int else same(x, y)):
            return False
    return True


def is_one(d: Any) -> bool:
    """True only for a size that is 1 whatever the symbols are (a static 1)."""
    return isinstance(d, int) and d == 1


_KILN_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_line() -> str:
    """``file:line: source`` of the innermost frame outside Kiln (the user's code that took
    the decision), or "" when every frame is Kiln's."""
    import linecache

    frame = sys._getframe(1)
    while frame is not None:
        path = frame.f_code.co_filename
        if not os.path.abspath(path).startswith(_KILN_DIR):
            line = linecache.getline(path, frame.f_lineno).strip()
            return f"{os.path.basename(path)}:{frame.f_lineno}: {line}" if line else \
                f"{os.path.basename(path)}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return ""


# --------------------------------------------------------------------------------------
# caches of traced graphs


def _plain_dims(placeholders: list[Any]) -> list[tuple[int, int, str]]:
    """(input index, dim, symbol) for every placeholder dim that is one plain symbol."""
    return [(i, d, s.plain_symbol) for i, p in enumerate(placeholders)
            for d, s in enumerate(p.meta.shape)
            if isinstance(s, SymInt) and s.plain_symbol is not None]


def _read_symbols(dims: list[tuple[int, int, str]], inputs: list[Any]) -> dict[str, int]:
    env: dict[str, int] = {}
    for i, d, sym in dims:
        if i < len(inputs) and sym not in env:
            env[sym] = inputs[i].shape[d]
    return env


def symbol_values(placeholders: list[Any], inputs: list[Any]) -> dict[str, int]:
    """Symbol name -> size, read from the flat ``inputs`` of a graph's ``placeholders`` (the
    dims that are one plain symbol; no checks: the graph's own guards do those)."""
    return _read_symbols(_plain_dims(placeholders), inputs)


def guard_checker(graph: Any) -> Callable[[list[Any]], bool] | None:
    """``admits(inputs)``: whether the graph's guards hold for these flat tensor inputs
    (one per leading placeholder), or None for a graph without guards."""
    if not graph.guards:
        return None
    dims = _plain_dims(graph.placeholders)  # found once: admits runs on every call
    guards = list(graph.guards)

    def admits(inputs: list[Any]) -> bool:
        env = _read_symbols(dims, inputs)
        try:
            return all(g.holds(env) for g in guards)
        except GuardError:  # a symbol these inputs do not bind
            return False

    return admits


class GuardedCache:
    """Compiled entries by call signature; several may share a signature when their graphs
    assume different things about symbolic sizes (``B == 1`` and ``B != 1``).

    An entry carries ``admits`` (from :func:`guard_checker`, or None); :meth:`get` returns
    the first entry of the key whose guards hold for the inputs. ``limit`` caps the traces
    kept per key (the oldest goes).
    """

    def __init__(self, limit: int = 8) -> None:
        self._entries: dict[Any, list[Any]] = {}
        self.limit = limit

    def get(self, key: Any, inputs: list[Any]) -> Any:
        """The entry for ``key`` whose guards admit the flat tensor ``inputs``, or None.
        (One key fixes which argument leaves are tensors, so its entries share ``inputs``.)"""
        for entry in self._entries.get(key, ()):
            if entry.admits is None or entry.admits(inputs):
                return entry
        return None

    def add(self, key: Any, entry: Any) -> None:
        entries = self._entries.setdefault(key, [])
        entries.append(entry)
        if len(entries) > self.limit:
            del entries[0]

    def values(self) -> list[Any]:
        return [e for entries in self._entries.values() for e in entries]

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values())
