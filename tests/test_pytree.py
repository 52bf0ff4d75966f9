"""Tests for kiln.base.pytree: flatten/unflatten, TreeSpec values and their JSON form."""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
from collections import OrderedDict, namedtuple
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiln.base.pytree import (
    TreeSpec,
    register_pytree_node,
    tree_flatten,
    tree_leaves,
    tree_map,
    tree_structure,
    tree_unflatten,
)
from kiln.errors import ArgumentError, SerializationError

Point = namedtuple("Point", "x y")


class Pair(NamedTuple):
    first: object
    second: object


@dataclasses.dataclass
class Batch:
    inputs: object
    labels: object = None
    step: int = dataclasses.field(default=0, init=False)


@dataclasses.dataclass(frozen=True)
class Frozen:
    a: object
    b: object = dataclasses.field(default=None, kw_only=True)


class Box:
    """A user container registered as a node, with a tuple context."""

    def __init__(self, items, tag):
        self.items, self.tag = list(items), tag

    def __eq__(self, other):
        return isinstance(other, Box) and (self.items, self.tag) == (other.items, other.tag)


register_pytree_node(
    Box, lambda b: (b.items, (b.tag, len(b.items))), lambda ctx, ch: Box(ch, ctx[0]), "test.Box"
)


def deep_equal(a, b) -> bool:
    """Equal values of equal types, with dict key order compared too."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(deep_equal, a, b))
    if dataclasses.is_dataclass(a):
        return all(
            deep_equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    return a == b


def test_leaf_order_and_none():
    arr = np.ones(2)
    leaves, spec = tree_flatten((arr, [1, None, "s"], {"b": 2, "a": 3}, None))
    assert leaves[0] is arr
    assert leaves[1:] == [1, "s", 3, 2]  # None is a node, dict leaves by sorted key
    assert spec.num_leaves == 5
    assert str(spec) == "TreeSpec((*, [*, None, *], {'b': *, 'a': *}, None))"


def test_dict_insertion_order_is_restored():
    tree = {"z": 1, "a": 2, "m": {"y": 3, "b": 4}}
    leaves, spec = tree_flatten(tree)
    assert leaves == [2, 4, 3, 1]
    back = tree_unflatten(spec, leaves)
    assert deep_equal(back, tree)
    assert list(back) == ["z", "a", "m"]


def test_unsortable_keys_keep_insertion_order():
    leaves, spec = tree_flatten({"b": 1, 2: 2, "a": 3})
    assert leaves == [1, 2, 3]
    assert list(tree_unflatten(spec, leaves)) == ["b", 2, "a"]


def test_namedtuple_dataclass_odict():
    tree = [
        Point(1, Pair(2, 3)),
        Batch(inputs=(4,), labels=None),
        Frozen(5, b=6),
        OrderedDict([("z", 7), ("a", 8)]),
    ]
    tree[1].step = 99  # init=False: not a child, so not restored
    leaves, spec = tree_flatten(tree)
    assert leaves == [1, 2, 3, 4, 5, 6, 7, 8]
    back = tree_unflatten(spec, leaves)
    assert type(back[0]) is Point and type(back[0].y) is Pair
    assert back[1] == Batch(inputs=(4,)) and back[1].step == 0
    assert back[2] == Frozen(5, b=6)
    assert type(back[3]) is OrderedDict and list(back[3]) == ["z", "a"]
    assert str(spec) == (
        "TreeSpec([Point(x=*, y=Pair(first=*, second=*)), Batch(inputs=(*,), labels=None), "
        "Frozen(a=*, b=*), OrderedDict({'z': *, 'a': *})])"
    )


def test_other_tuple_subclasses_and_dict_subclasses_are_leaves():
    class Shape(tuple):
        pass

    class MyDict(dict):
        pass

    shape, mapping = Shape((2, 3)), MyDict(a=1)
    assert tree_leaves([shape, mapping]) == [shape, mapping]
    assert tree_leaves([Batch]) == [Batch]  # a dataclass type is not an instance


def test_custom_node():
    tree = {"box": Box([1, (2, 3)], "t")}
    leaves, spec = tree_flatten(tree)
    assert leaves == [1, 2, 3]
    assert tree_unflatten(spec, leaves) == tree
    assert str(spec) == "TreeSpec({'box': test.Box[('t', 2)](*, (*, *))})"
    again = TreeSpec.from_json(spec.to_json())
    assert again == spec and again.children[0].context == ("t", 2)


def test_register_errors():
    with pytest.raises(ArgumentError, match="already a node"):
        register_pytree_node(Box, lambda b: ([], None), lambda c, ch: Box([], None), "x.Box2")
    with pytest.raises(ArgumentError, match="already a node"):
        register_pytree_node(dict, lambda d: ([], None), lambda c, ch: {}, "x.dict")

    class Other:
        pass

    with pytest.raises(ArgumentError, match="is taken by"):
        register_pytree_node(Other, lambda o: ([], None), lambda c, ch: Other(), "test.Box")
    with pytest.raises(ArgumentError, match="must be a class"):
        register_pytree_node(Other(), lambda o: ([], None), lambda c, ch: None, "x.y")


def test_unhashable_custom_context():
    class Bag:
        pass

    register_pytree_node(Bag, lambda b: ([], ["list", "context"]), lambda c, ch: Bag(), "test.Bag")
    with pytest.raises(ArgumentError, match="not hashable"):
        tree_flatten(Bag())


def test_is_leaf():
    tree = {"a": (1, 2), "b": [3]}
    leaves, spec = tree_flatten(tree, is_leaf=lambda x: isinstance(x, tuple))
    assert leaves == [(1, 2), 3]
    assert tree_unflatten(spec, ["x", "y"]) == {"a": "x", "b": ["y"]}
    assert tree_leaves([None, 1], is_leaf=lambda x: x is None) == [None, 1]


def test_spec_is_an_immutable_hashable_value():
    spec = tree_structure({"a": (1, 2), "b": Point(3, 4)})
    same = tree_structure({"a": ("x", "y"), "b": Point("p", "q")})
    cache = {spec: "compiled"}
    assert cache[same] == "compiled"
    assert spec != tree_structure({"a": [1, 2], "b": Point(3, 4)})  # list vs tuple
    assert spec != tree_structure({"a": (1, 2), "b": (3, 4)})  # namedtuple vs tuple
    assert tree_structure({"a": 1, "b": 2}) != tree_structure({"b": 2, "a": 1})
    assert spec != "not a spec"
    with pytest.raises(AttributeError):
        spec.kind = "list"
    with pytest.raises(AttributeError):
        del spec.children
    # Copies of an immutable value are the value (deepcopy of a GraphModule relies on it).
    assert copy.copy(spec) is spec and copy.deepcopy({"k": spec})["k"] is spec


def test_unflatten_wrong_count():
    spec = tree_structure((1, [2, 3]))
    with pytest.raises(ArgumentError, match="expected 3 leaves, got 2"):
        tree_unflatten(spec, [1, 2])
    with pytest.raises(ArgumentError, match="must be a TreeSpec"):
        tree_unflatten([1], [1])


def test_tree_map():
    a = {"w": np.ones(2), "b": (1.0, None)}
    b = {"b": (2.0, None), "w": np.full(2, 3.0)}  # other insertion order is fine
    out = tree_map(lambda x, y: x * y, a, b)
    assert list(out) == ["w", "b"]
    np.testing.assert_array_equal(out["w"], [3.0, 3.0])
    assert out["b"] == (2.0, None)
    with pytest.raises(ArgumentError, match="tree 1 has structure"):
        tree_map(lambda x, y: x, (1, 2), [1, 2])
    with pytest.raises(ArgumentError, match="tree 2 has structure"):
        tree_map(lambda *xs: 0, {"a": 1}, {"a": 2}, {"b": 3})


def test_json_key_types_come_back():
    tree = {7: "a", "1": "b", 2.5: "c", True: "d", None: "e", float("inf"): "f"}
    spec = tree_structure(tree)
    text = spec.to_json()
    again = TreeSpec.from_json(text)
    assert again == spec and again.to_json() == text
    back = tree_unflatten(again, list("abcdef"))
    assert [type(k) for k in back] == [int, str, float, bool, type(None), float]


def test_json_is_canonical_text():
    text = tree_structure({"b": 1, "a": [2]}).to_json()
    doc = json.loads(text)
    assert doc["format"] == "kiln.treespec" and doc["version"] == 1
    assert doc["tree"] == {
        "kind": "dict",
        "keys": ["a", "b"],
        "order": [1, 0],
        "children": [{"kind": "list", "children": ["*"]}, "*"],
    }


def test_json_unwritable():
    with pytest.raises(SerializationError, match="dict key tuple"):
        tree_structure({(1, 2): 3}).to_json()

    class Odd:
        pass

    register_pytree_node(Odd, lambda o: ([], frozenset()), lambda c, ch: Odd(), "test.Odd")
    with pytest.raises(SerializationError, match="context frozenset .* 'test.Odd'"):
        tree_structure(Odd()).to_json()


def test_from_json_needs_known_types():
    def make():
        return namedtuple("Hidden", "a")  # noqa: PYI024

    hidden = make()
    text = json.dumps(
        {
            "format": "kiln.treespec",
            "version": 1,
            "tree": {"kind": "namedtuple", "type": "elsewhere.Hidden", "fields": ["a"],
                     "children": ["*"]},
        }
    )  # fmt: skip
    with pytest.raises(SerializationError, match=r"pass types=\{'elsewhere.Hidden': TheClass\}"):
        TreeSpec.from_json(text)
    spec = TreeSpec.from_json(text, types={"elsewhere.Hidden": hidden})
    assert tree_unflatten(spec, [1]) == hidden(1)

    @dataclasses.dataclass
    class Changed:
        a: int
        extra: int

    with pytest.raises(SerializationError, match="has fields"):
        TreeSpec.from_json(text.replace("namedtuple", "dataclass"), types={
            "elsewhere.Hidden": Changed})  # fmt: skip
    with pytest.raises(SerializationError, match="not a namedtuple type"):
        TreeSpec.from_json(text, types={"elsewhere.Hidden": Changed})


def test_from_json_never_imports():
    doc = {
        "format": "kiln.treespec",
        "version": 1,
        "tree": {"kind": "dataclass", "type": "antigravity.Fly", "fields": [], "children": []},
    }
    assert "antigravity" not in sys.modules
    with pytest.raises(SerializationError, match="unknown dataclass type"):
        TreeSpec.from_json(json.dumps(doc))
    assert "antigravity" not in sys.modules


def test_flatten_registers_seen_types():
    @dataclasses.dataclass
    class Local:
        v: object

    text = tree_structure(Local(1)).to_json()
    assert tree_unflatten(TreeSpec.from_json(text), [2]) == Local(2)


def _doc(tree, version=1):
    return json.dumps({"format": "kiln.treespec", "version": version, "tree": tree})


@pytest.mark.parametrize(
    "text, match",
    [
        ("not json", "not valid JSON"),
        ("[1]", "expected format"),
        (_doc("*", version=2), "expected format 'kiln.treespec' version 1"),
        (_doc({"kind": "set", "children": []}), "malformed node at tree"),
        (_doc({"kind": "none", "children": ["*"]}), "malformed"),
        (_doc({"kind": "tuple", "children": "*"}), "malformed"),
        (_doc({"kind": "list", "children": [{"kind": "oops"}]}), r"tree\.children\[0\]"),
        (_doc({"kind": "dict", "keys": ["a"], "order": [0], "children": []}), "malformed"),
        (_doc({"kind": "dict", "keys": ["a", "b"], "order": [0, 0], "children": ["*", "*"]}),
         "malformed"),
        (_doc({"kind": "dict", "keys": ["a"], "order": [0.0], "children": ["*"]}), "malformed"),
        (_doc({"kind": "dict", "keys": ["a", "a"], "order": [0, 1], "children": ["*", "*"]}),
         "malformed"),
        (_doc({"kind": "dict", "keys": [{"int": "1"}], "order": [0], "children": ["*"]}),
         "malformed"),
        (_doc({"kind": "dict", "keys": [{"list": [1]}], "order": [0], "children": ["*"]}),
         "malformed"),
        (_doc({"kind": "list", "children": [], "extra": 1}), "malformed"),
        (_doc({"kind": "custom", "type": "no.such", "context": None, "children": []}),
         "unknown custom type 'no.such'.*register_pytree_node"),
    ],
)  # fmt: skip
def test_from_json_errors(text, match):
    with pytest.raises(SerializationError, match=match):
        TreeSpec.from_json(text)


# Random trees: containers of every kind over int/str/float leaves (no NaN, so == works).
leaves = st.integers() | st.text(max_size=3) | st.floats(allow_nan=False)
keys = st.text(max_size=3) | st.integers(-3, 3) | st.floats(allow_nan=False) | st.none()


def containers(inner):
    return st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(keys, inner, max_size=3),
        st.dictionaries(st.text(max_size=2), inner, max_size=3).map(OrderedDict),
        st.builds(Point, inner, inner),
        st.builds(Batch, inner, inner),
        st.builds(lambda a, b: Box([a, b], "tag"), inner, inner),
        st.none(),
    )


trees = st.recursive(leaves, containers, max_leaves=12)


@given(trees)
def test_random_round_trips(tree):
    flat, spec = tree_flatten(tree)
    assert spec.num_leaves == len(flat)
    assert deep_equal(tree_unflatten(spec, flat), tree)
    assert deep_equal(tree_map(lambda x: x, tree), tree)
    assert tree_structure(tree_unflatten(spec, flat)) == spec
    text = spec.to_json()
    again = TreeSpec.from_json(text)
    assert again == spec and hash(again) == hash(spec)
    assert again.to_json() == text
    assert deep_equal(tree_unflatten(again, flat), tree)


def test_from_json_rejects_type_on_plain_nodes():
    with pytest.raises(SerializationError, match="malformed"):
        TreeSpec.from_json(_doc({"kind": "list", "type": "builtins.list", "children": []}))
