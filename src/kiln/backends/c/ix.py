"""Integer index expressions for generated loops.

An :class:`IX` is a polynomial with integer coefficients over *atoms*:

- ``("v", name, extent)``: a loop variable ranging over ``[0, extent)`` (extent is an IX of
  symbols);
- ``("s", name, min)``: a symbolic size (a ``kiln.Dim``), known to be ``>= min``;
- ``("d", num, den)`` / ``("m", num, den)``: floor division and floor modulo by a positive
  ``den`` (an int or a monomial of symbols);
- ``("x", key, lo, hi)``: a data value used as an index (gather), already clamped to
  ``[lo, hi]``; ``key`` names the C temporary holding it.

Atoms carry their own ranges, so simplification needs no context: ``(i*4 + j) // 4`` is
``i`` when ``j`` is a loop variable of extent 4, and ``(f // n) * n + f % n`` folds back to
``f``. Bounds are polynomials in symbols; ``p >= 0`` is proven by shifting every symbol by
its minimum and checking that no coefficient is negative (all atoms are non-negative).

>>> i, j = IX.var("i", 3), IX.var("j", 4)
>>> f = i * 4 + j
>>> str(floordiv(f, 4)), str(mod(f, 4))
('i', 'j')
>>> str(floordiv(f, 4) * 4 + mod(f, 4))
'4*i + j'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from kiln.symbolic.sizes import FloorDiv, SymInt

Atom = tuple
Mono = tuple  # sorted tuple of atoms


def _akey(a: Atom) -> str:
    kind = a[0]
    if kind in ("v", "s"):
        return f"{kind}:{a[1]}"
    if kind == "x":
        return f"x:{a[1]}"
    return f"{kind}:({a[1]}):({a[2]})"


def _mono_key(m: Mono) -> tuple:
    return (-len(m), [_akey(a) for a in m])


class IX:
    """An integer polynomial over loop variables, symbols and div/mod atoms (immutable)."""

    __slots__ = ("terms", "_hash")

    def __init__(self, terms: Mapping[Mono, int]) -> None:
        items = [(m, c) for m, c in terms.items() if c != 0]
        items.sort(key=lambda mc: _mono_key(mc[0]))
        self.terms: tuple = tuple(items)
        self._hash = hash(self.terms)

    # construction -------------------------------------------------------------------
    @staticmethod
    def const(c: int) -> IX:
        return IX({(): int(c)})

    @staticmethod
    def var(name: str, extent: Any) -> IX:
        return IX({(("v", name, lift(extent)),): 1})

    @staticmethod
    def sym(name: str, minimum: int = 0) -> IX:
        return IX({(("s", name, int(minimum)),): 1})

    @staticmethod
    def atom(a: Atom) -> IX:
        return IX({(a,): 1})

    # arithmetic ---------------------------------------------------------------------
    def __add__(self, other: Any) -> IX:
        o = lift(other)
        d = dict(self.terms)
        for m, c in o.terms:
            d[m] = d.get(m, 0) + c
        return IX(d)

    __radd__ = __add__

    def __neg__(self) -> IX:
        return IX({m: -c for m, c in self.terms})

    def __sub__(self, other: Any) -> IX:
        return self + (-lift(other))

    def __rsub__(self, other: Any) -> IX:
        return lift(other) + (-self)

    def __mul__(self, other: Any) -> IX:
        o = lift(other)
        d: dict = {}
        for m1, c1 in self.terms:
            for m2, c2 in o.terms:
                m = tuple(sorted(m1 + m2, key=_akey))
                d[m] = d.get(m, 0) + c1 * c2
        return IX(d)

    __rmul__ = __mul__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, int) and not isinstance(other, bool):
            other = IX.const(other)
        return isinstance(other, IX) and self.terms == other.terms

    def __hash__(self) -> int:
        return self._hash

    # inspection ---------------------------------------------------------------------
    @property
    def is_const(self) -> bool:
        return all(m == () for m, _ in self.terms)

    @property
    def value(self) -> int:
        """The constant value (only when :attr:`is_const`)."""
        return sum(c for _, c in self.terms)

    def atoms(self) -> set:
        out: set = set()
        for m, _ in self.terms:
            out.update(m)
        return out

    def var_names(self) -> set[str]:
        """Loop variables this expression depends on, also inside div/mod/x atoms."""
        out: set[str] = set()
        for a in self.atoms():
            if a[0] == "v":
                out.add(a[1])
            elif a[0] in ("d", "m"):
                out |= a[1].var_names() | a[2].var_names()
        return out

    def data_keys(self) -> set[str]:
        """Keys of the data-value atoms (gather indices) this expression reads."""
        out: set[str] = set()
        for a in self.atoms():
            if a[0] == "x":
                out.add(a[1])
            elif a[0] in ("d", "m"):
                out |= a[1].data_keys() | a[2].data_keys()
        return out

    def linear_coeff(self, name: str) -> IX | None:
        """The coefficient of loop variable ``name`` if the expression is affine in it (the
        variable appears only to the first power and not inside div/mod atoms), else None."""
        d: dict = {}
        for m, c in self.terms:
            hits = [a for a in m if a[0] == "v" and a[1] == name]
            inner = [a for a in m if a[0] in ("d", "m") and name in IX.atom(a).var_names()]
            if inner or len(hits) > 1:
                return None
            if hits:
                rest = list(m)
                rest.remove(hits[0])
                d[tuple(rest)] = d.get(tuple(rest), 0) + c
        return IX(d)

    def subs(self, mapping: Mapping[str, IX]) -> IX:
        """Replace loop variables by expressions (also inside div/mod atoms) and simplify."""
        if not mapping:
            return self
        out = IX.const(0)
        for m, c in self.terms:
            t = IX.const(c)
            for a in m:
                t = t * _subs_atom(a, mapping)
            out = out + t
        return simplify(out)

    def evaluate(self, env: Mapping[str, int]) -> int:
        """The value with symbols (and loop variables) taken from ``env``."""
        total = 0
        for m, c in self.terms:
            v = c
            for a in m:
                v *= _eval_atom(a, env)
            total += v
        return total

    def __str__(self) -> str:
        parts = []
        for m, c in self.terms:
            names = [_astr(a) for a in m]
            if not names:
                parts.append(str(c))
            elif c == 1:
                parts.append("*".join(names))
            elif c == -1:
                parts.append("-" + "*".join(names))
            else:
                parts.append(f"{c}*" + "*".join(names))
        return (" + ".join(parts) or "0").replace("+ -", "- ")

    __repr__ = __str__


def _astr(a: Atom) -> str:
    if a[0] in ("v", "s", "x"):
        return a[1]
    op = "//" if a[0] == "d" else "%"
    return f"(({a[1]}){op}({a[2]}))"


def lift(value: Any) -> IX:
    """An IX from an int, a SymInt (``kiln.symbolic.sizes``) or an IX."""
    if isinstance(value, IX):
        return value
    if isinstance(value, bool):
        raise TypeError("bool is not an index")
    if isinstance(value, int):
        return IX.const(value)
    if isinstance(value, SymInt):
        return from_symint(value)
    raise TypeError(f"cannot use {type(value).__name__} as an index expression")


_SYM_MIN: dict[str, int] = {}


def from_symint(s: SymInt, mins: Mapping[str, int] | None = None) -> IX:
    """Convert a SymInt polynomial; symbol minimums come from ``mins`` (default 0)."""
    mins = mins if mins is not None else _SYM_MIN
    out = IX.const(0)
    for m, c in s.terms:
        t = IX.const(c)
        for a in m:
            if isinstance(a, str):
                t = t * IX.sym(a, mins.get(a, 0))
            else:
                assert isinstance(a, FloorDiv)
                t = t * floordiv(from_symint(a.num, mins), a.den)
        out = out + t
    return out


def set_symbol_minimums(mins: Mapping[str, int]) -> None:
    """Symbols' lower bounds used by :func:`lift` (set per compilation)."""
    _SYM_MIN.clear()
    _SYM_MIN.update(mins)


def _subs_atom(a: Atom, mapping: Mapping[str, IX]) -> IX:
    if a[0] == "v":
        return mapping.get(a[1], IX.atom(a))
    if a[0] == "d":
        return floordiv(a[1].subs(mapping), a[2].subs(mapping))
    if a[0] == "m":
        return mod(a[1].subs(mapping), a[2].subs(mapping))
    return IX.atom(a)


def _eval_atom(a: Atom, env: Mapping[str, int]) -> int:
    if a[0] in ("v", "s"):
        return env[a[1]]
    if a[0] == "d":
        return a[1].evaluate(env) // a[2].evaluate(env)
    if a[0] == "m":
        return a[1].evaluate(env) % a[2].evaluate(env)
    raise KeyError(f"data atom {a[1]} has no value outside generated code")


# --------------------------------------------------------------------------------------
# bounds and proofs


def _atom_bounds(a: Atom) -> tuple[IX | None, IX | None]:
    kind = a[0]
    if kind == "v":
        return IX.const(0), a[2] - 1
    if kind == "s":
        return IX.atom(a), IX.atom(a)
    if kind == "x":
        return a[2], a[3]
    if kind == "m":
        if nonneg(a[2] - 1):
            return IX.const(0), a[2] - 1
        return None, None
    # floor division: num >= 0 and den >= 1 give 0 <= num // den <= num
    lo, hi = bounds(a[1])
    if lo is None or not nonneg(lo) or not nonneg(a[2] - 1):
        return None, None
    if hi is not None and a[2].is_const:
        # floor(A + c0/den) = A + floor(c0/den) when den divides every other coefficient
        den = a[2].value
        if all(c % den == 0 for m, c in hi.terms if m):
            return IX.const(0), IX({m: c // den for m, c in hi.terms})
    return IX.const(0), hi


def bounds(x: IX) -> tuple[IX | None, IX | None]:
    """Inclusive lower and upper bounds as polynomials in symbols (None when unknown)."""
    lo_t, hi_t = IX.const(0), IX.const(0)
    lo_ok = hi_ok = True
    for m, c in x.terms:
        mlo, mhi = IX.const(1), IX.const(1)
        mlo_ok = mhi_ok = True
        for a in m:
            alo, ahi = _atom_bounds(a)
            if alo is None or not nonneg(alo):
                mlo_ok = mhi_ok = False
                break
            mlo = mlo * alo
            if ahi is None:
                mhi_ok = False
            else:
                mhi = mhi * ahi
        if c >= 0:
            if mlo_ok:
                lo_t = lo_t + mlo * c
            else:
                lo_ok = False
            if mhi_ok:
                hi_t = hi_t + mhi * c
            else:
                hi_ok = False
        else:
            if mhi_ok:
                lo_t = lo_t + mhi * c
            else:
                lo_ok = False
            if mlo_ok:
                hi_t = hi_t + mlo * c
            else:
                hi_ok = False
    return (lo_t if lo_ok else None), (hi_t if hi_ok else None)


def nonneg(p: IX) -> bool:
    """Whether ``p >= 0`` is provable (every atom is non-negative; symbols >= their min)."""
    if all(c >= 0 for _, c in p.terms):
        return True
    shifted = IX.const(0)
    for m, c in p.terms:
        t = IX.const(c)
        for a in m:
            if a[0] == "s" and a[2] > 0:
                t = t * (IX.atom(a) + a[2])
            elif a[0] == "v":
                return False
            else:
                t = t * IX.atom(a)
        shifted = shifted + t
    return all(c >= 0 for _, c in shifted.terms)


def provably_nonneg(x: IX) -> bool:
    lo, _ = bounds(x)
    return lo is not None and nonneg(lo)


def provably_below(x: IX, limit: IX) -> bool:
    """Whether ``x < limit`` is provable."""
    _, hi = bounds(x)
    return hi is not None and nonneg(lift(limit) - 1 - hi)


# --------------------------------------------------------------------------------------
# division


def _split(x: IX, den: IX) -> tuple[IX, IX]:
    """x = q * den + r where q collects the terms den divides."""
    q: dict = {}
    r: dict = {}
    if den.is_const:
        d = den.value
        for m, c in x.terms:
            if c % d == 0:
                q[m] = c // d
            else:
                r[m] = c
        return IX(q), IX(r)
    (dm, dc), = den.terms
    for m, c in x.terms:
        rest = list(m)
        ok = c % dc == 0
        for a in dm:
            if a in rest:
                rest.remove(a)
            else:
                ok = False
        if ok:
            key = tuple(rest)
            q[key] = q.get(key, 0) + c // dc
        else:
            r[m] = r.get(m, 0) + c
    return IX(q), IX(r)


def _divisor_ok(den: IX) -> bool:
    if den.is_const:
        return den.value > 0
    if len(den.terms) != 1:
        return False
    (m, c), = den.terms
    return c > 0 and all(a[0] == "s" for a in m)


def floordiv(x: Any, den: Any) -> IX:
    """``x // den`` (floor), simplified where ranges allow."""
    x, den = lift(x), lift(den)
    if den.is_const and den.value == 1:
        return x
    if x.is_const and den.is_const:
        return IX.const(x.value // den.value)
    if not _divisor_ok(den):
        return IX.atom(("d", x, den))
    q, r = _split(x, den)
    if not r.terms:
        return q
    if provably_nonneg(r) and provably_below(r, den):
        return q
    if len(r.terms) == 1 and r.terms[0][1] == 1 and len(r.terms[0][0]) == 1:
        (a,) = r.terms[0][0]
        if a[0] == "d" and den.is_const and a[2].is_const:
            return q + floordiv(a[1], a[2].value * den.value)
    if not provably_nonneg(r) and provably_nonneg(x):
        return IX.atom(("d", x, den))  # keeps a non-negative numerator: plain C division
    return q + IX.atom(("d", r, den))


def mod(x: Any, den: Any) -> IX:
    """``x % den`` (floor modulo, result in ``[0, den)``), simplified where ranges allow."""
    x, den = lift(x), lift(den)
    if den.is_const and den.value == 1:
        return IX.const(0)
    if x.is_const and den.is_const:
        return IX.const(x.value % den.value)
    if not _divisor_ok(den):
        return IX.atom(("m", x, den))
    _, r = _split(x, den)
    if not r.terms:
        return IX.const(0)
    if provably_nonneg(r) and provably_below(r, den):
        return r
    if not provably_nonneg(r) and provably_nonneg(x):
        return IX.atom(("m", x, den))
    return IX.atom(("m", r, den))


def _coeff_poly(x: IX, atom: Atom) -> tuple[IX, IX]:
    """(P, rest) with x = P * atom + rest, atom appearing at most once per monomial."""
    p: dict = {}
    rest: dict = {}
    for m, c in x.terms:
        if atom in m:
            r = list(m)
            r.remove(atom)
            p[tuple(r)] = p.get(tuple(r), 0) + c
        else:
            rest[m] = c
    return IX(p), IX(rest)


def simplify(x: IX) -> IX:
    """Fold ``Q * den * (y // den) + Q * (y % den)`` into ``Q * y`` wherever it appears."""
    changed = True
    while changed:
        changed = False
        for a in sorted(x.atoms(), key=_akey):
            if a[0] != "m":
                continue
            q, rest = _coeff_poly(x, a)
            dv = ("d", a[1], a[2])
            # floordiv's canonical form: (c // 1024) // 128 is stored as c // 131072
            canon = floordiv(a[1], a[2])
            if len(canon.terms) == 1 and canon.terms[0][1] == 1 and \
                    len(canon.terms[0][0]) == 1:
                dv = canon.terms[0][0][0]
            p, rest2 = _coeff_poly(rest, dv)
            if p.terms and p == q * a[2]:
                x = rest2 + q * a[1]
                changed = True
                break
    return x


# --------------------------------------------------------------------------------------
# C


def to_c(x: IX, atom_name: Callable[[Atom], str] | None = None) -> str:
    """C source for ``x`` (int64 arithmetic); loop variables keep their names, symbols
    become ``s_<name>``; ``atom_name`` may rename atoms (data atoms need it)."""
    if not x.terms:
        return "0"
    parts = []
    for m, c in x.terms:
        factors = [_atom_c(a, atom_name) for a in m]
        if not factors:
            parts.append(_int_c(c))
            continue
        body = "*".join(factors)
        if c == 1:
            parts.append(body)
        elif c == -1:
            parts.append(f"-{body}")
        else:
            parts.append(f"{_int_c(c)}*{body}")
    text = " + ".join(parts).replace("+ -", "- ")
    return text if len(parts) == 1 else f"({text})"


def _int_c(c: int) -> str:
    if -(2**31) < c < 2**31:
        return str(c)
    if c == -(2**63):
        return "INT64_MIN"
    return f"INT64_C({c})"


def _atom_c(a: Atom, atom_name: Callable[[Atom], str] | None) -> str:
    if atom_name is not None:
        name = atom_name(a)
        if name:
            return name
    kind = a[0]
    if kind == "v":
        return a[1]
    if kind == "s":
        return f"s_{a[1]}"
    if kind == "x":
        return a[1]
    num, den = to_c(a[1], atom_name), to_c(a[2], atom_name)
    if not re.fullmatch(r"-?\w+", den):
        # a product like 4*s_T would otherwise bind as (num / 4) * s_T
        den = f"({den})"
    if provably_nonneg(a[1]):
        return f"({num} {'/' if kind == 'd' else '%'} {den})"
    return f"{'kiln_fdiv' if kind == 'd' else 'kiln_fmod'}({num}, {den})"


def contiguous_strides(shape: tuple) -> tuple[IX, ...]:
    """Row-major strides (in elements) of ``shape`` (ints, SymInts or IX)."""
    out: list[IX] = []
    acc = IX.const(1)
    for d in reversed(shape):
        out.append(acc)
        acc = acc * lift(d)
    return tuple(reversed(out))


def flat_index(idx: tuple, shape: tuple) -> IX:
    """The row-major flat offset of index vector ``idx`` in ``shape``."""
    total = IX.const(0)
    for i, s in zip(idx, contiguous_strides(shape), strict=True):
        total = total + lift(i) * s
    return total


def rename_data(x: IX, keymap: Mapping[str, str]) -> IX:
    """``x`` with data atoms renamed by ``keymap`` (after their expressions were rebuilt)."""
    if not keymap or not x.data_keys():
        return x
    out = IX.const(0)
    for m, c in x.terms:
        t = IX.const(c)
        for a in m:
            if a[0] == "x":
                t = t * IX.atom(("x", keymap.get(a[1], a[1]), a[2], a[3]))
            elif a[0] in ("d", "m"):
                num, den = rename_data(a[1], keymap), rename_data(a[2], keymap)
                t = t * (floordiv(num, den) if a[0] == "d" else mod(num, den))
            else:
                t = t * IX.atom(a)
        out = out + t
    return out
