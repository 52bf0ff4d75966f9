"""C text for each kernel kind (see :mod:`kiln.backends.c.schedule` for the kinds)."""

from __future__ import annotations

from kiln.backends.c.codegen import CodeGen, KernelCode, literal_init, rebuild
from kiln.backends.c.emit import Names, Nest, ctype
from kiln.backends.c.expr import Expr, walk
from kiln.backends.c.ix import IX, flat_index
from kiln.backends.c.schedule import Kernel, Reduction
from kiln.core import dtypes as dt


def emit_kernel(gen: CodeGen, k: Kernel) -> str | None:
    if k.kind == "pointwise":
        return emit_pointwise(gen, k)
    if k.kind == "rows":
        from kiln.backends.c.rows import emit_rows

        return emit_rows(gen, k)
    if k.kind == "cols":
        return emit_cols(gen, k)
    if k.kind == "matmul":
        from kiln.backends.c.kernels_extern import emit_matmul

        return emit_matmul(gen, k)
    if k.kind == "scatter":
        from kiln.backends.c.kernels_extern import emit_scatter

        return emit_scatter(gen, k)
    from kiln.backends.c.conv import emit_conv

    return emit_conv(gen, k)


def _stores(gen: CodeGen, k: Kernel, items: list) -> list[tuple[int, IX, Expr]]:
    out = []
    for node, expr, *rest in items:
        buf = gen.lw.realized[node]
        if buf.id in k.stores:
            off = rest[2] if len(rest) >= 3 else flat_index(k.vars, k.shape)
            out.append((buf.id, off, expr))
    return out


def _simd(reductions: list[str]) -> str:
    return "#pragma omp simd" + "".join(f" {r}" for r in reductions)


def _kerr(kc: KernelCode) -> list[str]:
    return ["reduction(|:kerr)"] if kc.has_checks else []


def pointwise_nest(kc: KernelCode, stores: list[tuple[int, IX, Expr]], checks: list[Expr],
                   dims: list[int], indent: int = 1, prefix: str = "c",
                   parallel: bool = True) -> list[str]:
    """Lines of a loop nest over ``dims`` of the kernel's shape storing ``stores``."""
    k = kc.k
    exprs = [e for _, _, e in stores] + checks
    loops, mapping = kc.plan_dims(dims, exprs, [off for _, off, _ in stores], prefix, "outer")
    del k
    memo = rebuild(kc.b, exprs, mapping)
    stores = [(bid, off.subs(mapping), memo[e.id]) for bid, off, e in stores]
    checks = [memo[c.id] for c in checks]
    for bid, _, _ in stores:
        kc.writes.add(bid)
    kc.note_reads([e for _, _, e in stores] + checks)
    total = IX.const(1)
    for v in loops:
        total = total * _extent(v)
    peel = _peel_plan(loops, stores, checks) if parallel else None
    names = Names({}, {bid: f"b{bid}_a" for bid in peel[1]}) if peel else Names()
    nest = Nest(names, {}, indent)
    work = nest.names.ix(total)
    red = _kerr(kc)
    clause = kc.parallel(total)
    parallel = parallel and clause is not None
    specs = []
    for i, v in enumerate(loops):
        if len(loops) == 1 and parallel:
            pragma = " ".join(["#pragma omp parallel for simd schedule(static)"] + red +
                              [clause])
        elif i == 0 and parallel:
            pragma = " ".join(["#pragma omp parallel for schedule(static)"] + red + [clause])
        elif i == len(loops) - 1:
            pragma = _simd(red)
        else:
            pragma = ""
        specs.append((_vname(v), _extent(v), pragma))

    def store_fn(bid: int, off: IX, e: Expr):
        return lambda n: [f"{n.names.bufs.get(bid, f'b{bid}')}[{n.names.ix(off)}] = "
                          f"{n.expr(e)};"]

    statements = [([e], store_fn(bid, off, e)) for bid, off, e in stores]
    if checks:
        statements.append((checks, lambda n: kc.check_lines(checks, n)))
    pad = "    " * indent
    guard = [f"{pad}if ({work} <= 0) return kerr;"] if not total.is_const else []
    if total.is_const and total.value <= 0:
        return []
    if peel is None:
        nest.emit(specs, statements, fallback=True)
        return guard + nest.lines
    # peel the first elements so the main loop's anchor loads are 64-byte aligned, then run
    # the main loop on pointers rebased past them
    anchor, rebased = peel
    var = specs[0][0]
    buf = kc.gen.lw.buffers
    lines = guard + [f"{pad}const int64_t {var}_p = kiln_peel(b{anchor}, "
                     f"sizeof(*b{anchor}), {work});"]
    head = Nest(Names(), {}, indent)
    head.emit([(var, f"{var}_p", "")], statements)
    lines += head.lines
    lines.append(f"{pad}{{")
    for bid in rebased:
        t = ctype(buf[bid].dtype)
        const = "" if bid in kc.writes else "const "
        ptr = f"KILN_ALIGNED(b{bid} + {var}_p)" if bid == anchor else f"b{bid} + {var}_p"
        lines.append(f"{pad}    {const}{t} *restrict b{bid}_a = ({const}{t} *){ptr};")
    nest.indent = indent + 1
    specs[0] = (var, f"{work} - {var}_p", specs[0][2])
    nest.emit(specs, statements, fallback=True)
    return lines + nest.lines + [f"{pad}}}"]


def _peel_plan(loops: list[IX], stores: list, checks: list[Expr]
               ) -> tuple[int, list[int]] | None:
    """(anchor buffer, buffers to rebase) when a one-loop kernel reads or writes some
    buffers only at the loop index: those can be shifted past a peeled head, aligned."""
    if len(loops) != 1:
        return None
    ident = loops[0]
    name = _vname(ident)
    access: dict[int, set] = {}
    order: list[int] = []
    for n in walk([e for _, _, e in stores] + checks):
        if n.kind == "load":
            if n.data[0] not in access:
                order.append(n.data[0])
            access.setdefault(n.data[0], set()).add(n.data[1])
        elif n.kind == "idx" and name in n.data.var_names():
            return None  # the index itself is a value (arange...): it must not shift
    for bid, off, _ in stores:
        access.setdefault(bid, set()).add(off)
    for offs in access.values():
        if any(name in off.var_names() for off in offs) and offs != {ident}:
            return None  # some access depends on the loop index in another way
    clean = [bid for bid, offs in access.items() if offs == {ident}]
    anchors = [bid for bid in order if bid in clean]
    if not anchors:
        return None
    return anchors[0], sorted(clean)


def _vname(v: IX) -> str:
    ((m, _),) = v.terms
    return m[0][1]


def _extent(v: IX) -> IX:
    ((m, _),) = v.terms
    return m[0][2]


def emit_pointwise(gen: CodeGen, k: Kernel) -> str | None:
    kc = KernelCode(gen, k)
    stores = _stores(gen, k, k.full)
    checks = [e for e, _ in k.checks.values()]
    if not stores and not checks:
        return None
    gen.check_messages[k.id] = [m for _, m in k.checks.values()]
    body = pointwise_nest(kc, stores, checks, list(range(len(k.shape))))
    return kc.function(body, gen.comment(k))


# ------------------------------------------------------------------------------------------
# reductions


def _acc_update(r: Reduction, acc: str, val: str, pos: str | None) -> list[str]:
    if r.kind == "sum":
        return [f"{acc} += ({ctype(r.acc)}){val};"]
    if r.kind == "prod":
        return [f"{acc} *= {val};"]
    if r.kind in ("max", "min"):
        cmp = ">" if r.kind == "max" else "<"
        lines = [f"{acc} = {val} {cmp} {acc} ? {val} : {acc};"]
        if r.tracks_nan:
            lines.append(f"{acc}_nan |= {val} != {val};")
        return lines
    cmp = ">" if r.kind == "argmax" else "<"
    nan = f" || ({val} != {val} && {acc} == {acc})" if r.acc.is_floating else ""
    return [f"if ({val} {cmp} {acc}{nan}) {{ {acc} = {val}; {acc}_i = {pos}; }}"]


def _acc_clauses(reds: list[Reduction], names: dict[str, str]) -> list[str] | None:
    """OpenMP reduction clauses for a simd loop, or None when one cannot vectorize."""
    out = []
    for r in reds:
        a = names[r.name]
        if r.kind == "sum":
            out.append(f"reduction(+:{a})")
        elif r.kind == "prod":
            out.append(f"reduction(*:{a})")
        elif r.kind in ("max", "min"):
            out.append(f"reduction({r.kind}:{a})")
            if r.tracks_nan:
                out.append(f"reduction(|:{a}_nan)")
        else:
            return None
    return out


def _acc_decl(r: Reduction, acc: str) -> list[str]:
    val_t = r.acc if r.kind not in ("argmax", "argmin") else r.acc
    lines = [f"{ctype(val_t)} {acc} = {literal_init(r.kind, val_t)};"]
    if r.tracks_nan:
        lines.append(f"int {acc}_nan = 0;")
    if r.kind in ("argmax", "argmin"):
        lines.append(f"int64_t {acc}_i = 0;")
    return lines


def _acc_final(r: Reduction, acc: str) -> str:
    if r.kind in ("argmax", "argmin"):
        return f"{acc}_i"
    if r.tracks_nan:
        return f"({acc}_nan ? ({ctype(r.acc)})NAN : {acc})"
    return acc


def _red_value(r: Reduction) -> Expr:
    return r.expr


def _merge_outer(nest: Nest, avail: dict[int, str]) -> None:
    for key in nest.outer:
        avail[key] = nest.avail[key]


def _acc_stmt(r: Reduction, e: Expr, acc: str, pos: IX | None):
    def fn(n: Nest) -> list[str]:
        return _acc_update(r, acc, n.expr(e), n.names.ix(pos) if pos is not None else None)
    return fn


def _row_stmt(name: str, e: Expr, bid: int | None, off: IX):
    def fn(n: Nest) -> list[str]:
        out = [f"const {ctype(e.dtype)} {name} = {n.expr(e)};"]
        if bid is not None:
            out.append(f"b{bid}[{n.names.ix(off)}] = {name};")
        return out
    return fn


def _nested_row_stmt(name: str, e: Expr, bid: int | None, off: IX, row_id: int):
    """Declare a row value inside a loop body after the values before it (its temporaries
    may read earlier row values, so they cannot be hoisted to the top of the body)."""
    def fn(n: Nest) -> list[str]:
        sub = Nest(n.names, n.avail, 0)
        sub.row_var = n.row_var
        sub.emit([], [([e], _row_stmt(name, e, bid, off))])
        n.avail.update(sub.avail)
        n.avail[row_id] = name
        return sub.lines
    return fn


def _store_stmt(bid: int, off: IX, e: Expr):
    return lambda n: [f"b{bid}[{n.names.ix(off)}] = {n.expr(e)};"]


# ------------------------------------------------------------------------------------------
# column reductions: vector accumulators over the trailing kept dims

COL_BLOCK = 512


def emit_cols(gen: CodeGen, k: Kernel) -> str | None:
    kc = KernelCode(gen, k)
    b = kc.b
    gen.check_messages[k.id] = [m for _, m in k.checks.values()]
    reds = list(k.reductions)
    rows = list(k.rows)
    checks = [e for e, _ in k.checks.values()]
    last_red = max(k.reduced)
    outer = [d for d in k.kept if d < last_red]
    inner = [d for d in k.kept if d > last_red]
    red_exprs = [b.cast(r.expr, r.acc) if r.kind in ("sum", "prod") else r.expr for r in reds]
    red_exprs = [b.cast(e, dt.int64) if e.dtype.is_bool else e for e in red_exprs]
    all_exprs = [e for _, e, *_ in rows] + red_exprs + checks
    extra = [r.pos for r in reds if r.pos is not None]
    ovars, omap = kc.plan_dims(outer, all_exprs, extra, "o", "all")
    ivars, imap = kc.plan_dims(inner, all_exprs, extra, "v", "all")
    rvars, rmap = kc.plan_dims(list(k.reduced), all_exprs, extra, "j", "none")
    mapping = {**omap, **imap, **rmap}
    memo = rebuild(b, all_exprs, mapping)
    rows = [(node, memo[e.id], ph, off.subs(mapping), name) for node, e, ph, off, name in rows]
    red_exprs = [memo[e.id] for e in red_exprs]
    checks = [memo[c.id] for c in checks]
    pos = {r.name: (r.pos.subs(mapping) if r.pos is not None else None) for r in reds}
    offs = {r.name: r.offset.subs(mapping) for r in reds}
    kc.note_reads([e for _, e, *_ in rows] + red_exprs + checks)
    names = Names()
    no = IX.const(1)
    for v in ovars:
        no = no * _extent(v)
    nv = _extent(ivars[0]) if ivars else IX.const(1)
    vname = _vname(ivars[0]) if ivars else "v0"
    nr = IX.const(1)
    for v in rvars:
        nr = nr * _extent(v)
    acc = {r.name: f"a{gen.lw.realized[r.node].id}" for r in reds}
    clause = kc.parallel(no * nv * nr)
    lines = [f"    const int64_t no = {names.ix(no)}, nv = {names.ix(nv)};",
             "    if (no <= 0 || nv <= 0) return kerr;",
             f"    const int64_t nblk = (nv + {COL_BLOCK - 1}) / {COL_BLOCK};"]
    if clause is not None:
        lines.append("    " + " ".join(["#pragma omp parallel for schedule(static)"] +
                                        _kerr(kc) + [clause]))
    lines.append("    for (int64_t w = 0; w < no * nblk; ++w) {")
    oname = _vname(ovars[0]) if ovars else "o_unused"
    lines.append(f"        const int64_t {oname} = w / nblk; (void){oname};")
    lines.append(f"        const int64_t vlo = (w % nblk) * {COL_BLOCK};")
    lines.append(f"        const int64_t vn = nv - vlo < {COL_BLOCK} ? nv - vlo : {COL_BLOCK};")
    for r in reds:
        a = acc[r.name]
        t = ctype(r.acc)
        lines.append(f"        {t} {a}[{COL_BLOCK}];")
        init = literal_init(r.kind, r.acc)
        if r.tracks_nan:
            lines.append(f"        int {a}_nan[{COL_BLOCK}];")
            lines.append(f"        for (int64_t q = 0; q < vn; ++q) {a}_nan[q] = 0;")
        if r.kind in ("argmax", "argmin"):
            lines.append(f"        int64_t {a}_i[{COL_BLOCK}];")
            lines.append(f"        for (int64_t q = 0; q < vn; ++q) {a}_i[q] = 0;")
        lines.append(f"        for (int64_t q = 0; q < vn; ++q) {a}[q] = {init};")
    avail: dict[int, str] = {}
    simd = "#pragma omp simd" if all(r.kind not in ("argmax", "argmin") for r in reds) else ""
    loops = [(_vname(v), _extent(v), "") for v in rvars] + [("q", "vn", simd)]
    define_v = [f"const int64_t {vname} = vlo + q; (void){vname};"]
    statements = []
    for r, e in zip(reds, red_exprs, strict=True):
        statements.append(([e], _col_acc_stmt(r, e, acc[r.name], pos[r.name])))
    # A check that reads a reduction's result (a gather indexed by an argmax) runs where the
    # result exists, in the finalizing loop; the others in the reduction loop.
    late = [j for j, c in enumerate(checks) if any(n.kind == "row" for n in walk([c]))]
    early = [j for j in range(len(checks)) if j not in late]
    if early:
        statements.append(_check_stmt(kc, checks, early))
    nest = Nest(names, avail, 2)
    nest.emit(loops, statements, [], define_v, {vname: "q"})
    lines.extend(nest.lines)
    _merge_outer(nest, avail)
    # finalize each kept element: reduction results, then kept-shape values reading them
    fin_setup = list(define_v)
    for r in reds:
        a = acc[r.name]
        bid = gen.lw.realized[r.node].id
        fin_setup.extend(_col_fin(r, a, bid if bid in k.stores else None, offs[r.name], names))
        if bid in k.stores:
            kc.writes.add(bid)
    fin_stmts = []
    for node, e, _ph, off, name in rows:
        bid = gen.lw.realized[node].id
        if bid in k.stores:
            kc.writes.add(bid)
        fin_stmts.append(([], _nested_row_stmt(name, e, bid if bid in k.stores else None, off,
                                               b.row(name, e.dtype).id)))
    if late:
        fin_stmts.append(_check_stmt(kc, checks, late))
    fin = Nest(names, avail, 2)
    fin.row_var = vname
    fin.emit([("q", "vn", "")], fin_stmts, [], fin_setup, {vname: "q"})
    lines.extend(fin.lines)
    lines.append("    }")
    return kc.function(lines, gen.comment(k))


def _check_stmt(kc: KernelCode, checks: list[Expr], bits: list[int]):
    """The statement setting ``kerr`` bit ``j`` when ``checks[j]`` fails, for ``j`` in
    ``bits`` (a kernel's checks may run in different loops, each keeping its own bit)."""
    picked = [checks[j] for j in bits]
    return picked, lambda n: kc.check_lines(picked, n, bits)


def _col_acc_stmt(r: Reduction, e: Expr, acc: str, pos: IX | None):
    def fn(n: Nest) -> list[str]:
        val = n.expr(e)
        p = n.names.ix(pos) if pos is not None else None
        a = f"{acc}[q]"
        if r.kind == "sum":
            return [f"{a} += ({ctype(r.acc)}){val};"]
        if r.kind == "prod":
            return [f"{a} *= {val};"]
        if r.kind in ("max", "min"):
            cmp = ">" if r.kind == "max" else "<"
            out = [f"{a} = {val} {cmp} {a} ? {val} : {a};"]
            if r.tracks_nan:
                out.append(f"{acc}_nan[q] |= {val} != {val};")
            return out
        cmp = ">" if r.kind == "argmax" else "<"
        nan = f" || ({val} != {val} && {a} == {a})" if r.acc.is_floating else ""
        return [f"if ({val} {cmp} {a}{nan}) {{ {a} = {val}; {acc}_i[q] = {p}; }}"]
    return fn


def _col_fin(r: Reduction, acc: str, bid: int | None, off: IX, names: Names) -> list[str]:
    if r.kind in ("argmax", "argmin"):
        val = f"{acc}_i[q]"
    elif r.tracks_nan:
        val = f"({acc}_nan[q] ? ({ctype(r.acc)})NAN : {acc}[q])"
    else:
        val = f"{acc}[q]"
    out = [f"const {ctype(r.out_dtype)} {r.name} = ({ctype(r.out_dtype)}){val};"]
    if bid is not None:
        out.append(f"b{bid}[{names.ix(off)}] = {r.name};")
    return out
