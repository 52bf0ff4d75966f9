"""Tests for kiln.base.canonical: one text per value, exact float round trips."""

from __future__ import annotations

import enum
import hashlib
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiln.base.canonical import digest, digest_loaded, dumps, loads
from kiln.errors import ArgumentError, SerializationError

# JSON-like values; tuples are allowed on the way in and come back as lists.
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=6), inner, max_size=4).filter(
        lambda d: list(d) != ["__float__"]
    ),
    max_leaves=20,
)


def as_lists(x):
    """What loads returns for x: tuples become lists."""
    if isinstance(x, (list, tuple)):
        return [as_lists(v) for v in x]
    if isinstance(x, dict):
        return {k: as_lists(v) for k, v in x.items()}
    return x


def same(a, b) -> bool:
    """Equality that treats NaN as equal to NaN and tells -0.0 from 0.0."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def test_form_is_sorted_compact_ascii():
    text = dumps({"b": [1, 2.0], "a": {"y": None, "x": True}, "é": "☃"})
    assert text == '{"a":{"x":true,"y":null},"b":[1,2.0],"\\u00e9":"\\u2603"}'
    assert text.isascii()


@pytest.mark.parametrize(
    "x, text",
    [
        (0.1, "0.1"),
        (-0.0, "-0.0"),
        (1e16, "1e+16"),
        (5e-324, "5e-324"),
        (float("nan"), '{"__float__":"nan"}'),
        (float("inf"), '{"__float__":"inf"}'),
        (float("-inf"), '{"__float__":"-inf"}'),
    ],
)
def test_floats(x, text):
    assert dumps(x) == text
    assert same(loads(text), x)


def test_int_and_float_stay_apart():
    assert loads(dumps([1, 1.0])) == [1, 1.0]
    assert [type(v) for v in loads(dumps([1, 1.0]))] == [int, float]


def test_numpy_scalars_and_enums_become_plain_numbers():
    class Color(enum.IntEnum):
        RED = 3

    assert dumps([np.int64(7), np.float32(0.5), np.bool_(True), Color.RED]) == "[7,0.5,true,3]"


@pytest.mark.parametrize(
    "bad, where",
    [
        ({1: "a"}, "obj"),
        ({"a": [0, {2: 3}]}, "obj['a'][1]"),
        ({"x": {1, 2}}, "obj['x']"),
        ([b"bytes"], "obj[0]"),
        ({"__float__": "nan"}, "obj"),
        ([np.zeros(2)], "obj[0]"),
    ],
)
def test_refuses_what_would_not_come_back(bad, where):
    with pytest.raises(ArgumentError) as info:
        dumps(bad)
    assert str(info.value).endswith(f" at {where}")


def test_circular_reference():
    a: list = [1]
    a.append(a)
    with pytest.raises(ArgumentError, match="circular"):
        dumps(a)
    shared = [1]
    assert dumps([shared, shared]) == "[[1],[1]]"  # shared but not circular is fine


@pytest.mark.parametrize(
    "text, match",
    [
        ("{", "not valid JSON"),
        ('{"a":NaN}', "bare NaN"),
        ("[Infinity]", "bare Infinity"),
        ('{"a":1,"a":2}', "duplicate object key 'a'"),
        ('{"__float__":"1.5"}', "bad float wrapper"),
    ],
)
def test_loads_errors(text, match):
    with pytest.raises(SerializationError, match=match):
        loads(text)


def test_loads_wrong_type():
    with pytest.raises(ArgumentError):
        loads(3)


def test_float_key_among_others_is_a_plain_dict():
    assert loads('{"__float__":"nan","x":1}') == {"__float__": "nan", "x": 1}


def test_digest():
    assert digest({"a": 1}) == hashlib.sha256(b'{"a":1}').hexdigest()
    assert digest({"a": 1, "b": 2}) == digest({"b": 2, "a": 1})
    assert digest([1]) != digest([1.0])


@given(values)
def test_round_trip(value):
    text = dumps(value)
    back = loads(text)
    assert same(back, as_lists(value))
    assert dumps(back) == text  # canonical: a fixed point
    if not any(isinstance(x, float) and not math.isfinite(x) for x in _scalars(value)):
        assert same(json.loads(text), back)  # plain JSON readers agree


def _scalars(x):
    if isinstance(x, (list, tuple)):
        for v in x:
            yield from _scalars(v)
    elif isinstance(x, dict):
        for v in x.values():
            yield from _scalars(v)
    else:
        yield x



@given(values)
def test_digest_loaded_is_digest_of_what_loads_returns(value):
    loaded = loads(dumps(value))
    assert digest_loaded(loaded) == digest(loaded)
