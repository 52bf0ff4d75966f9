"""Non-tensor arguments: plain values are specialized and keyed by exact value (NaN equals
NaN, 2 / 2.0 / True and 0.0 / -0.0 differ); other objects are refused at every front door."""

import dataclasses
import enum
import math

import numpy as np
import pytest

import kiln
from kiln.aot import aot_function, nop
from kiln.errors import ArgumentError, GuardError


def _doors():
    """(name, make) for each front door that caches by argument values."""
    return [
        ("compile-interpret", lambda f: kiln.compile(f, backend="interpret")),
        ("compile-c", lambda f: kiln.compile(f, backend="c")),
        ("aot", lambda f: aot_function(f, nop)),
    ]


@pytest.mark.parametrize("door", [d for _, d in _doors()], ids=[n for n, _ in _doors()])
@pytest.mark.parametrize("nan", [float("nan"), np.float32("nan"), np.float64("nan")],
                         ids=["float", "np.float32", "np.float64"])
def test_a_nan_argument_traces_once(door, nan):
    f = door(lambda t, s: t * s)
    for _ in range(5):
        # A fresh NaN object each call: identity does not help the key.
        out = f(kiln.ones(2), type(nan)(float("nan")))
        assert np.isnan(out.numpy()).all()
    assert f.cache_info() == {"signatures": 1, "traces": 1}


def test_a_nan_argument_passes_the_guard_of_a_traced_graph():
    gm = kiln.trace(lambda t, s: t * s, kiln.ones(2), float("nan"))
    assert np.isnan(gm(kiln.ones(2), float("nan")).numpy()).all()
    with pytest.raises(GuardError, match="specialized to nan when tracing, got 1.0"):
        gm(kiln.ones(2), 1.0)


@pytest.mark.parametrize("door", [d for _, d in _doors()], ids=[n for n, _ in _doors()])
def test_values_that_compare_equal_but_differ_are_distinct_keys(door):
    f = door(lambda t, s: t * s)
    x = kiln.ones(2)
    results = [f(x, v).numpy() for v in (2, 2.0, True, 0.0, -0.0, 2, 0.0)]
    assert f.cache_info() == {"signatures": 5, "traces": 5}
    assert math.copysign(1.0, results[4][0]) == -1.0  # x * -0.0 is -0.0, not a stale 0.0
    assert math.copysign(1.0, results[3][0]) == 1.0


def test_the_guard_tells_apart_equal_values_of_another_type():
    gm = kiln.trace(lambda t, s: t * s, kiln.ones(2), 2)
    with pytest.raises(GuardError, match="specialized to 2 when tracing, got 2.0"):
        gm(kiln.ones(2), 2.0)
    with pytest.raises(GuardError, match=r"specialized to 0.0 when tracing, got -0.0"):
        kiln.trace(lambda t, s: t * s, kiln.ones(2), 0.0)(kiln.ones(2), -0.0)


class Config:
    scale = 2.0


@dataclasses.dataclass
class Options:
    scale: float


class Mode(enum.Enum):
    DOUBLE = 2


@pytest.mark.parametrize("door", [d for _, d in _doors()] + [
    lambda f: (lambda *a: kiln.trace(f, *a)(*a))], ids=[n for n, _ in _doors()] + ["trace"])
def test_objects_that_are_not_plain_values_are_refused(door):
    f = door(lambda t, cfg: t * cfg.scale)
    with pytest.raises(ArgumentError, match=r"argument.* is a .*Config object, not a tensor or "
                                            r"a plain value.*stale graph.*close over"):
        f(kiln.ones(2), Config())


def test_plain_values_in_containers_are_keyed_by_value():
    # A dataclass is a pytree: its fields are leaves, so a mutated field is a new key.
    f = kiln.compile(lambda t, o: t * o.scale, backend="interpret")
    opts = Options(2.0)
    assert f(kiln.ones(1), opts).tolist() == [2.0]
    opts.scale = 3.0
    assert f(kiln.ones(1), opts).tolist() == [3.0]
    assert f.cache_info()["traces"] == 2
    g = kiln.compile(lambda t, m, act, dt: act(t * m.value).to(dt), backend="interpret")
    assert g(kiln.ones(1), Mode.DOUBLE, kiln.exp, kiln.float64).tolist() == pytest.approx(
        [math.exp(2.0)], rel=1e-6)
    assert g(kiln.ones(1), Mode.DOUBLE, kiln.exp, kiln.float64).dtype == kiln.float64
    assert g.cache_info()["traces"] == 1


@pytest.mark.parametrize("door", [d for _, d in _doors()], ids=[n for n, _ in _doors()])
def test_a_module_argument_trains_like_eager(door):
    """step(model, x, y), as with torch.compile: the module is keyed by identity, training
    flags and which tensors its parameters are; their values are read at each call, and
    their gradients flow."""
    import kiln.nn.functional as F
    from kiln import nn

    kiln.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 2))
    x, y = kiln.randn(5, 4), kiln.tensor([0, 1, 1, 0, 1])
    step = door(lambda m, x, y: F.cross_entropy(m(x), y))
    opt = kiln.optim.SGD(model.parameters(), lr=0.1)
    traces = []
    for _ in range(3):  # an optimizer step changes values, not the key
        opt.zero_grad()
        kiln.manual_seed(1)
        loss = step(model, x, y)
        loss.backward()
        got = [p.grad.numpy().copy() for p in model.parameters()]
        opt.zero_grad()
        kiln.manual_seed(1)
        ref = F.cross_entropy(model(x), y)
        ref.backward()
        np.testing.assert_allclose(loss.item(), ref.item(), rtol=1e-5)
        for g, p in zip(got, model.parameters(), strict=True):
            np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-4, atol=1e-6)
        opt.step()
        traces.append(step.cache_info()["traces"])
    # (the first call of kiln.compile traces once more when it finds parameters that need
    # gradients: its plain trace hands over to AOT autograd)
    assert traces[0] == traces[-1]
    model.eval()  # dropout off: a new trace
    with kiln.no_grad():
        np.testing.assert_allclose(step(model, x, y).item(),
                                   F.cross_entropy(model(x), y).item(), rtol=1e-5)
    model[0].weight = nn.Parameter(kiln.zeros(8, 4))  # another tensor: a new trace
    with kiln.no_grad():
        np.testing.assert_allclose(step(model, x, y).item(),
                                   F.cross_entropy(model(x), y).item(), rtol=1e-5)
    assert step.cache_info()["traces"] == traces[0] + 2


def test_a_traced_graph_guards_the_module_it_was_traced_with():
    from kiln import nn

    kiln.manual_seed(0)
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    x = kiln.randn(4, 3)
    gm = kiln.trace(lambda m, x: m(x), a, x)
    with kiln.no_grad():
        np.testing.assert_allclose(gm(a, x).numpy(), a(x).numpy(), rtol=1e-6)
    with pytest.raises(GuardError, match="specialized"):
        gm(b, x)
