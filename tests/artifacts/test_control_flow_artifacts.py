"""C artifacts of programs with control flow (loops and branches lowered into the generated
C): serialize/deserialize with the same checks as straight-line plans, the implicit compile
cache, and aot_compile / load_compiled_function; each against the interpreter."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

import kiln
from artifacts.helpers import NEEDS_CC
from kiln.artifacts import load_compiled_function
from kiln.errors import SerializationError

pytestmark = NEEDS_CC

F64 = kiln.float64


def branchy_loop(x, n):
    def body(i, c):
        return kiln.cond(i % 2 == 0, lambda c: (c + x).tanh(), lambda c: c * 2, (c,))
    y = kiln.fori_loop(0, n, body, kiln.zeros_like(x))
    return kiln.while_loop(lambda c: c.abs().sum() < 50, lambda c: c * 3 + 1, y)


def elman(xs, h0, w_ih, w_hh):
    step = lambda i, h: (xs[i] @ w_ih + h @ w_hh).tanh()  # noqa: E731
    return kiln.fori_loop(0, xs.shape[0], step, h0).sum()


def _compiled():
    from kiln.backends.c.backend import compile_c
    from kiln.backends.c.runtime import CFunction

    gm = kiln.trace(branchy_loop, kiln.ones(3), kiln.tensor(3))
    fn = compile_c(gm, None)
    assert isinstance(fn, CFunction)  # one library, not the host-side control path
    return gm, fn


def test_serialize_deserialize_signed_and_unsigned():
    from kiln.backends import deserialize
    from kiln.graph.interpreter import run

    gm, fn = _compiled()
    data = fn.serialize()
    loaded = deserialize(data)  # signed: the stored plan, checked against the graph
    with pytest.warns(RuntimeWarning, match="without checking its signature"):
        rebuilt = deserialize(data, trust="any")  # the plan derived again from the graph
    for x, n in ((kiln.tensor([0.5, -0.25, 1.0]), 5), (kiln.tensor([2.0, 1.0, 0.0]), 0)):
        want = run(gm.graph, gm.constants, [x, kiln.tensor(n)])[0].numpy()
        for f in (loaded, rebuilt):
            np.testing.assert_allclose(f(x, kiln.tensor(n))[0].numpy(), want, rtol=1e-6)


def _edit(data: bytes, key: str, edit) -> bytes:  # noqa: ANN001
    from kiln.backends.envelope import read_envelope, write_envelope
    from kiln.base import canonical
    from kiln.io import weights

    _, payload = read_envelope(data)
    arrays, meta = weights.load_bytes(payload)
    obj = json.loads(meta[key])
    edit(obj)
    meta[key] = canonical.dumps(obj)
    return write_envelope("c", weights.save_bytes(arrays, metadata=meta))


def test_edited_plans_and_graphs_are_refused():
    from kiln.backends import deserialize
    from kiln.backends.c.plan_check import check_against_graph

    gm, fn = _compiled()
    data = fn.serialize()

    def alias_to_temp(plan):  # noqa: ANN001, ANN202
        next(b for b in plan["buffers"] if b["kind"] == "alias")["kind"] = "temp"

    def driver(plan):  # noqa: ANN001, ANN202
        plan["sources"]["kiln_graph.c"] = plan["sources"]["kiln_graph.c"].replace(
            "for (;;)", "for (int k = 0; k < 1; k++)")

    for edit in (alias_to_temp, driver):
        with pytest.raises(SerializationError, match="not built from this plan"):
            deserialize(_edit(data, "kiln.c", edit))
    # a plan whose hash the library confirms, but not the one the graph lowers to
    plan = dict(fn.plan, hash="0" * 64)
    with pytest.raises(SerializationError, match="lowers to another plan"):
        check_against_graph(plan, gm)
    # another graph with this library and plan
    other = kiln.trace(lambda x, n: branchy_loop(x, n) + 1, kiln.ones(3), kiln.tensor(3))
    with pytest.raises(SerializationError, match="differs from the one compiled"):
        check_against_graph(fn.plan, other)


def test_aot_compile_and_load_compiled_function_with_gradients():
    rng = np.random.default_rng(5)
    xs, h0 = rng.standard_normal((4, 2)), rng.standard_normal(3) * 0.3
    w_ih, w_hh = rng.standard_normal((2, 3)) * 0.5, rng.standard_normal((3, 3)) * 0.5
    params = [kiln.tensor(v, dtype=F64, requires_grad=True) for v in (h0, w_ih, w_hh)]
    c = kiln.compile(elman, backend="c", dynamic={"xs": {0: "T"}})
    aot = c.aot_compile(((kiln.tensor(xs, dtype=F64), *params), {}))
    f = load_compiled_function(io.BytesIO(aot.serialize()))
    for steps in (2, 6):
        x = kiln.tensor(rng.standard_normal((steps, 2)), dtype=F64)
        mine = [kiln.tensor(p.detach().numpy(), dtype=F64, requires_grad=True) for p in params]
        ref = [kiln.tensor(p.detach().numpy(), dtype=F64, requires_grad=True) for p in params]
        got, want = f(x, *mine), elman(x, *ref)
        np.testing.assert_allclose(got.item(), want.item(), rtol=1e-12)
        got.backward()
        want.backward()
        for a, b in zip(mine, ref, strict=True):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_compile_cache_stores_and_hits_control_flow_graphs(machine):  # noqa: ANN001
    x, n = kiln.tensor([0.5, -0.25, 1.0]), kiln.tensor(4)
    with kiln.no_grad():
        first = kiln.compile(branchy_loop, backend="c")
        want = first(x, n)
        again = kiln.compile(branchy_loop, backend="c")  # a new callable: in-memory miss
        got = again(x, n)
    assert again.cache_info()["traces"] == 0  # loaded from the cache, not traced
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    entries = sorted((machine("a") / "compiled" / "entries").glob("??/*.kart"))
    assert len(entries) == 1
