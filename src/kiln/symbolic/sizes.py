"""Symbolic dimensions: integer polynomials over named sizes.

A traced graph may leave some input dims symbolic (``kiln.trace(f, x, dynamic={"x": {0:
"B"}})``). Meta functions then compute with :class:`SymInt` values: sums, products, exact
division and floor division by constants. A SymInt is kept in a canonical form (a sorted tuple
of monomials), so two expressions that are equal as polynomials compare equal, which is what
broadcasting and reshape checks need. Anything that would need the value (``int(sym)``,
``range(sym)``) raises a :class:`TraceError`, because a graph that specializes on it would be
silently wrong for other sizes. Comparisons (``sym == 3``, ``sym < 4``) are decided while
tracing from the example sizes and become guards on the graph (see :mod:`kiln.symbolic.guards`).

>>> B = SymInt.symbol("B")
>>> (B * 4 + B) // 5 == B
True
>>> str(B * 2 + 1)
'2*B + 1'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from kiln.errors import ArgumentError, GuardError, TraceError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, eq=False)
class FloorDiv:
    """An atom ``num // den`` that could not be simplified (den a positive int).

    >>> B = SymInt.symbol("B")
    >>> (B + 1) // 2
    SymInt((B + 1)//2)
    >>> ((B + 1) // 2).evaluate({"B": 6})
    3
    """

    num: SymInt
    den: int

    def __str__(self) -> str:
        return f"({self.num})//{self.den}"

    # Structural, like SymInt's canonical form: comparing atoms must never decide a size.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, FloorDiv) and self.den == other.den and \
            self.num.terms == other.num.terms

    def __hash__(self) -> int:
        return hash((self.num, self.den))


Atom = str | FloorDiv
Monomial = tuple  # tuple[Atom, ...], sorted by str


def _atom_key(a: Atom) -> str:
    return a if isinstance(a, str) else str(a)


class SymInt:
    """An integer-valued polynomial in named symbols; see the module docstring.

    >>> B = SymInt.symbol("B")
    >>> n = B * 4 + 1
    >>> n, n.free_symbols, n.evaluate({"B": 3})
    (SymInt(4*B + 1), {'B'}, 13)
    """

    __slots__ = ("terms", "_hash")

    def __init__(self, terms: dict) -> None:
        # terms: {monomial: coeff}; zero coefficients are dropped for canonical form.
        items = [(m, c) for m, c in terms.items() if c != 0]
        items.sort(key=lambda mc: (-len(mc[0]), [_atom_key(a) for a in mc[0]]))
        self.terms: tuple = tuple(items)
        self._hash = hash(self.terms)

    # construction ------------------------------------------------------------------
    @staticmethod
    def symbol(name: str) -> SymInt:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ArgumentError(f"symbol name: expected a Python identifier, got {name!r}")
        return SymInt({(name,): 1})

    @staticmethod
    def make(terms: dict) -> int | SymInt:
        """Build from terms, collapsing to a plain int when no symbol remains."""
        s = SymInt(terms)
        if not s.terms:
            return 0
        if len(s.terms) == 1 and s.terms[0][0] == ():
            return s.terms[0][1]
        return s

    def _as_dict(self) -> dict:
        return dict(self.terms)

    # arithmetic --------------------------------------------------------------------
    def __add__(self, other: object) -> int | SymInt:
        o = _lift(other)
        if o is None:
            return NotImplemented
        d = self._as_dict()
        for m, c in o.terms:
            d[m] = d.get(m, 0) + c
        return SymInt.make(d)

    __radd__ = __add__

    def __neg__(self) -> int | SymInt:
        return SymInt.make({m: -c for m, c in self.terms})

    def __sub__(self, other: object) -> int | SymInt:
        o = _lift(other)
        if o is None:
            return NotImplemented
        return self + (-o)  # type: ignore[operator]

    def __rsub__(self, other: object) -> int | SymInt:
        return (-self) + other  # type: ignore[operator]

    def __mul__(self, other: object) -> int | SymInt:
        o = _lift(other)
        if o is None:
            return NotImplemented
        d: dict = {}
        for m1, c1 in self.terms:
            for m2, c2 in o.terms:
                m = tuple(sorted(m1 + m2, key=_atom_key))
                d[m] = d.get(m, 0) + c1 * c2
        return SymInt.make(d)

    __rmul__ = __mul__

    def __floordiv__(self, other: object) -> int | SymInt:
        if isinstance(other, bool) or not isinstance(other, (int, SymInt)):
            return NotImplemented
        if isinstance(other, int):
            if other <= 0:
                raise TraceError(f"symbolic floor division by {other}: expected a positive int")
            if all(c % other == 0 for _, c in self.terms):
                return SymInt.make({m: c // other for m, c in self.terms})
            return SymInt({(FloorDiv(self, other),): 1})
        exact = self.exact_div(other)
        if exact is None:
            raise TraceError(f"cannot divide {self} by {other} symbolically: not exact")
        return exact

    def __rfloordiv__(self, other: object) -> int | SymInt:
        raise TraceError(f"cannot divide {other} by the symbolic size {self}")

    def exact_div(self, other: int | SymInt) -> int | SymInt | None:
        """``self / other`` when it divides exactly as polynomials, else None."""
        if isinstance(other, int):
            if other != 0 and all(c % other == 0 for _, c in self.terms):
                return SymInt.make({m: c // other for m, c in self.terms})
            return None
        if len(other.terms) != 1:
            return 1 if self.terms == other.terms else None
        (om, oc), = other.terms
        d: dict = {}
        for m, c in self.terms:
            rest = list(m)
            for a in om:
                if a not in rest:
                    return None
                rest.remove(a)
            if c % oc:
                return None
            d[tuple(rest)] = c // oc
        return SymInt.make(d)

    # comparison --------------------------------------------------------------------
    # Comparisons are decided by kiln.symbolic.guards: identical expressions are equal; a comparison
    # that depends on the sizes is answered from the trace's example sizes and recorded as a
    # guard that every call of the graph checks.
    def _compare(self, op: str, other: object) -> bool:
        if isinstance(other, float) and math.isfinite(other):
            if not other.is_integer():  # a size is an int: compare with the int bound
                if op in ("==", "!="):
                    return op == "!="
                other = math.ceil(other) if op in ("<", ">=") else math.floor(other)
            other = int(other)
        if isinstance(other, bool) or not isinstance(other, (int, SymInt)):
            return NotImplemented  # type: ignore[return-value]
        return _guards.decide(self, op, other)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SymInt) and self.terms == other.terms:
            return True
        return self._compare("==", other)

    def __ne__(self, other: object) -> bool:
        if isinstance(other, SymInt) and self.terms == other.terms:
            return False
        return self._compare("!=", other)

    def __hash__(self) -> int:
        return self._hash

    def _refuse(self, what: str) -> TraceError:
        return TraceError(
            f"{what} on the symbolic size {self}: its value is unknown while tracing. "
            "Write shape logic that holds for every size (reshape with -1, broadcasting), or "
            "leave this dim static."
        )

    def __lt__(self, other: object) -> bool:
        return self._compare("<", other)

    def __le__(self, other: object) -> bool:
        return self._compare("<=", other)

    def __gt__(self, other: object) -> bool:
        return self._compare(">", other)

    def __ge__(self, other: object) -> bool:
        return self._compare(">=", other)

    def __bool__(self) -> bool:
        return True  # a size expression is never the int 0 (make() collapses constants)

    def __int__(self) -> int:
        raise self._refuse("int()")

    def __index__(self) -> int:
        raise self._refuse("use as an index")

    # inspection --------------------------------------------------------------------
    @property
    def free_symbols(self) -> set[str]:
        out: set[str] = set()
        for m, _ in self.terms:
            for a in m:
                if isinstance(a, str):
                    out.add(a)
                else:
                    out |= a.num.free_symbols
        return out

    @property
    def plain_symbol(self) -> str | None:
        """The name when this is exactly one symbol (``B``), else None."""
        if len(self.terms) == 1:
            (m, c), = self.terms
            if c == 1 and len(m) == 1 and isinstance(m[0], str):
                return m[0]
        return None

    def evaluate(self, env: dict[str, int]) -> int:
        """The value under ``env`` (symbol name -> int).

        >>> (SymInt.symbol("B") * 2 + 1).evaluate({"B": 5})
        11
        """
        total = 0
        for m, c in self.terms:
            v = c
            for a in m:
                if isinstance(a, str):
                    if a not in env:
                        raise GuardError(f"symbol {a} has no value (known: {sorted(env)})")
                    v *= env[a]
                else:
                    v *= a.num.evaluate(env) // a.den
            total += v
        return total

    def __str__(self) -> str:
        parts = []
        for m, c in self.terms:
            atoms = [_atom_key(a) for a in m]
            if not atoms:
                parts.append(str(c))
            elif c == 1:
                parts.append("*".join(atoms))
            elif c == -1:
                parts.append("-" + "*".join(atoms))
            else:
                parts.append(f"{c}*" + "*".join(atoms))
        text = " + ".join(parts)
        return text.replace("+ -", "- ")

    def __repr__(self) -> str:
        return f"SymInt({self})"

    # JSON ----------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"sym": [[c, [_atom_json(a) for a in m]] for m, c in self.terms]}

    @staticmethod
    def from_json(obj: dict) -> int | SymInt:
        terms: dict = {}
        try:
            for c, atoms in obj["sym"]:
                m = tuple(sorted((_atom_from_json(a) for a in atoms), key=_atom_key))
                if not isinstance(c, int):
                    raise TypeError
                terms[m] = terms.get(m, 0) + c
        except (KeyError, TypeError, ValueError) as e:
            from kiln.errors import SerializationError

            raise SerializationError(f"bad symbolic size in JSON: {obj!r}") from e
        return SymInt.make(terms)


def _atom_json(a: Atom) -> object:
    return a if isinstance(a, str) else {"floordiv": [a.num.to_json(), a.den]}


def _atom_from_json(obj: object) -> Atom:
    if isinstance(obj, str):
        if not _NAME.match(obj):
            raise ValueError(obj)
        return obj
    if isinstance(obj, dict) and "floordiv" in obj:
        num, den = obj["floordiv"]
        n = SymInt.from_json(num)
        if not isinstance(n, SymInt) or not isinstance(den, int) or den <= 0:
            raise ValueError(obj)
        return FloorDiv(n, den)
    raise ValueError(obj)


def _lift(value: object) -> SymInt | None:
    if isinstance(value, SymInt):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return SymInt({(): value})
    return None


Size = int | SymInt


def is_symbolic(value: object) -> bool:
    """True for a :class:`SymInt` (a size that depends on a symbolic dim).

    >>> is_symbolic(SymInt.symbol("B")), is_symbolic(3)
    (True, False)
    """
    return isinstance(value, SymInt)


def evaluate(value: object, env: dict[str, int]) -> object:
    """Replace every SymInt inside ``value`` (nested tuples/lists/dicts) by its value.

    >>> B = SymInt.symbol("B")
    >>> evaluate({"shape": (B, B * 2, 3)}, {"B": 5})
    {'shape': (5, 10, 3)}
    """
    if isinstance(value, SymInt):
        return value.evaluate(env)
    if isinstance(value, tuple):
        return tuple(evaluate(v, env) for v in value)
    if isinstance(value, list):
        return [evaluate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: evaluate(v, env) for k, v in value.items()}
    return value


def contains_symbolic(value: object) -> bool:
    """True if ``value`` is a :class:`SymInt` or a tuple/list holding one (at any depth).

    >>> contains_symbolic((2, [SymInt.symbol("B")])), contains_symbolic((2, 3))
    (True, False)
    """
    if isinstance(value, SymInt):
        return True
    if isinstance(value, (tuple, list)):
        return any(contains_symbolic(v) for v in value)
    if isinstance(value, dict):
        return any(contains_symbolic(v) for v in value.values())
    return False


def prod(values: tuple | list) -> Size:
    """The product of ints and SymInts (1 for none).

    >>> B = SymInt.symbol("B")
    >>> prod([B, 3, 2]), prod([])
    (SymInt(6*B), 1)
    """
    out: Size = 1
    for v in values:
        out = out * v
    return out


@dataclass(frozen=True)
class Dim:
    """A named dynamic dimension with an optional range, for ``dynamic=`` arguments.

    >>> Dim("batch", min=1, max=512)
    Dim('batch', min=1, max=512)
    """

    name: str
    min: int = 1
    max: int = 2**31 - 1

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ArgumentError(f"Dim name: expected a Python identifier, got {self.name!r}")
        if not (0 <= self.min <= self.max):
            raise ArgumentError(f"Dim {self.name}: expected 0 <= min <= max, got "
                                f"min={self.min}, max={self.max}")

    def __repr__(self) -> str:
        return f"Dim({self.name!r}, min={self.min}, max={self.max})"


from kiln.symbolic import guards as _guards  # noqa: E402  (guards imports this module)
