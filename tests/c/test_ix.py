"""Index algebra of the C backend (kiln.backends.c.ix): the simplifications that decide
whether a loop reads memory contiguously (vector loads) or through div/mod per element."""

from __future__ import annotations

import itertools

import pytest

from kiln.backends.c.ix import IX, floordiv, mod, simplify, to_c


def test_div_mod_decomposition_of_a_flat_index_folds_back():
    # a (8, 128, 1024) view of a flat loop variable, flattened again: the transformer's
    # backward met this, and it cost 2x on a pointwise kernel until it folded to c0
    c = IX.var("c0", 8 * 128 * 1024)
    e = floordiv(c, 131072) * 131072 + mod(floordiv(c, 1024), 128) * 1024 + mod(c, 1024)
    assert to_c(simplify(e)) == "c0"


@pytest.mark.parametrize("shape", [(2, 3, 4), (5, 1, 7), (3, 4, 5, 6)])
def test_flattening_any_split_is_the_identity(shape):
    n = 1
    for s in shape:
        n *= s
    c = IX.var("c", n)
    stride, e = 1, IX.const(0)
    for size in reversed(shape):
        e = e + mod(floordiv(c, stride), size) * stride
        stride *= size
    assert to_c(simplify(e)) == "c"


def test_partial_folds_keep_values():
    # only the inner two dims of (4, 6, 5) are flattened: the outer div must stay
    c = IX.var("c", 120)
    e = mod(floordiv(c, 5), 6) * 5 + mod(c, 5)
    s = simplify(e)
    for v in itertools.islice(range(120), 0, 120, 7):
        assert s.evaluate({"c": v}) == e.evaluate({"c": v}) == v % 30
