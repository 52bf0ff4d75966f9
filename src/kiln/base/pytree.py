"""Pytrees: nested containers flattened into a list of leaves and a :class:`TreeSpec`.

Containers (nodes) are tuple, list, dict, ``collections.OrderedDict``, namedtuples (any
tuple subclass with ``_fields``), dataclass instances (their ``init=True`` fields), None
(a node with no children, not a leaf) and types given to :func:`register_pytree_node`.
Everything else (tensors, arrays, numbers, strings, other tuple subclasses) is a leaf.

Dict leaves come in sorted key order when the keys sort (insertion order otherwise), so
``{"b": x, "a": y}`` flattens to ``[y, x]``; the spec records the insertion order, and
unflatten restores it. Two dicts with the same keys in different insertion order
therefore have different specs (the rebuilt dicts differ), but :func:`tree_map` accepts
them together.

A ``TreeSpec`` is immutable and hashable (a compile-cache key ingredient) and writes to
canonical JSON. Namedtuple and dataclass types are written by ``module.qualname`` and
read back only through types this process has flattened or a ``types=`` mapping:
nothing is ever imported or evaluated from JSON.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from kiln.base import canonical
from kiln.errors import ArgumentError, SerializationError, describe

JSON_FORMAT = "kiln.treespec"
JSON_VERSION = 1
_NoneType = type(None)
_BUILTIN_NODES = (tuple, list, dict, OrderedDict, _NoneType)


class _Custom:
    """A registered node type (a plain class: a NamedTuple type costs import time)."""

    __slots__ = ("name", "flatten", "unflatten")

    def __init__(self, name: str, flatten: Callable[[Any], tuple[Iterable[Any], Hashable]],
                 unflatten: Callable[[Any, list[Any]], Any]) -> None:
        self.name = name
        self.flatten = flatten
        self.unflatten = unflatten


_CUSTOM: dict[type, _Custom] = {}
_CUSTOM_BY_NAME: dict[str, type] = {}
# Namedtuple and dataclass types met by tree_flatten, by type name; from_json resolves
# names here. A later class with the same name (e.g. redefined in a function) wins.
_SEEN: dict[str, type] = {}


class TreeSpec:
    """The structure of a pytree: node kinds, types, keys and where the leaves go.

    Attributes: ``kind`` (one of ``leaf none tuple list dict odict namedtuple dataclass
    custom``), ``type`` (the node's class), ``context`` (keys, field names or a custom
    node's context; for dict ``(keys in leaf order, order)`` where ``order`` indexes
    those keys in insertion order), ``children`` (TreeSpecs) and ``num_leaves``.

    >>> spec = tree_structure({"b": (1, 2), "a": None})
    >>> spec.num_leaves, str(spec)
    (2, "TreeSpec({'b': (*, *), 'a': None})")
    >>> TreeSpec.from_json(spec.to_json()) == spec
    True
    """

    __slots__ = ("kind", "type", "context", "children", "num_leaves", "_hash")

    def __init__(
        self, kind: str, type_: type | None, context: Any, children: tuple[TreeSpec, ...]
    ) -> None:
        try:
            h = hash((kind, type_, context, children))
        except TypeError:
            raise ArgumentError(
                f"pytree node {kind} {type_!r}: context {describe(context)} is not hashable"
            ) from None
        leaves = 1 if kind == "leaf" else sum(c.num_leaves for c in children)
        for slot, value in zip(
            self.__slots__, (kind, type_, context, children, leaves, h), strict=True
        ):
            object.__setattr__(self, slot, value)

    def __setattr__(self, *_: Any) -> None:
        raise AttributeError("TreeSpec is immutable")

    __delattr__ = __setattr__

    # An immutable value: copies are the spec itself (copy.deepcopy of a GraphModule or a
    # compiled model would otherwise trip over __setattr__).
    def __copy__(self) -> TreeSpec:
        return self

    def __deepcopy__(self, memo: dict) -> TreeSpec:
        return self

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TreeSpec):
            return NotImplemented
        return self is other or (
            self._hash == other._hash
            and (self.kind, self.type, self.context, self.children)
            == (other.kind, other.type, other.context, other.children)
        )

    def __str__(self) -> str:
        return f"TreeSpec({_render(self)})"

    __repr__ = __str__

    def to_json(self) -> str:
        """Canonical JSON text of this spec (see :meth:`from_json`).

        >>> tree_structure([1, {"k": 2}]).to_json()  # doctest: +ELLIPSIS
        '{"format":"kiln.treespec","tree":{"children":["*",{"children":["*"],...'
        """
        tree = _to_json(self)
        return canonical.dumps({"format": JSON_FORMAT, "version": JSON_VERSION, "tree": tree})

    @classmethod
    def from_json(cls, s: str, types: Mapping[str, type] | None = None) -> TreeSpec:
        """Read a spec written by :meth:`to_json`.

        Namedtuple, dataclass and custom node types are looked up by name in ``types``,
        then among types this process has flattened (or registered).

        >>> from collections import namedtuple
        >>> P = namedtuple("P", "x y")
        >>> text = tree_structure(P(1, 2)).to_json()
        >>> TreeSpec.from_json(text, types={"kiln.base.pytree.P": P}).type is P
        True
        """
        try:
            doc = canonical.loads(s)
        except (SerializationError, ArgumentError) as e:
            raise SerializationError(f"TreeSpec.from_json: {e}") from e
        header = (doc.get("format"), doc.get("version")) if isinstance(doc, dict) else None
        if header != (JSON_FORMAT, JSON_VERSION):
            raise SerializationError(
                f"TreeSpec.from_json: expected format {JSON_FORMAT!r} version {JSON_VERSION}, "
                f"got {header!r:.80}"
            )
        return _from_json(doc.get("tree"), dict(types or {}), "tree")


_LEAF = TreeSpec("leaf", None, None, ())


def register_pytree_node(
    type_: type,
    flatten_fn: Callable[[Any], tuple[Iterable[Any], Hashable]],
    unflatten_fn: Callable[[Any, list[Any]], Any],
    name: str,
) -> None:
    """Make ``type_`` a pytree node.

    ``flatten_fn(x) -> (children, context)``; ``unflatten_fn(context, children) -> x``.
    ``context`` must be hashable, and for ``to_json`` built of None, bool, int, float,
    str and tuples. ``name`` identifies the type in JSON.

    >>> class Pair:
    ...     def __init__(self, a, b):
    ...         self.a, self.b = a, b
    >>> register_pytree_node(Pair, lambda p: ((p.a, p.b), None),
    ...                      lambda ctx, ch: Pair(*ch), "doctest.Pair")
    >>> tree_leaves([Pair(1, 2), 3])
    [1, 2, 3]
    """
    if not isinstance(type_, type):
        raise ArgumentError(f"register_pytree_node: type_ must be a class, got {describe(type_)}")
    if type_ in _BUILTIN_NODES or type_ in _CUSTOM:
        raise ArgumentError(f"register_pytree_node: {type_.__qualname__} is already a node")
    if not isinstance(name, str) or not name:
        raise ArgumentError(f"register_pytree_node: name must be a non-empty str, got {name!r}")
    previous = _CUSTOM_BY_NAME.get(name)
    if previous is not None:
        # A class redefined under the same qualified name (module reload, a class made
        # in a function) takes the name over; a different class may not.
        if _type_name(previous) != _type_name(type_):
            raise ArgumentError(f"register_pytree_node: name {name!r} is taken by {previous!r}")
        del _CUSTOM[previous]
    if not (callable(flatten_fn) and callable(unflatten_fn)):
        raise ArgumentError("register_pytree_node: flatten_fn and unflatten_fn must be callable")
    _CUSTOM[type_] = _Custom(name, flatten_fn, unflatten_fn)
    _CUSTOM_BY_NAME[name] = type_


def tree_flatten(
    tree: Any, is_leaf: Callable[[Any], bool] | None = None
) -> tuple[list[Any], TreeSpec]:
    """Flatten ``tree`` into its leaves (left to right) and its structure.

    ``is_leaf(x)`` returning True stops the descent at ``x``.

    >>> tree_flatten((1, [2, None], {"b": 3, "a": 4}))[0]
    [1, 2, 4, 3]
    """
    leaves: list[Any] = []
    return leaves, _flatten(tree, is_leaf, leaves)


def tree_unflatten(spec: TreeSpec, leaves: Iterable[Any]) -> Any:
    """Rebuild a tree of structure ``spec`` from ``leaves``.

    >>> leaves, spec = tree_flatten({"b": 1, "a": [2]})
    >>> tree_unflatten(spec, [10, 20])
    {'b': 20, 'a': [10]}
    """
    if not isinstance(spec, TreeSpec):
        raise ArgumentError(f"tree_unflatten: spec must be a TreeSpec, got {describe(spec)}")
    leaves = list(leaves)
    if len(leaves) != spec.num_leaves:
        text = str(spec)
        text = text if len(text) <= 200 else text[:197] + "..."
        raise ArgumentError(
            f"tree_unflatten: expected {spec.num_leaves} leaves, got {len(leaves)} (spec {text})"
        )
    return _build(spec, iter(leaves))


def tree_map(
    fn: Callable[..., Any],
    tree: Any,
    *rest: Any,
    is_leaf: Callable[[Any], bool] | None = None,
) -> Any:
    """Apply ``fn`` to the leaves of ``tree`` (and the matching leaves of ``rest``).

    Every tree in ``rest`` must have the structure of ``tree`` (dict insertion order
    may differ); the result has the structure of ``tree``.

    >>> tree_map(lambda x, y: x + y, {"a": 1, "b": (2,)}, {"b": (20,), "a": 10})
    {'a': 11, 'b': (22,)}
    """
    leaves, spec = tree_flatten(tree, is_leaf)
    columns = [leaves]
    for i, other in enumerate(rest, start=1):
        other_leaves, other_spec = tree_flatten(other, is_leaf)
        if not _same_structure(spec, other_spec):
            raise ArgumentError(
                f"tree_map: tree {i} has structure {other_spec}, but tree 0 has {spec}"
            )
        columns.append(other_leaves)
    return _build(spec, iter([fn(*xs) for xs in zip(*columns, strict=True)]))


def tree_leaves(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list[Any]:
    """The leaves of ``tree``, left to right.

    >>> tree_leaves([1, (None, "s"), {"z": 2, "y": 3}])
    [1, 's', 3, 2]
    """
    return tree_flatten(tree, is_leaf)[0]


def tree_structure(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> TreeSpec:
    """The :class:`TreeSpec` of ``tree``.

    >>> tree_structure((1, [2])) == tree_structure(("a", ["b"]))
    True
    """
    return tree_flatten(tree, is_leaf)[1]


def _type_name(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"


def _sorted_keys(keys: list[Any]) -> list[Any]:
    try:
        return sorted(keys)
    except TypeError:  # mixed key types: keep insertion order, still deterministic
        return keys


def _flatten(node: Any, is_leaf: Callable[[Any], bool] | None, leaves: list[Any]) -> TreeSpec:
    if is_leaf is not None and is_leaf(node):
        leaves.append(node)
        return _LEAF
    t = type(node)
    context: Any = None
    if node is None:
        return TreeSpec("none", _NoneType, None, ())
    if t is tuple or t is list:
        kind, children = t.__name__, node
    elif t is dict:
        keys = list(node)
        ordered = _sorted_keys(keys)
        index = {k: i for i, k in enumerate(ordered)}
        kind, children = "dict", [node[k] for k in ordered]
        context = (tuple(ordered), tuple(index[k] for k in keys))
    elif t is OrderedDict:
        kind, children, context = "odict", list(node.values()), tuple(node)
    elif t in _CUSTOM:
        kind = "custom"
        children, context = _CUSTOM[t].flatten(node)
    elif isinstance(node, tuple) and hasattr(t, "_fields"):
        _SEEN[_type_name(t)] = t
        kind, children, context = "namedtuple", node, tuple(t._fields)
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        _SEEN[_type_name(t)] = t
        context = tuple(f.name for f in dataclasses.fields(node) if f.init)
        kind, children = "dataclass", [getattr(node, name) for name in context]
    else:
        leaves.append(node)
        return _LEAF
    specs = tuple(_flatten(c, is_leaf, leaves) for c in children)
    return TreeSpec(kind, t, context, specs)


def _build(spec: TreeSpec, leaves: Any) -> Any:
    kind = spec.kind
    if kind == "leaf":
        return next(leaves)
    children = [_build(c, leaves) for c in spec.children]
    if kind == "none":
        return None
    if kind == "tuple":
        return tuple(children)
    if kind == "list":
        return children
    if kind == "dict":
        keys, order = spec.context
        return {keys[i]: children[i] for i in order}
    if kind == "odict":
        return OrderedDict(zip(spec.context, children, strict=True))
    if kind == "namedtuple":
        return spec.type(*children)
    if kind == "dataclass":
        return spec.type(**dict(zip(spec.context, children, strict=True)))
    return _CUSTOM[spec.type].unflatten(spec.context, children)


def _same_structure(a: TreeSpec, b: TreeSpec) -> bool:
    if a is b:
        return True
    if a.kind != b.kind or a.type is not b.type or len(a.children) != len(b.children):
        return False
    # Dicts: leaves follow the sorted keys, so insertion order does not matter here.
    same_context = a.context[0] == b.context[0] if a.kind == "dict" else a.context == b.context
    return same_context and all(map(_same_structure, a.children, b.children))


def _render(spec: TreeSpec) -> str:
    kind = spec.kind
    if kind == "leaf":
        return "*"
    if kind == "none":
        return "None"
    parts = [_render(c) for c in spec.children]
    if kind == "tuple":
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
    if kind == "list":
        return "[" + ", ".join(parts) + "]"
    if kind == "dict":
        keys, order = spec.context
        return "{" + ", ".join(f"{keys[i]!r}: {parts[i]}" for i in order) + "}"
    if kind == "odict":
        items = ", ".join(f"{k!r}: {p}" for k, p in zip(spec.context, parts, strict=True))
        return "OrderedDict({" + items + "})"
    if kind in ("namedtuple", "dataclass"):
        fields = ", ".join(f"{n}={p}" for n, p in zip(spec.context, parts, strict=True))
        return f"{spec.type.__name__}({fields})"
    return f"{_CUSTOM[spec.type].name}[{spec.context!r}](" + ", ".join(parts) + ")"


# JSON: a leaf is "*"; a node is {"kind": ..., "children": [...], ...}. Dict keys that
# are not str are written as {"int": 1}, {"float": "1.5"}, {"bool": true}, {"none": null}
# so they come back with their type.
_KEY_TYPES: dict[type, str] = {int: "int", float: "float", bool: "bool", _NoneType: "none"}
_PLAIN = dict(none=_NoneType, tuple=tuple, list=list, dict=dict, odict=OrderedDict)


def _key_to_json(key: Any) -> Any:
    t = type(key)
    if t is str:
        return key
    if t not in _KEY_TYPES:
        raise SerializationError(
            f"TreeSpec.to_json: dict key {describe(key)} cannot be written; "
            "keys must be str, int, float, bool or None"
        )
    return {_KEY_TYPES[t]: repr(key) if t is float else key}


def _key_from_json(obj: Any) -> Any:
    if isinstance(obj, str):
        return obj
    ((tag, value),) = obj.items()  # malformed shapes raise, and _from_json reports them
    return float(value) if tag == "float" else value


def _context_to_json(ctx: Any, name: str) -> Any:
    if ctx is None or type(ctx) in (bool, int, float, str):
        return ctx
    if type(ctx) is tuple:
        return [_context_to_json(c, name) for c in ctx]
    raise SerializationError(
        f"TreeSpec.to_json: context {describe(ctx)} of node {name!r} cannot be written; "
        "use None, bool, int, float, str and tuples of them"
    )


def _context_from_json(obj: Any) -> Any:
    # Lists were tuples (contexts are hashable, so they hold no lists).
    return tuple(_context_from_json(c) for c in obj) if isinstance(obj, list) else obj


def _to_json(spec: TreeSpec, deep: bool = True) -> Any:
    kind = spec.kind
    if kind == "leaf":
        return "*"
    node: dict[str, Any] = {"kind": kind}
    if deep:
        node["children"] = [_to_json(c) for c in spec.children]
    if kind == "dict":
        keys, order = spec.context
        node["keys"] = [_key_to_json(k) for k in keys]
        node["order"] = list(order)
    elif kind == "odict":
        node["keys"] = [_key_to_json(k) for k in spec.context]
    elif kind in ("namedtuple", "dataclass"):
        node["type"] = _type_name(spec.type)
        node["fields"] = list(spec.context)
    elif kind == "custom":
        node["type"] = _CUSTOM[spec.type].name
        node["context"] = _context_to_json(spec.context, node["type"])
    return node


def _arity(spec: TreeSpec) -> int | None:
    """How many children the node's context calls for (None: any number)."""
    if spec.kind in ("tuple", "list", "custom"):
        return None
    if spec.kind == "none":
        return 0
    keys = spec.context[0] if spec.kind == "dict" else spec.context
    return len(keys) if len(set(keys)) == len(keys) else -1


def _init_fields(t: type) -> tuple[str, ...]:
    if issubclass(t, tuple):
        return tuple(t._fields)
    return tuple(f.name for f in dataclasses.fields(t) if f.init)


def _resolve(name: str, kind: str, types: dict[str, type], where: str) -> type:
    found = types.get(name) or (_CUSTOM_BY_NAME if kind == "custom" else _SEEN).get(name)
    if found is None:
        how = " after register_pytree_node" if kind == "custom" else ""
        raise SerializationError(
            f"TreeSpec.from_json: unknown {kind} type {name!r} at {where}; pass "
            f"types={{{name!r}: TheClass}}{how}, or flatten a value of that type in this "
            "process first"
        )
    if kind == "custom":
        ok = found in _CUSTOM
    elif kind == "namedtuple":
        ok = isinstance(found, type) and issubclass(found, tuple) and hasattr(found, "_fields")
    else:
        ok = isinstance(found, type) and dataclasses.is_dataclass(found)
    if not ok:
        raise SerializationError(
            f"TreeSpec.from_json: {name!r} at {where} is {found!r}, not a {kind} type"
        )
    return found


def _from_json(obj: Any, types: dict[str, type], where: str) -> TreeSpec:
    if obj == "*":
        return _LEAF
    try:
        kind = obj["kind"]
        if not isinstance(obj["children"], list):
            raise TypeError("children must be a list")
        children = tuple(
            _from_json(c, types, f"{where}.children[{i}]") for i, c in enumerate(obj["children"])
        )
        context: Any = None
        if kind in ("namedtuple", "dataclass", "custom"):
            t = _resolve(obj["type"], kind, types, where)
            if kind == "custom":
                context = _context_from_json(obj.get("context"))
            else:
                context = _init_fields(t)
                if obj["fields"] != list(context):
                    raise SerializationError(
                        f"TreeSpec.from_json: {obj['type']!r} at {where} has fields "
                        f"{obj['fields']}, but the class here has {list(context)}"
                    )
        else:
            t = _PLAIN[kind]
        if kind in ("dict", "odict"):
            context = tuple(_key_from_json(k) for k in obj["keys"])
            if kind == "dict":
                order = tuple(obj["order"])
                if sorted(order) != list(range(len(context))) or {type(i) for i in order} - {int}:
                    raise ValueError("order is not a permutation of the keys")
                context = (context, order)
        spec = TreeSpec(kind, t, context, children)
        # Re-encoding must give back the node: this checks key types, counts and
        # leftovers in one place. (A type found under another name via types= is fine.)
        expected = _to_json(spec, False)
        if "type" in expected:
            expected["type"] = obj["type"]
        consistent = {k: v for k, v in obj.items() if k != "children"} == expected
    except SerializationError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, ArgumentError):
        consistent = False
    if not consistent or _arity(spec) not in (None, len(children)):
        raise SerializationError(f"TreeSpec.from_json: malformed node at {where}: {obj!r:.100}")
    return spec
