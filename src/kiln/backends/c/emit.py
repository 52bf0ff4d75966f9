"""Shared pieces of C generation: literals, op templates, loop nests with hoisting.

:class:`Nest` emits a loop nest whose body stores, accumulates or checks expressions.
Every expression node is emitted once, as a ``const`` temporary, at the outermost loop
level where all the variables it reads are defined (loop-invariant code motion by
construction), so a bias broadcast over rows is loaded once per row and a row scalar once
per kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from kiln.backends.c.expr import Expr, walk
from kiln.backends.c.ix import IX, to_c
from kiln.core import dtypes as dt
from kiln.core.dtypes import DType
from kiln.core.prims.registry import get_op

_CTYPE = {"float32": "float", "float64": "double", "int64": "int64_t", "int32": "int32_t",
          "bool": "bool"}


def ctype(d: DType) -> str:
    return _CTYPE[d.name]


def literal(value: object, d: DType) -> str:
    """A C literal of ``value`` (already representable in ``d``), exact for floats."""
    if d.is_bool:
        return "true" if value else "false"
    if d.is_integer:
        v = int(value)  # type: ignore[call-overload]
        if d == dt.int32:
            return f"((int32_t){v})"
        if v == -(2**63):
            return "INT64_MIN"
        return f"INT64_C({v})"
    v = float(value)  # type: ignore[arg-type]
    if math.isnan(v):
        return "NAN" if d == dt.float32 else "((double)NAN)"
    if math.isinf(v):
        inf = "INFINITY" if d == dt.float32 else "((double)INFINITY)"
        return inf if v > 0 else f"(-{inf})"
    text = f"{float(np.float32(v)).hex()}f" if d == dt.float32 else v.hex()
    return f"({text})" if text.startswith("-") else text


# C's ~ on a bool gives a nonzero int (~1 == -2, still true): bool ~x is !x.
_BOOL_OPS = {"add": "({0} | {1})", "mul": "({0} & {1})", "maximum": "({0} | {1})",
             "minimum": "({0} & {1})", "bitwise_not": "(!{0})"}


TRIG = ("sin", "cos")


def is_fast_trig(e: Expr) -> bool:
    """sin/cos in float32: fast only for |x| <= 2^12, so loops check and fall back."""
    return e.kind == "op" and e.data in TRIG and e.dtype == dt.float32


def op_text(e: Expr, args: list[str], mode: str = "accurate") -> str:
    """C text of op node ``e`` given its operands' C text.

    ``mode`` picks float32 sin/cos: ``"fast"`` (float-precision reduction, valid for |x| <=
    2^12; the loop must check, see :class:`Nest`) or ``"accurate"`` (everywhere).
    """
    name = e.data
    if is_fast_trig(e):
        return f"kiln_{'fast_' if mode == 'fast' else ''}{name}f({args[0]})"
    if name == "exp_nonpos":  # exp of an argument known <= 0 or NaN (rows_rewrite.nonpos_exps)
        return f"k_exp_nonpos({args[0]})"
    if name == "cast":
        src = e.args[0].dtype
        if e.dtype.is_bool:
            return f"({args[0]} != 0)"
        if src.is_floating and not e.dtype.is_floating:
            # NaN and out-of-range floats become INT_MIN like NumPy on x86; plain C is UB.
            return f"(({ctype(e.dtype)})kiln_f2i({args[0]}))" if e.dtype == dt.int64 else \
                f"(({ctype(e.dtype)})kiln_f2i32({args[0]}))"
        return f"(({ctype(e.dtype)}){args[0]})"
    compute = e.args[0].dtype if e.args else e.dtype
    if compute.is_bool and name in _BOOL_OPS:
        return _BOOL_OPS[name].format(*args)
    template = get_op(name).c_expr
    if template is None:
        raise KeyError(name)
    return template.format(*args, T=ctype(e.dtype))


def const_data(e: Expr) -> object:
    return e.data[0] if isinstance(e.data, tuple) else e.data


class Names:
    """How expressions print: temporaries ``t<id>``, buffers ``b<id>``, scratch ``scr<id>``."""

    def __init__(self, rows: dict[str, str] | None = None,
                 bufs: dict[int, str] | None = None) -> None:
        self.rows = rows or {}
        self.bufs = bufs or {}  # buffer id -> pointer name, when not b<id>

    def ix(self, x: IX) -> str:
        return to_c(x, lambda a: a[1] if a[0] == "x" else "")

    def text(self, e: Expr, arg_text: Callable[[Expr], str], mode: str = "accurate") -> str:
        k = e.kind
        if k == "const":
            return literal(const_data(e), e.dtype)
        if k == "load":
            return f"{self.bufs.get(e.data[0], f'b{e.data[0]}')}[{self.ix(e.data[1])}]"
        if k == "idx":
            return self.ix(e.data)
        if k == "row":
            return self.rows.get(e.data, e.data)
        if k == "scratch":
            return f"scr{e.data[0]}[{self.ix(e.data[1])}]"
        return op_text(e, [arg_text(a) for a in e.args], mode)


TRIG_BLOCK = 256  # elements per block of a loop that checks its fast sin/cos arguments


class Nest:
    """One loop nest: ``loops`` = [(var, extent, pragma)], outermost first.

    Every expression node becomes a ``const`` temporary at the outermost level where all the
    variables it reads are defined (``vars_of``). Statements are (expressions they read, fn
    giving their lines); they run in the innermost body.

    Fast sin/cos (``fallback=True``, for loops whose statements only store or check, so a block
    can be recomputed): the innermost loop runs in blocks of ``TRIG_BLOCK``; each block
    computes with the fast functions and ORs whether an argument was out of their range, and
    a block where one was is recomputed with the accurate functions.
    """

    def __init__(self, names: Names, avail: dict[int, str], indent: int = 1) -> None:
        self.names = names
        self.avail = dict(avail)
        self.indent = indent
        self.lines: list[str] = []
        self.outer: list[int] = []
        self.row_var: str | None = None  # row values vary with this variable (cols kernels)
        self._vars_memo: dict[int, frozenset[str]] = {}

    def vars_of(self, e: Expr) -> frozenset[str]:
        memo = self._vars_memo
        for n in walk([e]):
            if n.id in memo:
                continue
            own: set[str] = set()
            if n.kind in ("load", "scratch"):
                own = n.data[1].var_names()
            elif n.kind == "idx":
                own = n.data.var_names()
            elif n.kind == "row" and self.row_var:
                own = {self.row_var}
            for a in n.args:
                own |= memo[a.id]
            memo[n.id] = frozenset(own)
        return memo[e.id]

    def _node_line(self, n: Expr, mode: str) -> str | None:
        text = self.names.text(n, lambda a: self.avail.get(a.id) or self.names.text(a, None),
                               mode)
        if n.kind in ("const", "row"):
            self.avail[n.id] = text
            return None
        name = f"t{n.id}"
        self.avail[n.id] = name
        return f"const {ctype(n.dtype)} {name} = {text};"

    def _emit_node(self, n: Expr, pad: str, mode: str = "accurate") -> None:
        if n.id in self.avail:
            return
        line = self._node_line(n, mode)
        if line is not None:
            self.lines.append(pad + line)

    def expr(self, e: Expr) -> str:
        return self.avail.get(e.id) or self.names.text(e, lambda a: self.expr(a))

    def emit(self, loops: list[tuple[str, IX | str, str]],
             statements: list[tuple[list[Expr], Callable[[Nest], list[str]]]],
             setup: list[str] | None = None, inner_setup: list[str] | None = None,
             aliases: dict[str, str] | None = None, fallback: bool = False,
             block: tuple[int, list[str], list[str]] | None = None) -> None:
        """Emit the nest (see the class docstring).

        ``setup`` lines go before the loops, ``inner_setup`` lines first in the innermost
        body; ``aliases`` maps a variable defined in ``inner_setup`` to its loop's counter.
        ``block = (size, pre, post)`` runs the innermost loop in blocks of ``size`` with
        ``pre`` and ``post`` lines around each block (blocked float accumulation).
        """
        level_of = {v: i + 1 for i, (v, _, _) in enumerate(loops)}
        for var, loop_var in (aliases or {}).items():
            level_of[var] = level_of[loop_var]
        roots = [e for exprs, _ in statements for e in exprs]
        nodes = [n for n in walk(roots) if n.id not in self.avail]
        by_level: dict[int, list[Expr]] = {}
        for n in nodes:
            lv = max((level_of.get(v, 0) for v in self.vars_of(n)), default=0)
            by_level.setdefault(lv, []).append(n)
        base = self.indent
        before = set(self.avail)
        for n in by_level.get(0, []):
            self._emit_node(n, "    " * base)
        self.outer = [i for i in self.avail if i not in before]
        for line in setup or []:
            self.lines.append("    " * base + line)
        depth = len(loops)
        inner_nodes = by_level.get(depth, []) if depth else []
        trig = [n for n in inner_nodes if is_fast_trig(n)] if fallback and depth else []
        for i, (var, extent, pragma) in enumerate(loops):
            pad = "    " * (base + i)
            ext = extent if isinstance(extent, str) else self.names.ix(extent)
            if i == depth - 1 and trig:
                self._blocked(var, ext, pragma, pad, inner_nodes, trig, statements,
                              inner_setup or [])
                break
            if i == depth - 1 and block is not None:
                size, pre, post = block
                self.lines.append(f"{pad}for (int64_t {var}_b = 0; {var}_b < {ext}; {var}_b += "
                                  f"{size}) {{")
                bpad = pad + "    "
                self.lines.append(f"{bpad}const int64_t {var}_e = {var}_b + {size} < {ext} ? "
                                  f"{var}_b + {size} : {ext};")
                self.lines += [bpad + ln for ln in pre]
                if pragma:
                    self.lines.append(f"{bpad}{pragma}")
                self.lines.append(f"{bpad}for (int64_t {var} = {var}_b; {var} < {var}_e; "
                                  f"++{var}) {{")
                ipad = bpad + "    "
                for line in inner_setup or []:
                    self.lines.append(ipad + line)
                for n in by_level.get(i + 1, []):
                    self._emit_node(n, ipad)
                for _exprs, fn in statements:
                    for line in fn(self):
                        self.lines.append(ipad + line)
                self.lines.append(f"{bpad}}}")
                self.lines += [bpad + ln for ln in post]
                break
            if pragma:
                self.lines.append(f"{pad}{pragma}")
            self.lines.append(f"{pad}for (int64_t {var} = 0; {var} < {ext}; ++{var}) {{")
            if i == depth - 1:
                for line in inner_setup or []:
                    self.lines.append("    " * (base + i + 1) + line)
            for n in by_level.get(i + 1, []):
                self._emit_node(n, "    " * (base + i + 1))
        else:
            inner = "    " * (base + depth)
            if not loops:
                for line in inner_setup or []:
                    self.lines.append(inner + line)
            for _exprs, fn in statements:
                for line in fn(self):
                    self.lines.append(inner + line)
        for i in reversed(range(depth)):
            self.lines.append("    " * (base + i) + "}")

    def _blocked(self, var: str, ext: str, pragma: str, pad: str, inner_nodes: list[Expr],
                 trig: list[Expr], statements: list, inner_setup: list[str]) -> None:
        outer_pragma = ""
        if pragma.startswith("#pragma omp parallel for simd"):
            outer_pragma = pragma.replace("parallel for simd", "parallel for")
            inner_pragma = "#pragma omp simd" + (" reduction(|:kerr)" if "kerr" in pragma
                                                 else "")
        else:
            inner_pragma = pragma
        inner_pragma += " reduction(|:kbad)" if inner_pragma else ""
        if outer_pragma:
            self.lines.append(f"{pad}{outer_pragma}")
        self.lines.append(f"{pad}for (int64_t {var}_b = 0; {var}_b < {ext}; {var}_b += "
                          f"{TRIG_BLOCK}) {{")
        ipad = pad + "    "
        self.lines.append(f"{ipad}const int64_t {var}_e = {var}_b + {TRIG_BLOCK} < {ext} ? "
                          f"{var}_b + {TRIG_BLOCK} : {ext};")
        self.lines.append(f"{ipad}int kbad = 0;")
        saved = dict(self.avail)
        for mode in ("fast", "accurate"):
            if mode == "accurate":
                self.lines.append(f"{ipad}if (kbad) {{")
                lpad = ipad + "    "
            else:
                lpad = ipad
            self.avail = dict(saved)
            prag = inner_pragma if mode == "fast" else ""
            if prag:
                self.lines.append(f"{lpad}{prag}")
            self.lines.append(f"{lpad}for (int64_t {var} = {var}_b; {var} < {var}_e; ++{var}) "
                              "{")
            bpad = lpad + "    "
            for line in inner_setup:
                self.lines.append(bpad + line)
            for n in inner_nodes:
                self._emit_node(n, bpad, mode)
            if mode == "fast":
                for n in trig:
                    arg = self.avail[n.args[0].id]
                    self.lines.append(f"{bpad}kbad |= !kiln_fast_trig_ok({arg});")
            for _exprs, fn in statements:
                for line in fn(self):
                    self.lines.append(bpad + line)
            self.lines.append(f"{lpad}}}")
            if mode == "accurate":
                self.lines.append(f"{ipad}}}")
        self.avail = saved
