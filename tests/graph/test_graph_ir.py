"""The graph IR: lint catches broken graphs, printing is readable, gm.code runs, and the
canonical JSON is stable and versioned."""

from __future__ import annotations

import json

import numpy as np
import pytest
from opinfo_checks import run_code

import kiln
from kiln.core.prims.registry import TensorMeta
from kiln.errors import GraphError, SerializationError
from kiln.graph.graph import Graph
from kiln.graph.module import GraphModule
from kiln.graph.node import Node
from kiln.graph.serialize import graph_from_json, graph_to_json

F32 = kiln.float32


def meta(*shape: int, dtype=F32) -> TensorMeta:
    return TensorMeta(tuple(shape), dtype)


def small_graph() -> tuple[Graph, dict[str, Node]]:
    g = Graph()
    x = g.placeholder("x", meta(2, 3))
    e = g.call("exp", (x,), {}, meta(2, 3))
    s = g.call("sum", (e,), {"dims": (1,), "keepdim": False}, meta(2))
    g.output([s])
    return g, {"x": x, "exp": e, "sum": s}


def test_a_good_graph_lints():
    g, _ = small_graph()
    g.lint()


# --------------------------------------------------------------------------------------
# lint catches broken graphs built by hand


def _broken(how: str) -> Graph:
    g, n = small_graph()
    if how == "order":
        g.nodes[1], g.nodes[2] = g.nodes[2], g.nodes[1]
    elif how == "meta":
        n["exp"].meta = meta(2, 3, dtype=kiln.float64)
    elif how == "unknown_op":
        n["exp"].target = "expp"
    elif how == "output_not_last":
        g.nodes.append(Node(g, "late", "call", "neg", (n["x"],), {}, meta(2, 3)))
    elif how == "duplicate_name":
        n["sum"].name = "exp"
    elif how == "users":
        n["sum"].args = (n["x"],)  # rewired without telling x
        n["sum"].meta = meta(2)
    elif how == "other_graph":
        other, _ = small_graph()
        g.nodes[1].graph = other
    elif how == "no_output":
        g.nodes.pop()
    elif how == "arity":
        n["exp"].args = (n["x"], n["x"])
        n["x"].users[n["exp"]] = None
    elif how == "attrs":
        n["sum"].kwargs = {"dims": (5,), "keepdim": False}
    elif how == "placeholder_meta":
        n["x"].meta = None
    elif how == "stale_user":
        g.nodes.remove(n["sum"])  # removed behind the graph's back: exp still lists it
        g.output_node.replace_input(n["sum"], n["exp"])
    elif how == "kind":
        n["exp"].op = "call_function"
    return g


@pytest.mark.parametrize("how, message", [
    ("order", r"reads exp, which is not defined before it"),
    ("meta", r"recorded meta f64\[2, 3\] but the op infers f32\[2, 3\]"),
    ("unknown_op", r"unknown op 'expp'"),
    ("output_not_last", r"output node is not last"),
    ("duplicate_name", r"duplicate name"),
    ("users", r"missing from the users of x"),
    ("other_graph", r"belongs to another graph"),
    ("no_output", r"no output node"),
    ("arity", r"bad arguments for exp"),
    ("attrs", r"meta inference failed: sum: dim=5 is out of range"),
    ("placeholder_meta", r"placeholder/constant without meta"),
    ("stale_user", r"user sum_ is not in the graph"),
    ("kind", r"unknown node kind 'call_function'"),
])
def test_lint_catches_broken_graphs(how, message):
    g = _broken(how)
    with pytest.raises(GraphError, match=message):
        g.lint()


def test_lint_error_shows_the_node_in_context():
    g = _broken("meta")
    with pytest.raises(GraphError) as caught:
        g.lint()
    text = str(caught.value)
    assert ">> exp: f64[2, 3] = exp(x)" in text  # the failing node, marked
    assert "x: f32[2, 3] = input('x')" in text  # and its neighbours


def test_erasing_a_used_node_is_refused():
    g, n = small_graph()
    with pytest.raises(GraphError, match="cannot erase exp: still used by"):
        g.erase(n["exp"])


# --------------------------------------------------------------------------------------
# printing and code


def program(x, y):
    h = (x @ y).relu()
    return h.sum(1), h * 2.0


GOLDEN_GRAPH = """\
graph(x: f32[2, 3], y: f64[3, 4]):
    cast: f64[2, 3] = cast(x, dtype=kiln.float64)
    matmul: f64[2, 4] = matmul(cast, y)
    relu: f64[2, 4] = relu(matmul)
    sum_: f64[2] = sum(relu, dims=(1,), keepdim=False)
    mul: f64[2, 4] = mul(relu, 2.0)
    return (sum_, mul)"""

GOLDEN_CODE = """\
import kiln
from kiln import ops


def forward(self, x, y):
    cast = ops.cast(x, dtype=kiln.float64);  x = None  # f64[2, 3]
    matmul = ops.matmul(cast, y);  cast = y = None  # f64[2, 4]
    relu = ops.relu(matmul);  matmul = None  # f64[2, 4]
    sum_ = ops.sum(relu, dims=(1,), keepdim=False)  # f64[2]
    mul = ops.mul(relu, 2.0);  relu = None  # f64[2, 4]
    return [sum_, mul]
"""


def _inputs() -> tuple:
    rng = np.random.default_rng(0)
    return (kiln.tensor(rng.standard_normal((2, 3)), dtype="float32"),
            kiln.tensor(rng.standard_normal((3, 4)), dtype="float64"))


def test_printed_graph_matches_golden_and_numbers():
    x, y = _inputs()
    gm = kiln.trace(program, x, y)
    assert str(gm.graph) == GOLDEN_GRAPH
    for a, b in zip(gm(x, y), program(x, y), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_code_matches_golden_and_runs():
    x, y = _inputs()
    gm = kiln.trace(program, x, y)
    assert gm.code == GOLDEN_CODE
    got = run_code(gm, [x, y])
    for a, b in zip(got, program(x, y), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_code_is_self_contained():
    x, y = _inputs()
    gm = kiln.trace(program, x, y)
    namespace: dict = {}
    exec(compile(gm.code, "<gm.code>", "exec"), namespace)  # noqa: S102 (Kiln-made source)
    for a, b in zip(namespace["forward"](gm, x, y), program(x, y), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_code_reads_constants_and_symbols():
    w = kiln.ones(3, 2)
    gm = kiln.trace(lambda x: (x @ w).reshape(-1), kiln.ones(4, 3), dynamic={"x": {0: "B"}})
    assert "self.constants['_tensor_constant0']" in gm.code
    assert "B = x.shape[0]" in gm.code
    out = run_code(gm, [kiln.ones(5, 3)])
    assert out[0].tolist() == [3.0] * 10


# --------------------------------------------------------------------------------------
# canonical JSON


def test_json_is_canonical_and_stable():
    x, y = _inputs()
    gm = kiln.trace(program, x, y)
    text = gm.to_json()
    # Sorted keys, no whitespace (what cache keys hash).
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    again = GraphModule.from_json(text, gm.constants)
    assert again.to_json() == text
    assert graph_to_json(graph_from_json(graph_to_json(gm.graph))) == graph_to_json(gm.graph)
    assert str(again.graph) == str(gm.graph)


def test_json_with_constants_checks_their_digest():
    w = kiln.ones(3)
    gm = kiln.trace(lambda x: x * w, kiln.ones(3))
    text = gm.to_json()
    with pytest.raises(SerializationError, match="has no value"):
        GraphModule.from_json(text)
    with pytest.raises(SerializationError, match="does not match the digest"):
        GraphModule.from_json(text, {"_tensor_constant0": kiln.zeros(3)})
    again = GraphModule.deserialize(gm.serialize())
    assert again(kiln.ones(3)).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("field, value, message", [
    ("version", 3,
     r"GraphModule format version 3 is not supported \(this Kiln reads versions \[1, 2\]\)"),
    ("format", "kiln.other", r"not a Kiln GraphModule"),
])
def test_module_json_refuses_unknown_versions_and_formats(field, value, message):
    gm = kiln.trace(lambda x: x + 1.0, kiln.ones(2))
    obj = json.loads(gm.to_json())
    obj[field] = value
    with pytest.raises(SerializationError, match=message):
        GraphModule.from_json(json.dumps(obj))


def test_graph_json_refuses_unknown_versions_and_bad_content():
    g, _ = small_graph()
    obj = json.loads(graph_to_json(g))
    with pytest.raises(SerializationError, match=r"graph format version 99 is not supported"):
        graph_from_json(json.dumps({**obj, "version": 99}))
    bad = json.loads(graph_to_json(g))
    bad["nodes"][1]["target"] = "no_such_op"
    with pytest.raises(SerializationError, match="unknown op 'no_such_op'"):
        graph_from_json(json.dumps(bad))
    bad = json.loads(graph_to_json(g))
    bad["nodes"][2]["args"] = [{"node": "ghost"}]
    with pytest.raises(SerializationError, match="unknown node 'ghost'"):
        graph_from_json(json.dumps(bad))
    bad = json.loads(graph_to_json(g))
    bad["nodes"][1]["op"] = "eval"
    with pytest.raises(SerializationError, match="unknown kind 'eval'"):
        graph_from_json(json.dumps(bad))
    with pytest.raises(SerializationError, match="does not parse"):
        graph_from_json("{not json")
    with pytest.raises(SerializationError, match="malformed graph JSON"):
        graph_from_json(json.dumps({**obj, "nodes": [{"name": "x"}]}))


def test_symbolic_graph_round_trips():
    gm = kiln.trace(lambda x: x.reshape(-1, 2).sum(0), kiln.ones(4, 4),
                    dynamic={"x": {0: kiln.Dim("B", 1, 64)}})
    text = gm.to_json()
    again = GraphModule.from_json(text, gm.constants)
    assert again.to_json() == text
    assert again.graph.symbols == gm.graph.symbols
    assert again(kiln.ones(6, 4)).tolist() == [12.0, 12.0]


def test_deepcopy_gives_an_independent_module_that_runs():
    import copy

    model = kiln.nn.Sequential(kiln.nn.Linear(3, 4), kiln.nn.ReLU())
    x = kiln.randn(2, 3)
    gm = kiln.trace(model, x, dynamic={"input": {0: "B"}})
    twin = copy.deepcopy(gm)
    assert twin.constants["0.weight"] is not gm.constants["0.weight"]
    np.testing.assert_array_equal(twin(x).detach().numpy(), gm(x).detach().numpy())
    with kiln.no_grad():
        gm.constants["0.bias"].add_(1.0)  # the copy keeps its own weights
    assert not np.array_equal(twin(x).detach().numpy(), gm(x).detach().numpy())
    assert twin.code == gm.code and twin.to_json() != gm.to_json()


def test_interface_decodes_symbols_guards_and_placeholders_only():
    from kiln.errors import SerializationError
    from kiln.graph.serialize import graph_to_obj, interface_from_obj

    w = kiln.ones(3, 2)
    gm = kiln.trace(lambda x: (x @ w).squeeze(0).relu(), kiln.ones(3, 3),
                    dynamic={"x": {0: kiln.Dim("B", 1, 64)}})
    obj = graph_to_obj(gm.graph)
    head = interface_from_obj(obj)
    assert [(p.name, p.meta) for p in head.placeholders] == \
        [(p.name, p.meta) for p in gm.graph.placeholders]
    assert [str(g) for g in head.guards] == [str(g) for g in gm.graph.guards] == ["B != 1"]
    assert set(head.symbols) == {"B"} and len(head.nodes) < len(gm.graph.nodes)
    bad = json.loads(json.dumps(obj))
    bad["nodes"][0]["meta"]["dtype"] = "float99"
    with pytest.raises(SerializationError):
        interface_from_obj(bad)
    # a placeholder after another node: the whole graph is decoded (and checked)
    late = json.loads(json.dumps(obj))
    assert late["nodes"][0]["op"] == "placeholder" and late["nodes"][1]["op"] != "placeholder"
    late["nodes"].insert(1, late["nodes"].pop(0))
    assert len(interface_from_obj(late).nodes) == len(gm.graph.nodes)
