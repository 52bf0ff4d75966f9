"""C text of a rows kernel: per row, phases of reductions, row scalars, a final loop.

Layout of the generated code (one OpenMP-parallel loop over rows)::

    for each row r:                         (kept dims flattened into one variable)
        phase 1:  accumulators = init; for j in row: acc op= value(r, j)
                  row scalars of phase 1 (reduction results, kept-shape values)
        phase 2:  ... may read phase-1 scalars ...
        final:    for j in row: out[r, j] = value(r, j, scalars)

Row scratch: a value computed inside the loop of an earlier phase that a later loop needs
again and that is expensive (it contains a transcendental: softmax's exp(x - max)) is stored
into a per-thread row buffer by the earlier loop and read back by the later one, so it is
computed once per element and the later loop reads only cache-resident scratch.

When a scratch value has the dtype and row layout of the kernel's only full output, the
output row itself is the scratch (the final loop rewrites it in place; no malloc).

Pipelining: when the first two phases vectorize compatibly (see :func:`_pipeline`), phase 1
of row r + 1 runs inside the phase-2 loop of row r, with its accumulators carried to the next
iteration; a thread computes phase 1 itself at the first row of its ``omp for`` chunk::

    if (r != r_x) phase 1 of r                  (r_x: the row the carried accumulators hold)
    phase 2 of r  +  phase 1 of min(r + 1, last)   (one loop), then r_x = r + 1
    final of r

Passes: a *pass* is one row's data streamed by a loop: a tensor element whose address
depends on both the row and the position in the row. Loads of per-row scalars, of vectors
shared by all rows (layer-norm weight and bias) and of the scratch are not passes: they stay
in cache. A pipelined loop reading this row and the next counts two passes; the first-phase
loop run only at the start of a thread's chunk is not counted. ``gen.stats[k.id]`` records
loops and passes for the schedule summary and the tests (softmax: 2 loops, 2 passes).

Divisions by a row scalar become multiplications by its reciprocal (computed once per row).
"""

from __future__ import annotations

import dataclasses

from kiln.backends.c.codegen import CodeGen, KernelCode, rebuild
from kiln.backends.c.emit import Names, Nest, ctype, is_fast_trig
from kiln.backends.c.expr import Expr, op_cost, reciprocal_divisions, transform, walk
from kiln.backends.c.ix import IX, flat_index
from kiln.backends.c.kernels import (
    _acc_clauses,
    _acc_decl,
    _acc_final,
    _acc_stmt,
    _extent,
    _kerr,
    _merge_outer,
    _row_stmt,
    _simd,
    _store_stmt,
    _stores,
    _vname,
)
from kiln.backends.c.rows_rewrite import nan_free_reductions, nonpos_exps
from kiln.backends.c.schedule import Kernel
from kiln.core import dtypes as dt

BLOCK = 1024  # elements a float32 partial sum covers before it joins the double total
OOM_BIT = 47  # kerr bit of a failed scratch allocation (check bits come first)
SCRATCH_COST = 8  # cache a shared value in the row scratch when it costs this much per element
# Internal switches, for tests that compare with the plain schedule (results must be
# bit-identical): pipelining rows, and keeping a row scratch in the output row.
PIPELINE = True
OUTPUT_SCRATCH = True
STREAM = True
STREAM_BLOCK = 64  # elements a streamed block holds (whole cache lines, in registers)
# Outputs at least this large are written with non-temporal stores: they do not fit in the
# caches of this class of machine anyway, and a plain store first reads each line it misses
# (layer_norm 4096 x 1024 float32: ~25% faster on an AMD EPYC, 2 cores).
STREAM_MIN_BYTES = 8 << 20


def emit_rows(gen: CodeGen, k: Kernel) -> str | None:
    kc = KernelCode(gen, k)
    b = kc.b
    gen.check_messages[k.id] = [m for _, m in k.checks.values()]
    full = _stores(gen, k, k.full)
    rows = list(k.rows)
    reds = list(k.reductions)
    checks = [e for e, _ in k.checks.values()]
    # float32 sums accumulate in float within blocks of BLOCK elements, then in double
    blocked = {r.name for r in reds if r.kind == "sum" and r.acc == dt.float64 and
               r.expr.dtype == dt.float32}
    red_exprs = [b.cast(r.expr, r.acc) if r.kind in ("sum", "prod") and r.name not in blocked
                 else r.expr for r in reds]
    red_exprs = [b.cast(e, dt.int64) if e.dtype.is_bool else e for e in red_exprs]
    all_exprs = [e for _, _, e in full] + [e for _, e, *_ in rows] + red_exprs + checks
    extra = [off for _, off, _ in full] + [r.pos for r in reds if r.pos is not None]
    kvars, kmap = kc.plan_dims(list(k.kept), all_exprs, extra, "r", "all")
    rvars, rmap = kc.plan_dims(list(k.reduced), all_exprs, extra, "j", "none")
    mapping = {**kmap, **rmap}
    memo = rebuild(b, all_exprs, mapping)
    inner = {_vname(v) for v in rvars}
    probe = Nest(Names(), {})

    def varies(e: Expr) -> bool:
        return bool(probe.vars_of(e) & inner)

    new = [memo[e.id] for e in all_exprs]
    memo2 = reciprocal_divisions(b, new, varies)
    memo = {old: memo2[e.id] for old, e in memo.items()}
    full = [(bid, off.subs(mapping), memo[e.id]) for bid, off, e in full]
    rows = [(node, memo[e.id], ph, off.subs(mapping), name) for node, e, ph, off, name in rows]
    red_exprs = [memo[e.id] for e in red_exprs]
    checks = [memo[c.id] for c in checks]
    red_exprs, rows, full = nonpos_exps(b, reds, red_exprs, rows, full)
    free = nan_free_reductions(gen, k, reds, red_exprs, rows, full, checks)
    reds = [dataclasses.replace(r, nan_flag=False) if r.name in free else r for r in reds]
    pos = {r.name: (r.pos.subs(mapping) if r.pos is not None else None) for r in reds}
    offs = {r.name: r.offset.subs(mapping) for r in reds}
    for bid, _, _ in full:
        kc.writes.add(bid)
    kc.note_reads([e for _, _, e in full] + [e for _, e, *_ in rows] + red_exprs + checks)

    # the loops over the row: one per phase with reductions, then the final one
    phases = sorted({r.phase for r in reds})
    loops: list[dict] = []
    for ph in phases:
        preds = [(r, e) for r, e in zip(reds, red_exprs, strict=True) if r.phase == ph]
        loops.append({"phase": ph, "reds": preds, "roots": [e for _, e in preds]})
    if full or checks:
        loops.append({"phase": None, "roots": [e for _, _, e in full] + checks})
    jflat = flat_index(tuple(rvars), tuple(_extent(v) for v in rvars))
    kept_names = {_vname(v) for v in kvars}

    def row_data(n: Expr) -> bool:
        return n.kind == "load" and bool(n.data[1].var_names() & kept_names) and \
            bool(n.data[1].var_names() & inner)

    nk = IX.const(1)
    for v in kvars:
        nk = nk * _extent(v)
    nr = IX.const(1)
    for v in rvars:
        nr = nr * _extent(v)
    # only memory-bound kernels gain: an exp-bound one (softmax) keeps its scratch in the
    # output row and lost ~15% when streamed
    stream = _stream_output(gen, kc, loops, full, kvars, rvars, nk, nr, jflat) and \
        all(_inner_cost(e, varies, {}) < SCRATCH_COST for lp in loops for e in lp["roots"])
    # A streamed kernel reads its row data again in the final loop rather than caching it:
    # the row is still in L1, and the scratch store is what a streamed output saves.
    scratch = _plan_scratch(b, loops, varies, jflat, row_data,
                            cache_row_data=not stream) if rvars else []
    out_scr = {} if stream else _output_scratch(gen, kc, loops, scratch, full, kvars, nr, jflat)
    scratch = [(sid, d) for sid, d in scratch if sid not in out_scr]
    if scratch:
        kc.has_checks = True  # kerr also carries the out-of-memory bit
    names = _RowNames(out_scr)
    rv = _vname(kvars[0]) if kvars else "r_unused"
    rvn = rv + "n"  # the next row, whose first phase a pipelined kernel runs one row early
    pipe = _pipeline(loops, kvars, rvars, blocked, _red_widths(reds, blocked), varies)
    if pipe:
        kept_names.add(rvn)
        p1, p2 = loops[0], loops[1]
        nxt = rebuild(b, p1["roots"], {rv: IX.var(rvn, _extent(kvars[0]))})
        p1["next"] = [nxt[e.id] for e in p1["roots"]]
    acc_names = {r.name: f"a{gen.lw.realized[r.node].id}" for r in reds}
    lines: list[str] = []
    nk_c = names.ix(nk)
    if not (nk.is_const and nk.value > 0):
        lines.append(f"    if ({nk_c} <= 0) return kerr;")
    clause = kc.parallel(nk * nr)
    if clause is not None:
        lines.append("    " + " ".join(["#pragma omp parallel"] + _kerr(kc) + [clause]))
    lines.append("    {")
    for sid, dtype in scratch:
        t = ctype(dtype)
        lines.append(f"        {t} *scr{sid} = ({t} *)malloc(sizeof({t}) * "
                     f"({names.ix(nr)} > 0 ? {names.ix(nr)} : 1));")
    ok = " && ".join(f"scr{sid}" for sid, _ in scratch) or "1"
    if pipe:  # the first phase's accumulators carry the next row's partial results
        lines += ["        " + ln for r, _ in loops[0]["reds"]
                  for ln in _acc_decl(r, acc_names[r.name])]
        lines.append(f"        int64_t {rv}_x = -1;  /* the row they belong to */")
    if clause is not None:
        lines.append("        #pragma omp for schedule(static)")
    lines.append(f"        for (int64_t {rv} = 0; {rv} < {nk_c}; ++{rv}) {{")
    if scratch:
        lines.append(f"            if (!({ok})) {{ kerr |= (int64_t)1 << {OOM_BIT}; continue; }}")
    avail: dict[int, str] = {}
    indent = 3
    rloops = [(_vname(v), _extent(v), "") for v in rvars]
    stats = {"loops": 0, "passes": 0}

    def phase_parts(loop: dict, roots: list[Expr]) -> tuple[list, list[str] | None,
                                                           tuple | None]:
        """Accumulating statements, simd reduction clauses and float blocking of a phase."""
        statements = []
        for (r, _), e in zip(loop["reds"], roots, strict=True):
            if r.name in blocked:
                statements.append(([e], _float_acc_stmt(acc_names[r.name], e)))
            else:
                statements.append(([e], _acc_stmt(r, e, acc_names[r.name], pos[r.name])))
        fl = [r for r, _ in loop["reds"] if r.name in blocked]
        clauses = _acc_clauses([r for r, _ in loop["reds"] if r.name not in blocked],
                               acc_names)
        block = None
        if fl and clauses is not None:
            clauses += [f"reduction(+:{acc_names[r.name]}_f)" for r in fl]
            block = (BLOCK, [f"float {acc_names[r.name]}_f = 0.0f;" for r in fl],
                     [f"{acc_names[r.name]} += {acc_names[r.name]}_f;" for r in fl])
        return statements, clauses, block

    def _reset(loop: dict) -> list[str]:
        # the accumulators are declared before the row loop: assign, do not shadow
        return [ln.split(" ", 1)[1] for r, _ in loop["reds"]
                for ln in _acc_decl(r, acc_names[r.name])]

    def count_loop(roots: list[Expr]) -> None:
        stats["loops"] += 1
        stats["passes"] += len({v for n in walk(roots) if row_data(n)
                                for v in n.data[1].var_names() & kept_names})

    def run_nest(roots: list[Expr], statements: list, clauses: list[str] | None,
                 setup: list[str], fallback: bool = False,
                 block: tuple | None = None) -> None:
        loop_specs = list(rloops)
        if loop_specs:
            name, ext, _ = loop_specs[-1]
            inner_checks = ["reduction(|:kerr)"] if checks and statements_check(statements) \
                else []
            loop_specs[-1] = (name, ext, _simd(clauses + inner_checks) if clauses is not None
                              else "")
            count_loop(roots)
        nest = Nest(names, avail, indent)
        if block is not None and not loop_specs:  # a row of one element: no loop to block
            setup = setup + block[1]
        nest.emit(loop_specs, statements, setup, fallback=fallback,
                  block=block if loop_specs else None)
        lines.extend(nest.lines)
        if block is not None and not loop_specs:
            lines.extend("    " * indent + ln for ln in block[2])
        _merge_outer(nest, avail)

    pad = "    " * indent
    row_phases = sorted({ph for _, _, ph, _, _ in rows} | {0} | set(phases))
    for ph in row_phases:
        loop = next((lp for lp in loops if lp["phase"] == ph), None)
        if loop is not None and pipe and loop is p1:
            # this row's first phase ran in the previous row's loop, unless the row starts
            # this thread's chunk
            statements, clauses, block = phase_parts(p1, p1["roots"])
            lines.append(f"{pad}if ({rv} != {rv}_x) {{")
            nest = Nest(names, avail, indent + 1)
            nest.emit([(name, ext, _simd(clauses or [])) for name, ext, _ in rloops],
                      statements, _reset(p1), block=block)
            lines.extend(nest.lines)  # its hoisted values stay inside the braces
            lines.append(f"{pad}}}")
            preds = p1["reds"]
        elif loop is not None and pipe and loop is p2:
            statements, clauses, block = phase_parts(p2, p2["roots"])
            nstat, nclauses, nblock = phase_parts(p1, p1["next"])
            lines.append(f"{pad}const int64_t {rvn} = {rv} + 1 < {nk_c} ? {rv} + 1 : {rv};")
            if nblock is not None:
                block = nblock if block is None else \
                    (BLOCK, block[1] + nblock[1], block[2] + nblock[2])
            decls = [ln for r, _ in p2["reds"] for ln in _acc_decl(r, acc_names[r.name])]
            run_nest(p2["roots"] + [n for n, _ in p2.get("store", [])] + p1["next"],
                     statements + _scratch_stores(p2, names) + nstat, clauses + nclauses,
                     decls + _reset(p1), block=block)
            lines.append(f"{pad}{rv}_x = {rv} + 1;")
            preds = p2["reds"]
        elif loop is not None:
            preds = loop["reds"]
            roots = loop["roots"]
            decls = [ln for r, _ in preds for ln in _acc_decl(r, acc_names[r.name])]
            fl = [r for r, _ in preds if r.name in blocked]
            statements, clauses, block = phase_parts(loop, roots)
            statements += _scratch_stores(loop, names)
            if fl and clauses is None:  # no simd loop here (argmax): accumulate in double
                statements = [([e], _acc_stmt(r, b.cast(e, r.acc), acc_names[r.name],
                                              pos[r.name])) if r.name in blocked else st
                              for (r, _), e, st in zip(preds, roots, statements,
                                                       strict=False)] + statements[len(preds):]
            run_nest(roots + [n for n, _ in loop.get("store", [])], statements, clauses,
                     decls, block=block)
        if loop is not None:
            for r, _ in preds:
                val = _acc_final(r, acc_names[r.name])
                lines.append(f"{pad}const {ctype(r.out_dtype)} {r.name} = "
                             f"({ctype(r.out_dtype)}){val};")
                bid = gen.lw.realized[r.node].id
                if bid in k.stores:
                    kc.writes.add(bid)
                    lines.append(f"{pad}b{bid}[{names.ix(offs[r.name])}] = {r.name};")
        for node, e, rph, off, name in rows:
            if rph != ph:
                continue
            bid = gen.lw.realized[node].id
            if bid in k.stores:
                kc.writes.add(bid)
            nest = Nest(names, avail, indent)
            nest.emit([], [([e], _row_stmt(name, e, bid if bid in k.stores else None, off))])
            lines.extend(nest.lines)
            _merge_outer(nest, avail)
            avail[b.row(name, e.dtype).id] = name
    if not pipe:
        lines += _prefetch_next_row(loops, kvars, rvars, nk, row_data, names, pad)
    elif all(_inner_cost(e, varies, {}) < SCRATCH_COST for lp in loops for e in lp["roots"]):
        # the next row was read by the pipelined loop already; a streaming kernel (no
        # transcendental per element) gains from the row after it (layer_norm: ~7%), an
        # exp-bound one loses (softmax: ~15% slower)
        lines += _prefetch_next_row(loops, kvars, rvars, nk, row_data, names, pad, 2)
    final = next((lp for lp in loops if lp["phase"] is None), None)
    if final is not None:
        roots = final["roots"]
        n_full = len(full)
        statements = [([e], _store_stmt(bid, off, e))
                      for (bid, off, _), e in zip(full, roots[:n_full], strict=True)]
        fchecks = roots[n_full:]
        if fchecks:
            def check_fn(n: Nest) -> list[str]:
                return kc.check_lines(fchecks, n)
            check_fn.checks = True  # type: ignore[attr-defined]
            statements.append((fchecks, check_fn))
        if stream:
            count_loop(roots)
            lines.extend(_streamed_final(b, names, avail, indent, full[0], roots[0],
                                         gen.lw.buffers[full[0][0]].dtype, rvars[0]))
        else:
            run_nest(roots, statements, [], [], fallback=True)
    lines.append("        }")
    if stream:
        lines.append("        kiln_sfence();")
    for sid, _ in scratch:
        lines.append(f"        free(scr{sid});")
    lines.append("    }")
    if scratch:
        gen.check_messages[k.id] = gen.check_messages[k.id] + [""] * (OOM_BIT - len(checks)) \
            + ["out of memory for a row scratch buffer"]
    gen.stats[k.id] = stats
    return kc.function(lines, gen.comment(k))


def _inner_cost(n: Expr, varies, memo: dict[int, int]) -> int:
    if n.id in memo:
        return memo[n.id]
    c = 0
    if varies(n):
        c = (op_cost(n.data) if n.kind == "op" else 0) + sum(_inner_cost(a, varies, memo)
                                                              for a in n.args)
    memo[n.id] = c
    return c


def _plan_scratch(b, loops: list[dict], varies, jflat: IX, row_data,
                  cache_row_data: bool = True) -> list[tuple[int, dt.DType]]:
    """Choose values to cache between loops; rewrites later loops' roots in place.

    In each later loop, a value an earlier loop computed is read from the scratch when it is
    expensive, or when caching such values removes every load of row data from the loop
    (the loop then stops being a pass: layer_norm's x - mean, log_softmax's x - max).
    """
    first: dict[int, int] = {}
    cost: dict[int, int] = {}
    scratch: dict[int, tuple[int, Expr]] = {}  # node id -> (sid, scratch expr)
    out: list[tuple[int, dt.DType]] = []
    for li, loop in enumerate(loops):
        if li:
            chosen = _choose(b, loop["roots"], first, cost, varies, jflat, row_data,
                             cache_row_data)
            for n in chosen:
                if n.id not in scratch:
                    sid = len(scratch)
                    scratch[n.id] = (sid, b.scratch(sid, jflat, n.dtype))
                    out.append((sid, n.dtype))
                    loops[first[n.id]].setdefault("store", []).append((n, sid))
            if chosen:
                repl = {n.id: scratch[n.id][1] for n in chosen}
                memo = transform(b, loop["roots"], lambda n, args, repl=repl: repl.get(n.id))
                loop["roots"] = [memo[r.id] for r in loop["roots"]]
        for n in walk(loop["roots"]):
            if varies(n):
                first.setdefault(n.id, li)
    for loop in loops:
        loop["jflat"] = jflat
    return out


def _choose(b, roots: list[Expr], first: dict[int, int], cost: dict[int, int], varies,
            jflat: IX, row_data, cache_row_data: bool = True) -> list[Expr]:
    """Values of an earlier loop that this loop should read from the scratch."""
    candidates: dict[int, Expr] = {}
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        n = stack.pop()
        if n.id in seen:
            continue
        seen.add(n.id)
        if n.id in first and n.kind == "op" and varies(n):
            candidates[n.id] = n
            continue
        stack.extend(n.args)
    expensive = {i for i, n in candidates.items()
                 if _inner_cost(n, varies, cost) >= SCRATCH_COST}
    data = {i for i, n in candidates.items() if any(row_data(m) for m in walk([n]))}
    both = expensive | data
    trial = transform(b, roots, lambda n, args: b.scratch(-1, jflat, n.dtype)
                      if n.id in both else None)
    ids = expensive
    if cache_row_data and not any(row_data(m) for m in walk([trial[r.id] for r in roots])):
        ids = both
    return [candidates[i] for i in sorted(ids)]


def _prefetch_next_row(loops: list[dict], kvars: list[IX], rvars: list[IX], nk: IX, row_data,
                       names: Names, pad: str, ahead: int = 1) -> list[str]:
    """Prefetch the next row's data before the last loop of this row: the first loop over a
    row is the one that waits for memory, and the compute of the later loops hides the
    transfer (softmax: ~12% faster single-threaded on 4096 x 1024)."""
    if len(kvars) != 1 or len(rvars) != 1:
        return []
    rv, jv = _vname(kvars[0]), rvars[0]
    ext = _extent(jv)
    if ext.is_const and ext.value < 256:
        return []
    out = []
    seen = set()
    for loop in loops:
        for n in walk(loop["roots"]):
            if not row_data(n) or (n.data[0], n.data[1]) in seen:
                continue
            seen.add((n.data[0], n.data[1]))
            off = n.data[1]
            if off.linear_coeff(_vname(jv)) != IX.const(1) or off.data_keys():
                continue
            step = 64 // n.dtype.itemsize
            nxt = off.subs({rv: kvars[0] + ahead, _vname(jv): IX.var("pf", ext)})
            out.append(f"{pad}if ({rv} + {ahead} < {names.ix(nk)}) for (int64_t pf = 0; pf < "
                       f"{names.ix(ext)}; pf += {step}) KILN_PREFETCH(&b{n.data[0]}"
                       f"[{names.ix(nxt)}]);")
    return out


def statements_check(statements: list) -> bool:
    """Whether a loop's statements update ``kerr`` (its simd pragma then reduces it)."""
    return any(getattr(fn, "checks", False) for _, fn in statements)


def _float_acc_stmt(acc: str, e: Expr):
    return lambda n: [f"{acc}_f += {n.expr(e)};"]


def _scratch_stores(loop: dict, names: _RowNames) -> list:
    stmts = []
    jflat = loop.get("jflat")
    for n, sid in loop.get("store", []):
        def fn(nest: Nest, n: Expr = n, sid: int = sid) -> list[str]:
            return [f"{names.scratch_ref(sid, jflat)} = {nest.expr(n)};"]
        stmts.append(([n], fn))
    return stmts


class _RowNames(Names):
    """Names where a row scratch may be the kernel's output row (``out``: scratch id ->
    (output buffer, offset of the row's first element)))."""

    def __init__(self, out: dict[int, tuple[int, IX]]) -> None:
        super().__init__()
        self.out = out

    def scratch_ref(self, sid: int, off: IX) -> str:
        if sid in self.out:
            bid, base = self.out[sid]
            return f"b{bid}[{self.ix(base + off)}]"
        return f"scr{sid}[{self.ix(off)}]"

    def text(self, e: Expr, arg_text, mode: str = "accurate") -> str:
        if e.kind == "scratch":
            return self.scratch_ref(e.data[0], e.data[1])
        return super().text(e, arg_text, mode)


def _output_scratch(gen: CodeGen, kc: KernelCode, loops: list[dict],
                    scratch: list[tuple[int, dt.DType]], full: list, kvars: list[IX], nr: IX,
                    jflat: IX) -> dict[int, tuple[int, IX]]:
    """Scratch rows that can live in the output row: the final loop stores one full
    output contiguously per row in the scratch's dtype, so the earlier loop writes the cached
    value there and the final loop rewrites it in place (one buffer less to stream through
    the cache: softmax 4096 x 1024 ~15% faster). The output is never read otherwise here and
    cannot alias an input (its pointer is ``restrict``; the arena gives buffers that are live
    in the same kernel distinct bytes). Not when the final loop may recompute a block (fast
    sin/cos fallback): the recomputation would read the overwritten value."""
    final = next((lp for lp in loops if lp["phase"] is None), None)
    if not OUTPUT_SCRATCH or final is None or len(full) != 1 or not scratch or len(kvars) > 1:
        return {}
    if any(is_fast_trig(n) for n in walk(final["roots"])):
        return {}
    bid, off, _ = full[0]
    base = kvars[0] * nr if kvars else IX.const(0)
    if off != base + jflat or bid in kc.reads or gen.lw.buffers[bid].dtype != scratch[0][1]:
        return {}
    return {scratch[0][0]: (bid, base)}


def _red_widths(reds: list, blocked: set[str]) -> dict[str, int]:
    """Bytes of the narrowest value each reduction keeps per simd lane."""
    out = {}
    for r in reds:
        w = 4 if r.name in blocked else r.acc.itemsize
        if r.tracks_nan:
            w = min(w, 4)  # the int NaN flag
        out[r.name] = w
    return out


def _pipeline(loops: list[dict], kvars: list[IX], rvars: list[IX], blocked: set[str],
              widths: dict[str, int], varies) -> bool:
    """Whether the first phase of the next row can run inside the second phase's loop.

    The fused loop must accumulate every value in the same order as the separate loops did
    (results stay bit-identical): both phases vectorize, their narrowest lane values have the
    same width (gcc picks the vector factor from it, and a sum's lane split follows it), and
    a sum or product is float-blocked in the fused loop only if it already was. The first
    phase must not read row scalars (the next row's are not known yet) nor fill a scratch
    (this row's later loops still read it).
    """
    if not PIPELINE or len(kvars) != 1 or len(rvars) != 1 or len(loops) < 2 or \
            loops[1]["phase"] is None or loops[0].get("store"):
        return False
    p1, p2 = loops[0], loops[1]
    if any(n.kind in ("row", "scratch") for n in walk(p1["roots"])):
        return False
    sets = []
    for lp in (p1, p2):
        reds = [r for r, _ in lp["reds"]]
        if any(r.kind not in ("sum", "prod", "max", "min") for r in reds):
            return False
        w = [widths[r.name] for r in reds]
        w += [n.dtype.itemsize for n in walk(lp["roots"]) if varies(n)]
        sets.append((min(w), any(r.name in blocked for r in reds),
                     any(r.kind in ("sum", "prod") and r.name not in blocked for r in reds)))
    (w1, bl1, ord1), (w2, bl2, ord2) = sets
    return w1 == w2 and not (bl1 and ord2) and not (bl2 and ord1)


def _stream_output(gen: CodeGen, kc: KernelCode, loops: list[dict], full: list,
                   kvars: list[IX], rvars: list[IX], nk: IX, nr: IX, jflat: IX) -> bool:
    """Whether the final loop can stream its output (see STREAM_MIN_BYTES): one float
    output written contiguously row by row, static sizes, at least STREAM_MIN_BYTES, rows of
    at least a block, and no fast sin/cos (whose fallback recomputes a block) or checks in
    the loop."""
    final = next((lp for lp in loops if lp["phase"] is None), None)
    if not STREAM or final is None or len(full) != 1 or len(kvars) != 1 or len(rvars) != 1:
        return False
    bid, off, _ = full[0]
    dtype = gen.lw.buffers[bid].dtype
    if dtype not in (dt.float32, dt.float64) or bid in kc.reads:
        return False
    if not (nk.is_const and nr.is_const and nr.value >= STREAM_BLOCK):
        return False
    if nk.value * nr.value * dtype.itemsize < STREAM_MIN_BYTES:
        return False
    if off != kvars[0] * nr + jflat or len(final["roots"]) != 1:
        return False
    return not any(is_fast_trig(n) for n in walk(final["roots"]))


def _streamed_final(b, names: Names, avail: dict[int, str], indent: int,
                    out: tuple[int, IX, Expr], root: Expr, dtype: dt.DType,
                    jvar: IX) -> list[str]:
    """The final loop of a streamed kernel: blocks of STREAM_BLOCK values computed into a
    register block, each streamed to the output; the row's tail stored plainly."""
    bid, off, _ = out
    j = _vname(jvar)
    n = _extent(jvar).value
    nblocks, tail = divmod(n, STREAM_BLOCK)
    t = ctype(dtype)
    pad = "    " * indent
    jb, jl = IX.var(f"{j}_s", nblocks), IX.var(f"{j}_l", STREAM_BLOCK)
    e = rebuild(b, [root], {j: jb * STREAM_BLOCK + jl})[root.id]
    # values that vary with the row only (layer_norm's rsqrt) come before the block loop
    pre = Nest(names, avail, indent)
    loop_vars = {f"{j}_s", f"{j}_l"}
    pre.emit([], [([n for n in walk([e]) if not pre.vars_of(n) & loop_vars], lambda _: [])])
    lines = pre.lines + [f"{pad}for (int64_t {j}_s = 0; {j}_s < {nblocks}; ++{j}_s) {{",
                         f"{pad}    _Alignas(64) {t} kiln_blk[{STREAM_BLOCK}];"]
    avail = dict(avail)
    _merge_outer(pre, avail)
    nest = Nest(names, avail, indent + 1)
    nest.emit([(f"{j}_l", IX.const(STREAM_BLOCK), _simd([]))],
              [([e], lambda nst: [f"kiln_blk[{j}_l] = {nst.expr(e)};"])])
    lines += nest.lines
    suffix = "f32" if dtype == dt.float32 else "f64"
    start = off.subs({j: jb * STREAM_BLOCK})
    lines += [f"{pad}    kiln_stream_{suffix}(&b{bid}[{names.ix(start)}], kiln_blk, "
              f"{STREAM_BLOCK});", f"{pad}}}"]
    if tail:
        jt = IX.var(f"{j}_t", tail)
        mapping = {j: IX.const(nblocks * STREAM_BLOCK) + jt}
        et = rebuild(b, [root], mapping)[root.id]
        nest = Nest(names, avail, indent)
        nest.emit([(f"{j}_t", IX.const(tail), _simd([]))],
                  [([et], _store_stmt(bid, off.subs(mapping), et))])
        lines += nest.lines
    return lines

