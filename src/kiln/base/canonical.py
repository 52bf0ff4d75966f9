"""Canonical JSON: one text per value, so that equal values hash equal.

Graphs, tree specs and cache keys are written with :func:`dumps` and hashed with
:func:`digest`. The form is:

- object keys sorted (by code point), no whitespace, ASCII only (``\\uXXXX`` escapes);
- floats written with ``repr``, so they read back bit for bit (``-0.0`` included);
- NaN and infinities, which JSON lacks, as ``{"__float__": "nan" | "inf" | "-inf"}``;
- tuples written as lists; NumPy scalars as the Python number they hold.

:func:`loads` inverts :func:`dumps` (tuples come back as lists). Values that could not
come back the same (non-str keys, sets, bytes, cycles, a dict that looks like the float
wrapper) are refused with an :class:`~kiln.errors.ArgumentError` naming where they are.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from kiln.errors import ArgumentError, SerializationError, describe

__all__ = ["dumps", "loads", "digest", "digest_loaded", "loaded_text", "object_text"]

FLOAT_KEY = "__float__"
_SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class _BadValue(Exception):
    """Internal: an unencodable value; ``path`` is filled in while unwinding."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []


def dumps(obj: Any) -> str:
    """Return the canonical JSON text of ``obj``.

    >>> dumps({"b": 1.5, "a": (1, None, "é")})
    '{"a":[1,null,"\\\\u00e9"],"b":1.5}'
    >>> dumps([float("nan"), -0.0])
    '[{"__float__":"nan"},-0.0]'
    """
    out: list[str] = []
    try:
        _encode(obj, out, set())
    except _BadValue as e:
        where = "obj" + "".join(reversed(e.path))
        raise ArgumentError(f"canonical.dumps: {e.message} at {where}") from None
    return "".join(out)


def loads(s: str | bytes) -> Any:
    """Parse canonical JSON back into Python values (lists, dicts, str, int, float, ...).

    >>> loads('{"a":[1,{"__float__":"-inf"}]}')
    {'a': [1, -inf]}
    >>> loads(dumps({"x": 0.1})) == {"x": 0.1}
    True
    """
    if not isinstance(s, (str, bytes, bytearray)):
        raise ArgumentError(f"canonical.loads: expected str or bytes, got {describe(s)}")
    try:
        fast = _loads_canonical(s)
        if fast is not _NOT_CANONICAL:
            return fast
        return json.loads(s, object_pairs_hook=_object_hook, parse_constant=_bare_constant)
    except SerializationError:
        raise
    except (ValueError, RecursionError) as e:
        raise SerializationError(f"canonical.loads: not valid JSON: {e}") from e


_NOT_CANONICAL = object()


def _loads_canonical(s: str | bytes | bytearray) -> Any:
    """What :func:`dumps` wrote, parsed without a Python hook per object (the hook is most
    of the time of a load): the float wrappers become JSON's bare tokens for the C parser,
    and when the value re-encodes to exactly that text, ``s`` had no duplicate keys and no
    other wrapper, so the hook would have changed nothing. ``_NOT_CANONICAL`` for any other
    text (bare tokens of its own included), which the checked parse then reads."""
    if not isinstance(s, str):
        try:
            s = bytes(s).decode("utf-8")  # its codec is always loaded, the ASCII one is not
        except UnicodeDecodeError:
            return _NOT_CANONICAL
    if not s.isascii():
        return _NOT_CANONICAL
    if "NaN" in s or "Infinity" in s:
        return _NOT_CANONICAL
    text = s
    if FLOAT_KEY in text:
        for bare, wrapped in _WRAPPED.items():
            text = text.replace(wrapped, bare)
        if FLOAT_KEY in text:
            return _NOT_CANONICAL
    value = json.loads(text)
    try:
        same = _LOADED_ENCODER.encode(value) == text
    except (ValueError, TypeError):
        return _NOT_CANONICAL
    return value if same else _NOT_CANONICAL


def digest(obj: Any) -> str:
    """SHA-256 hex digest of ``dumps(obj)``; the hash used in cache keys.

    >>> digest({"a": 1}) == digest({"a": 1})
    True
    >>> len(digest([]))
    64
    """
    return hashlib.sha256(dumps(obj).encode("ascii")).hexdigest()


# json's C encoder writes the canonical form of what loads() returns: str keys (sorted by
# code point, as sorted() does), lists, float.__repr__ for floats, and NaN/Infinity as bare
# tokens that _special_floats rewrites. It does not refuse what dumps() refuses (int keys
# become strings), so it is only for values that came out of loads().
_LOADED_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)
# A JSON string literal, captured: re.split on it leaves the text between literals at the
# even positions, where bare non-finite tokens can be.
_STRING_LITERAL = r'("(?:[^"\\]|\\.)*")'  # compiled on first use (re's cache)
_WRAPPED = {"NaN": '{"__float__":"nan"}', "Infinity": '{"__float__":"inf"}',
            "-Infinity": '{"__float__":"-inf"}'}


def _special_floats(text: str) -> str:
    if "NaN" not in text and "Infinity" not in text:
        return text
    # Splitting (in C) and replacing only between literals: a regex callback per string
    # literal took milliseconds on a graph's JSON.
    parts = re.split(_STRING_LITERAL, text)
    for i in range(0, len(parts), 2):
        part = parts[i]
        if "NaN" in part or "Infinity" in part:
            parts[i] = (part.replace("-Infinity", _WRAPPED["-Infinity"])
                        .replace("Infinity", _WRAPPED["Infinity"])
                        .replace("NaN", _WRAPPED["NaN"]))
    return "".join(parts)


def digest_loaded(obj: Any) -> str:
    """:func:`digest` of a value :func:`loads` returned (or one assembled from such values),
    several times faster: loaders that check a stored digest use it.

    >>> value = loads(dumps({"b": [1.5, float("nan"), float("-inf")], "a": "NaN é"}))
    >>> digest_loaded(value) == digest(value)
    True
    """
    return hashlib.sha256(loaded_text(obj).encode("ascii")).hexdigest()


def loaded_text(obj: Any) -> str:
    """:func:`dumps` of a value :func:`loads` returned, written by json's C encoder.

    >>> loaded_text(loads('{"b":[1,{"__float__":"inf"}],"a":"x"}'))
    '{"a":"x","b":[1,{"__float__":"inf"}]}'
    """
    try:
        return _special_floats(_LOADED_ENCODER.encode(obj))
    except (ValueError, TypeError):  # not a loaded value (a cycle, a NumPy scalar...)
        return dumps(obj)


def object_text(members: dict[str, str]) -> str:
    """:func:`dumps` of an object, given the canonical text of each member's value: a
    loader that hashes both an object and one of its members encodes that member once.

    >>> value = {"g": [1, 2], "v": 3}
    >>> object_text({k: dumps(v) for k, v in value.items()}) == dumps(value)
    True
    """
    return "{" + ",".join(f"{json.dumps(k, ensure_ascii=True)}:{members[k]}"
                          for k in sorted(members)) + "}"


def _encode(obj: Any, out: list[str], active: set[int]) -> None:
    # Order matters: bool is an int subclass, np.float64 a float subclass.
    if obj is None:
        out.append("null")
    elif obj is True or obj is False:
        out.append("true" if obj else "false")
    elif isinstance(obj, str):
        out.append(json.dumps(obj, ensure_ascii=True))
    elif isinstance(obj, int):
        # int.__repr__, not str(): an IntEnum's str() is its name.
        out.append(int.__repr__(obj))
    elif isinstance(obj, float):
        _encode_float(float(obj), out)
    elif isinstance(obj, (list, tuple)):
        _enter(obj, active)
        out.append("[")
        for i, item in enumerate(obj):
            if i:
                out.append(",")
            try:
                _encode(item, out, active)
            except _BadValue as e:
                e.path.append(f"[{i}]")
                raise
        out.append("]")
        active.discard(id(obj))
    elif isinstance(obj, Mapping):
        _encode_mapping(obj, out, active)
    elif isinstance(obj, np.bool_):
        out.append("true" if obj else "false")
    elif isinstance(obj, np.integer):
        out.append(int.__repr__(int(obj)))
    elif isinstance(obj, np.floating):
        _encode_float(float(obj), out)
    else:
        raise _BadValue(f"{describe(obj)} has no canonical JSON form")


def _encode_float(x: float, out: list[str]) -> None:
    if math.isfinite(x):
        out.append(float.__repr__(x))
    elif x != x:
        out.append('{"__float__":"nan"}')
    else:
        out.append('{"__float__":"inf"}' if x > 0 else '{"__float__":"-inf"}')


def _encode_mapping(obj: Mapping, out: list[str], active: set[int]) -> None:
    for key in obj:
        if not isinstance(key, str):
            # json.dumps would silently turn 1 into "1"; then loads could not invert it.
            raise _BadValue(f"dict key {describe(key)} is not a str")
    if len(obj) == 1 and FLOAT_KEY in obj:
        raise _BadValue(f"a dict whose only key is {FLOAT_KEY!r} is reserved for NaN/inf")
    _enter(obj, active)
    out.append("{")
    for i, key in enumerate(sorted(obj)):
        if i:
            out.append(",")
        out.append(json.dumps(key, ensure_ascii=True))
        out.append(":")
        try:
            _encode(obj[key], out, active)
        except _BadValue as e:
            e.path.append(f"[{key!r}]")
            raise
    out.append("}")
    active.discard(id(obj))


def _enter(obj: object, active: set[int]) -> None:
    if id(obj) in active:
        raise _BadValue("circular reference")
    active.add(id(obj))


def _object_hook(pairs: list[tuple[str, Any]]) -> Any:
    if len(pairs) == 1 and pairs[0][0] == FLOAT_KEY:
        value = pairs[0][1]
        if isinstance(value, str) and value in _SPECIAL:
            return _SPECIAL[value]
        raise SerializationError(
            f"canonical.loads: bad float wrapper {{{FLOAT_KEY!r}: {value!r}}}; "
            "expected 'nan', 'inf' or '-inf'"
        )
    result = dict(pairs)
    if len(result) != len(pairs):
        names = [k for k, _ in pairs]
        dup = next(k for k in names if names.count(k) > 1)
        raise SerializationError(f"canonical.loads: duplicate object key {dup!r}")
    return result


def _bare_constant(name: str) -> Any:
    raise SerializationError(
        f"canonical.loads: bare {name} is not JSON; canonical JSON writes "
        f'{{"{FLOAT_KEY}": "nan"}} (or "inf", "-inf") instead'
    )
