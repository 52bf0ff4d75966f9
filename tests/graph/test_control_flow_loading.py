"""Loaded control-flow graphs pass the same validation as the rest (docs/security.md): the
schema of control and item nodes, their subgraphs (recursively), their metas, and the names
``gm.code`` prints. Every edit here re-signs the whole-JSON digest, so it reaches the
validators rather than stopping at the integrity check."""

from __future__ import annotations

import json

import pytest

import kiln
from kiln.base import canonical
from kiln.errors import GraphError, SerializationError
from kiln.graph.module import GraphModule


def branchy(x):
    return kiln.cond(x.sum() > 0, lambda x: (x * 2).exp(), lambda x: -x.sin(), (x,))


def looped(x):
    return kiln.fori_loop(0, 3, lambda i, c: c * 2.0 + 1.0, x)


def _obj(fn=branchy) -> dict:
    return json.loads(kiln.trace(fn, kiln.ones(3)).to_json())


def _load(obj: dict) -> GraphModule:
    obj["sha256"] = canonical.digest({k: v for k, v in obj.items() if k != "sha256"})
    return GraphModule.from_json(canonical.dumps(obj))


def _node(obj: dict, op: str) -> dict:
    return next(n for n in obj["graph"]["nodes"] if n["op"] == op)


def test_resigned_unedited_graphs_load_and_run():
    for fn in (branchy, looped):
        gm = _load(_obj(fn))
        assert gm(kiln.ones(3)).shape == (3,)


def _set(path: str, value):
    def edit(obj: dict) -> None:
        op, *keys = path.split(".")
        target = _node(obj, op)
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
    return edit


def _sub_name(obj: dict) -> None:
    sub = _node(obj, "control")["kwargs"]["true_graph"]["graph"]
    text = json.dumps(sub).replace('"exp"', '"__import__(\'os\')"').replace(
        '"target": "__import__(\'os\')"', '"target": "exp"')
    _node(obj, "control")["kwargs"]["true_graph"]["graph"] = json.loads(text)


def _sub_constant(obj: dict) -> None:
    sub = _node(obj, "control")["kwargs"]["true_graph"]["graph"]
    sub["nodes"][0]["op"] = "constant"


@pytest.mark.parametrize("edit, match", [
    (_set("control.target", "bogus"), "unknown control op"),
    (_set("control.target", ["cond"]), "target: expected a string"),
    (_set("control.kwargs.evil", 1), "takes the attributes"),
    (_set("control.kwargs.true_graph", {"graph": "x"}), "attribute true_graph"),
    (_set("control.kwargs.true_graph", {"tuple": []}), "attribute true_graph"),
    (_set("control.meta", {"shape": [3], "dtype": "float32"}), "meta"),
    (_set("control.meta", {"metas": [{"shape": [4], "dtype": "float32"}]}),
     "does not describe a valid graph"),
    (_set("control.meta", {"metas": [{"shape": ["x"], "dtype": "float32"}]}), "meta shape"),
    (_set("item.kwargs", {"index": "0"}), "index"),
    (_set("item.kwargs", {"index": 1}), "does not describe a valid graph"),
    (_set("item.kwargs", {"index": 0, "evil": 1}), "index"),
    (_set("item.target", "relu"), "target 'item'"),
    (_set("item.args", [{"node": "x"}]), "item reads one control node"),
    (_set("item.args", [{"node": "__import__('os')"}]), "Python identifier"),
    (_sub_name, "Python identifier"),
    (_sub_constant, "holds a constant node"),
])
def test_edited_control_nodes_are_refused(edit, match):
    obj = _obj()
    edit(obj)
    with pytest.raises(SerializationError, match=match):
        _load(obj)


@pytest.mark.parametrize("key, value, match", [
    ("num_carried", "1", "num_carried"),
    ("num_carried", 9, "num_carried"),
    ("save", 1, "save"),
])
def test_edited_loop_attributes_are_refused(key, value, match):
    obj = _obj(looped)
    _node(obj, "control")["kwargs"][key] = value
    with pytest.raises(SerializationError, match=match):
        _load(obj)


def test_a_mutated_loop_bound_is_checked_against_the_saved_metas():
    """With save=True (what a gradient needs) the trip count is in the metas: an edited bound
    cannot silently run another number of iterations."""
    from kiln.graph.control import fori_meta

    gm = kiln.trace(looped, kiln.ones(3))
    loop = next(n for n in gm.graph.nodes if n.op == "control")
    loop.kwargs["save"] = True
    loop.meta = fori_meta(loop.args[0], loop.args[1], list(loop.meta), True)
    gm.graph.lint()
    obj = json.loads(gm.to_json())
    assert _load(json.loads(json.dumps(obj)))(kiln.ones(3)).tolist() == [15.0] * 3
    _node(obj, "control")["args"][1] = 2**62
    with pytest.raises(SerializationError, match="does not describe a valid graph"):
        _load(obj)


def test_names_shadowing_what_printed_control_flow_uses_are_refused():
    obj = _obj()
    sub = _node(obj, "control")["kwargs"]["false_graph"]["graph"]
    text = json.dumps(sub).replace('"neg"', '"range"').replace('"target": "range"',
                                                              '"target": "neg"')
    _node(obj, "control")["kwargs"]["false_graph"]["graph"] = json.loads(text)
    with pytest.raises(SerializationError, match="name the printed code uses"):
        _load(obj)


def test_code_printing_checks_names_in_subgraphs():
    gm = kiln.trace(branchy, kiln.ones(3))
    sub = next(n for n in gm.graph.nodes if n.op == "control").kwargs["true_graph"]
    sub.nodes[-2].name = "__import__('os')"
    with pytest.raises(GraphError, match="cannot print the graph as code"):
        _ = gm.code
    sub.nodes[-2].name = "_cond__false_graph"  # the helper the printed cond defines
    with pytest.raises(GraphError, match="printed control flow"):
        _ = gm.code
