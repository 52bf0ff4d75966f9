"""The plan of a compiled graph: what the C runtime needs besides the library.

A plan is a JSON-able dict: the inputs and their guards, every buffer (kind, dtype, shape),
the arena's temporaries with their lifetimes, the kernel order, the generated source and the
CPU features the library needs. :func:`build_plan` derives it from a graph; the runtime
(:mod:`.runtime`) and the serializer (:mod:`.serialize`) read it, and check
:data:`PLAN_FORMAT` / :data:`PLAN_VERSION` on what they load.
"""

from __future__ import annotations

import threading

from kiln import __version__
from kiln.errors import BackendError
from kiln.graph.module import GraphModule
from kiln.graph.serialize import encode_value
from kiln.symbolic.guards import guards_to_json

PLAN_FORMAT = "kiln.c.plan"
PLAN_VERSION = 3  # 2: the artifact carries its graph; the library exports the plan hash
#                  3: the plan records its graph's digest, so the library vouches for both


def record_cpu(plan: dict, flags: tuple[str, ...]) -> None:
    """What a machine needs to run the library: checked when an artifact is loaded."""
    from kiln.backends.c.cpu import normalize_arch, required_features
    from kiln.backends.c.toolchain import find_compiler

    tc = find_compiler()
    plan["arch"] = normalize_arch(tc.machine)
    plan["cpu_features"] = required_features(tc, flags, native=plan.get("target") == "native")


def refuse_control_flow(gm: GraphModule) -> None:
    """Refuse a graph whose control flow cannot be lowered into C (the reason of
    :func:`kiln.backends.c.control_lower.unsupported`), before anything is scheduled."""
    from kiln.backends.c.control_lower import unsupported

    reason = unsupported(gm)
    if reason is not None:
        raise BackendError(f"c backend: {reason}; compile_c runs such graphs as segments "
                           "with the control on the host (kiln.backends.c.control)")


_plan_lock = threading.Lock()  # symbol minimums of the index algebra are per compilation


def build_plan(gm: GraphModule, record_gemm: bool = True, entry: str = "kiln_run"
               ) -> tuple[dict, str]:
    """Schedule and generate C for ``gm``; returns (plan, source). ``record_gemm=False``
    (a loader rebuilding a stored plan) leaves ``plan["gemm"]`` to the caller and needs no
    C compiler. ``plan["hash"]`` is :func:`plan_hash` of the result. A graph with control
    flow becomes one plan of the same form whose ``kiln_run`` runs the loops and branches
    (:mod:`kiln.backends.c.control_lower`); ``entry`` names the entry point of a part of one."""
    if any(n.op == "control" for n in gm.graph.nodes):
        from kiln.backends.c.control_lower import build_control_plan

        refuse_control_flow(gm)
        plan, source = build_control_plan(gm, record_gemm)
    else:
        with _plan_lock:
            plan, source = _build_plan(gm, record_gemm, entry)
    plan["hash"] = plan_hash(plan)
    return plan, source


# What plan_hash covers: everything build_plan derives from the graph (not the GEMM choice,
# which is the machine's, nor what compiling adds: flags, commands, CPU features).
_HASHED = ("format", "version", "graph", "symbols", "inputs", "buffers", "temps", "randoms",
           "outputs", "nonzero", "guards", "kernels", "calls", "checks", "sources", "realized",
           "rt_funcs", "uses_gemm")
HASH_SYMBOL = "kiln_plan_hash"


def plan_hash(plan: dict, loaded: bool = False) -> str:
    """SHA-256 of a plan's derived part and its C sources. The library exports it (as the
    string ``kiln_plan_hash``), so a loader can check that a library was built from exactly
    the plan it loads, before calling anything in it. ``loaded``: the plan came from JSON
    (canonical.loads), which hashes faster."""
    from kiln.base import canonical

    hashed = {k: plan[k] for k in _HASHED}
    # where a guard comes from (a source line) is for messages; graph JSON does not keep it
    hashed["guards"] = [{k: v for k, v in g.items() if k != "where"} for g in plan["guards"]]
    return canonical.digest_loaded(hashed) if loaded else canonical.digest(hashed)


def _check_names(graph: object) -> None:
    """Names reach the C source only in comments and identifiers; they must be plain ASCII
    identifiers (a loaded graph's are validated; this covers graphs built by hand)."""
    import re

    from kiln.errors import ArgumentError

    ident = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
    for name in [n.name for n in graph.nodes] + list(graph.symbols):
        if not isinstance(name, str) or not ident.match(name):
            raise ArgumentError(f"c backend: the name {name!r} is not a plain identifier "
                                "(ASCII letters, digits, _); rename the node or symbol")


def _build_plan(gm: GraphModule, record_gemm: bool, entry: str) -> tuple[dict, str]:
    from kiln.backends.c import ix  # here: loading a stored plan never builds one
    from kiln.backends.c.codegen import CodeGen
    from kiln.backends.c.lower import Lowering
    from kiln.backends.c.schedule import schedule

    graph = gm.graph
    _check_names(graph)
    ix.set_symbol_minimums({name: d.min for name, d in graph.symbols.items()})
    lw = Lowering(graph, {k: t.meta for k, t in gm.constants.items()})
    kernels, b = schedule(lw)
    symbols = sorted(graph.symbols)
    gen = CodeGen(lw, kernels, b, symbols, entry)
    summary = ", ".join(f"{n.name}: {n.meta}" for n in graph.placeholders)
    header = f"Generated by Kiln {__version__} (C backend) for graph({summary})"
    sources = gen.sources(header)
    source = gen.source(header)
    position = {kid: pos for pos, kid in enumerate(gen.calls)}
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for kid, (reads, writes) in gen.io.items():
        if kid not in position:
            continue
        p = position[kid]
        for bid in writes:
            first[bid] = min(first.get(bid, p), p)
            last[bid] = max(last.get(bid, p), p)
        for bid in reads:
            last[bid] = max(last.get(bid, p), p)
    buffers = []
    for buf in lw.buffers:
        node = buf.node
        buffers.append({"id": buf.id, "name": buf.name, "kind": buf.kind,
                        "dtype": buf.dtype.name, "key": buf.key,
                        "shape": [encode_value(d) for d in node.meta.shape]})
    temps = [{"buffer": buf.id, "first": first[buf.id], "last": last[buf.id]}
             for buf in lw.buffers if buf.kind == "temp" and buf.id in first]
    randoms = []
    for buf in lw.buffers:
        if buf.kind == "random":
            node = buf.node
            randoms.append({"buffer": buf.id, "op": node.target,
                            "attrs": {k: encode_value(v) for k, v in node.kwargs.items()}})
    outputs = []
    for node in graph.outputs:
        if node.op == "placeholder":
            outputs.append(["input", graph.placeholders.index(node)])
        elif node.op == "constant":
            outputs.append(["constant", node.target])
        else:
            outputs.append(["buffer", lw.realized[node].id])
    nonzero = []
    for node in graph.calls():
        if node.target in ("max", "min", "argmax", "argmin"):
            from kiln.backends.c.schedule import reduced_extent

            size = reduced_extent(node)
            if size is not None:
                nonzero.append({"size": encode_value(size),
                                "what": f"{node.target} (node {node.name})"})
    kernel_info = []
    for k in kernels:
        kernel_info.append({"id": k.id, "kind": k.kind, "comment": gen.comment(k),
                            "nodes": [n.name for n in k.nodes],
                            "emitted": k.id in position,
                            **gen.stats.get(k.id, {"loops": 1, "passes": 1})})
    from kiln.base import canonical
    from kiln.graph.serialize import graph_to_obj

    plan = {
        "format": PLAN_FORMAT, "version": PLAN_VERSION,
        # the graph compiled, as serialized: a loader checks the graph it is given against it
        "graph": canonical.digest(graph_to_obj(graph)),
        "symbols": [{"name": s, "min": graph.symbols[s].min, "max": graph.symbols[s].max}
                    for s in symbols],
        "inputs": [{"name": p.target, "dtype": p.meta.dtype.name,
                    "shape": [encode_value(d) for d in p.meta.shape]}
                   for p in graph.placeholders],
        "buffers": buffers, "temps": temps, "randoms": randoms, "outputs": outputs,
        "nonzero": nonzero, "guards": guards_to_json(graph.guards, where=True),
        "kernels": kernel_info, "calls": list(gen.calls),
        "checks": {str(k): v for k, v in gen.check_messages.items()},
        "source": source, "sources": sources, "gemm": None,
        "realized": {n.name: r for n, r in lw.reasons.items()},
    }
    plan["rt_funcs"] = sorted([op, d] for op, d in gen.rt_funcs)
    plan["uses_gemm"] = bool(gen.uses_gemm or gen.rt_funcs)
    if plan["uses_gemm"] and record_gemm:
        from kiln.backends.c.blas import gemm_support

        plan["gemm"] = gemm_support().record()  # backend, threads, version, sonames
    return plan, source
