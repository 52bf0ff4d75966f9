"""Graph passes keep results identical and shrink graphs as expected: dce, cse, constant_fold."""

from __future__ import annotations

import numpy as np
import pytest
from opinfo import OP_DB, as_arrays
from opinfo_checks import assert_same

import kiln
import kiln.nn.functional as F
from kiln import nn
from kiln.graph.passes import constant_fold, cse, dce


def _calls(gm) -> list[str]:
    return [n.target for n in gm.graph.calls()]


def _run(gm, *xs) -> list[np.ndarray]:
    kiln.manual_seed(0)
    return as_arrays(gm.forward(*xs))


# --------------------------------------------------------------------------------------
# dce


def test_dce_removes_dead_chains_and_keeps_placeholders():
    def f(x, unused):
        dead = x.exp().sin().sum()  # noqa: F841  (computed, never returned)
        return x * 2.0

    gm = kiln.trace(f, kiln.ones(3), kiln.ones(2))
    assert _calls(gm) == ["exp", "sin", "sum", "mul"]
    assert dce(gm) == 3
    assert _calls(gm) == ["mul"]
    assert [p.name for p in gm.graph.placeholders] == ["x", "unused"]
    assert dce(gm) == 0
    assert gm(kiln.ones(3), kiln.ones(2)).tolist() == [2.0] * 3


def test_dce_drops_unused_constants():
    w = kiln.ones(3)

    def f(x):
        _ = x * w
        return x + 1.0

    gm = kiln.trace(f, kiln.ones(3))
    assert dce(gm.graph) == 2  # the mul and the constant it read
    assert [n.op for n in gm.graph.nodes] == ["placeholder", "call", "output"]


# --------------------------------------------------------------------------------------
# cse


def test_cse_merges_repeated_subexpressions():
    def f(x):
        return F.softmax(x, -1) + F.log_softmax(x, -1), x.exp() * x.exp()

    x = kiln.randn(3, 4)
    gm = kiln.trace(f, x)
    before = _run(gm, x)
    n = len(gm.graph.nodes)
    removed = cse(gm)
    # softmax and log_softmax share max/eq/where/sub/exp/sum; exp(x) repeats once.
    assert removed == 7
    assert len(gm.graph.nodes) == n - removed
    assert _calls(gm).count("max") == 1 and _calls(gm).count("exp") == 2
    assert_same(_run(gm, x), before, "cse")
    assert cse(gm) == 0


def test_cse_keeps_random_ops_apart():
    def f(x):
        return x + kiln.rand(3), x + kiln.rand(3)

    gm = kiln.trace(f, kiln.ones(3))
    assert cse(gm) == 0
    a, b = gm(kiln.ones(3))
    assert a.tolist() != b.tolist()


def test_cse_tells_int_float_and_bool_literals_apart():
    def f(x):
        return ops_add(x, 1), ops_add(x, 1.0), ops_add(x, True)

    ops_add = kiln.ops.add
    x = kiln.tensor([1, 2])
    gm = kiln.trace(f, x)
    assert cse(gm) == 0
    assert [o.dtype for o in gm(x)] == [kiln.int64, kiln.float32, kiln.int64]


def test_cse_merges_symbolic_creation_ops():
    def f(x):
        return x.mean(0), x.var(0)  # each builds the batch count from ones(B)

    gm = kiln.trace(f, kiln.ones(4, 3), dynamic={"x": {0: "B"}})
    x = kiln.randn(5, 3)
    before = _run(gm, x)
    assert _calls(gm).count("full") == 3
    assert cse(gm) > 0
    assert _calls(gm).count("full") == 1
    assert_same(_run(gm, x), before, "cse with symbolic sizes")


# --------------------------------------------------------------------------------------
# constant folding


def test_constant_fold_evaluates_creation_subgraphs():
    def f(x):
        table = (kiln.arange(4.0) * 0.5).exp().reshape(1, 4)
        return x + table

    x = kiln.randn(2, 4)
    gm = kiln.trace(f, x)
    before = _run(gm, x)
    assert _calls(gm) == ["arange", "mul", "exp", "reshape", "add"]
    assert constant_fold(gm) == 4
    assert _calls(gm) == ["add"]
    (const,) = [n for n in gm.graph.nodes if n.op == "constant"]
    assert str(const.meta) == "f32[1, 4]" and const.target in gm.constants
    assert_same(_run(gm, x), before, "constant_fold")
    assert constant_fold(gm) == 0
    again = kiln.GraphModule.deserialize(gm.serialize())
    assert_same(_run(again, x), before, "constant_fold then serialize")


def test_constant_fold_leaves_lone_creation_ops():
    gm = kiln.trace(lambda x: x + kiln.ones(3), kiln.ones(3))
    assert constant_fold(gm) == 0
    assert _calls(gm) == ["full", "add"]


def test_constant_fold_never_folds_parameters():
    model = nn.Linear(3, 2)
    x = kiln.randn(4, 3)
    gm = kiln.trace(model, x)
    assert constant_fold(gm) == 0  # weight.T reads a parameter: it must stay live
    assert "permute" in _calls(gm)
    with kiln.no_grad():
        model.weight.mul_(2.0)  # an optimizer step
    np.testing.assert_allclose(gm(x).detach().numpy(), model(x).detach().numpy(), rtol=1e-6)


def test_constant_fold_never_folds_random_or_symbolic_ops():
    def f(x):
        noise = kiln.rand(3) * 2.0
        count = kiln.ones(x.shape[0]).sum()
        return x * noise, x.sum(0) / count

    gm = kiln.trace(f, kiln.ones(4, 3), dynamic={"x": {0: "B"}})
    assert constant_fold(gm) == 0
    assert "rand" in _calls(gm)
    out = gm(kiln.ones(6, 3))
    np.testing.assert_allclose(out[1].numpy(), [1.0, 1.0, 1.0])


@pytest.mark.parametrize("info", [i for i in OP_DB if i.name in (
    "F.cross_entropy", "F.layer_norm", "F.scaled_dot_product_attention", "F.pad",
    "Tensor.__setitem__", "kiln.einsum", "F.one_hot", "F.group_norm")], ids=lambda i: i.name)
def test_passes_keep_op_table_results(info):
    for sample in info.samples("float32" if "float32" in info.dtypes else info.dtypes[0]):
        if info.skip_reason("trace", sample):
            continue
        fn = info.flat_bind(sample)
        xs = [kiln.from_numpy(a) for a in sample.arrays()]
        gm = kiln.trace(fn, *xs)
        before = _run(gm, *xs)
        n = len(gm.graph.nodes)
        changed = dce(gm) + cse(gm) + constant_fold(gm)
        assert len(gm.graph.nodes) <= n
        assert changed >= 0
        assert_same(_run(gm, *xs), before, f"{info.name} {sample!r} after passes")
