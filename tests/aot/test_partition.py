"""Partitioners: what they save, what they recompute, and that gradients never change."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kiln
import kiln.nn.functional as F
from kiln.aot import (
    aot_function,
    default_partition,
    min_cut_rematerialization_partition,
    nop,
    saved_activations,
)
from kiln.aot.mincut import never_recompute
from kiln.core.prims.registry import REGISTRY
from kiln.graph.passes import dce

MINCUT = min_cut_rematerialization_partition


def _t(a, requires_grad=True):
    return kiln.tensor(np.asarray(a, dtype=np.float64), dtype=kiln.float64,
                       requires_grad=requires_grad)


class Captured:
    """A compiler that keeps the graphs it is given (forward first, then backward)."""

    def __init__(self) -> None:
        self.graphs: list = []

    def __call__(self, gm, specs):
        self.graphs.append(gm)
        return gm


def _grads_and_graphs(fn, arrays, partition, grad_mask=None):
    cap = Captured()
    nf = aot_function(fn, cap, partition_fn=partition)
    mask = grad_mask or [True] * len(arrays)
    xs = [_t(a, m) for a, m in zip(arrays, mask)]
    out = nf(*xs)
    out.sum().backward()
    report = saved_activations(nf, *[_t(a, m) for a, m in zip(arrays, mask)])
    return [x.grad.numpy() for x in xs if x.requires_grad], cap.graphs, report


def _eager_grads(fn, arrays, grad_mask=None):
    mask = grad_mask or [True] * len(arrays)
    xs = [_t(a, m) for a, m in zip(arrays, mask)]
    fn(*xs).sum().backward()
    return [x.grad.numpy() for x in xs if x.requires_grad]


def _recomputed(fw, bw):
    """Call nodes of the forward that the backward computes again (names are kept)."""
    fw_calls = {n.name for n in fw.graph.calls()}
    return [n for n in bw.graph.calls() if n.name in fw_calls]


def _check_same(got, want, rtol=1e-12):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=1e-14)


# --------------------------------------------------------------------------------------
# programs


def chain(x):
    return x.sin().exp().tanh().cos().sigmoid() * 2.0


def gelu_mlp(x, w1, b1, w2, b2):
    return F.linear(F.gelu(F.linear(x, w1, b1)), w2, b2)


def transformer_block(x, ln1_w, ln1_b, w_qkv, w_o, ln2_w, ln2_b, w1, b1, w2, b2, heads=2):
    b, t, d = x.shape
    h = F.layer_norm(x, (d,), ln1_w, ln1_b)
    q, k, v = F.linear(h, w_qkv).split(d, dim=-1)

    def split_heads(z):
        return z.reshape(b, t, heads, d // heads).permute(0, 2, 1, 3)

    q, k, v = split_heads(q), split_heads(k), split_heads(v)
    att = F.softmax(q @ k.transpose(-2, -1) * (1.0 / math.sqrt(d // heads)), dim=-1)
    y = (att @ v).permute(0, 2, 1, 3).reshape(b, t, d)
    x = x + F.linear(y, w_o)
    return x + F.linear(F.gelu(F.linear(F.layer_norm(x, (d,), ln2_w, ln2_b), w1, b1)), w2, b2)


def _mlp_arrays(rng):
    return [rng.normal(size=(8, 16)), rng.normal(size=(32, 16)) * 0.2, rng.normal(size=32) * 0.1,
            rng.normal(size=(4, 32)) * 0.2, rng.normal(size=4) * 0.1]


def _block_arrays(rng, d=8, t=5, b=2, hidden=16):
    return [rng.normal(size=(b, t, d)), 1.0 + 0.1 * rng.normal(size=d), 0.1 * rng.normal(size=d),
            0.3 * rng.normal(size=(3 * d, d)), 0.3 * rng.normal(size=(d, d)),
            1.0 + 0.1 * rng.normal(size=d), 0.1 * rng.normal(size=d),
            0.3 * rng.normal(size=(hidden, d)), 0.1 * rng.normal(size=hidden),
            0.3 * rng.normal(size=(d, hidden)), 0.1 * rng.normal(size=d)]


# --------------------------------------------------------------------------------------
# tests


def test_chain_of_pointwise_ops_saves_only_its_input():
    arrays = [np.linspace(-1, 1, 12).reshape(3, 4)]
    grads, (fw, bw), report = _grads_and_graphs(chain, arrays, MINCUT)
    assert [e.name for e in report] == ["primals_1"]
    assert [n.name for n in fw.graph.outputs[1:]] == ["primals_1"]
    assert {n.target for n in _recomputed(fw, bw)} == {"sin", "exp", "tanh", "cos", "sigmoid"}
    _check_same(grads, _eager_grads(chain, arrays))
    _, _, default_report = _grads_and_graphs(chain, arrays, default_partition)
    assert default_report.total_bytes > report.total_bytes


@pytest.mark.parametrize("program,make", [(gelu_mlp, _mlp_arrays),
                                          (transformer_block, _block_arrays)],
                         ids=["gelu_mlp", "transformer_block"])
def test_min_cut_saves_fewer_bytes_with_identical_grads(program, make):
    arrays = make(np.random.default_rng(0))
    want = _eager_grads(program, arrays)
    g_def, (fw_d, bw_d), r_def = _grads_and_graphs(program, arrays, default_partition)
    g_min, (fw_m, bw_m), r_min = _grads_and_graphs(program, arrays, MINCUT)
    assert r_min.total_bytes < r_def.total_bytes
    assert not _recomputed(fw_d, bw_d)
    for gm in (fw_d, bw_d, fw_m, bw_m):
        gm.graph.lint()
        assert dce(gm.graph) == 0, "a partition half holds dead code"
    for n in _recomputed(fw_m, bw_m):
        assert not never_recompute(n, {}), f"{n.name} ({n.target}) must not be recomputed"
        assert REGISTRY[n.target].kind in ("pointwise", "movement", "reduction", "creation")
    _check_same(g_def, want)
    _check_same(g_min, want)
    _check_same(g_min, g_def, rtol=0)  # recomputation repeats the very same ops


def test_memory_budget_moves_between_min_and_save_all():
    arrays = _block_arrays(np.random.default_rng(1))
    want = _eager_grads(transformer_block, arrays)
    sizes = []
    for budget in (0.0, 0.5, 1.0):
        part = functools.partial(MINCUT, memory_budget=budget)
        part.__name__ = f"mincut_{budget}"
        grads, (fw, bw), report = _grads_and_graphs(transformer_block, arrays, part)
        _check_same(grads, want)
        sizes.append((report.total_bytes, len(_recomputed(fw, bw))))
    _, _, r_def = _grads_and_graphs(transformer_block, arrays, default_partition)
    (b0, n0), (b5, n5), (b1, n1) = sizes
    assert b0 <= b5 <= b1 == r_def.total_bytes
    assert b5 <= b0 + 0.5 * (b1 - b0)
    assert n0 >= n5 >= n1 == 0
    with pytest.raises(kiln.errors.ArgumentError, match="memory_budget must be a number"):
        _grads_and_graphs(chain, [np.ones(3)], functools.partial(MINCUT, memory_budget=1.5))


def test_matmul_is_saved_not_recomputed():
    def f(x, w):
        return (x @ w).exp() @ w.T

    rng = np.random.default_rng(2)
    arrays = [rng.normal(size=(6, 4)), rng.normal(size=(4, 4))]
    grads, (fw, bw), _ = _grads_and_graphs(f, arrays, MINCUT)
    assert not [n for n in _recomputed(fw, bw) if n.target == "matmul"]
    _check_same(grads, _eager_grads(f, arrays))


def test_random_values_are_saved_not_redrawn():
    def f(x):
        mask = kiln.ops.rand(shape=tuple(x.shape), dtype=kiln.float64) > 0.5
        return (x.exp() * mask).sin()

    arrays = [np.linspace(-1, 1, 10)]
    kiln.manual_seed(5)
    want = _eager_grads(f, arrays)
    for partition in (default_partition, MINCUT):
        kiln.manual_seed(5)
        grads, (fw, bw), _ = _grads_and_graphs(f, arrays, partition)
        assert not [n for n in bw.graph.calls() if n.target == "rand"]
        _check_same(grads, want)


def test_symbolic_sizes_use_example_hints():
    def f(x, w):
        return (x @ w).tanh().sin()

    rng = np.random.default_rng(3)
    w = rng.normal(size=(3, 2))
    for partition in (default_partition, MINCUT):
        nf = aot_function(f, nop, partition_fn=partition, dynamic={"x": {0: "B"}})
        for b in (2, 7):
            xa = rng.normal(size=(b, 3))
            x, wt = _t(xa), _t(w)
            nf(x, wt).sum().backward()
            _check_same([x.grad.numpy(), wt.grad.numpy()], _eager_grads(f, [xa, w]))
            report = saved_activations(nf, _t(xa), _t(w))
            assert all(isinstance(d, int) for e in report for d in e.shape)
            assert report.entries[0].shape[0] == b
        assert nf.cache_info()["traces"] == 1


def test_backward_learns_symbols_from_a_saved_primal():
    # Only B*T appears in what the backward reads: a primal carrying B is saved as well.
    def f(x):
        b, t, d = x.shape
        return x.reshape(b * t, d).exp().sum(1)

    nf = aot_function(f, nop, partition_fn=MINCUT, dynamic={"x": {0: "B"}})
    for b in (2, 3):
        xa = np.ones((b, 2, 3)) * 0.1
        x = _t(xa)
        nf(x).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), np.exp(xa))


# --------------------------------------------------------------------------------------
# property test: random programs of primitives


UNARY = {
    "sin": lambda a: a.sin(), "cos": lambda a: a.cos(), "tanh": lambda a: a.tanh(),
    "sigmoid": lambda a: a.sigmoid(), "exp_tanh": lambda a: a.tanh().exp(),
    "relu": lambda a: a.relu(), "neg": lambda a: -a,
    "rowsum": lambda a: (a.sum(1, keepdim=True) * 0.25).expand(3, 4),
    "colmax": lambda a: kiln.ops.max(a, dims=(0,), keepdim=True).expand(3, 4),
    "flip_perm": lambda a: a.flip(0).permute(1, 0).reshape(3, 4),
}
BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b.sigmoid() + 1.0), "maximum": lambda a, b: kiln.maximum(a, b),
    "where": lambda a, b: kiln.where(a > b, a.exp(), b),
    "matmul": lambda a, b: (a @ b.transpose(0, 1)) @ a * 0.1,
}

step = st.one_of(
    st.tuples(st.just("u"), st.sampled_from(sorted(UNARY)), st.integers(0, 50)),
    st.tuples(st.just("b"), st.sampled_from(sorted(BINARY)), st.integers(0, 50),
              st.integers(0, 50)),
)


def _program(steps, n_outputs):
    def fn(*xs):
        vals = list(xs)
        for s in steps:
            if s[0] == "u":
                vals.append(UNARY[s[1]](vals[s[2] % len(vals)]))
            else:
                vals.append(BINARY[s[1]](vals[s[2] % len(vals)], vals[s[3] % len(vals)]))
        outs = vals[-n_outputs:]
        # Every input reaches the result (times 0 if the program ignores it), so each one
        # that requires grad gets a gradient and the result always requires grad.
        total = sum(x.sum() * 0.0 for x in xs)
        return sum((o * float(i + 1) for i, o in enumerate(outs)), total)
    return fn


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(step, min_size=1, max_size=8), n_outputs=st.integers(1, 3),
       grad_mask=st.lists(st.booleans(), min_size=3, max_size=3), seed=st.integers(0, 2**16))
def test_random_programs_match_eager(steps, n_outputs, grad_mask, seed):
    if not any(grad_mask):
        grad_mask[0] = True
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-1, 1, (3, 4)) for _ in range(3)]
    fn = _program(steps, n_outputs)
    want = _eager_grads(fn, arrays, grad_mask)
    for partition in (default_partition, MINCUT):
        got, (fw, bw), _ = _grads_and_graphs(fn, arrays, partition, grad_mask)
        _check_same(got, want)
        for gm in (fw, bw):  # every half is linted and free of dead code
            gm.graph.lint()
            assert dce(gm.graph) == 0
