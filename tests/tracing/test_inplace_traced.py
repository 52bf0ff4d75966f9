"""In-place ops under kiln.trace, kiln.compile (interpret and C backends) and aot_function
agree with eager: writes through views reach their base, repeated indices keep the last
value, and tensor arguments written in place are written back into the caller's tensors.

(The op table runs in-place programs through every layer too: tests/opinfo_inplace.py.)"""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln.aot import aot_function, nop
from kiln.errors import AutogradError, ShapeError, TraceError
from kiln.graph.module import GraphModule


def _has_c() -> bool:
    try:
        from kiln.backends.c.toolchain import find_compiler

        find_compiler()
    except Exception:  # noqa: BLE001 (no compiler: the C rows are skipped)
        return False
    return True


C = pytest.param("c", marks=pytest.mark.skipif(not _has_c(), reason="no C compiler"))
BACKENDS = ["trace", "interpret", C, "aot"]


def runner(fn, backend, example):
    """A callable that runs ``fn`` the ``backend`` way (traced on ``example``)."""
    if backend == "trace":
        return kiln.trace(fn, *example())
    if backend == "aot":
        return aot_function(fn, nop)
    return kiln.compile(fn, backend=backend)


def arrays(out):
    outs = out if isinstance(out, (tuple, list)) else [out]
    return [o.detach().numpy().copy() for o in outs]


def check_like_eager(fn, make_inputs, backend, calls=2):
    """Outputs and the arguments afterwards equal eager's, call after call."""
    run = runner(fn, backend, make_inputs)
    for _ in range(calls):
        eager_in = make_inputs()
        eager_out = arrays(fn(*eager_in))
        got_in = make_inputs()
        got_out = arrays(run(*got_in))
        for g, e in zip(got_out, eager_out, strict=True):
            np.testing.assert_array_equal(g, e)
        for g, e in zip(got_in, eager_in, strict=True):
            np.testing.assert_array_equal(g.numpy(), e.numpy())


def _clone_row_add(x):
    y = x.clone()
    y[0].add_(1.0)
    return y


@pytest.mark.parametrize("backend", BACKENDS)
def test_inplace_on_a_view_of_a_local(backend):
    # The reproducer: traced, the row update was lost (all zeros).
    check_like_eager(_clone_row_add, lambda: [kiln.zeros(2, 3)], backend)


def _views_program(x, v):
    y = x * 1
    row, col = y[1], y[:, 0]
    y.view(-1)[1:3].mul_(v[:2])
    col.add_(v[:2])
    y.t()[2][::2].fill_(-1.0)
    row[1:] = v[1:] * 2
    return y, row * 1, col * 1


def _views_inputs():
    return [kiln.tensor(np.arange(6.0).reshape(2, 3)), kiln.tensor([2.0, 3.0, 4.0])]


@pytest.mark.parametrize("backend", BACKENDS)
def test_views_of_views_and_stale_views(backend):
    check_like_eager(_views_program, _views_inputs, backend)


@pytest.mark.parametrize("backend", ["interpret", C])
def test_gradients_through_inplace_views_match_eager(backend):
    def loss(x, v):
        y, row, col = _views_program(x, v)
        return (y * y).sum() + (row * col.sum()).sum()

    f = kiln.compile(loss, backend=backend)
    got = [t.requires_grad_() for t in _views_inputs()]
    want = [t.requires_grad_() for t in _views_inputs()]
    f(*got).backward()
    loss(*want).backward()
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g.grad.numpy(), w.grad.numpy(), rtol=1e-12)


def _dup_assign(x, idx, v):
    x = x * 1
    x[:, idx] = v
    x[0, idx] = v * 10
    return x


@pytest.mark.parametrize("backend", BACKENDS)
def test_repeated_indices_keep_the_last_value(backend):
    def inputs():
        return [kiln.zeros(2, 4), kiln.tensor([1, 3, 1]), kiln.tensor([1.0, 2.0, 3.0])]

    check_like_eager(_dup_assign, inputs, backend)
    out = runner(_dup_assign, backend, inputs)(*inputs())
    assert out.tolist() == [[0.0, 30.0, 0.0, 20.0], [0.0, 3.0, 0.0, 2.0]]


# --------------------------------------------------------------------------------------
# tensor arguments written in place


MUTATORS = {
    "x.add_(1)": (lambda x: x.add_(1.0), lambda: [kiln.zeros(3)]),
    "x[0].mul_(3)": (lambda x: x[0].mul_(3.0), lambda: [kiln.ones(2, 3)]),
    "x[idx] = 7": (lambda x, i: x.__setitem__(i, 7.0) or x.sum(),
                   lambda: [kiln.zeros(4), kiln.tensor([2, 0])]),
    "two inputs": (lambda x, y: (x.mul_(2.0), y[1:].add_(x[0]))[0].sum(),
                   lambda: [kiln.ones(3), kiln.ones(3, 3)]),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(MUTATORS))
def test_arguments_written_in_place_are_written_back(name, backend):
    fn, make_inputs = MUTATORS[name]
    check_like_eager(fn, make_inputs, backend)


def test_write_back_reaches_a_view_argument_and_survives_serialization():
    base = kiln.zeros(2, 3)
    gm = kiln.trace(lambda x: x.add_(1.0), base[1])
    assert gm.signature.input_mutations == (0,)
    again = GraphModule.from_json(gm.to_json(), gm.constants)
    again(base[1])
    gm(base[0])
    assert base.tolist() == [[1.0] * 3, [1.0] * 3]
    plain = kiln.trace(lambda x: x + 1, base)
    assert "input_mutations" not in plain.to_json()  # unchanged JSON for other graphs


def test_write_back_refuses_a_leaf_that_requires_grad_like_eager():
    gm = kiln.trace(lambda x: x.add_(1.0), kiln.zeros(3))
    x = kiln.zeros(3, requires_grad=True)
    with pytest.raises(AutogradError, match="leaf"):
        x.add_(1.0)
    with pytest.raises(AutogradError, match="leaf"):
        gm(x)


# --------------------------------------------------------------------------------------
# what tracing cannot know


def test_symbolic_sizes_in_place_on_views():
    def f(x):
        y = x.clone()
        y[:, 0].add_(1.0)
        y[-1:].mul_(2.0)
        y.view(-1)[:2].fill_(9.0)
        y[1:, kiln.tensor([2, 2])] = 5.0  # a constant index expanded to a symbolic size
        return y

    gm = kiln.trace(f, kiln.zeros(4, 3), dynamic={"x": {0: "B"}})
    # Writes through views decide nothing about sizes, and y[-1:] is recorded as a slice
    # whatever B is (the shortcut for a full slice compares structurally): no guard, so the
    # graph serves B = 1 too.
    assert [str(g) for g in gm.graph.guards] == []
    for n in (1, 2, 5):
        x = kiln.tensor(np.arange(3.0 * n, dtype=np.float32).reshape(n, 3))
        np.testing.assert_array_equal(gm(x).numpy(), f(x).numpy())


def test_view_of_a_transposed_value_is_refused_while_tracing_too():
    with pytest.raises(ShapeError, match="without copying"):
        kiln.trace(lambda x: x.t().view(-1), kiln.zeros(2, 3))
    assert kiln.trace(lambda x: x.t().reshape(-1), kiln.zeros(2, 3))(kiln.ones(2, 3)).shape \
        == (6,)


def test_reshape_of_a_transposed_result_is_refused_when_it_matters():
    # Eagerly `x.t() * 1` keeps the transposed layout (as in torch), so the reshape copies;
    # a trace does not know layouts of op results: it refuses rather than guess.
    def reads_after_write(w):
        x = w.t() * 1
        flat = x.reshape(-1)
        x.add_(1.0)
        return flat * 1

    w = kiln.tensor(np.arange(6.0).reshape(2, 3))
    with pytest.raises(TraceError, match="layout"):
        kiln.trace(reads_after_write, w)

    def fixed(w):
        x = (w.t() * 1).contiguous()
        flat = x.reshape(-1)
        x.add_(1.0)
        return flat * 1

    np.testing.assert_array_equal(kiln.trace(fixed, w)(w).numpy(), fixed(w).numpy())
    # Without in-place ops around it, the same reshape traces as before.
    assert kiln.trace(lambda w: (w.t() * 1).reshape(-1), w)(w).shape == (6,)
