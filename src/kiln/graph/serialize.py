"""Canonical JSON for graphs (versioned schema; sorted keys; stable under re-serialization).

Values inside ``args``/``kwargs`` are encoded as: Node -> ``{"node": name}``, SymInt ->
``{"sym": ...}``, DType -> ``{"dtype": name}``, tuple -> ``{"tuple": [...]}``, and plain JSON
for the rest (non-finite floats via kiln.base.canonical). Loading validates everything and never
evaluates text.

Control-flow nodes (kiln.graph.control) carry their subgraphs in ``kwargs`` as
``{"graph": <a whole graph object, same schema>}`` and their several results as the meta
``{"metas": [...]}``; a subgraph is only accepted in a control node's attributes, nests at
most :data:`MAX_DEPTH` deep, and is validated (lint included) like the graph around it.
"""

from __future__ import annotations

from typing import Any

from kiln.base import canonical
from kiln.core.dtypes import DType, get_dtype
from kiln.core.prims.registry import TensorMeta
from kiln.errors import GraphError, KilnError, SerializationError
from kiln.graph.graph import Graph
from kiln.graph.node import Node
from kiln.graph.validate import check_attrs, check_graph_obj
from kiln.symbolic.guards import guards_from_json, guards_to_json
from kiln.symbolic.sizes import Dim, SymInt

GRAPH_FORMAT = "kiln.graph"
GRAPH_VERSION = 1
# How deep control-flow subgraphs may nest in a loaded graph (a file cannot recurse us out).
MAX_DEPTH = 32


def encode_value(value: Any) -> Any:
    if isinstance(value, Node):
        return {"node": value.name}
    if isinstance(value, SymInt):
        return value.to_json()
    if isinstance(value, DType):
        return {"dtype": value.name}
    if isinstance(value, tuple):
        return {"tuple": [encode_value(v) for v in value]}
    if isinstance(value, list):
        return [encode_value(v) for v in value]
    if isinstance(value, Graph):
        return {"graph": graph_to_obj(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise SerializationError(f"cannot serialize a value of type {type(value).__name__}")


def decode_value(obj: Any, nodes: dict[str, Node]) -> Any:
    if isinstance(obj, dict):
        if "node" in obj:
            try:
                return nodes[obj["node"]]
            except KeyError:
                raise SerializationError(f"reference to unknown node {obj['node']!r}") from None
        if "sym" in obj:
            return SymInt.from_json(obj)
        if "dtype" in obj:
            return get_dtype(obj["dtype"])
        if "tuple" in obj:
            return tuple(decode_value(v, nodes) for v in obj["tuple"])
        raise SerializationError(f"unknown encoded value {obj!r}")
    if isinstance(obj, list):
        return [decode_value(v, nodes) for v in obj]
    return obj


def encode_meta(meta: TensorMeta | tuple | None) -> Any:
    if meta is None:
        return None
    if isinstance(meta, tuple):  # a control node's results
        return {"metas": [encode_meta(m) for m in meta]}
    return {"shape": [encode_value(d) for d in meta.shape], "dtype": meta.dtype.name}


def decode_meta(obj: Any, multi: bool = False) -> TensorMeta | tuple | None:
    if obj is None:
        return None
    if multi:  # a control node's results (the schema checked the form)
        return tuple(decode_meta(m) for m in obj["metas"])
    shape = tuple(decode_value(d, {}) for d in obj["shape"])
    for d in shape:
        if not isinstance(d, (int, SymInt)) or isinstance(d, bool):
            raise SerializationError(f"meta shape: expected sizes, got {obj['shape']!r:.80}")
    return TensorMeta(shape, get_dtype(obj["dtype"]))


def graph_to_obj(graph: Graph) -> dict:
    obj = {
        "format": GRAPH_FORMAT,
        "version": GRAPH_VERSION,
        "symbols": {k: {"min": d.min, "max": d.max} for k, d in graph.symbols.items()},
        "nodes": [
            {"name": n.name, "op": n.op, "target": n.target,
             "args": [encode_value(a) for a in n.args],
             "kwargs": {k: encode_value(v) for k, v in n.kwargs.items()},
             "meta": encode_meta(n.meta)}
            for n in graph.nodes
        ],
    }
    if graph.guards:  # absent when empty: graphs without guards keep their JSON (and keys)
        obj["guards"] = guards_to_json(graph.guards)
    return obj


def _decode_attr(value: Any, nodes: dict[str, Node], depth: int) -> Any:
    """A control node's attribute: a subgraph (validated like any graph) or a plain value."""
    if isinstance(value, dict) and set(value) == {"graph"}:
        return graph_from_obj(value["graph"], depth + 1)
    return decode_value(value, nodes)


def graph_from_obj(obj: Any, depth: int = 0) -> Graph:
    """A graph from its JSON object, validated before anything of it runs: the schema
    (:mod:`kiln.graph.validate`), then meta inference and ``lint`` (every recorded shape and
    dtype must be what the op registry infers). Anything wrong is a SerializationError.
    ``depth`` counts the control-flow subgraphs around ``obj`` (at most :data:`MAX_DEPTH`)."""
    if depth > MAX_DEPTH:
        raise SerializationError(f"control-flow subgraphs nest deeper than {MAX_DEPTH}")
    if not isinstance(obj, dict) or obj.get("format") != GRAPH_FORMAT:
        raise SerializationError("not a Kiln graph: missing format 'kiln.graph'")
    if obj.get("version") != GRAPH_VERSION:
        raise SerializationError(f"graph format version {obj.get('version')!r} is not "
                                 f"supported (this Kiln reads version {GRAPH_VERSION})")
    try:
        check_graph_obj(obj)
    except SerializationError as e:
        raise SerializationError(f"malformed graph JSON: {e}") from None
    g = Graph()
    try:
        g.symbols = {k: Dim(k, v["min"], v["max"]) for k, v in obj.get("symbols", {}).items()}
        g.guards = guards_from_json(obj.get("guards", []))
        nodes: dict[str, Node] = {}
        for entry in obj["nodes"]:
            op = entry["op"]
            args = tuple(decode_value(a, nodes) for a in entry["args"])
            if op == "control":  # the schema allows subgraphs here only
                kwargs = {k: _decode_attr(v, nodes, depth)
                          for k, v in entry["kwargs"].items()}
            else:
                kwargs = {k: decode_value(v, nodes) for k, v in entry["kwargs"].items()}
            name = entry["name"]
            node = Node(g, name, op, entry["target"], args, kwargs,
                        decode_meta(entry["meta"], multi=op == "control"))
            check_attrs(node)
            g.nodes.append(node)
            g._names.add(name)
            nodes[name] = node
        _check_guard_symbols(g)
    except SerializationError:
        raise
    except (KeyError, TypeError, ValueError, KilnError) as e:
        raise SerializationError(f"malformed graph JSON: {type(e).__name__}: {e}") from e
    try:
        g.lint()
    except GraphError as e:
        raise SerializationError(f"graph JSON does not describe a valid graph: {e}") from e
    except RecursionError as e:
        raise SerializationError("graph JSON does not describe a valid graph: values nest "
                                 "too deeply") from e
    except Exception as e:  # noqa: BLE001  (an op's meta choking on data it never expected)
        raise SerializationError(f"graph JSON does not describe a valid graph: meta inference "
                                 f"failed with {type(e).__name__}: {e}") from e
    return g


_EMPTY_OUTPUT = {"name": "output", "op": "output", "target": "output",
                 "args": [{"tuple": []}], "kwargs": {}, "meta": None}


def interface_from_obj(obj: Any) -> Graph:
    """The inputs of a graph from its JSON: a Graph of its symbols, guards and placeholders
    only, checked as :func:`graph_from_obj` checks a graph; no other node is decoded. What
    checking a call needs (input dtypes and shapes, guards) while the rest of a stored graph
    waits until it is used. Placeholders lead a graph's nodes; if one does not, the whole
    graph is decoded."""
    nodes = obj.get("nodes") if isinstance(obj, dict) else None
    if not isinstance(nodes, list):
        return graph_from_obj(obj)
    k = 0
    while k < len(nodes) and isinstance(nodes[k], dict) and nodes[k].get("op") == "placeholder":
        k += 1
    if any(isinstance(n, dict) and n.get("op") == "placeholder" for n in nodes[k:]):
        return graph_from_obj(obj)
    return graph_from_obj({**obj, "nodes": [*nodes[:k], _EMPTY_OUTPUT]})


def _check_guard_symbols(g: Graph) -> None:
    """Every symbol a size, a guard or a placeholder uses is a declared one (printed code
    binds only those)."""
    declared = set(g.symbols)
    for guard in g.guards:
        bad = set(guard.free_symbols) - declared
        if bad:
            raise SerializationError(f"guard {guard} uses undeclared symbols {sorted(bad)}")
    for node in g.nodes:
        if node.meta is None:
            continue
        used: set[str] = set()
        metas = node.meta if isinstance(node.meta, tuple) else (node.meta,)  # control: several
        for meta in metas:
            for d in meta.shape:
                if isinstance(d, SymInt):
                    used |= d.free_symbols
        bad = used - declared
        if bad:
            raise SerializationError(f"node {node.name}: its shape uses undeclared symbols "
                                     f"{sorted(bad)}")


def graph_to_json(graph: Graph) -> str:
    return canonical.dumps(graph_to_obj(graph))


def graph_from_json(text: str) -> Graph:
    try:
        obj = canonical.loads(text)
    except (ValueError, TypeError) as e:
        raise SerializationError(f"graph JSON does not parse: {e}") from e
    return graph_from_obj(obj)
