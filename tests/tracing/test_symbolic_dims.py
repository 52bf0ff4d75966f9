"""Symbolic dims: one trace runs on many sizes; guards refuse what it was not traced for;
data-dependent Python control flow on tracers is a TraceError that points at the user's line."""

from __future__ import annotations

import numpy as np
import pytest
from opinfo import as_arrays
from opinfo_checks import run_code

import kiln
import kiln.nn.functional as F
from kiln.errors import GuardError, TraceError
from kiln.graph.module import GraphModule

BATCHES = (1, 3, 8)


def _data(b: int, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed + b)
    x = kiln.tensor(rng.standard_normal((b, 3, 4)), dtype="float32")
    t = kiln.tensor(rng.integers(0, 5, b))
    return x, t


W = kiln.tensor(np.random.default_rng(7).standard_normal((12, 5)), dtype="float32")


def model(x, t):
    h = x.reshape(x.shape[0], -1)  # (B, 12)
    h = h - h.mean(0, keepdim=True)  # mean over the batch
    logits = h @ W
    probs = F.softmax(logits, -1)
    loss = F.cross_entropy(logits, t)
    flat = h.reshape(-1, 4)  # (3B, 4): -1 resolved symbolically
    return {"loss": loss, "probs": probs, "flat": flat, "var": x.var(0),
            "lse": kiln.logsumexp(logits, 1).mean(), "norm": F.layer_norm(h, (12,))}


def _compare(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_allclose(as_arrays(got[k])[0], as_arrays(want[k])[0], rtol=1e-6,
                                   atol=1e-6, err_msg=k)


@pytest.fixture(scope="module")
def gm() -> GraphModule:
    x, t = _data(3)
    return kiln.trace(model, x, t, dynamic={"x": {0: "B"}, "t": {0: "B"}})


def test_graph_is_symbolic_in_the_batch(gm):
    x_meta, t_meta = (p.meta for p in gm.graph.placeholders)
    assert str(x_meta) == "f32[B, 3, 4]" and str(t_meta) == "i64[B]"
    assert "f32[3*B, 4]" in str(gm.graph)


@pytest.mark.parametrize("b", BATCHES)
def test_one_trace_runs_on_many_batch_sizes(gm, b):
    x, t = _data(b)
    _compare(gm(x, t), model(x, t))


@pytest.mark.parametrize("b", BATCHES)
def test_code_and_json_of_a_symbolic_graph_run_on_many_sizes(gm, b):
    x, t = _data(b)
    want = gm.forward(x, t)
    got = run_code(gm, [x, t])
    for a, e in zip(got, want, strict=True):
        np.testing.assert_array_equal(as_arrays(a)[0], as_arrays(e)[0])
    again = GraphModule.from_json(gm.to_json(), gm.constants)
    _compare(again(x, t), model(x, t))


def test_compile_with_dynamic_batch_traces_once():
    f = kiln.compile(model, dynamic={"x": {0: "B"}, "t": {0: "B"}})
    for b in BATCHES:
        x, t = _data(b)
        _compare(f(x, t), model(x, t))
    assert f.cache_info() == {"signatures": 1, "traces": 1}


def test_derived_symbols_and_creation_ops_follow_the_batch():
    def f(x):
        mask = kiln.ones(x.shape[0], 1) > 0.5  # a creation op sized by B
        pairs = x.reshape(-1, 2)  # (2B, 2)
        return kiln.where(mask, x, 0.0), pairs.sum(1), kiln.arange(x.shape[0])

    gm = kiln.trace(f, kiln.ones(3, 4), dynamic={"x": {0: "B"}})
    for b in (1, 5):
        x = kiln.randn(b, 4)
        for a, e in zip(gm(x), f(x), strict=True):
            np.testing.assert_array_equal(a.numpy(), e.numpy())


# --------------------------------------------------------------------------------------
# guards


def test_wrong_rank_is_refused_naming_the_input(gm):
    with pytest.raises(GuardError, match=r"input x: expected rank 3"):
        gm(kiln.ones(3, 12), kiln.tensor([0, 1, 2]))


def test_wrong_dtype_is_refused_naming_the_input(gm):
    x, _ = _data(2)
    with pytest.raises(GuardError, match=r"input t: expected dtype int64, got float32"):
        gm(x, kiln.ones(2))


def test_wrong_static_size_is_refused(gm):
    with pytest.raises(GuardError, match=r"input x: expected shape \(B, 3, 4\).*dim 2"):
        gm(kiln.ones(2, 3, 5), kiln.tensor([0, 1]))


def test_inconsistent_symbol_is_refused_naming_the_input(gm):
    x, _ = _data(4)
    with pytest.raises(GuardError, match=r"input t: dim 0 is B=4 from an earlier input, got 2"):
        gm(x, kiln.tensor([0, 1]))


def test_symbol_range_is_checked():
    gm = kiln.trace(lambda x: x * 2, kiln.ones(4), dynamic={"x": {0: kiln.Dim("N", 2, 8)}})
    assert gm(kiln.ones(8)).shape == (8,)
    with pytest.raises(GuardError, match=r"input x: dim 0 \(N\) must be in \[2, 8\], got 9"):
        gm(kiln.ones(9))


def test_guard_errors_are_value_errors():
    assert issubclass(GuardError, ValueError) and issubclass(GuardError, kiln.KilnError)


def test_specialized_python_value_is_guarded():
    gm = kiln.trace(lambda x, k: x * k, kiln.ones(2), 3)
    assert gm(kiln.ones(2), 3).tolist() == [3.0, 3.0]
    with pytest.raises(GuardError, match="specialized to 3 when tracing, got 4"):
        gm(kiln.ones(2), 4)


# --------------------------------------------------------------------------------------
# data-dependent control flow


def test_python_if_on_a_tracer_names_the_line_and_suggests_where():
    def f(t):
        if t.sum() > 0:  # the line the error must point at
            return t * 2
        return t

    with pytest.raises(TraceError) as caught:
        kiln.trace(f, kiln.ones(3))
    message = str(caught.value)
    assert "test_symbolic_dims.py" in message
    assert "if t.sum() > 0:" in message
    assert "kiln.where" in message


@pytest.mark.parametrize("what", ["item", "float", "tolist", "numpy"])
def test_reading_a_tracer_value_is_a_trace_error(what):
    def f(t):
        if what == "float":
            return float(t.sum())
        return getattr(t, what)()

    with pytest.raises(TraceError, match="data-dependent"):
        kiln.trace(f, kiln.ones(3))


def test_symbolic_size_comparison_is_guarded():
    def f(x):
        if x.shape[0] < 4:  # decided from the example size, checked on every call
            return x
        return x * 2

    gm = kiln.trace(f, kiln.ones(3), dynamic={"x": {0: "B"}})
    assert gm(kiln.ones(2)).tolist() == [1.0, 1.0]
    with pytest.raises(GuardError, match="traced assuming B < 4.*got B=6"):
        gm(kiln.ones(6))


def test_array_arguments_are_refused_naming_the_argument():
    # A NumPy array is not a kiln.Tensor: specializing it would bake its values into the
    # graph (and make the guard compare arrays), so every front door refuses it.
    from kiln.aot import aot_function, nop
    from kiln.errors import ArgumentError

    def f(x, w):
        return x * w

    arr = np.ones(3, np.float32)
    with pytest.raises(ArgumentError, match=r"trace: argument 'w' is a numpy.ndarray of shape "
                                            r"\(3,\), not a kiln.Tensor.*kiln.from_numpy"):
        kiln.trace(f, kiln.ones(3), arr)
    with pytest.raises(ArgumentError, match=r"compile: argument leaf 1 is a numpy.ndarray"):
        kiln.compile(f)(kiln.ones(3), arr)
    with pytest.raises(ArgumentError, match=r"f: argument leaf 1 is a numpy.ndarray"):
        aot_function(f, nop)(kiln.ones(3, requires_grad=True), arr)
    # Slices are specialized by value by every front door (unhashable before Python 3.12).
    x = kiln.arange(6.0)
    sliced = kiln.compile(lambda x, s: x[s])
    assert sliced(x, slice(1, 4)).tolist() == [1.0, 2.0, 3.0]
    assert sliced(x, slice(2, None)).tolist() == [2.0, 3.0, 4.0, 5.0]
    assert sliced.cache_info()["traces"] == 2
    # NumPy scalars are numbers: specialized like Python's.
    assert kiln.compile(f)(kiln.ones(2), np.float32(3.0)).tolist() == [3.0, 3.0]


def test_sizes_returned_by_a_traced_function_follow_the_inputs():
    def f(x):
        return x.sum(), x.shape[0], {"shape": x.shape, "n": x.numel(), "half": x.shape[0] // 2}

    gm = kiln.trace(f, kiln.ones(5, 2), dynamic={"x": {0: "B"}})
    again = GraphModule.from_json(gm.to_json(), gm.constants)
    reloaded = GraphModule.deserialize(gm.serialize())
    for b in (1, 4, 7):
        x = kiln.ones(b, 2)
        want = f(x)
        for runner in (gm, again, reloaded):
            got = runner(x)
            assert got[0].item() == want[0].item()
            assert got[1:] == want[1:] and type(got[1]) is int
        assert run_code(gm, [x])[0].item() == want[0].item()
    for backend in ("interpret", "c"):
        c = kiln.compile(f, backend=backend, dynamic={"x": {0: "B"}})
        for b in (3, 6):
            assert c(kiln.ones(b, 2))[1:] == f(kiln.ones(b, 2))[1:]
        x = kiln.ones(4, 2, requires_grad=True)
        out = c(x)  # the AOT path (an input requires grad)
        assert out[1:] == (4, {"shape": (4, 2), "n": 8, "half": 2})
        out[0].backward()
        assert x.grad.tolist() == [[1.0, 1.0]] * 4
