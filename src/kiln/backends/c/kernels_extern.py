"""C text of matmul (GEMM + fused epilogue) and scatter_add / scatter kernels."""

from __future__ import annotations

from kiln.backends.c.codegen import CodeGen, KernelCode, rebuild
from kiln.backends.c.emit import Names, Nest, ctype
from kiln.backends.c.ix import IX, flat_index
from kiln.backends.c.kernels import _kerr, _stores, pointwise_nest
from kiln.backends.c.schedule import Kernel
from kiln.core import dtypes as dt


def emit_matmul(gen: CodeGen, k: Kernel) -> str:
    kc = KernelCode(gen, k)
    ex = k.extern
    names = Names()
    abuf, abase, (ta, lda) = ex["a"]
    bbuf, bbase, (tb, ldb) = ex["b"]
    out = ex["out"]
    kc.reads |= {abuf.id, bbuf.id}
    kc.writes.add(out.id)
    t = ctype(out.dtype)
    fn = "kiln_sgemm" if out.dtype == dt.float32 else "kiln_dgemm"
    m, n, kk = (names.ix(x) for x in (ex["m"], ex["n"], ex["k"]))
    lines = [f"    {{ /* {fn}: {'A^T' if ta else 'A'} @ {'B^T' if tb else 'B'} */",
             f"        const {t} *A = b{abuf.id} + {names.ix(abase)};",
             f"        const {t} *B = b{bbuf.id} + {names.ix(bbase)};",
             f"        {t} *C = b{out.id};"]
    loops = ex["loops"]
    ind = "        "
    for i, (ext, sa, sb, sc) in enumerate(loops[:-1]):
        lines.append(f"{ind}for (int64_t l{i} = 0; l{i} < {names.ix(ext)}; ++l{i}) {{")
        ind += "    "
        lines.append(f"{ind}const {t} *A{i + 1} = A + l{i} * {names.ix(sa)};")
        lines.append(f"{ind}const {t} *B{i + 1} = B + l{i} * {names.ix(sb)};")
        lines.append(f"{ind}{t} *C{i + 1} = C + l{i} * {names.ix(sc)};")
        lines.append(f"{ind}#define A A{i + 1}")
    depth = max(len(loops) - 1, 0)
    a_ptr = f"A{depth}" if depth else "A"
    b_ptr = f"B{depth}" if depth else "B"
    c_ptr = f"C{depth}" if depth else "C"
    lines = [ln for ln in lines if "#define" not in ln]
    if loops:
        ext, sa, sb, sc = loops[-1]
        lines.append(f"{ind}{fn}_batched({names.ix(ext)}, {ta}, {tb}, {m}, {n}, {kk}, 1, "
                     f"{a_ptr}, {names.ix(lda)}, {names.ix(sa)}, {b_ptr}, {names.ix(ldb)}, "
                     f"{names.ix(sb)}, 0, {c_ptr}, {n}, {names.ix(sc)});")
    else:
        lines.append(f"{ind}{fn}({ta}, {tb}, {m}, {n}, {kk}, 1, {a_ptr}, {names.ix(lda)}, "
                     f"{b_ptr}, {names.ix(ldb)}, 0, {c_ptr}, {n});")
    for _ in range(len(loops) - 1):
        ind = ind[:-4]
        lines.append(f"{ind}}}")
    lines.append("    }")
    stores = _stores(gen, k, k.full)
    checks = [e for e, _ in k.checks.values()]
    gen.check_messages[k.id] = [msg for _, msg in k.checks.values()]
    if stores or checks:
        lines += pointwise_nest(kc, stores, checks, list(range(len(k.shape))))
    return kc.function(lines, gen.comment(k))


def emit_scatter(gen: CodeGen, k: Kernel) -> str:
    """out = base; then out[p with p[dim] = index[p]] += src[p] (scatter_add) or = src[p]
    (scatter) for every index position.

    Threads split the index dims other than ``dim``: two positions that differ there write
    different output elements, so no two threads ever write the same place. Positions that
    do write one element differ only in ``dim``, which one thread walks in increasing order:
    the last write in row-major index order wins, as in the NumPy kernel.
    """
    kc = KernelCode(gen, k)
    b = kc.b
    ex = k.extern
    out = gen.lw.realized[ex["node"]]
    kc.writes.add(out.id)
    gen.check_messages[k.id] = [msg for _, msg in k.checks.values()] + [
        f"{ex['node'].target} (node {ex['node'].name}): an index is out of bounds for dim "
        f"{ex['dim']}"]
    assign = "+=" if ex["node"].target == "scatter_add" else "="
    base_stores = [(out.id, flat_index(k.vars, k.shape), ex["base"])]
    lines = pointwise_nest(kc, base_stores, [], list(range(len(k.shape))), prefix="c")
    dim = ex["dim"]
    ishape = ex["ishape"]
    others = [d for d in range(len(ishape)) if d != dim]
    # the scatter loops: flattened other dims (parallel), then the scattered dim
    outer_ext = IX.const(1)
    for d in others:
        outer_ext = outer_ext * ishape[d]
    ovar = IX.var("w0", outer_ext)
    mapping: dict[str, IX] = {}
    inner = IX.const(1)
    from kiln.backends.c.ix import floordiv, mod

    for j in reversed(range(len(others))):
        d = others[j]
        q = floordiv(ovar, inner)
        mapping[f"j{d}"] = q if j == 0 else mod(q, ishape[d])
        inner = inner * ishape[d]
    iv, sv = ex["index"], ex["src"]
    checks = [e for e, _ in k.checks.values()]
    memo = rebuild(b, [iv, sv] + checks, mapping)
    iv, sv = memo[iv.id], memo[sv.id]
    checks = [memo[c.id] for c in checks]
    kc.note_reads([iv, sv] + checks)
    names = Names()
    size = k.shape[dim]
    dvar = f"j{dim}"
    ncheck = len(checks)

    def scatter_stmt(n: Nest) -> list[str]:
        pos = [IX.var(dvar, ishape[dim]) if d == dim else mapping[f"j{d}"]
               for d in range(len(ishape))]
        pos[dim] = IX.atom(("x", "tgt", IX.const(0), size - 1))
        off = flat_index(tuple(pos), k.shape)
        idx = n.expr(iv)
        return [f"const int64_t bad = {idx} < 0 || {idx} >= {names.ix(size)};",
                f"kerr |= (int64_t)bad << {ncheck};",
                f"const int64_t tgt = bad ? 0 : {idx};",
                f"b{out.id}[{names.ix(off)}] {assign} {n.expr(sv)};"]

    statements = [([iv, sv], scatter_stmt)]
    if checks:
        statements.append((checks, lambda n: kc.check_lines(checks, n)))
    nest = Nest(names, {}, 1)
    clause = kc.parallel(outer_ext * ishape[dim])
    pragma = "" if clause is None else " ".join(["#pragma omp parallel for schedule(static)",
                                                 "reduction(|:kerr)", clause])
    nest.emit([("w0", outer_ext, pragma), (dvar, ishape[dim], "")], statements)
    kc.has_checks = True
    lines += nest.lines
    _ = _kerr
    return kc.function(lines, gen.comment(k))
