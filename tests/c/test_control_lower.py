"""Control flow lowered into the generated C (kiln.backends.c.control_lower): one native call
per graph, the loops and branches in C; differentially against the interpreter, gradients
through loops against finite differences in float64."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln.backends.c import control
from kiln.backends.c.backend import compile_c
from kiln.backends.c.plan import build_plan
from kiln.errors import BackendError
from kiln.graph.interpreter import run

F64 = kiln.float64


def _np(x):
    return np.asarray(x.detach().numpy() if isinstance(x, kiln.Tensor) else x)


@pytest.fixture
def lowered_only(monkeypatch):
    """Fail if any graph falls back to the host-side control path."""
    def refuse(*args, **kwargs):
        raise AssertionError("the host-side control path ran; the C lowering was expected")

    monkeypatch.setattr(control, "HostControlFunction", refuse)


def _native(fn):
    """Count the native calls of a CFunction."""
    calls = []
    inner = fn._run

    def counting(*args):
        calls.append(1)
        return inner(*args)

    fn._run = counting
    return calls


def _check(f, examples, dynamic=None, rtol=1e-6, atol=1e-7):
    """compile_c(trace(f)) against the interpreter on every example; one native call each."""
    gm = kiln.trace(f, *examples[0], dynamic=dynamic)
    fn = compile_c(gm, None)
    calls = _native(fn)
    for args in examples:
        want = run(gm.graph, gm.constants, list(args))
        got = fn(*args)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(_np(g), _np(w), rtol=rtol, atol=atol)
    assert len(calls) == len(examples)  # one native call per graph execution
    return fn


def test_cond_both_branches_in_one_native_call(lowered_only):
    def f(x, y):
        return kiln.cond(x.sum() > 0, lambda x, y: (x * y).exp(), lambda x, y: x - y, (x, y))

    fn = _check(f, [(kiln.tensor([0.5, 1.0]), kiln.tensor([2.0, 3.0])),
                    (kiln.tensor([-0.5, -1.0]), kiln.tensor([2.0, 3.0]))])
    assert "if (*(const bool *)P[" in fn.source


def test_nested_cond_inside_fori_loop(lowered_only):
    def f(x, n):
        def body(i, c):
            return kiln.cond(i % 2 == 0, lambda c: (c + x).tanh(), lambda c: c * 2, (c,))
        return kiln.fori_loop(0, n, body, kiln.zeros_like(x))

    x = kiln.tensor([0.5, -0.25, 1.5])
    fn = _check(f, [(x, kiln.tensor(n)) for n in (0, 1, 4, 7)])
    assert "for (int64_t it" in fn.source and "if (*(const bool *)P[" in fn.source


def test_while_loop_data_dependent_trip_count(lowered_only):
    def f(x, limit):
        def body(carried):
            c, k = carried
            return c * 2 + 0.5, k + 1
        return kiln.while_loop(lambda carried: carried[0].abs().sum() < limit, body,
                               (x, kiln.zeros((), dtype=kiln.int64)))

    fn = _check(f, [(kiln.tensor([0.1, -0.2]), kiln.tensor(v)) for v in (0.0, 3.0, 100.0)])
    assert "for (;;)" in fn.source
    c, k = fn(kiln.tensor([0.1, -0.2]), kiln.tensor(100.0))
    assert int(k.item()) > 5


def test_fori_loop_tensor_and_symbolic_bounds(lowered_only):
    def f(xs, lo):
        return kiln.fori_loop(lo, xs.shape[0], lambda i, c: c + xs[i] * i, kiln.zeros(3))

    examples = [(kiln.randn(n, 3), kiln.tensor(lo)) for n, lo in ((4, 1), (7, 0), (2, 5))]
    fn = _check(f, examples, dynamic={"xs": {0: "T"}}, rtol=1e-5, atol=1e-6)
    assert "S[0]" in fn.plan["sources"]["kiln_graph.c"]  # the bound read from the sizes


def test_loop_carrying_a_swap_and_an_unchanged_value(lowered_only):
    """Carried values returned unchanged or permuted are copied, never aliased."""
    def f(a, b, n):
        return kiln.fori_loop(0, n, lambda i, c: (c[1], c[0] + 1, c[2]), (a, b, a * 3))

    _check(f, [(kiln.tensor([1.0, 2.0]), kiln.tensor([5.0, 7.0]), kiln.tensor(n))
               for n in (0, 1, 2, 5)])


def elman(xs, h0, w_ih, w_hh):
    step = lambda i, h: (xs[i] @ w_ih + h @ w_hh).tanh()  # noqa: E731
    return kiln.fori_loop(0, xs.shape[0], step, h0).sum()


def _elman_np(xs, h0, w_ih, w_hh):
    h = h0
    for t in range(xs.shape[0]):
        h = np.tanh(xs[t] @ w_ih + h @ w_hh)
    return h.sum()


def test_elman_rnn_dynamic_length_forward_and_gradients(lowered_only):
    rng = np.random.default_rng(3)
    w_ih0, w_hh0 = rng.standard_normal((2, 3)) * 0.5, rng.standard_normal((3, 3)) * 0.5
    h00 = rng.standard_normal(3) * 0.3
    c = kiln.compile(elman, backend="c", dynamic={"xs": {0: "T"}})
    for steps in (1, 4, 9):
        xs0 = rng.standard_normal((steps, 2))
        params = [kiln.tensor(v, dtype=F64, requires_grad=True) for v in (h00, w_ih0, w_hh0)]
        out = c(kiln.tensor(xs0, dtype=F64), *params)
        np.testing.assert_allclose(out.item(), _elman_np(xs0, h00, w_ih0, w_hh0), rtol=1e-12)
        out.backward()
        base = [h00, w_ih0, w_hh0]
        for k, p in enumerate(params):
            fd = np.zeros_like(base[k])
            for idx in np.ndindex(fd.shape):
                plus = [v.copy() for v in base]
                minus = [v.copy() for v in base]
                plus[k][idx] += 1e-6
                minus[k][idx] -= 1e-6
                fd[idx] = (_elman_np(xs0, *plus) - _elman_np(xs0, *minus)) / 2e-6
            np.testing.assert_allclose(_np(p.grad), fd, rtol=1e-6, atol=1e-8)


def sign_branch(x, scale: float = 2.0):
    if x.sum() > 0:
        return (x * scale).exp()
    return (-x).sin()


def decaying_beam(scores, floor: float):
    """Beam-search style: extend the best path while it stays above ``floor``."""
    best = scores.max()
    steps = 0
    while steps < scores.shape[0]:
        best = best * 0.5 + scores[steps]
        if best < floor:
            break
        steps += 1
    return best, steps


def test_scripted_if_and_beam_search_while_with_break(lowered_only):
    f = kiln.compile(kiln.jit.script(sign_branch), backend="c")
    for x in (kiln.tensor([0.5, 1.0]), kiln.tensor([-0.5, -1.0])):
        np.testing.assert_allclose(_np(f(x)), _np(sign_branch(x)), rtol=1e-5)
    b = kiln.compile(kiln.jit.script(decaying_beam), backend="c",
                     dynamic={"scores": {0: "N"}})
    for scores in ([0.9, 0.5, 0.1, 0.05], [0.3, 0.4, 0.35, 0.3, 0.4], [1.0, 0.01]):
        best, steps = b(kiln.tensor(scores), 0.5)
        want_best, want_steps = decaying_beam(kiln.tensor(scores), 0.5)
        assert int(steps.item()) == int(want_steps)
        np.testing.assert_allclose(best.item(), want_best.item(), rtol=1e-6)


def test_random_draw_in_a_body_falls_back_to_host_control():
    """Random tensors are drawn once per native call: a body drawing them keeps its loop on
    the host (kiln.backends.c.control), with the reason given by build_plan."""
    def f(x, n):
        return kiln.fori_loop(0, n, lambda i, c: c + kiln.rand(2), x)

    gm = kiln.trace(f, kiln.zeros(2), kiln.tensor(3))
    assert isinstance(compile_c(gm, None), control.HostControlFunction)
    with pytest.raises(BackendError, match="random"):
        build_plan(gm)


def test_a_failed_check_inside_a_loop_raises_as_in_the_interpreter(lowered_only):
    """A kernel check in a body (an index out of range) names the failed check, like the
    interpreter, though it ran in the middle of the native loop."""
    def f(xs, n):
        return kiln.fori_loop(0, n, lambda i, c: c + xs[i], kiln.zeros(2))

    gm = kiln.trace(f, kiln.ones(3, 2), kiln.tensor(2))
    fn = compile_c(gm, None)
    np.testing.assert_allclose(_np(fn(kiln.ones(3, 2), kiln.tensor(3))[0]), [3.0, 3.0])
    with pytest.raises(IndexError) as native:
        fn(kiln.ones(3, 2), kiln.tensor(5))
    with pytest.raises(IndexError) as interpreted:
        run(gm.graph, gm.constants, [kiln.ones(3, 2), kiln.tensor(5)])
    assert type(native.value) is type(interpreted.value)


def test_results_that_alias_inputs_and_repeat(lowered_only):
    """A branch returning its operand unchanged, an output listed twice, a graph input as an
    output and a loop that runs no iteration: every output is its own correct array."""
    def f(x, y):
        r = kiln.cond(x.sum() > 0, lambda x, y: (x, y * 2), lambda x, y: (y, x), (x, y))
        w = kiln.while_loop(lambda c: c.sum() > 1e9, lambda c: c + 1, r[0])
        return r[0], r[1], w, w, x

    fn = _check(f, [(kiln.tensor([1.0, 2.0]), kiln.tensor([3.0, 4.0])),
                    (kiln.tensor([-1.0, -2.0]), kiln.tensor([3.0, 4.0]))])
    out = fn(kiln.tensor([1.0, 2.0]), kiln.tensor([3.0, 4.0]))
    assert out[2].numpy().ctypes.data != out[0].numpy().ctypes.data
