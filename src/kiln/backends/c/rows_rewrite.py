"""Rewrites of a rows kernel's value expressions that change none of its results.

- :func:`nonpos_exps`: ``exp(x - max(x))`` cannot overflow; it drops exp's overflow test.
- :func:`nan_free_reductions`: a float max/min whose NaN every result gets anyway through a
  later sum (softmax) needs no NaN flag beside its comparisons.

Both are proved on the expressions of one kernel (:mod:`kiln.backends.c.rows` applies them);
tests compare rows holding NaN, inf and -inf with the interpreter.
"""

from __future__ import annotations

from kiln.backends.c.codegen import CodeGen
from kiln.backends.c.emit import const_data
from kiln.backends.c.expr import Expr, transform
from kiln.backends.c.schedule import Kernel
from kiln.core import dtypes as dt

# Ops whose result is NaN whenever an operand is (casts count when they stay floating).
NAN_PROPAGATING = frozenset({"add", "sub", "mul", "div", "neg", "exp", "exp_nonpos", "expm1", "log",
                             "log1p", "sqrt", "rsqrt", "reciprocal", "tanh", "sigmoid"})


def nan_free_reductions(gen: CodeGen, k: Kernel, reds: list, red_exprs: list[Expr],
                        rows: list, full: list, checks: list[Expr]) -> set[str]:
    """Float max/min reductions whose NaN flag changes no result of the kernel.

    A max over a row skips NaN in its comparisons and needs a flag to return NaN. The flag is
    dead when the max is not stored and a later sum reduces a value that is NaN wherever the
    max's input is (softmax: sum(exp(x - max))), and every result that reads the max also
    reads that sum through NaN-propagating ops: a NaN in the row makes all of them NaN through
    the sum, whatever the max returned (~15% of softmax's time on 4096 x 1024).
    """
    row_defs = {name: e for _, e, _, _, name in rows}
    red_value = {r.name: e for r, e in zip(reds, red_exprs, strict=True)}

    def reaches(root: Expr, found, propagating: bool) -> bool:
        seen: set[int] = set()
        stack = [root]
        while stack:
            n = stack.pop()
            if n.id in seen:
                continue
            seen.add(n.id)
            if found(n):
                return True
            if n.kind == "row":
                if n.data in row_defs:
                    stack.append(row_defs[n.data])
                elif not propagating and n.data in red_value:
                    stack.append(red_value[n.data])
                continue
            if propagating and not (n.kind == "op" and (
                    n.data in NAN_PROPAGATING or (n.data == "cast" and n.dtype.is_floating))):
                continue
            stack.extend(n.args)
        return False

    stored = [e for _, _, e in full] + [e for node, e, _, _, _ in rows
                                        if gen.lw.realized[node].id in k.stores]
    stored += [red_value[r.name] for r in reds if gen.lw.realized[r.node].id in k.stores]
    out: set[str] = set()
    for r, e in zip(reds, red_exprs, strict=True):
        if not r.tracks_nan or gen.lw.realized[r.node].id in k.stores:
            continue
        sums = [s.name for s in reds if s.kind == "sum" and s.phase > r.phase and
                reaches(red_value[s.name], lambda n, e=e: n.id == e.id, True)]
        if not sums:
            continue

        def reads_r(n: Expr, r=r) -> bool:
            return n.kind == "row" and n.data == r.name

        def via_sum(n: Expr, sums=sums) -> bool:
            return n.kind == "row" and n.data in sums

        if any(reaches(c, reads_r, False) for c in checks):
            continue
        if all(reaches(x, via_sum, True) for x in stored if reaches(x, reads_r, False)
               and not any(x is red_value[s] for s in sums)):
            out.add(r.name)
    return out


def nonpos_exps(b, reds: list, red_exprs: list[Expr], rows: list,
                 full: list) -> tuple[list[Expr], list, list]:
    """exp(x - m) -> exp_nonpos(x - m) where m is the row's max of x (or softmax's guarded
    shift where(m == -inf, 0, m)): the argument is <= 0 or NaN, so the overflow test of exp
    can go (kiln_fast_expf_nonpos). Returns the rewritten expressions."""
    maxes = {r.name: e.id for r, e in zip(reds, red_exprs, strict=True)
             if r.kind == "max" and e.dtype.is_floating}
    if not maxes:
        return red_exprs, rows, full

    def shift_of(n: Expr) -> str | None:
        """The max whose value n is, through softmax's guard; None if it is not one."""
        if n.kind == "row" and n.data in maxes:
            return n.data
        if n.kind == "op" and n.data == "where":
            c, a, m = n.args
            if m.kind == "row" and m.data in maxes and a.kind == "const" and \
                    const_data(a) == 0 and c.kind == "op" and c.data == "eq" and \
                    c.args[0] is m and c.args[1].kind == "const" and \
                    const_data(c.args[1]) == float("-inf"):
                return m.data
        return None

    def rewrite(n: Expr, args: tuple) -> Expr | None:
        if n.kind != "op" or n.data != "exp" or n.dtype != dt.float32:
            return None
        (arg,) = args
        if arg.kind == "op" and arg.data == "sub":
            m = shift_of(arg.args[1])
            if m is not None and arg.args[0].id == maxes[m]:
                return b.op("exp_nonpos", args, n.dtype)
        return None

    roots = red_exprs + [e for _, e, *_ in rows] + [e for _, _, e in full]
    memo = transform(b, roots, rewrite)
    return ([memo[e.id] for e in red_exprs],
            [(node, memo[e.id], *rest) for node, e, *rest in rows],
            [(bid, off, memo[e.id]) for bid, off, e in full])
