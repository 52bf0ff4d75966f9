"""Generate the C translation unit of a scheduled graph.

One ``static`` function per kernel, ``int64_t kN(void **P, const int64_t *S)``, reads its
buffers from the pointer array ``P`` (indexed by buffer id) and the symbolic sizes from
``S``; ``kiln_run(P, S, T)`` calls them in order, returns 0 or ``(kernel + 1) << 48 | bits``
of the failed checks, and stores per-kernel seconds in ``T`` when it is not NULL.

Loop structure (see docs/c_backend.md): size-1 dims disappear, adjacent dims whose strides
nest in every access are coalesced into one loop (a contiguous tensor becomes one flat
loop), outer dims are flattened into one OpenMP-parallel loop, the innermost loop gets
``#pragma omp simd``. Kernels run serially below a work threshold.
"""

from __future__ import annotations

from kiln.backends.c.emit import Names, Nest, ctype, literal
from kiln.backends.c.expr import Builder, Expr, walk
from kiln.backends.c.ix import IX, floordiv, mod, rename_data
from kiln.backends.c.lower import Lowering, is_one
from kiln.backends.c.schedule import Kernel
from kiln.core import dtypes as dt
from kiln.graph.node import Node

PARALLEL_WORK = 1 << 15  # elements below which a kernel runs on one thread
SPLIT_BYTES = 24_000  # generated kernels beyond this size compile as two units in parallel


# ------------------------------------------------------------------------------------------
# variable rewriting


def rebuild(b: Builder, roots: list[Expr], ix_map: dict[str, IX]) -> dict[int, Expr]:
    """Rebuild ``roots`` with loop variables replaced (``IX.subs``); old id -> new expr."""
    memo: dict[int, Expr] = {}
    for n in walk(roots):
        args = tuple(memo[a.id] for a in n.args)
        keymap = {f"t{a.id}": f"t{memo[a.id].id}" for a in n.args}
        for a in args:
            b.data_atoms[f"t{a.id}"] = a
        if n.kind in ("load", "scratch"):
            off = rename_data(n.data[1], keymap).subs(ix_map)
            if n.kind == "load":
                new = b.raw_load(n.data[0], off, n.dtype)
            else:
                new = b.scratch(n.data[0], off, n.dtype)
        elif n.kind == "idx":
            new = b.idx(rename_data(n.data, keymap).subs(ix_map))
        elif n.kind == "op":
            new = b._make("op", n.data, args, n.dtype)
        else:
            new = n
        memo[n.id] = new
    return memo


def accesses(exprs: list[Expr]) -> list[IX]:
    out = []
    for n in walk(exprs):
        if n.kind in ("load", "scratch"):
            out.append(n.data[1])
        elif n.kind == "idx":
            out.append(n.data)
    return out


def coalesce(dims: list[tuple[IX, IX]], acc: list[IX]) -> list[list[int]]:
    """Group consecutive loop dims (var, extent) whose strides nest in every access."""
    groups: list[list[int]] = []
    for j, (vb, eb) in enumerate(dims):
        if groups:
            va = dims[groups[-1][-1]][0]
            na, nb = _name(va), _name(vb)
            ok = True
            for x in acc:
                names = x.var_names()
                if na not in names and nb not in names:
                    continue
                ca, cb = x.linear_coeff(na), x.linear_coeff(nb)
                if ca is None or cb is None or ca.var_names() or cb.var_names() or \
                        ca != cb * eb:
                    ok = False
                    break
            if ok:
                groups[-1].append(j)
                continue
        groups.append([j])
    return groups


def _name(v: IX) -> str:
    ((m, _),) = v.terms
    return m[0][1]


def merge(dims: list[tuple[IX, IX]], name: str) -> tuple[IX, dict[str, IX]]:
    """One variable ``name`` over the product of ``dims``; the map from the old variables."""
    ext = IX.const(1)
    for _, e in dims:
        ext = ext * e
    new = IX.var(name, ext)
    mapping: dict[str, IX] = {}
    if any(e.is_const and e.value == 0 for _, e in dims):
        return new, {_name(v): IX.const(0) for v, _ in dims}  # an empty loop: never runs
    inner = IX.const(1)
    for j in reversed(range(len(dims))):
        v, e = dims[j]
        q = floordiv(new, inner)
        mapping[_name(v)] = q if j == 0 else mod(q, e)
        inner = inner * e
    return new, mapping


class KernelCode:
    """C text of one kernel."""

    def __init__(self, gen: CodeGen, k: Kernel) -> None:
        self.gen = gen
        self.k = k
        self.b = gen.b
        self.reads: set[int] = set()
        self.writes: set[int] = set()
        self.lines: list[str] = []
        self.has_checks = bool(k.checks)

    # helpers ---------------------------------------------------------------------------
    def drop_ones(self, dims: list[int]) -> tuple[list[int], dict[str, IX]]:
        keep, zero = [], {}
        for d in dims:
            if is_one(self.k.shape[d]):
                zero[f"i{d}"] = IX.const(0)
            else:
                keep.append(d)
        return keep, zero

    def plan_dims(self, dims: list[int], exprs: list[Expr], extra: list[IX], prefix: str,
                  flatten: str) -> tuple[list[IX], dict[str, IX]]:
        """Loop variables for ``dims`` (size-1 dims dropped, strides coalesced).

        ``flatten`` is ``"all"`` (one variable), ``"outer"`` (all but the innermost group
        merged into one) or ``"none"``.
        """
        keep, mapping = self.drop_ones(dims)
        pairs = [(self.k.vars[d], self.k.shape[d]) for d in keep]
        groups = coalesce(pairs, accesses(exprs) + list(extra)) if pairs else []
        if flatten == "all" and len(groups) > 1:
            groups = [[j for g in groups for j in g]]
        elif flatten == "outer" and len(groups) > 2:
            groups = [[j for g in groups[:-1] for j in g], groups[-1]]
        out = []
        for gi, g in enumerate(groups):
            var, m = merge([pairs[j] for j in g], f"{prefix}{gi}")
            mapping.update(m)
            out.append(var)
        return out, mapping

    def buf_decls(self) -> list[str]:
        lines = []
        for bid in sorted(self.reads | self.writes):
            buf = self.gen.lw.buffers[bid]
            t = ctype(buf.dtype)
            if bid in self.writes:
                lines.append(f"{t} *restrict b{bid} = ({t} *)P[{bid}];")
            else:
                lines.append(f"const {t} *restrict b{bid} = (const {t} *)P[{bid}];")
        return lines

    def note_reads(self, exprs: list[Expr]) -> None:
        for n in walk(exprs):
            if n.kind == "load":
                self.reads.add(n.data[0])

    def check_lines(self, checks: list[Expr], nest: Nest, bits: list[int] | None = None
                    ) -> list[str]:
        """``kerr`` bit ``bits[j]`` (default ``j``) set when check ``j`` fails."""
        bits = list(range(len(checks))) if bits is None else bits
        return [f"kerr |= (int64_t){nest.expr(c)} << {j};" for j, c in zip(bits, checks,
                                                                                strict=True)]

    def function(self, body: list[str], comment: str) -> str:
        head = [f"/* {comment} */",
                f"static int64_t k{self.k.id}(void **restrict P, const int64_t *restrict S)",
                "{"]
        decls = ["    " + ln for ln in self.gen.sym_decls() + self.buf_decls()]
        self.gen.io[self.k.id] = (set(self.reads), set(self.writes))
        return "\n".join(head + decls + ["    int64_t kerr = 0;"] + body +
                         ["    return kerr;", "}"])

    @staticmethod
    def parallel(work: IX) -> str | None:
        """The OpenMP ``if`` clause for a kernel doing ``work`` element operations, or None
        when the work is known at compile time to be too small for a second thread."""
        if work.is_const:
            return "" if work.value > PARALLEL_WORK else None
        return f"if({Names().ix(work)} > {PARALLEL_WORK})"


# ------------------------------------------------------------------------------------------
# the translation unit


class CodeGen:
    def __init__(self, lw: Lowering, kernels: list[Kernel], b: Builder,
                 symbols: list[str], entry: str = "kiln_run") -> None:
        self.lw = lw
        # The entry point's name: ``kiln_run``, or a hidden ``kiln_run_cfN`` when the plan is
        # one part of a graph with control flow (kiln.backends.c.control_lower), whose own
        # kiln_run calls it; such a part is one translation unit (never split).
        self.entry = entry
        self.kernels = kernels
        self.b = b
        self.symbols = symbols
        self.uses_conv = any(k.kind in ("conv", "pool") for k in kernels)
        self.uses_gemm = any(
            k.kind == "matmul" and k.extern.get("dtype", dt.int64).is_floating for k in kernels)
        self.check_messages: dict[int, list[str]] = {}
        self.io: dict[int, tuple[set[int], set[int]]] = {}
        self.rt_funcs: set[tuple[str, str]] = set()  # (op, dtype) of prebuilt conv wrappers
        self.stats: dict[int, dict] = {}

    def sym_decls(self) -> list[str]:
        return [f"const int64_t s_{s} = S[{i}]; (void)s_{s};"
                for i, s in enumerate(self.symbols)]

    def source(self, header_comment: str) -> str:
        """The whole program as one text (what the plan records and the golden tests see)."""
        return "\n".join(self.sources(header_comment).values())

    def sources(self, header_comment: str) -> dict[str, str]:
        """Translation units (file name -> C). A large program is split in two units of
        about equal size, compiled in parallel; kernels are then hidden non-static symbols."""
        from kiln.backends.c.dedupe import share_kernels
        from kiln.backends.c.kernels import emit_kernel

        if hasattr(self, "_sources"):
            return self._sources
        head = [f"/* {header_comment} */", '#include "kiln_ops.h"']
        if self.uses_gemm:
            head.append('#include "kiln_gemm.h"')
        head.append("")
        calls = []
        bodies: list[tuple[int, str]] = []
        for k in self.kernels:
            code = emit_kernel(self, k)
            if code is None:
                continue
            bodies.append((k.id, code))
            calls.append(k.id)
        bodies, call_of = share_kernels(bodies)
        if self.rt_funcs:
            from kiln.backends.c.convrt import prototype

            head.append("/* kiln_conv.h kernels, prebuilt (kiln.backends.c.convrt) */")
            head += [prototype(op, d) for op, d in sorted(self.rt_funcs)] + [""]
        # The entry point checks what it is given against the plan it was built from: the
        # number of buffers and symbols, and every symbol within its range (-1 otherwise).
        nbuf = len(self.lw.buffers)
        # kiln.set_num_threads writes kiln_num_threads (kiln.backends.c.threads); OpenMP's
        # thread count is per calling thread, so the entry point applies it.
        if self.entry == "kiln_run":
            # kiln_blas_share.h: the callback that puts NumPy's OpenBLAS on the same team
            run = ["#ifdef _OPENMP", '#include "kiln_blas_share.h"', "#endif",
                   "int kiln_num_threads = 0; /* 0: OpenMP's own setting */",
                   "int64_t kiln_run(void **P, const int64_t *S, double *T, int64_t nP, "
                   "int64_t nS)", "{"]
        else:
            run = ["extern int kiln_num_threads;",
                   '__attribute__((visibility("hidden")))',
                   f"int64_t {self.entry}(void **P, const int64_t *S, double *T, int64_t nP, "
                   "int64_t nS)", "{"]
        run += [f"    if (nP != {nbuf} || nS != {len(self.symbols)}) return -1;",
                "#ifdef _OPENMP",
                "    if (kiln_num_threads > 0 && omp_get_max_threads() != kiln_num_threads)",
                "        omp_set_num_threads(kiln_num_threads);",
                "#endif"]
        for i, s in enumerate(self.symbols):
            dim = self.lw.graph.symbols[s]
            run.append(f"    if (S[{i}] < INT64_C({int(dim.min)}) || S[{i}] > "
                       f"INT64_C({int(dim.max)})) return -1;")
        run += ["    int64_t e = 0;", "    double t0 = 0;"]
        for pos, kid in enumerate(calls):
            run.append("    if (T) t0 = kiln_now();")
            run.append(f"    {call_of[kid]}")
            run.append(f"    if (T) T[{pos}] = kiln_now() - t0;")
            run.append(f"    if (e) return ((int64_t){kid + 1} << 48) | e;")
        run += ["    return 0;", "}"]
        self.calls = calls
        total = sum(len(c) for _, c in bodies)
        if total < SPLIT_BYTES or len(bodies) < 4 or self.entry != "kiln_run":
            text = "\n".join(head + [c + "\n" for _, c in bodies] + run) + "\n"
            self._sources = {"kiln_graph.c": text}
            return self._sources
        # two units of about equal size; kernels become hidden external functions
        protos = [f"KILN_HIDDEN int64_t k{kid}(void **restrict P, const int64_t *restrict S);"
                  for kid, _ in bodies]
        head += ['#define KILN_HIDDEN __attribute__((visibility("hidden")))'] + protos + [""]
        units: list[list[str]] = [[], []]
        size = [0, 0]
        for _, code in sorted(bodies, key=lambda kc: -len(kc[1])):
            i = 0 if size[0] <= size[1] else 1
            units[i].append(code.replace("static int64_t k", "KILN_HIDDEN int64_t k", 1))
            size[i] += len(code)
        self._sources = {
            "kiln_graph.c": "\n".join(head + [c + "\n" for c in units[0]] + run) + "\n",
            "kiln_graph_2.c": "\n".join(head + [c + "\n" for c in units[1]]) + "\n",
        }
        return self._sources

    def comment(self, k: Kernel) -> str:
        """Which graph nodes a kernel computes and which it fuses (inlines)."""
        computed = [n.name for n in k.nodes]
        fused: list[str] = []
        seen: set[Node] = set()

        def visit(n: Node) -> None:
            for a in n.inputs:
                if a in seen or a in self.lw.realized:
                    continue
                seen.add(a)
                fused.append(a.name)
                visit(a)

        for n in k.nodes:
            visit(n)
        text = f"kernel {k.id} ({k.kind}): computes {', '.join(computed)}"
        if fused:
            text += f"; fuses {', '.join(sorted(fused))}"
        return text.replace("*/", "* /")


def literal_init(kind: str, d: dt.DType) -> str:
    if kind in ("sum",):
        return literal(0, d)
    if kind == "prod":
        return literal(1, d)
    if kind in ("max", "argmax"):
        if d.is_floating:
            return literal(float("-inf"), d)
        return "INT64_MIN" if d == dt.int64 else ("INT32_MIN" if d == dt.int32 else "false")
    if d.is_floating:
        return literal(float("inf"), d)
    return "INT64_MAX" if d == dt.int64 else ("INT32_MAX" if d == dt.int32 else "true")
