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
        return _matmul(x, shape[-1])
    return ops.tanh(x)


def _matmul(x, k: int):
    w = kiln.Tensor(np.random.default_rng(1).standard_normal((k, 3)).astype("float32"))
    return ops.matmul(x, w)


def _program(draw, steps: int, apply):
    """A program of ``steps`` random ops (``apply``), returning every intermediate value."""
    def program(x):
        outs = []
        h = x
        for _ in range(steps):
            h = apply(draw, h)
            outs.append(h)
        return tuple(outs)
    return program


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.data())
def test_random_programs_match_the_interpreter(data):
    shape = tuple(data.draw(st.lists(SIZES, min_size=0, max_size=3)))
    x = kiln.Tensor(np.random.default_rng(len(shape)).standard_normal(shape).astype("float32")
                    * 2)
    program = _program(data.draw, data.draw(st.integers(1, 5)), _apply)
    gm, fn = compile_fn(program, x)
    for i, (g, r) in enumerate(zip(fn(x), gm.forward(x), strict=True)):
        assert_same(g, r, rtol=5e-5, atol=1e-5, what=f"step {i}\n{gm.graph}")


def _apply_dynamic(draw, x):
    """One random op on x whose shape holds symbolic dims (SymInts): the ops that carry a
    dynamic dim into index arithmetic (merged by reshape, permuted, reduced, concatenated,
    broadcast against, contracted in matmul)."""
    shape = tuple(x.shape)
    nd = len(shape)
    static = [d for d, s in enumerate(shape) if isinstance(s, int)]
    kind = draw(st.sampled_from(["unary", "binary", "reduce", "permute", "flatten", "flip",
                                 "cat", "slice", "pad", "matmul", "unflatten"]))
    if kind == "unary" or nd == 0:
        return getattr(ops, draw(st.sampled_from(UNARY)))(x)
    if kind == "binary":
        # a constant operand: size 1 on dynamic dims, so it broadcasts along them
        oshape = tuple(s if isinstance(s, int) and draw(st.booleans()) else 1 for s in shape)
        y = kiln.Tensor(np.random.default_rng(nd).standard_normal(oshape).astype("float32"))
        return getattr(ops, draw(st.sampled_from(BINARY)))(x, y)
    if kind == "reduce":
        d = draw(st.integers(0, nd - 1))
        return getattr(ops, draw(st.sampled_from(["sum", "max"])))(
            x, dims=(d,), keepdim=draw(st.booleans()))
    if kind == "permute":
        return ops.permute(x, dims=tuple(draw(st.permutations(range(nd)))))
    if kind == "flatten":
        return x.reshape(-1)
    if kind == "unflatten" and nd >= 1 and isinstance(shape[-1], int) and shape[-1] % 2 == 0:
        return x.reshape(*shape[:-1], 2, shape[-1] // 2)
    if kind == "flip":
        return ops.flip(x, dims=(draw(st.integers(0, nd - 1)),))
    if kind == "cat":
        return ops.cat(x, ops.neg(x), dim=draw(st.integers(0, nd - 1)))
    if kind == "slice" and static:
        d = draw(st.sampled_from(static))
        return ops.slice(x, dim=d, start=min(1, shape[d]), stop=shape[d], step=2)
    if kind == "pad":
        return ops.pad(x, pads=tuple((1, 0, 0) for _ in shape), value=-1.5)
    if kind == "matmul" and nd >= 2 and isinstance(shape[-1], int):
        return _matmul(x, shape[-1])
    return ops.tanh(x)


@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.data())
def test_random_programs_with_dynamic_dims_match_the_interpreter(data):
    """One library serves every size of a dynamic dim: compiled once, run at three sizes."""
    shape = list(data.draw(st.lists(st.sampled_from([2, 3, 4, 5]), min_size=1, max_size=3)))
    dyn = sorted(set(data.draw(st.lists(st.integers(0, len(shape) - 1), min_size=1,
                                        max_size=2))))
    program = _program(data.draw, data.draw(st.integers(1, 5)), _apply_dynamic)

    def example(extra):
        s = tuple(n + extra if d in dyn else n for d, n in enumerate(shape))
        return kiln.Tensor(np.random.default_rng(extra).standard_normal(s).astype("float32"))

    dims = {d: f"D{d}" for d in dyn}
    gm, fn = compile_fn(program, example(0), dynamic={"x": dims})
    for extra in (0, 3, 6):
        x = example(extra)
        for i, (g, r) in enumerate(zip(fn(x), gm.forward(x), strict=True)):
            assert_same(g, r, rtol=5e-5, atol=1e-5, what=f"size +{extra}, step {i}\n{gm.graph}")
