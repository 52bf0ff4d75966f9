"""A stored plan taken as it is, once its library vouches for it (no scheduling, no codegen).

Rebuilding a plan from its graph (:func:`kiln.backends.c.plan.build_plan`) lowers,
schedules and generates C again: tens of milliseconds per graph, most of a warm start. A
signed artifact does not need it. The signature authenticates the library; the library
exports :func:`~kiln.backends.c.plan.plan_hash` of the plan it was built from; so a stored
plan whose hash equals the exported one is the plan that was compiled (SHA-256 collision
resistance), and a forged one is refused before the runtime reads any field of it.

The plan also records the digest of the graph it was compiled from, so the graph the
artifact carries must be that graph; and the plan is checked against it, so the two cannot
disagree: symbols, inputs, guards, every buffer's node, kind, dtype and shape (re-derived by
the graph's meta inference), outputs, temporaries and random draws. A type error anywhere
is a :class:`~kiln.errors.SerializationError`. A plan with control flow is checked by deriving
it again from the graph (:func:`_check_control`).
"""

from __future__ import annotations

from typing import Any

from kiln.backends.c.plan import _HASHED, plan_hash
from kiln.errors import SerializationError
from kiln.graph.module import GraphModule
from kiln.graph.serialize import encode_value
from kiln.symbolic.guards import guards_to_json

_MALFORMED = (KeyError, TypeError, ValueError, IndexError, AttributeError, RecursionError)


def stored_plan(stored: dict) -> dict:
    """The derived part of a stored plan and its hash (to compare with the library's)."""
    missing = [k for k in _HASHED if k not in stored]
    if missing:
        raise SerializationError(f"C-backend plan: fields {missing} are missing")
    plan = {k: stored[k] for k in _HASHED}
    sources = plan["sources"]
    if not isinstance(sources, dict) or not sources or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in sources.items()):
        raise SerializationError("C-backend plan: sources must map file names to C text")
    try:
        plan["hash"] = plan_hash(plan, loaded=True)
    except _MALFORMED as e:
        raise SerializationError(f"C-backend plan does not hash: {e}") from e
    plan["source"] = "\n".join(sources.values())
    plan["gemm"] = None
    return plan


def check_constants(plan: dict, constants: dict[str, Any]) -> None:
    """Raise a SerializationError unless every constant buffer of a vouched-for ``plan`` has
    a value in ``constants`` of its dtype and shape (what the runtime hands the library)."""
    try:
        for b in plan["buffers"]:
            if b["kind"] != "constant":
                continue
            value = constants.get(b["key"])
            if value is None:
                raise SerializationError(f"C-backend artifact: constant {b['key']!r:.40} has "
                                         "no value")
            if value.dtype.name != b["dtype"] or list(value.shape) != b["shape"]:
                raise SerializationError(
                    f"C-backend artifact: constant {b['key']!r:.40} is {value.dtype.name}"
                    f"{list(value.shape)}, its plan wants {b['dtype']}{b['shape']!r:.60}")
    except _MALFORMED as e:
        raise SerializationError(f"C-backend plan is malformed: {type(e).__name__}: {e}") \
            from e


def check_against_graph(plan: dict, gm: GraphModule) -> None:
    """Raise a SerializationError unless ``plan`` describes ``gm`` (see the module docstring).
    Call it only on a plan whose hash the library confirmed."""
    try:
        _check(plan, gm)
    except SerializationError:
        raise
    except _MALFORMED as e:
        raise SerializationError(f"C-backend plan is malformed: {type(e).__name__}: {e}") \
            from e


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise SerializationError(f"C-backend plan does not match its graph: {what}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check(plan: dict, gm: GraphModule) -> None:
    graph = gm.graph
    digest = gm.loaded_graph_digest
    if digest is None:  # built in memory, not read: digest it as serialization would
        from kiln.base import canonical
        from kiln.graph.serialize import graph_to_obj

        digest = canonical.digest(graph_to_obj(graph))
    _expect(plan["graph"] == digest, "the graph differs from the one compiled")
    if any(n.op == "control" for n in graph.nodes):
        _check_control(plan, gm)
        return
    symbols = sorted(graph.symbols)
    _expect(plan["symbols"] == [{"name": s, "min": graph.symbols[s].min,
                                 "max": graph.symbols[s].max} for s in symbols], "symbols")
    placeholders = list(graph.placeholders)
    _expect(plan["inputs"] == [{"name": p.target, "dtype": p.meta.dtype.name,
                                "shape": [encode_value(d) for d in p.meta.shape]}
                               for p in placeholders], "inputs")
    _expect(isinstance(plan["guards"], list) and
            [{k: v for k, v in g.items() if k != "where"} for g in plan["guards"]]
            == guards_to_json(graph.guards), "guards")

    nodes = {n.name: n for n in graph.nodes}
    outputs = set(graph.outputs)
    buffers = plan["buffers"]
    _expect(isinstance(buffers, list), "buffers is not a list")
    kinds = {}
    for i, b in enumerate(buffers):
        _expect(isinstance(b, dict) and b["id"] == i, f"buffer {i} is not numbered {i}")
        node = nodes.get(b["name"])
        _expect(node is not None, f"buffer {i} names no node ({b['name']!r:.40})")
        _expect(b["dtype"] == node.meta.dtype.name and
                b["shape"] == [encode_value(d) for d in node.meta.shape],
                f"buffer {i} ({node.name}) has another dtype or shape than its node")
        kind = b["kind"]
        if kind == "input":
            ok = node.op == "placeholder" and b["key"] == placeholders.index(node)
        elif kind == "constant":
            ok = node.op == "constant" and b["key"] == node.target and b["key"] in gm.constants
        elif kind == "random":
            ok = node.op == "call" and node.target in _random_ops()
        elif kind == "output":
            ok = node.op == "call" and node in outputs
        else:
            ok = kind == "temp" and node.op == "call"
        _expect(ok, f"buffer {i} ({node.name}) is not a valid {kind!r:.20} buffer")
        kinds[i] = kind

    _expect(isinstance(plan["outputs"], list) and len(plan["outputs"]) == len(graph.outputs),
            "outputs")
    for ref, node in zip(plan["outputs"], graph.outputs, strict=True):
        if node.op == "placeholder":
            ok = ref == ["input", placeholders.index(node)]
        elif node.op == "constant":
            ok = ref == ["constant", node.target]
        else:
            ok = (isinstance(ref, list) and len(ref) == 2 and ref[0] == "buffer" and
                  _is_int(ref[1]) and 0 <= ref[1] < len(buffers) and
                  buffers[ref[1]]["name"] == node.name)
        _expect(ok, f"output {node.name}")

    calls = plan["calls"]
    kernel_ids = {k["id"] for k in plan["kernels"] if isinstance(k, dict)}
    _expect(isinstance(calls, list) and all(_is_int(c) and c in kernel_ids for c in calls),
            "calls name kernels that are not in the plan")
    _expect(all(isinstance(k, dict) and isinstance(k["comment"], str)
                for k in plan["kernels"]), "kernels")
    for t in plan["temps"]:
        _expect(_is_int(t["buffer"]) and kinds.get(t["buffer"]) == "temp" and
                _is_int(t["first"]) and _is_int(t["last"]) and
                0 <= t["first"] <= t["last"] < len(calls), f"temporary {t!r:.60}")
    for r in plan["randoms"]:
        bid = r["buffer"]
        _expect(_is_int(bid) and kinds.get(bid) == "random", f"random draw {r!r:.60}")
        node = nodes[buffers[bid]["name"]]
        _expect(r["op"] == node.target and
                r["attrs"] == {k: encode_value(v) for k, v in node.kwargs.items()},
                f"random draw of {node.name}")
    _expect(isinstance(plan["checks"], dict) and all(
        isinstance(v, list) and all(isinstance(m, str) for m in v)
        for v in plan["checks"].values()), "checks")
    _expect(isinstance(plan["nonzero"], list) and all(
        isinstance(g, dict) and isinstance(g["what"], str) for g in plan["nonzero"]),
        "nonzero")
    _expect(isinstance(plan["uses_gemm"], bool), "uses_gemm")
    _expect(isinstance(plan["rt_funcs"], list) and all(
        isinstance(f, list) and len(f) == 2 and all(isinstance(s, str) for s in f)
        for f in plan["rt_funcs"]), "rt_funcs")


def _check_control(plan: dict, gm: GraphModule) -> None:
    """A plan with control flow (kiln.backends.c.control_lower) holds the buffers of every
    part and subgraph body: it is checked whole, by deriving it again from the graph (no
    compiler needed) and comparing the two plans' hashes."""
    from kiln.backends.c.plan import build_plan
    from kiln.errors import KilnError

    try:
        rebuilt, _ = build_plan(gm, record_gemm=False)
    except KilnError as e:
        raise SerializationError(f"C-backend plan: its graph does not compile to a plan "
                                 f"here: {e}") from e
    _expect(rebuilt["hash"] == plan["hash"], "the graph's control flow lowers to another plan")


def _random_ops() -> set[str]:
    from kiln.core.prims.registry import REGISTRY

    return {name for name, op in REGISTRY.items() if op.is_random}
