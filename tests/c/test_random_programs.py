"""Random programs of primitives (hypothesis): ranks 0-3, sizes 0, 1 and odd, broadcasting,
movement chains (permuted, sliced, flipped, padded: non-contiguous views), reductions and
matmul, compiled with the C backend and compared with the interpreter. Each example is one
compile, so the example count is small and derandomized (the suite's time stays fixed)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kiln
from kiln import ops
from tests.c.conftest import assert_same, compile_fn

UNARY = ["neg", "abs", "exp", "tanh", "sigmoid", "relu", "sin", "floor", "sqrt", "erf"]
BINARY = ["add", "sub", "mul", "maximum", "minimum", "div"]
SIZES = st.sampled_from([0, 1, 2, 3, 5])


def _apply(draw, x):
    """One random op on tensor x (returns a tensor)."""
    shape = tuple(x.shape)
    kind = draw(st.sampled_from(["unary", "binary", "reduce", "permute", "slice", "flip",
                                 "reshape", "pad", "cat", "expand", "matmul", "where"]))
    nd = len(shape)
    if kind == "unary":
        return getattr(ops, draw(st.sampled_from(UNARY)))(x)
    if kind == "binary":
        # the other operand broadcasts: some dims set to 1, maybe fewer leading dims
        lead = draw(st.integers(0, nd))
        oshape = tuple(1 if draw(st.booleans()) else s for s in shape[lead:])
        y = kiln.Tensor(np.random.default_rng(nd).standard_normal(oshape).astype("float32"))
        a, b = (x, y) if draw(st.booleans()) else (y, x)
        return getattr(ops, draw(st.sampled_from(BINARY)))(a, b)
    if kind == "where":
        return ops.where(x > 0.1, x, ops.neg(x) * 0.5)
    if nd == 0:
        return ops.exp(x)
    if kind == "reduce":
        dims = tuple(sorted(set(draw(st.lists(st.integers(0, nd - 1), min_size=1,
                                              max_size=nd)))))
        op = draw(st.sampled_from(["sum", "prod", "max", "min"]))
        if op in ("max", "min") and any(shape[d] == 0 for d in dims):
            op = "sum"
        return getattr(ops, op)(x, dims=dims, keepdim=draw(st.booleans()))
    if kind == "permute":
        return ops.permute(x, dims=tuple(draw(st.permutations(range(nd)))))
    if kind == "slice":
        d = draw(st.integers(0, nd - 1))
        n = shape[d]
        start = draw(st.integers(0, n))
        stop = draw(st.integers(start, n))
        return ops.slice(x, dim=d, start=start, stop=stop, step=draw(st.integers(1, 3)))
    if kind == "flip":
        return ops.flip(x, dims=(draw(st.integers(0, nd - 1)),))
    if kind == "reshape":
        return ops.reshape(x, shape=(int(np.prod(shape)),))
    if kind == "pad":
        pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 1)),
                      draw(st.integers(0, 1))) for _ in shape)
        return ops.pad(x, pads=pads, value=draw(st.sampled_from([0.0, -1.5])))
    if kind == "cat":
        return ops.cat(x, ops.neg(x), dim=draw(st.integers(0, nd - 1)))
    if kind == "expand":
        return ops.expand(ops.reshape(x, shape=(1,) + shape), shape=(2,) + shape)
    if kind == "matmul" and nd >= 2:
        w = kiln.Tensor(np.random.default_rng(1).standard_normal(
            (shape[-1], 3)).astype("float32"))
        return ops.matmul(x, w)
    return ops.tanh(x)


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.data())
def test_random_programs_match_the_interpreter(data):
    shape = tuple(data.draw(st.lists(SIZES, min_size=0, max_size=3)))
    x = kiln.Tensor(np.random.default_rng(len(shape)).standard_normal(shape).astype("float32")
                    * 2)
    steps = data.draw(st.integers(1, 5))

    def program(x):
        outs = []
        h = x
        for _ in range(steps):
            h = _apply(data.draw, h)
            outs.append(h)
        return tuple(outs)

    gm, fn = compile_fn(program, x)
    for i, (g, r) in enumerate(zip(fn(x), gm.forward(x), strict=True)):
        assert_same(g, r, rtol=5e-5, atol=1e-5, what=f"step {i}\n{gm.graph}")
