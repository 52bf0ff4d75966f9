"""Control flow in the generated C: one ``kiln_run`` runs a whole graph with its loops.

A graph with control-flow nodes (:mod:`kiln.graph.control`) becomes one plan of the usual
form (:mod:`.plan`), so the runtime, the serializer and ``kiln.aot_compile`` take it as
they take any plan. Its parts:

- every maximal run of op nodes (a *segment*) of the graph and of each subgraph body is
  compiled as a plan of its own, whose entry point ``kiln_run_cfN`` is one translation
  unit of the library (kernels, arena temporaries, checks as usual);
- the library's ``kiln_run`` (this module writes it) calls those entry points inside C
  ``if``/``for``/``while`` statements, one per control node.

Buffers: the plan's pointer array holds every part's buffers (a part ``N`` sees its own
slice, ``P + base``). A part's inputs and outputs are *alias* slots that ``kiln_run``
points at the value they stand for before each call; the values flowing between parts
(*wires*) are arena buffers live for the whole call; a part's temporaries live only during
its call, so all parts share those arena bytes. A control node's results are alias slots
too: a ``cond`` points them at the outputs of the branch taken. A loop keeps each carried
value in two buffers of its own (the initial value is copied into the first): the body
reads the current one and writes the other (its segment outputs them there directly;
anything else, such as a carried value returned unchanged, is copied there), then the two
pointers swap. ``fori_loop(save=True)`` (for gradients) also stores the index and the
carried values at the start of every iteration into stacks, in reverse iteration order.

The predicate of ``cond``/``while_loop`` is a 0-d bool tensor read in C; ``fori_loop``
bounds are ints, symbolic sizes (evaluated in C from the symbol array) or 0-d int64
tensors read in C. What is not lowered (:func:`unsupported`) runs on the host instead
(:mod:`.control`).
"""

from __future__ import annotations

from typing import Any

from kiln.backends.c.control import _symbols_of, segment_graph, segment_inputs
from kiln.backends.c.plan import PLAN_FORMAT, PLAN_VERSION, build_plan
from kiln.core.prims.registry import TensorMeta, get_op
from kiln.graph.control import SCALAR_INT, subgraphs
from kiln.graph.graph import Graph
from kiln.graph.module import GraphModule
from kiln.graph.node import Node
from kiln.graph.serialize import encode_value
from kiln.symbolic.guards import guards_to_json
from kiln.symbolic.sizes import FloorDiv, SymInt


def unsupported(gm: GraphModule) -> str | None:
    """Why the control flow of ``gm`` cannot be lowered into C, or None when it can.

    - A random draw inside a body: the runtime draws random tensors in Python before the
      native call, once, but a body runs any number of times (each needs fresh numbers).
    - A body computing with a symbolic size that the graph around it does not declare (the
      native code reads every size from the graph's symbol array).

    >>> import kiln
    >>> gm = kiln.trace(lambda x: kiln.fori_loop(0, 3, lambda i, c: c + kiln.rand(2), x),
    ...                 kiln.zeros(2))
    >>> print(unsupported(gm)[:60])
    node rand (rand) draws random numbers in the body of fori_lo
    """
    known = set(gm.graph.symbols)

    def visit(g: Graph, where: str | None) -> str | None:
        for n in g.nodes:
            if n.op == "control":
                for sub in subgraphs(n):
                    reason = visit(sub, f"{n.target} node {n.name}")
                    if reason:
                        return reason
            elif where and n.op == "call" and get_op(n.target).is_random:
                return (f"node {n.name} ({n.target}) draws random numbers in the body of "
                        f"{where}; random tensors are drawn once per native call")
        extra = _symbols_of(g.nodes) - known
        if where and extra:
            return f"the body of {where} uses sizes {sorted(extra)} the graph does not declare"
        return None

    return visit(gm.graph, None)


def c_int(value: Any, symbols: list[str], fdiv: str = "kiln_fdiv") -> str:
    """An int64_t C expression of an int or SymInt whose symbols are ``S[i]``; ``fdiv``
    names the C function of a floor division.

    >>> from kiln.symbolic.sizes import SymInt
    >>> c_int(SymInt.symbol("T") * 2 - 1, ["T"])
    '(INT64_C(2)*S[0] + INT64_C(-1))'
    """
    if isinstance(value, int):
        return f"INT64_C({value})"
    assert isinstance(value, SymInt)
    terms = []
    for mono, coeff in value.terms:
        factors = [f"INT64_C({coeff})"]
        for atom in mono:
            if isinstance(atom, FloorDiv):
                factors.append(f"{fdiv}({c_int(atom.num, symbols, fdiv)}, {atom.den})")
            else:
                factors.append(f"S[{symbols.index(atom)}]")
        terms.append("*".join(factors))
    return "(" + " + ".join(terms) + ")"


def _comment(text: str) -> str:
    """Text safe inside a C comment (node names of a graph built by hand are unchecked)."""
    return text.replace("*/", "* /")


def build_control_plan(gm: GraphModule, record_gemm: bool) -> tuple[dict, str]:
    """The plan and C of ``gm``, a graph with control flow (see the module docstring).

    >>> import kiln
    >>> gm = kiln.trace(lambda x: kiln.cond(x.sum() > 0, lambda x: x * 2, lambda x: -x,
    ...                                     (x,)), kiln.ones(2))
    >>> plan, source = build_control_plan(gm, record_gemm=False)
    >>> "if (*(const bool *)P[" in plan["sources"]["kiln_graph.c"]
    True
    """
    return _Lowering(gm).plan(record_gemm)


class _Lowering:
    def __init__(self, gm: GraphModule) -> None:
        self.gm = gm
        self.graph = gm.graph
        self.symbols = sorted(self.graph.symbols)
        self.buffers: list[dict] = []
        self.temps: list[dict] = []
        self.randoms: list[dict] = []
        self.kernels: list[dict] = []
        self.calls: list[int] = []
        self.checks: dict[str, list] = {}
        self.nonzero: list[dict] = []
        self.sources: dict[str, str] = {}
        self.realized: dict[str, Any] = {}
        self.rt_funcs: set[tuple[str, str]] = set()
        self.uses_gemm = False
        self.wires: list[int] = []
        self.results: dict[Node, list[int]] = {}
        self.lines: list[str] = []
        self.parts = 0
        self.nkernels = 0
        self.uid = 0

    # buffers and text ----------------------------------------------------------------
    def buffer(self, name: str, kind: str, meta: TensorMeta, key: Any = None) -> int:
        bid = len(self.buffers)
        self.buffers.append({"id": bid, "name": name, "kind": kind, "dtype": meta.dtype.name,
                             "key": key, "shape": [encode_value(d) for d in meta.shape]})
        return bid

    def wire(self, name: str, meta: TensorMeta) -> int:
        """A buffer of its own in the arena, live for the whole call."""
        bid = self.buffer(name, "temp", meta)
        self.wires.append(bid)
        return bid

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * (depth + 1) + line)

    def nbytes(self, meta: TensorMeta) -> str:
        parts = [c_int(d, self.symbols) for d in meta.shape]
        return "(size_t)(" + " * ".join([*parts, str(meta.dtype.itemsize)]) + ")"

    def fresh(self) -> int:
        self.uid += 1
        return self.uid

    # blocks --------------------------------------------------------------------------
    def block(self, graph: Graph, inputs: list[int], depth: int,
              designated: dict[Node, int]) -> list[int]:
        """Emit ``graph`` (the top graph or a body) reading its placeholders from slots
        ``inputs``; returns the slots of its outputs. A node in ``designated`` is written
        by its segment straight into that slot."""
        slot: dict[Node, int] = dict(zip(graph.placeholders, inputs, strict=True))
        run: list[Node] = []
        for node in graph.nodes:
            if node.op in ("call", "constant"):
                run.append(node)
                continue
            if run:
                self.segment(run, slot, depth, designated)
                run = []
            if node.op == "control":
                self.control(node, slot, depth)
            elif node.op == "item":
                slot[node] = self.results[node.args[0]][node.kwargs["index"]]
        return [slot[o] for o in graph.outputs]

    def segment(self, nodes: list[Node], slot: dict[Node, int], depth: int,
                designated: dict[Node, int]) -> None:
        if not any(n.op == "call" for n in nodes):  # constants only: nothing to compute
            for n in nodes:
                slot[n] = self.buffer(n.name, "constant", n.meta, n.target)
            return
        inputs = segment_inputs(nodes)
        g, outputs, consts = segment_graph(nodes, inputs, self.gm.constants,
                                           self.graph.symbols)  # every part reads all sizes
        g.lint()
        part = self.parts
        self.parts += 1
        sub, _ = build_plan(GraphModule(g, consts), record_gemm=False,
                            entry=f"kiln_run_cf{part}")
        base = self.add_part(part, sub)
        for b in sub["buffers"]:
            if b["kind"] == "input":
                self.emit(depth, f"P[{base + b['id']}] = P[{slot[inputs[b['key']]]}];")
        written: dict[int, int] = {}
        for n, (kind, key) in zip(outputs, sub["outputs"], strict=True):
            if kind == "input":
                slot[n] = slot[inputs[key]]
            elif kind == "constant":
                slot[n] = self.buffer(n.name, "constant", n.meta, key)
            elif key in written:
                slot[n] = written[key]
            else:
                s = designated.pop(n, None)
                slot[n] = written[key] = s if s is not None else self.wire(n.name, n.meta)
                self.emit(depth, f"P[{base + key}] = P[{slot[n]}];")
        cbase = len(self.calls) - len(sub["calls"])
        self.emit(depth, f"e = kiln_run_cf{part}(P + {base}, S, T ? T + {cbase} : NULL, "
                         f"{len(sub['buffers'])}, {len(self.symbols)});")
        kbase = self.nkernels - (max((k["id"] for k in sub["kernels"]), default=-1) + 1)
        self.emit(depth, f"if (e) return e < 0 ? e : e + ((int64_t){kbase} << 48);")

    def add_part(self, part: int, sub: dict) -> int:
        """Take a part's buffers, kernels and checks into the plan; returns its base."""
        base, kbase, cbase = len(self.buffers), self.nkernels, len(self.calls)
        for b in sub["buffers"]:
            kind = "alias" if b["kind"] in ("input", "output") else b["kind"]
            key = None if kind == "alias" else b["key"]
            self.buffers.append({**b, "id": base + b["id"], "kind": kind, "key": key})
        self.temps += [{"buffer": base + t["buffer"], "first": cbase + t["first"],
                        "last": cbase + t["last"]} for t in sub["temps"]]
        self.randoms += [{**r, "buffer": base + r["buffer"]} for r in sub["randoms"]]
        self.kernels += [{**k, "id": kbase + k["id"], "comment": f"part {part}, {k['comment']}"}
                         for k in sub["kernels"]]
        self.calls += [kbase + c for c in sub["calls"]]
        self.checks.update({str(kbase + int(k)): v for k, v in sub["checks"].items()})
        self.nonzero += [g for g in sub["nonzero"] if g not in self.nonzero]
        self.rt_funcs |= {(op, d) for op, d in sub["rt_funcs"]}
        self.uses_gemm = self.uses_gemm or sub["uses_gemm"]
        self.realized.update({f"cf{part}.{k}": v for k, v in sub["realized"].items()})
        self.sources[f"kiln_cf{part}.c"] = "\n".join(sub["sources"].values())
        self.nkernels += max((k["id"] for k in sub["kernels"]), default=-1) + 1
        return base

    # control nodes -------------------------------------------------------------------
    def alias(self, name: str, meta: TensorMeta) -> int:
        """A slot ``kiln_run`` points at run time (no storage of its own)."""
        return self.buffer(name, "alias", meta)

    def control(self, node: Node, slot: dict[Node, int], depth: int) -> None:
        if node.target == "cond":
            self.cond(node, slot, depth)
        else:
            self.loop(node, slot, depth)

    def cond(self, node: Node, slot: dict[Node, int], depth: int) -> None:
        res = [self.alias(f"{node.name}_{k}", m) for k, m in enumerate(node.meta)]
        ops = [slot[a] for a in node.args[1:]]
        self.emit(depth, f"if (*(const bool *)P[{slot[node.args[0]]}]) {{  "
                         f"/* {_comment(node.name)} */")
        for key, closing in (("true_graph", "} else {"), ("false_graph", "}")):
            outs = self.block(node.kwargs[key], ops, depth + 1, {})
            for r, o in zip(res, outs, strict=True):
                self.emit(depth + 1, f"P[{r}] = P[{o}];")
            self.emit(depth, closing)
        self.results[node] = res

    def bound(self, value: Any, slot: dict[Node, int]) -> str:
        if isinstance(value, Node):
            return f"*(const int64_t *)P[{slot[value]}]"
        return c_int(value, self.symbols)

    def loop(self, node: Node, slot: dict[Node, int], depth: int) -> None:
        n = node.kwargs["num_carried"]
        fori = node.target == "fori_loop"
        ins = [slot[a] for a in node.args[2 if fori else 0:]]
        carried, caps = ins[:n], ins[n:]
        metas = list(node.meta[:n])
        cur = [self.alias(f"{node.name}_c{k}", m) for k, m in enumerate(metas)]
        free = [self.alias(f"{node.name}_o{k}", m) for k, m in enumerate(metas)]
        u = self.fresh()
        self.emit(depth, f"{{  /* {node.target} {_comment(node.name)} */")
        d = depth + 1
        for k, m in enumerate(metas):
            first, second = self.wire(f"{node.name}_a{k}", m), self.wire(f"{node.name}_b{k}", m)
            self.emit(d, f"memcpy(P[{first}], P[{carried[k]}], {self.nbytes(m)});")
            self.emit(d, f"P[{cur[k]}] = P[{first}]; P[{free[k]}] = P[{second}];")
        body: Graph = node.kwargs["body_graph"]
        designated: dict[Node, int] = {}
        for k, o in enumerate(body.outputs):
            designated.setdefault(o, free[k])
        stacks: list[int] = []
        if fori:
            index = self.wire(f"{node.name}_i", SCALAR_INT)
            self.emit(d, f"const int64_t lo{u} = {self.bound(node.args[0], slot)}, "
                         f"hi{u} = {self.bound(node.args[1], slot)};")
            self.emit(d, f"for (int64_t it{u} = lo{u}; it{u} < hi{u}; it{u}++) {{")
            self.emit(d + 1, f"*(int64_t *)P[{index}] = it{u};")
            if node.kwargs["save"]:  # rows in reverse iteration order (scan style)
                stacks = [self.wire(f"{node.name}_s{k}", m)
                          for k, m in enumerate(node.meta[n:])]
                self.emit(d + 1, f"const int64_t row{u} = hi{u} - 1 - it{u};")
                self.emit(d + 1, f"((int64_t *)P[{stacks[0]}])[row{u}] = it{u};")
                for k, m in enumerate(metas):
                    size = self.nbytes(m)
                    self.emit(d + 1, f"memcpy((char *)P[{stacks[k + 1]}] + row{u} * {size}, "
                                     f"P[{cur[k]}], {size});")
            outs = self.block(body, [index, *cur, *caps], d + 1, designated)
        else:
            self.emit(d, "for (;;) {")
            (pred,) = self.block(node.kwargs["cond_graph"], cur + caps, d + 1, {})
            self.emit(d + 1, f"if (!*(const bool *)P[{pred}]) break;")
            outs = self.block(body, cur + caps, d + 1, designated)
        # the new carried values into the free buffers (copies only of what the body did
        # not write there itself), then swap: the free buffers become the current ones
        for k, m in enumerate(metas):
            if outs[k] == free[k]:
                continue  # written there by the body's segment
            self.emit(d + 1, f"if (P[{free[k]}] != P[{outs[k]}]) "
                             f"memcpy(P[{free[k]}], P[{outs[k]}], {self.nbytes(m)});")
        for k in range(n):
            self.emit(d + 1, f"{{ void *t = P[{cur[k]}]; P[{cur[k]}] = P[{free[k]}]; "
                             f"P[{free[k]}] = t; }}")
        self.emit(d, "}")
        self.emit(depth, "}")
        self.results[node] = cur + stacks

    # the plan ------------------------------------------------------------------------
    def plan(self, record_gemm: bool) -> tuple[dict, str]:
        from kiln import __version__
        from kiln.base import canonical
        from kiln.graph.serialize import graph_to_obj

        graph = self.graph
        placeholders = list(graph.placeholders)
        inputs = [self.buffer(p.name, "input", p.meta, i) for i, p in enumerate(placeholders)]
        outputs: list[list] = []
        out_buf: dict[Node, int] = {}
        for node in graph.outputs:
            if node.op == "placeholder":
                outputs.append(["input", placeholders.index(node)])
            elif node.op == "constant":
                outputs.append(["constant", node.target])
            else:
                if node not in out_buf:
                    out_buf[node] = self.buffer(node.name, "output", node.meta)
                outputs.append(["buffer", out_buf[node]])
        results = self.block(graph, inputs, 0, dict(out_buf))
        for node, value in zip(graph.outputs, results, strict=True):
            if node in out_buf and value != out_buf[node]:
                self.emit(0, f"if (P[{out_buf[node]}] != P[{value}]) memcpy(P[{out_buf[node]}], "
                             f"P[{value}], {self.nbytes(node.meta)});")
        last = max(len(self.calls) - 1, 0)
        self.temps += [{"buffer": w, "first": 0, "last": last} for w in self.wires]
        summary = ", ".join(f"{n.name}: {n.meta}" for n in placeholders)
        driver = self.driver(f"Generated by Kiln {__version__} (C backend) for graph({summary})"
                             ": control flow (kiln.backends.c.control_lower)")
        sources = {"kiln_graph.c": driver, **self.sources}
        source = "\n".join(sources.values())
        plan = {
            "format": PLAN_FORMAT, "version": PLAN_VERSION,
            "graph": canonical.digest(graph_to_obj(graph)),
            "symbols": [{"name": s, "min": graph.symbols[s].min, "max": graph.symbols[s].max}
                        for s in self.symbols],
            "inputs": [{"name": p.target, "dtype": p.meta.dtype.name,
                        "shape": [encode_value(d) for d in p.meta.shape]}
                       for p in placeholders],
            "buffers": self.buffers, "temps": self.temps, "randoms": self.randoms,
            "outputs": outputs, "nonzero": self.nonzero,
            "guards": guards_to_json(graph.guards, where=True),
            "kernels": self.kernels, "calls": self.calls, "checks": self.checks,
            "source": source, "sources": sources, "gemm": None, "realized": self.realized,
            "rt_funcs": sorted([op, d] for op, d in self.rt_funcs),
            "uses_gemm": self.uses_gemm,
        }
        if self.uses_gemm and record_gemm:
            from kiln.backends.c.blas import gemm_support

            plan["gemm"] = gemm_support().record()
        return plan, source

    def driver(self, header: str) -> str:
        head = [f"/* {_comment(header)} */", '#include "kiln_ops.h"', ""]
        head += [f'__attribute__((visibility("hidden"))) int64_t kiln_run_cf{j}(void **P, '
                 "const int64_t *S, double *T, int64_t nP, int64_t nS);"
                 for j in range(self.parts)]
        run = ["", "#ifdef _OPENMP", '#include "kiln_blas_share.h"', "#endif",
               "int kiln_num_threads = 0; /* 0: OpenMP's own setting */",
               "int64_t kiln_run(void **P, const int64_t *S, double *T, int64_t nP, "
               "int64_t nS)", "{",
               f"    if (nP != {len(self.buffers)} || nS != {len(self.symbols)}) return -1;"]
        for i, s in enumerate(self.symbols):
            dim = self.graph.symbols[s]
            run.append(f"    if (S[{i}] < INT64_C({int(dim.min)}) || S[{i}] > "
                       f"INT64_C({int(dim.max)})) return -1;")
        run += ["    int64_t e = 0;", "    (void)e; (void)S; (void)T;"]
        return "\n".join(head + run + self.lines + ["    return 0;", "}"]) + "\n"
