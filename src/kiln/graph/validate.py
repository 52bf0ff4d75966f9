"""The schema a loaded graph must pass before any node of it is built (see docs/security.md).

Graph JSON is data that may come from anyone. Before :mod:`kiln.graph.serialize` builds a
single node, :func:`check_graph_obj` checks the type of every field, that every name is a
plain ASCII Python identifier that is neither a keyword nor a name ``gm.code`` itself uses
(so printing the graph can never emit code), that every call names an op of the registry
with only the attributes that op declares, and that every value is one of the encoded
forms. Meta inference and ``lint`` then run on the built graph and must agree with every
recorded shape and dtype.

>>> check_name("relu_1", "node name")
'relu_1'
>>> check_name("globals()['x']", "node name")
Traceback (most recent call last):
...
kiln.errors.SerializationError: node name: expected a Python identifier (ASCII letters, ...
"""

from __future__ import annotations

import keyword
from typing import Any

from kiln.errors import SerializationError
from kiln.graph.node import NODE_KINDS

# Names gm.code uses itself (parameters, modules, helpers and the loop variables of printed
# control flow), and the builtins Kiln's own naming avoids: a node may not shadow them.
_CODE_NAMES = frozenset({"self", "ops", "kiln", "GuardError", "float", "forward", "None",
                         "True", "False", "input", "print", "sum", "max", "min", "abs",
                         "round", "slice", "pow", "bool", "int", "range", "zip", "len",
                         "_", "_h", "_c"})
_MAX_NAME = 200
_MAX_DEPTH = 32
_MAX_RESULTS = 4096  # results of one control node
_NODE_KEYS = frozenset({"name", "op", "target", "args", "kwargs", "meta"})
_GRAPH_KEYS = frozenset({"format", "version", "symbols", "nodes", "guards"})


def _fail(where: str, expected: str, got: Any) -> SerializationError:
    text = repr(got)
    if len(text) > 80:
        text = text[:77] + "..."
    return SerializationError(f"{where}: expected {expected}, got {text}")


def check_name(name: Any, where: str) -> str:
    """``name`` if it is a plain ASCII identifier, not a keyword, not a name gm.code uses."""
    if not isinstance(name, str) or not (name.isascii() and name.isidentifier()) or \
            len(name) > _MAX_NAME:
        raise SerializationError(f"{where}: expected a Python identifier (ASCII letters, "
                                 f"digits, _), got {_short(name)}")
    if keyword.iskeyword(name) or name in _CODE_NAMES:
        raise SerializationError(f"{where}: {name!r} is a Python keyword or a name the "
                                 "printed code uses; it cannot name a value")
    return name


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_value(obj: Any, where: str, depth: int = 0) -> None:
    """An encoded argument or attribute value (see :mod:`kiln.graph.serialize`)."""
    if depth > _MAX_DEPTH:
        raise SerializationError(f"{where}: values nest deeper than {_MAX_DEPTH} levels")
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return
    if isinstance(obj, list):
        for i, v in enumerate(obj):
            check_value(v, f"{where}[{i}]", depth + 1)
        return
    if isinstance(obj, dict) and len(obj) == 1:
        (tag, inner), = obj.items()
        if tag == "node":
            check_name(inner, f"{where} (node reference)")
            return
        if tag == "dtype":
            if not isinstance(inner, str):
                raise _fail(where, "a dtype name", inner)
            return
        if tag == "sym":
            if not isinstance(inner, list):
                raise _fail(where, "a symbolic size", obj)
            return  # SymInt.from_json checks its terms
        if tag == "tuple":
            if not isinstance(inner, list):
                raise _fail(where, "a list inside {'tuple': ...}", inner)
            for i, v in enumerate(inner):
                check_value(v, f"{where}[{i}]", depth + 1)
            return
    raise _fail(where, "an encoded value (number, string, list, node, dtype, sym, tuple)",
                obj)


def check_meta(obj: Any, where: str) -> None:
    if not isinstance(obj, dict) or set(obj) != {"shape", "dtype"}:
        raise _fail(f"{where} meta", "{'shape': [...], 'dtype': name}", obj)
    if not isinstance(obj["dtype"], str):
        raise _fail(f"{where} meta dtype", "a dtype name", obj["dtype"])
    shape = obj["shape"]
    if not isinstance(shape, list) or len(shape) > 64:
        raise _fail(f"{where} meta shape", "a list of at most 64 sizes", shape)
    for d in shape:
        if is_int(d):
            if d < 0:
                raise _fail(f"{where} meta shape", "sizes >= 0", shape)
        elif not (isinstance(d, dict) and set(d) == {"sym"}):
            raise _fail(f"{where} meta shape", "ints or symbolic sizes", shape)


def check_graph_obj(obj: Any) -> None:
    """Check the schema of graph JSON (see the module docstring); raise SerializationError."""
    from kiln.core.prims.registry import REGISTRY

    extra = set(obj) - _GRAPH_KEYS
    if extra:
        raise SerializationError(f"graph JSON: unknown fields {sorted(extra)}")
    symbols = obj.get("symbols", {})
    if not isinstance(symbols, dict):
        raise _fail("graph symbols", "an object", symbols)
    for name, rng in symbols.items():
        check_name(name, "symbol name")
        if not isinstance(rng, dict) or set(rng) != {"min", "max"} or \
                not is_int(rng["min"]) or not is_int(rng["max"]) or \
                not 0 <= rng["min"] <= rng["max"] < 2**63:
            raise _fail(f"symbol {name!r}", "{'min': int, 'max': int} with 0 <= min <= max",
                        rng)
    nodes = obj.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        raise _fail("graph nodes", "a non-empty list", nodes)
    names: set[str] = set()
    for i, entry in enumerate(nodes):
        if not isinstance(entry, dict) or set(entry) != _NODE_KEYS:
            raise _fail(f"graph node {i}", f"an object with fields {sorted(_NODE_KEYS)}",
                        entry)
        op, target = entry["op"], entry["target"]
        if op not in NODE_KINDS:
            raise SerializationError(f"graph node {i}: unknown kind {_short(op)} (expected one "
                                     f"of {NODE_KINDS})")
        if not isinstance(entry["args"], list) or not isinstance(entry["kwargs"], dict):
            raise _fail(f"graph node {i}", "a list of args and an object of kwargs", entry)
        if op == "output":
            if entry["name"] != "output" or target != "output" or i != len(nodes) - 1:
                raise SerializationError(f"graph node {i}: the output node must be last and "
                                         "be named 'output'")
            args = entry["args"]
            outs = args[0].get("tuple") if len(args) == 1 and isinstance(args[0], dict) \
                and set(args[0]) == {"tuple"} else None
            if not isinstance(outs, list) or entry["kwargs"] or entry["meta"] is not None:
                raise _fail("graph output", "one tuple of node references", args)
            for v in outs:
                if not (isinstance(v, dict) and set(v) == {"node"}):
                    raise _fail("graph output", "node references", v)
                check_name(v["node"], "graph output")
            continue
        name = check_name(entry["name"], f"graph node {i} name")
        if name in names or name in symbols:
            raise SerializationError(f"graph node {i}: name {name!r} is used twice (by "
                                     "another node or a symbol)")
        names.add(name)
        where = f"node {name}"
        if not isinstance(target, str) or len(target) > 1000:
            raise _fail(f"{where} target", "a string", target)
        if op == "control":
            _check_control_entry(entry, where)
            continue
        check_meta(entry["meta"], where)
        if op == "item":
            _check_item_entry(entry, where)
            continue
        if op in ("placeholder", "constant"):
            if entry["args"] or entry["kwargs"]:
                raise _fail(where, "no args or kwargs", entry)
            continue
        opdef = REGISTRY.get(target)
        if opdef is None:
            raise SerializationError(f"{where}: unknown op {_short(target)}")
        for k, v in entry["kwargs"].items():
            if k not in opdef.attrs:
                raise SerializationError(f"{where}: op {target} has no attribute {_short(k)} "
                                         f"(it takes {list(opdef.attrs)})")
            check_value(v, f"{where} attribute {k}")
        for j, v in enumerate(entry["args"]):
            check_value(v, f"{where} arg {j}")
    if nodes[-1].get("op") != "output":
        raise SerializationError("graph nodes: the last node must be the output node")


def _check_control_entry(entry: dict, where: str) -> None:
    """A control-flow node (kiln.graph.control): a known target, exactly its attributes (each
    subgraph as ``{"graph": {...}}``, checked by the recursive load that builds it, which
    bounds the nesting), plain int/bool attributes, one meta per result."""
    from kiln.graph.control import ATTRS, SUBGRAPHS

    target = entry["target"]
    if target not in SUBGRAPHS:
        raise SerializationError(f"{where}: unknown control op {_short(target)} (expected one "
                                 f"of {list(SUBGRAPHS)})")
    kwargs = entry["kwargs"]
    want = set(SUBGRAPHS[target]) | set(ATTRS[target])
    if set(kwargs) != want:
        raise SerializationError(f"{where}: {target} takes the attributes {sorted(want)}, got "
                                 f"{_short(sorted(map(str, kwargs)))}")
    for key in SUBGRAPHS[target]:
        sub = kwargs[key]
        if not isinstance(sub, dict) or set(sub) != {"graph"} or \
                not isinstance(sub["graph"], dict):
            raise _fail(f"{where} attribute {key}", "{'graph': {...}}", sub)
    if "num_carried" in kwargs and not (is_int(kwargs["num_carried"]) and
                                        0 <= kwargs["num_carried"] <= len(entry["args"])):
        raise _fail(f"{where} attribute num_carried", "an int in [0, number of args]",
                    kwargs["num_carried"])
    if "save" in kwargs and not isinstance(kwargs["save"], bool):
        raise _fail(f"{where} attribute save", "a bool", kwargs["save"])
    meta = entry["meta"]
    if not isinstance(meta, dict) or set(meta) != {"metas"} or \
            not isinstance(meta["metas"], list) or len(meta["metas"]) > _MAX_RESULTS:
        raise _fail(f"{where} meta", f"{{'metas': [...]}} with at most {_MAX_RESULTS} metas",
                    meta)
    for i, m in enumerate(meta["metas"]):
        check_meta(m, f"{where} result {i}")
    for j, v in enumerate(entry["args"]):
        check_value(v, f"{where} arg {j}")


def _check_item_entry(entry: dict, where: str) -> None:
    """One result of a control node: ``item(node, index=i)``."""
    args, kwargs = entry["args"], entry["kwargs"]
    if entry["target"] != "item" or len(args) != 1 or \
            not (isinstance(args[0], dict) and set(args[0]) == {"node"}):
        raise _fail(where, "target 'item' and one node reference", entry)
    check_name(args[0]["node"], f"{where} (node reference)")
    if set(kwargs) != {"index"} or not is_int(kwargs["index"]) or kwargs["index"] < 0:
        raise _fail(f"{where} kwargs", "{'index': int >= 0}", kwargs)


_MODULE_KEYS = frozenset({"format", "version", "graph", "signature", "constants", "sha256"})
_SIG_KEYS = frozenset({"in_spec", "tensor_positions", "static_inputs", "out_spec",
                       "static_outputs", "mutations", "input_mutations"})


def check_module_obj(obj: dict) -> None:
    """Field types of GraphModule JSON around its graph (checked by :func:`check_graph_obj`)."""
    if set(obj) != _MODULE_KEYS:
        raise SerializationError(f"GraphModule JSON: expected the fields {sorted(_MODULE_KEYS)}"
                                 f", got {sorted(obj)}")
    consts = obj.get("constants")
    if not isinstance(consts, dict):
        raise _fail("GraphModule constants", "an object", consts)
    for key, info in consts.items():
        if not isinstance(info, dict) or set(info) != {"shape", "dtype", "sha256"} or \
                not isinstance(info["shape"], list) or \
                not all(is_int(d) and d >= 0 for d in info["shape"]) or \
                not isinstance(info["dtype"], str) or not isinstance(info["sha256"], str):
            raise _fail(f"constant {key!r}", "{'shape': [ints], 'dtype': str, 'sha256': str}",
                        info)
    sig = obj.get("signature")
    if sig is None:
        return
    if not isinstance(sig, dict) or not set(sig) <= _SIG_KEYS or \
            not set(sig) >= _SIG_KEYS - {"input_mutations"}:
        raise _fail("GraphModule signature", f"an object with fields {sorted(_SIG_KEYS)}", sig)
    for field in ("in_spec", "out_spec"):
        if not isinstance(sig[field], str) and not (field == "out_spec" and sig[field] is None):
            raise _fail(f"signature {field}", "a TreeSpec JSON string", sig[field])
    for field in ("tensor_positions", "input_mutations"):
        if not isinstance(sig.get(field, []), list) or \
                not all(is_int(i) and i >= 0 for i in sig.get(field, [])):
            raise _fail(f"signature {field}", "a list of indices", sig.get(field))
    if not isinstance(sig["mutations"], list) or \
            not all(isinstance(k, str) for k in sig["mutations"]):
        raise _fail("signature mutations", "a list of constant keys", sig["mutations"])
    for field in ("static_inputs", "static_outputs"):
        items = sig[field]
        if not isinstance(items, list) or not all(
                isinstance(it, list) and len(it) == 2 and is_int(it[0]) and it[0] >= 0 and
                (it[1] is None or isinstance(it[1], (bool, int, float, str)) or
                 (isinstance(it[1], dict) and set(it[1]) == {"sym"})) for it in items):
            raise _fail(f"signature {field}", "a list of [leaf index, scalar]", items)


def check_module(graph: Any, sig: Any, consts: dict) -> None:
    """What the signature and constants table say must fit the graph they come with."""
    placeholders = graph.placeholders
    for node in graph.nodes:
        if node.op == "constant":
            info = consts.get(node.target)
            if info is None:
                raise SerializationError(f"node {node.name} reads constant {node.target!r}, "
                                         "which the constants table does not list")
            if tuple(info["shape"]) != node.meta.shape or info["dtype"] != node.meta.dtype.name:
                raise SerializationError(
                    f"node {node.name}: constant {node.target!r} is listed as "
                    f"{info['dtype']}{info['shape']}, the graph records {node.meta}")
    if sig is None:
        return
    n_leaves = sig.in_spec.num_leaves
    pos = sig.tensor_positions
    if len(pos) != len(placeholders) or len(set(pos)) != len(pos) or \
            any(i >= n_leaves for i in pos) or \
            any(i >= n_leaves or i in pos for i in sig.static_inputs) or \
            len(pos) + len(sig.static_inputs) != n_leaves:
        raise SerializationError(
            f"signature: tensor positions {list(pos)} and static inputs "
            f"{sorted(sig.static_inputs)} do not map {n_leaves} argument leaves onto the "
            f"graph's {len(placeholders)} inputs")
    for key in sig.mutations:
        if key not in consts:
            raise SerializationError(f"signature: mutated constant {key!r} is not listed")
    if any(k >= len(placeholders) for k in sig.input_mutations) or \
            len(set(sig.input_mutations)) != len(sig.input_mutations):
        raise SerializationError(f"signature: input mutations {list(sig.input_mutations)} "
                                 f"do not name distinct inputs among {len(placeholders)}")
    n_out = len(graph.outputs) - len(sig.mutations) - len(sig.input_mutations)
    if n_out < 0:
        raise SerializationError("signature: more mutations than graph outputs")
    if sig.out_spec is not None:
        n = sig.out_spec.num_leaves
        if any(i >= n for i in sig.static_outputs) or len(sig.static_outputs) + n_out != n:
            raise SerializationError(
                f"signature: the output structure has {n} leaves, but the graph gives "
                f"{n_out} tensors and {len(sig.static_outputs)} other values")


def _is_size(v: Any) -> bool:
    from kiln.symbolic.sizes import SymInt

    return is_int(v) or isinstance(v, SymInt)


def _is_sizes(v: Any) -> bool:
    return isinstance(v, (tuple, list)) and all(_is_size(d) for d in v)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) or _is_size(v)


def _is_dtype(v: Any) -> bool:
    from kiln.core.dtypes import DType, get_dtype
    from kiln.errors import KilnError

    if isinstance(v, str):  # tracing records some dtypes by name
        try:
            get_dtype(v)
        except (KilnError, KeyError, TypeError, ValueError):
            return False
        return True
    return v is None or isinstance(v, DType)


# The type of each attribute, by name (op metas are lenient about types: they were written
# for values Kiln itself records).
_ATTR_TYPES: dict[str, tuple[str, Any]] = {
    "ceil_mode": ("a bool", lambda v: isinstance(v, bool)),
    "keepdim": ("a bool", lambda v: isinstance(v, bool)),
    "count_include_pad": ("a bool", lambda v: isinstance(v, (bool, int))),
    "dim": ("an int or None", lambda v: v is None or _is_size(v)),
    "groups": ("an int", _is_size),
    "m": ("an int or None", lambda v: v is None or _is_size(v)),
    "n": ("an int or None", lambda v: v is None or _is_size(v)),
    "divisor_override": ("an int or None", lambda v: v is None or _is_size(v)),
    "dims": ("ints or None", lambda v: v is None or _is_sizes(v)),
    "dtype": ("a dtype", _is_dtype),
    "low": ("a number", _is_number),
    "high": ("a number", _is_number),
    "value": ("a number", _is_number),
    "start": ("a number or None", lambda v: v is None or _is_number(v)),
    "stop": ("a number or None", lambda v: v is None or _is_number(v)),
    "step": ("a number or None", lambda v: v is None or _is_number(v)),
}
for _name in ("shape", "stride", "padding", "dilation", "kernel", "input_hw", "kernel_hw"):
    _ATTR_TYPES[_name] = ("sizes", _is_sizes)
_ATTR_TYPES["pads"] = ("sizes or tuples of sizes", lambda v: _is_sizes(v) or (
    isinstance(v, (tuple, list)) and all(_is_sizes(p) for p in v)))


def check_attrs(node: Any) -> None:
    """Every attribute of a decoded call node has its declared type."""
    for key, value in node.kwargs.items():
        want = _ATTR_TYPES.get(key)
        if want is not None and not want[1](value):
            raise SerializationError(f"node {node.name}: attribute {key} of {node.target} "
                                     f"must be {want[0]}, got {_short(value)}")
