"""Decisions on symbolic sizes are guarded: a trace answers ``B == 1`` (in squeeze, in user
code) from its example size and records the answer; every way of running the graph refuses
sizes that break it (GuardError naming the assumption), and kiln.compile traces again.

Eager vs trace vs compile at several sizes, 1 included: never a silent wrong result."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln.backends import deserialize, get_backend
from kiln.errors import ArgumentError, GuardError, ShapeError, TraceError
from kiln.graph.module import GraphModule

SIZES = (1, 2, 3, 5)


def _branch_eq(x):
    return x.sum(0) if x.shape[0] == 3 else x.sum(1)


def _branch_ne(x):
    return x * 2 if x.shape[0] != 1 else x - 1


def _branch_order(x):
    return x[:2] if x.shape[0] > 2 else x * 3


def _squeeze(x):
    return x.squeeze() * 2


def _squeeze_dim(x):
    return x.squeeze(0) + 1


def _unsqueeze_expand(x):
    return x.sum(1, keepdim=True).expand(x.shape[0], 4) * x.mean()


def _reshape_static(x):
    return x.reshape(12) * 2 if x.shape[0] * x.shape[1] == 12 else x.reshape(-1)


def _loss(x):
    return kiln.nn.functional.cross_entropy(x, kiln.zeros(x.shape[0], dtype=kiln.int64))


PROGRAMS = [_branch_eq, _branch_ne, _branch_order, _squeeze, _squeeze_dim, _unsqueeze_expand,
            _reshape_static, _loss]


def _x(b: int) -> kiln.Tensor:
    return kiln.tensor(np.random.default_rng(b).standard_normal((b, 4)), dtype="float32")


def _same(got, want) -> None:
    assert tuple(got.shape) == tuple(want.shape)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fn", PROGRAMS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("hint", (1, 3, 4))
def test_trace_is_right_or_refuses_each_size(fn, hint):
    gm = kiln.trace(fn, _x(hint), dynamic={"x": {0: "B"}})
    for b in SIZES:
        try:
            want = fn(_x(b))
        except kiln.KilnError:
            continue
        try:
            got = gm(_x(b))
        except GuardError as e:
            assert "traced assuming" in str(e) and f"B={b}" in str(e)
            assert not all(g.holds({"B": b}) for g in gm.graph.guards)
            continue
        assert all(g.holds({"B": b}) for g in gm.graph.guards)
        _same(got, want)


@pytest.mark.parametrize("backend", ["interpret", "c"])
@pytest.mark.parametrize("fn", PROGRAMS, ids=lambda f: f.__name__)
def test_compile_traces_again_for_sizes_a_guard_refuses(fn, backend):
    f = kiln.compile(fn, backend=backend, dynamic={"x": {0: "B"}})
    for b in (3, 1, 4, 2, 1, 3, 5):
        _same(f(_x(b)), fn(_x(b)))
    # One trace per distinct set of answers, never one per size.
    assert f.cache_info()["traces"] <= 3


def test_user_comparison_records_a_guard_naming_the_line():
    gm = kiln.trace(_branch_eq, _x(3), dynamic={"x": {0: "B"}})
    (guard,) = gm.graph.guards
    assert str(guard) == "B == 3" and "x.shape[0] == 3" in guard.where
    with pytest.raises(GuardError, match=r"traced assuming B == 3 \(decided at "
                                         r"test_guards.py:\d+: .*\); got B=5"):
        gm(_x(5))
    assert "# assumes B == 3" in str(gm.graph)


def test_squeeze_traced_with_a_batch_refuses_batch_one_everywhere():
    gm = kiln.trace(_squeeze, _x(3), dynamic={"x": {0: "B"}})
    assert [str(g) for g in gm.graph.guards] == ["B != 1"]
    message = r"traced assuming B != 1.*got B=1"
    with pytest.raises(GuardError, match=message):
        gm(_x(1))
    again = GraphModule.from_json(gm.to_json(), gm.constants)
    assert [str(g) for g in again.graph.guards] == ["B != 1"]
    with pytest.raises(GuardError, match=message):
        again(_x(1))
    namespace: dict = {}
    exec(compile(gm.code, "<gm.code>", "exec"), namespace)  # noqa: S102 (Kiln-made source)
    with pytest.raises(GuardError, match=message):
        namespace["forward"](gm, _x(1))
    _same(namespace["forward"](gm, _x(5))[0], _squeeze(_x(5)))
    fn = get_backend("c")(gm, None)
    for compiled in (fn, deserialize(fn.serialize())):
        with pytest.raises(GuardError, match=message):
            compiled(_x(1))
        _same(compiled(_x(4))[0], _squeeze(_x(4)))


def test_squeeze_traced_with_batch_one_keeps_only_batch_one():
    gm = kiln.trace(_squeeze, _x(1), dynamic={"x": {0: "B"}})
    assert [str(g) for g in gm.graph.guards] == ["B == 1"]
    _same(gm(_x(1)), _squeeze(_x(1)))
    with pytest.raises(GuardError, match="traced assuming B == 1.*got B=3"):
        gm(_x(3))
    fn = get_backend("c")(gm, None)
    _same(fn(_x(1))[0], _squeeze(_x(1)))


def test_shape_logic_that_holds_for_every_size_adds_no_guard():
    def f(x, t):
        h = x.reshape(x.shape[0], -1)
        h = h - h.mean(0, keepdim=True)
        loss = kiln.nn.functional.cross_entropy(h, t)
        return loss, h.sum(0).expand(x.shape[0], 8), h.max(1).values, (h * 2)[:, 1:]

    x, t = kiln.randn(3, 2, 4), kiln.tensor([0, 1, 2])
    dyn = {"x": {0: "B"}, "t": {0: "B"}}
    assert kiln.trace(f, x, t, dynamic=dyn).graph.guards == []
    x.requires_grad_()
    from kiln.aot import aot_function, nop

    g = aot_function(lambda x, t: f(x, t)[0], nop, dynamic=dyn)
    g(x, t).backward()
    (entry,) = g.entries()
    assert entry.program.gm.graph.guards == []
    for b in SIZES:
        xb = kiln.randn(b, 2, 4, requires_grad=True)
        g(xb, kiln.zeros(b, dtype=kiln.int64)).backward()
        assert xb.grad.shape == (b, 2, 4)
    assert g.cache_info()["traces"] == 1


def test_two_symbols_meet_under_a_guard():
    def f(x, y):
        return x + y

    gm = kiln.trace(f, kiln.ones(3), kiln.ones(3), dynamic={"x": {0: "B"}, "y": {0: "C"}})
    assert [str(g) for g in gm.graph.guards] == ["B == C"]
    assert gm(kiln.ones(5), kiln.ones(5)).tolist() == [2.0] * 5
    with pytest.raises(GuardError, match=r"traced assuming B == C \(.*\); got B=5, C=4"):
        gm(kiln.ones(5), kiln.ones(4))
    with pytest.raises(ShapeError, match=r"do not broadcast .*symbolic size"):
        kiln.trace(f, kiln.ones(3), kiln.ones(4), dynamic={"x": {0: "B"}, "y": {0: "C"}})


def test_values_of_symbolic_sizes_are_still_refused():
    with pytest.raises(TraceError, match="int\\(\\) on the symbolic size B"):
        kiln.trace(lambda x: x * int(x.shape[0]), kiln.ones(3), dynamic={"x": {0: "B"}})
    with pytest.raises(TraceError, match="chunk: dim 0 has the symbolic size B"):
        kiln.trace(lambda x: x.chunk(2), kiln.ones(4), dynamic={"x": {0: "B"}})


def test_one_symbol_names_one_example_size():
    with pytest.raises(ArgumentError, match="dim B is 4 here but 3 in an earlier argument"):
        kiln.trace(lambda x, y: x, kiln.ones(3), kiln.ones(4),
                   dynamic={"x": {0: "B"}, "y": {0: "B"}})
    with pytest.raises(ArgumentError, match=r"dim N is 9, outside its range \[2, 8\]"):
        kiln.trace(lambda x: x, kiln.ones(9), dynamic={"x": {0: kiln.Dim("N", 2, 8)}})


def test_ranges_decide_without_a_guard():
    gm = kiln.trace(lambda x: x * 2 if x.shape[0] >= 2 else x, kiln.ones(4),
                    dynamic={"x": {0: kiln.Dim("N", 2, 8)}})
    assert gm.graph.guards == []
    gm = kiln.trace(lambda x: x * 2 if x.shape[0] > 0 else x, kiln.ones(4),
                    dynamic={"x": {0: "B"}})
    assert gm.graph.guards == []


def test_guard_of_two_symbols_in_the_c_backend():
    gm = kiln.trace(lambda x, y: x * y, kiln.ones(3), kiln.ones(3),
                    dynamic={"x": {0: "B"}, "y": {0: "C"}})
    fn = get_backend("c")(gm, None)
    assert fn(kiln.arange(4.0), kiln.ones(4))[0].tolist() == [0.0, 1.0, 2.0, 3.0]
    with pytest.raises(GuardError, match="traced assuming B == C.*got B=4, C=1"):
        fn(kiln.ones(4), kiln.ones(1))


def test_training_through_compile_traces_again_for_a_refused_size():
    lin = kiln.nn.Linear(4, 2)

    def loss(x):
        return lin(x.squeeze()).sum()

    f = kiln.compile(loss, dynamic={"x": {0: "B"}})
    for b in (3, 1, 5, 1):
        x = _x(b)
        lin.zero_grad()
        f(x).backward()
        got = lin.weight.grad.numpy().copy()
        lin.zero_grad()
        loss(x).backward()
        np.testing.assert_allclose(got, lin.weight.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert [str(g) for e in f._aot.entries() for g in e.program.gm.graph.guards] == \
        ["B != 1", "B == 1"]


def test_strided_slice_gradient_at_a_symbolic_size_that_empties_it():
    # The backward pads the gradient of x[1::2] back; whether the slice is empty (B = 1) is
    # a decision on B, guarded: B = 1 traces again instead of computing a wrong shape.
    def f(x):
        return (x[1::2] * 3).sum()

    c = kiln.compile(f, dynamic={"x": {0: "B"}})
    for b in (6, 1, 5):
        x = kiln.randn(b, requires_grad=True)
        c(x).backward()
        y = kiln.tensor(x.detach().numpy(), requires_grad=True)
        f(y).backward()
        assert x.grad.tolist() == y.grad.tolist()


def test_comparisons_with_floats_use_the_integer_bound():
    def f(x):
        return x * 2 if x.shape[0] > 2.5 else x

    gm = kiln.trace(f, kiln.ones(3), dynamic={"x": {0: "B"}})
    assert [str(g) for g in gm.graph.guards] == ["B > 2"]
    assert gm(kiln.ones(4)).tolist() == [2.0] * 4
    with pytest.raises(GuardError, match="B > 2"):
        gm(kiln.ones(2))
    assert kiln.trace(lambda x: x if x.shape[0] == 2.5 else x * 2, kiln.ones(3),
                      dynamic={"x": {0: "B"}}).graph.guards == []


def test_guards_on_unrelated_expressions_are_both_recorded():
    # Recording the second guard compared its key with the first one's with `!=`, itself a
    # decision on sizes, recorded in turn: endless recursion.
    def f(x):
        a = 1.0 if x.shape[0] == 3 else 2.0
        b = 1.0 if x.shape[0] * x.shape[1] != 4 else 2.0
        return x * a * b

    gm = kiln.trace(f, kiln.ones(3, 2), dynamic={"x": {0: "B", 1: "C"}})
    assert [str(g) for g in gm.graph.guards] == ["B == 3", "B*C != 4"]
    _same(gm(kiln.ones(3, 5)), f(kiln.ones(3, 5)))
