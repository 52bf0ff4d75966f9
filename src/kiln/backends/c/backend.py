"""The ``"c"`` backend: ``compile_c(gm, example_specs, **options) -> CFunction``.

Pipeline: lower the graph to index functions (:mod:`.lower`), group realized values into
fused kernels (:mod:`.schedule`), emit one C translation unit (:mod:`.codegen`), compile
it with the system compiler (:mod:`.toolchain`, cached in-process by source hash and
flags), and wrap the library in a :class:`~kiln.backends.c.runtime.CFunction`.

Options: ``target="native"`` (``-march=native``, the default) or ``"portable"``;
``contiguous="raise"`` (the default of :func:`compile_c`: a non-contiguous input is a
GuardError) or ``"copy"`` (the default of the registered backend, :func:`compile_front`,
which ``kiln.compile(..., backend="c")`` uses).

>>> import kiln
>>> from kiln.backends.c.backend import compile_c
>>> gm = kiln.trace(lambda x: (x * 2.0).exp(), kiln.ones(3))
>>> fn = compile_c(gm, None)
>>> [round(v, 3) for v in fn(kiln.ones(3))[0].tolist()]
[7.389, 7.389, 7.389]
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from kiln import __version__
from kiln.backends import register_backend
from kiln.backends.c import ix
from kiln.backends.c.runtime import CFunction
from kiln.errors import ArgumentError
from kiln.graph.module import GraphModule
from kiln.graph.serialize import encode_value
from kiln.guards import guards_to_json
from kiln.ops.registry import get_op

PLAN_FORMAT = "kiln.c.plan"
PLAN_VERSION = 2  # 2: the artifact carries its graph; the library exports the plan hash
EXTRA_FLAGS = ("-fwrapv",)  # int64 arithmetic wraps like NumPy's
_OPTIONS = ("target", "contiguous")

_lock = threading.Lock()
_libraries: dict[tuple, Any] = {}  # (source hash, flags...) -> (CompiledLibrary, CDLL)


def debug_level() -> int:
    try:
        return int(os.environ.get("KILN_DEBUG", "0"))
    except ValueError:
        return 0


def compile_c(gm: GraphModule, example_specs: Any = None, **options: Any) -> CFunction:
    """Compile ``gm`` to native code (see the module docstring for the options)."""
    for key in options:
        if key not in _OPTIONS:
            raise ArgumentError(f"c backend: unknown option {key!r}; expected one of {_OPTIONS}")
    target = options.get("target", "native")
    contiguous = options.get("contiguous", "raise")
    if target not in ("native", "portable"):
        raise ArgumentError(f"c backend: target must be 'native' or 'portable', got {target!r}")
    if contiguous not in ("raise", "copy"):
        raise ArgumentError(f"c backend: contiguous must be 'raise' or 'copy', got "
                            f"{contiguous!r}")
    plan, source = build_plan(gm)
    plan["contiguous"] = contiguous
    lib, handle = _library(source, target, plan)
    if debug_level() >= 1:
        lines = [f"[kiln] c backend: {len(plan['calls'])} kernels"]
        for k in plan["kernels"]:
            if k["emitted"]:
                extra = f" [{k['loops']} loops, {k['passes']} passes]" if k["kind"] == "rows" \
                    else ""
                lines.append(f"[kiln]   {k['comment']}{extra}")
        print("\n".join(lines), file=sys.stderr)
    plan["flags"] = list(lib.flags)
    plan["commands"] = [list(c) for c in lib.commands]
    plan["target"] = target
    plan["fingerprint"] = lib.fingerprint
    _record_cpu(plan, lib.flags)
    fn = CFunction(plan, lib.data, dict(gm.constants), handle)
    fn.graph = gm.graph  # serialized with the function: a loader rebuilds the plan from it
    return fn


def _record_cpu(plan: dict, flags: tuple[str, ...]) -> None:
    """What a machine needs to run the library: checked when an artifact is loaded."""
    from kiln.backends.c.cpu import normalize_arch, required_features
    from kiln.backends.c.toolchain import find_compiler

    tc = find_compiler()
    plan["arch"] = normalize_arch(tc.machine)
    plan["cpu_features"] = required_features(tc, flags, native=plan.get("target") == "native")


_plan_lock = threading.Lock()  # symbol minimums of the index algebra are per compilation


def build_plan(gm: GraphModule, record_gemm: bool = True) -> tuple[dict, str]:
    """Schedule and generate C for ``gm``; returns (plan, source). ``record_gemm=False``
    (a loader rebuilding a stored plan) leaves ``plan["gemm"]`` to the caller and needs no
    C compiler. ``plan["hash"]`` is :func:`plan_hash` of the result."""
    with _plan_lock:
        plan, source = _build_plan(gm, record_gemm)
    plan["hash"] = plan_hash(plan)
    return plan, source


# What plan_hash covers: everything build_plan derives from the graph (not the GEMM choice,
# which is the machine's, nor what compiling adds: flags, commands, CPU features).
_HASHED = ("format", "version", "symbols", "inputs", "buffers", "temps", "randoms", "outputs",
           "nonzero", "guards", "kernels", "calls", "checks", "sources", "realized",
           "rt_funcs", "uses_gemm")
HASH_SYMBOL = "kiln_plan_hash"


def plan_hash(plan: dict) -> str:
    """SHA-256 of a plan's derived part and its C sources. The library exports it (as the
    string ``kiln_plan_hash``), so a loader can check that a library was built from exactly
    the plan it rebuilt, before calling anything in it."""
    from kiln import canonical

    hashed = {k: plan[k] for k in _HASHED}
    # where a guard comes from (a source line) is for messages; graph JSON does not keep it
    hashed["guards"] = [{k: v for k, v in g.items() if k != "where"} for g in plan["guards"]]
    return canonical.digest(hashed)


def _check_names(graph: Any) -> None:
    """Names reach the C source only in comments and identifiers; they must be plain ASCII
    identifiers (a loaded graph's are validated; this covers graphs built by hand)."""
    import re

    ident = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
    for name in [n.name for n in graph.nodes] + list(graph.symbols):
        if not isinstance(name, str) or not ident.match(name):
            raise ArgumentError(f"c backend: the name {name!r} is not a plain identifier "
                                "(ASCII letters, digits, _); rename the node or symbol")


def _build_plan(gm: GraphModule, record_gemm: bool) -> tuple[dict, str]:
    from kiln.backends.c.codegen import CodeGen
    from kiln.backends.c.lower import Lowering
    from kiln.backends.c.schedule import schedule

    graph = gm.graph
    _check_names(graph)
    ix.set_symbol_minimums({name: d.min for name, d in graph.symbols.items()})
    lw = Lowering(graph, {k: t.meta for k, t in gm.constants.items()})
    kernels, b = schedule(lw)
    symbols = sorted(graph.symbols)
    gen = CodeGen(lw, kernels, b, symbols)
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
    plan = {
        "format": PLAN_FORMAT, "version": PLAN_VERSION,
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
    _ = get_op
    return plan, source


def _library(source: str, target: str, plan: dict) -> tuple[Any, Any]:
    from kiln.backends.c.toolchain import compile_shared, find_compiler, load_library

    extra = list(EXTRA_FLAGS)
    libraries: list[str] = ["m"]
    gs = None
    if plan["gemm"] is not None:
        from kiln.backends.c.blas import gemm_support

        gs = gemm_support()
        extra += list(gs.extra_flags)
        libraries += list(gs.libraries)
    tc = find_compiler()
    if target == "native" and tc.machine.startswith(("x86_64", "amd64")) and tc.kind != "zig":
        # gcc defaults to 256-bit vectors even where AVX-512 exists; compute-bound fused
        # loops (exp, tanh, cos) run ~30% faster 512 bits wide (no effect without AVX-512)
        extra.append("-mprefer-vector-width=512")
    if plan.get("rt_funcs"):
        from kiln.backends.c.convrt import objects

        libraries = objects([tuple(f) for f in plan["rt_funcs"]], tc.argv,
                            [*tc.flags_for(target), *extra], tc.fingerprint(target)) + libraries
    key = (plan["hash"], tc.fingerprint(target), tuple(extra),
           tuple(libraries), gs.fingerprint() if gs is not None else None)
    with _lock:
        hit = _libraries.get(key)
    if hit is not None:
        if debug_level() >= 2:
            print(f"[kiln] c backend: library cache hit ({key[0][:12]})\n{source}",
                  file=sys.stderr)
        return hit
    sources = dict(plan["sources"])
    # The library says which plan it was built from (read as data, before any call).
    sources["kiln_graph.c"] += f'const char {HASH_SYMBOL}[] = "{plan["hash"]}";\n'
    lib = compile_shared(sources, target=target, extra_flags=extra, libraries=libraries)
    if gs is not None:
        gs.prepare()
    handle = load_library(lib.data, "kiln_graph")
    with _lock:
        _libraries[key] = (lib, handle)
    return lib, handle


def clear_cache() -> None:
    """Forget the in-process cache of compiled libraries."""
    with _lock:
        _libraries.clear()


def compile_front(gm: GraphModule, example_specs: Any = None, **options: Any) -> CFunction:
    """The registered ``"c"`` backend, what ``kiln.compile`` and AOT autograd call: like
    :func:`compile_c`, except that non-contiguous inputs are copied (``contiguous="copy"``)
    unless the options say otherwise. :func:`compile_c` itself raises GuardError on them."""
    return compile_c(gm, example_specs, **{"contiguous": "copy", **options})


def _deserialize(payload: bytes, trust: str = "signed") -> CFunction:
    from kiln.backends.c.serialize import deserialize

    return deserialize(payload, trust=trust)


_deserialize.takes_trust = True  # type: ignore[attr-defined]  (it loads native code)


register_backend("c", compile_front, _deserialize)
