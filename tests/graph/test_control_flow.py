"""kiln.cond / kiln.while_loop / kiln.fori_loop: eager, traced, printed, linted, saved,
interpreted, differentiated (against eager Python and central differences in float64)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import kiln
from kiln.errors import AutogradError, KilnError, SerializationError, TraceError
from kiln.graph.module import GraphModule

F64 = kiln.float64


def _roundtrips(gm: GraphModule, *args: kiln.Tensor) -> list:
    """The outputs of gm, of its gm.code, of its JSON reload: every one must agree."""
    gm.graph.lint()
    outs = [gm(*args)]
    ns: dict = {}
    exec(gm.code, ns)  # noqa: S102  (the code of a graph we just built)
    flat = ns["forward"](gm, *args)
    outs.append(gm.signature.unflatten_outputs(flat))
    outs.append(GraphModule.deserialize(gm.serialize())(*args))
    return outs


def _np(x: object) -> np.ndarray:
    return np.asarray(x.detach().numpy() if isinstance(x, kiln.Tensor) else x)


def _fd_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        g[idx] = (f(xp) - f(xm)) / (2 * eps)
    return g


# ----------------------------------------------------------------------------- cond

def branchy(x):
    return kiln.cond(x.sum() > 0, lambda x: (x * 2).exp(), lambda x: -x.sin(), (x,))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_cond_eager_traced_code_json_agree(sign):
    x = kiln.tensor([0.5, 1.5, -0.25]) * sign
    ref = np.exp(2 * _np(x)) if _np(x).sum() > 0 else -np.sin(_np(x))
    np.testing.assert_allclose(_np(branchy(x)), ref, rtol=1e-6)
    gm = kiln.trace(branchy, kiln.ones(3))
    for out in _roundtrips(gm, x):
        np.testing.assert_allclose(_np(out), ref, rtol=1e-6)
    assert "if bool(" in gm.code and "else:" in gm.code


def test_cond_python_bool_pred_picks_a_branch_while_tracing():
    gm = kiln.trace(lambda x: kiln.cond(True, lambda x: x + 1, lambda x: x - 1, (x,)),
                    kiln.ones(2))
    assert not any(n.op == "control" for n in gm.graph.nodes)


def test_cond_captures_closures_and_module_parameters():
    lin = kiln.nn.Linear(3, 2)
    y_outer = kiln.ones(2) * 3

    def f(x):
        h = lin(x)
        return kiln.cond(h.sum() > 0, lambda h: h + y_outer, lambda h: h * lin.bias, (h,))

    gm = kiln.trace(f, kiln.ones(3))
    node = next(n for n in gm.graph.nodes if n.op == "control")
    # x-derived h plus the two captures (the closure constant and the bias parameter)
    assert len(node.args) == 1 + 1 + 2
    for x in (kiln.ones(3), -kiln.ones(3) * 5):
        want = f(x)
        for out in _roundtrips(gm, x):
            np.testing.assert_allclose(_np(out), _np(want), rtol=1e-6)


def test_cond_branches_must_agree():
    with pytest.raises(TraceError, match="same structure"):
        kiln.trace(lambda x: kiln.cond(x.sum() > 0, lambda x: x, lambda x: x.sum(), (x,)),
                   kiln.ones(2))


def test_cond_pytree_outputs_and_operands():
    def f(x, y):
        return kiln.cond(x.sum() > y.sum(), lambda a, b: {"s": a + b, "d": a - b},
                         lambda a, b: {"s": a * b, "d": b}, (x, y))

    gm = kiln.trace(f, kiln.ones(2), kiln.ones(2))
    for x, y in ((kiln.ones(2) * 3, kiln.ones(2)), (kiln.ones(2), kiln.ones(2) * 4)):
        got, want = gm(x, y), f(x, y)
        assert got.keys() == want.keys()
        for k in want:
            np.testing.assert_allclose(_np(got[k]), _np(want[k]))


# ----------------------------------------------------------------------------- loops

def doubling(x):
    return kiln.while_loop(lambda c: c.sum() < 100, lambda c: c * 2, x)


def test_while_loop_eager_traced_code_json_agree():
    x = kiln.tensor([1.0, 2.0])
    want = _np(x)
    while want.sum() < 100:
        want = want * 2
    np.testing.assert_allclose(_np(doubling(x)), want)
    gm = kiln.trace(doubling, kiln.ones(2))
    assert "while bool(" in gm.code
    for out in _roundtrips(gm, x):
        np.testing.assert_allclose(_np(out), want)


def beam_like(scores):
    """while with break: the loop stops at the first step whose best score passes 0.9,
    or after 10 steps (the break is folded into the condition, as a script compiles it)."""
    def cond_fn(c):
        step, best, done = c
        return kiln.logical_and(step < 10, done.logical_not())

    def body_fn(c):
        step, best, done = c
        best = kiln.maximum(best, scores[step])
        return step + 1, best, best > 0.9

    step0 = kiln.tensor(0)
    out = kiln.while_loop(cond_fn, body_fn, (step0, kiln.tensor(0.0), kiln.tensor(False)))
    return out[0], out[1]


def test_while_loop_with_break_state_matches_python():
    scores = kiln.tensor([0.1, 0.5, 0.95, 0.2, 0.99])
    gm = kiln.trace(beam_like, kiln.zeros(5))
    for out in _roundtrips(gm, scores):
        assert int(out[0].item()) == 3 and abs(out[1].item() - 0.95) < 1e-6


def test_fori_loop_dynamic_trip_count():
    def cumsum(xs):
        return kiln.fori_loop(0, xs.shape[0], lambda i, acc: acc * 0.5 + xs[i], kiln.zeros(2))

    gm = kiln.trace(cumsum, kiln.ones(3, 2), dynamic={"xs": {0: "T"}})
    assert "for _fori_loop_i in range(0, (T)):" in gm.code
    for t in (1, 4, 7):
        xs = kiln.randn(t, 2)
        want = np.zeros(2, np.float32)
        for i in range(t):
            want = want * 0.5 + _np(xs)[i]
        for out in _roundtrips(gm, xs):
            np.testing.assert_allclose(_np(out), want, rtol=1e-5)


def test_fori_loop_tensor_bounds_and_nesting():
    def f(x, n):
        def body(i, c):
            return kiln.cond(i % 2 == 0, lambda c: c + x, lambda c: c * 2, (c,))
        return kiln.fori_loop(0, n, body, kiln.zeros_like(x))

    n = kiln.tensor(5)
    gm = kiln.trace(f, kiln.ones(2), n)
    x = kiln.tensor([1.0, -1.0])
    want = np.zeros(2)
    for i in range(5):
        want = want + _np(x) if i % 2 == 0 else want * 2
    for out in _roundtrips(gm, x, n):
        np.testing.assert_allclose(_np(out), want)
    np.testing.assert_allclose(_np(gm(x, kiln.tensor(2))), [2.0, -2.0])


# ----------------------------------------------------------------------------- gradients

def test_cond_gradient_matches_finite_differences():
    def loss(x, w):
        return kiln.cond((x * w).sum() > 0, lambda x, w: (x * w).tanh(), lambda x, w: x.exp() * w,
                         (x, w)).sum()

    rng = np.random.default_rng(0)
    for sign in (1.0, -1.0):
        x0 = rng.standard_normal(3) * 0.1 + sign
        w0 = np.abs(rng.standard_normal(3)) + 0.5
        fd = _fd_grad(lambda w, x0=x0: loss(kiln.tensor(x0), kiln.tensor(w)).item(), w0)
        for f in (loss, kiln.compile(loss)):
            w = kiln.tensor(w0, requires_grad=True)
            f(kiln.tensor(x0), w).backward()
            np.testing.assert_allclose(_np(w.grad), fd, rtol=1e-6, atol=1e-8)


def elman(xs, h0, w_ih, w_hh):
    """An Elman RNN over a sequence whose length is known only at run time."""
    def step(i, h):
        return (xs[i] @ w_ih + h @ w_hh).tanh()
    return kiln.fori_loop(0, xs.shape[0], step, h0).sum()


@pytest.mark.parametrize("t", [1, 3, 6])
def test_elman_rnn_gradients_through_dynamic_loop(t):
    rng = np.random.default_rng(t)
    xs0 = rng.standard_normal((t, 2))
    h00 = rng.standard_normal(3) * 0.3
    wi0 = rng.standard_normal((2, 3)) * 0.5
    wh0 = rng.standard_normal((3, 3)) * 0.5
    compiled = kiln.compile(elman, dynamic={"xs": {0: "T"}})
    fds = [
        _fd_grad(lambda v: elman(kiln.tensor(v), kiln.tensor(h00), kiln.tensor(wi0),
                                 kiln.tensor(wh0)).item(), xs0),
        _fd_grad(lambda v: elman(kiln.tensor(xs0), kiln.tensor(h00), kiln.tensor(v),
                                 kiln.tensor(wh0)).item(), wi0),
        _fd_grad(lambda v: elman(kiln.tensor(xs0), kiln.tensor(h00), kiln.tensor(wi0),
                                 kiln.tensor(v)).item(), wh0),
    ]
    for f in (elman, compiled):
        xs, h0 = kiln.tensor(xs0, requires_grad=True), kiln.tensor(h00)
        wi, wh = kiln.tensor(wi0, requires_grad=True), kiln.tensor(wh0, requires_grad=True)
        f(xs, h0, wi, wh).backward()
        for got, fd in zip((xs.grad, wi.grad, wh.grad), fds, strict=True):
            np.testing.assert_allclose(_np(got), fd, rtol=1e-5, atol=1e-7)


def test_fori_gradient_traced_with_grad_inside():
    def g(xs, w):
        loss = kiln.fori_loop(0, xs.shape[0], lambda i, h: (h * w + xs[i]).sin(),
                              kiln.zeros(2, dtype=F64)).sum()
        return kiln.autograd.grad(loss, [w])[0]

    xs0 = np.random.default_rng(1).standard_normal((4, 2))
    w0 = np.array([0.7, -0.3])
    with kiln.enable_grad():
        eager = g(kiln.tensor(xs0), kiln.tensor(w0, requires_grad=True))
    f = kiln.compile(g, dynamic={"xs": {0: "T"}})
    got = f(kiln.tensor(xs0), kiln.tensor(w0, requires_grad=True))
    np.testing.assert_allclose(_np(got), _np(eager), rtol=1e-10)


def test_while_loop_under_grad_is_a_clear_error():
    w = kiln.tensor([0.5, 0.2], requires_grad=True)
    f = lambda x: kiln.while_loop(lambda c: c.sum() < 10, lambda c: c * 2 + w, x)  # noqa: E731
    with pytest.raises(AutogradError, match="fori_loop"):
        f(kiln.ones(2))
    with pytest.raises(AutogradError, match="fori_loop"):
        kiln.compile(f)(kiln.ones(2))
    with kiln.no_grad():
        assert f(kiln.ones(2)).shape == (2,)


# ----------------------------------------------------------------------------- backends, JSON

def test_c_backend_runs_control_flow_like_the_interpreter():
    """Loops and branches lowered into the generated C (kiln.backends.c.control_lower)."""
    def nested(x, n):
        def body(i, c):
            return kiln.cond(i % 2 == 0, lambda c: (c + x).tanh(), lambda c: c * 2, (c,))
        y = kiln.fori_loop(0, n, body, kiln.zeros_like(x))
        return kiln.while_loop(lambda c: c.abs().sum() < 50, lambda c: c * 3 + 1, y)

    c = kiln.compile(nested, backend="c")
    i = kiln.compile(nested, backend="interpret")
    for x, n in ((kiln.tensor([0.5, -0.25]), 5), (kiln.tensor([2.0, 1.0]), 2)):
        np.testing.assert_allclose(_np(c(x, kiln.tensor(n))), _np(i(x, kiln.tensor(n))),
                                   rtol=1e-5)
    from kiln.backends.c.plan import build_plan

    plan, source = build_plan(kiln.trace(branchy, kiln.ones(3)))
    assert "if (*(const bool *)P[" in source and plan["format"] == "kiln.c.plan"


def test_c_backend_gradients_through_loops():
    rng = np.random.default_rng(2)
    xs0, h00 = rng.standard_normal((3, 2)), rng.standard_normal(3) * 0.3
    wi0, wh0 = rng.standard_normal((2, 3)) * 0.5, rng.standard_normal((3, 3)) * 0.5
    c = kiln.compile(elman, backend="c", dynamic={"xs": {0: "T"}})
    grads = []
    for f in (elman, c):
        wh = kiln.tensor(wh0, requires_grad=True)
        f(kiln.tensor(xs0), kiln.tensor(h00), kiln.tensor(wi0), wh).backward()
        grads.append(_np(wh.grad))
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-9)


def _control_json(gm: GraphModule) -> dict:
    return json.loads(gm.to_json())


def test_loaded_subgraphs_are_validated():
    gm = kiln.trace(branchy, kiln.ones(3))
    obj = _control_json(gm)
    node = next(n for n in obj["graph"]["nodes"] if n["op"] == "control")
    node["kwargs"]["true_graph"]["graph"]["nodes"][0]["meta"]["shape"] = [4]
    text = json.dumps(obj)
    with pytest.raises(SerializationError):
        GraphModule.from_json(text)
    # a subgraph anywhere but in a control node's attributes is not a value
    obj = _control_json(gm)
    call = next(n for n in obj["graph"]["nodes"] if n["op"] == "call")
    call["kwargs"]["dims"] = {"graph": node["kwargs"]["false_graph"]["graph"]}
    with pytest.raises(SerializationError):
        GraphModule.from_json(json.dumps(obj))


def test_subgraph_nesting_depth_is_bounded():
    from kiln.graph.serialize import MAX_DEPTH, graph_from_obj

    gm = kiln.trace(branchy, kiln.ones(3))
    obj = _control_json(gm)["graph"]
    deep = obj
    for _ in range(MAX_DEPTH + 2):
        deep = json.loads(json.dumps(obj).replace('"true_graph": {"graph": ',
                                                  '"true_graph": {"graph": ', 1))
        node = next(n for n in deep["nodes"] if n["op"] == "control")
        node["kwargs"]["true_graph"] = {"graph": obj}
        obj = deep
    with pytest.raises(KilnError):
        graph_from_obj(obj)


def test_docs_jit_md_examples_run(tmp_path):
    import os
    import pathlib
    import re
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[2]
    doc = root / "docs" / "jit.md"
    env = dict(os.environ, PYTHONPATH=str(root / "src"))
    for i, block in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)):
        script = tmp_path / f"block{i}.py"  # a file: kiln.jit.script reads its source
        script.write_text(block)
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                             cwd=tmp_path, env=env, timeout=600)
        assert out.returncode == 0, f"docs/jit.md block {i} failed:\n{block}\n{out.stderr}"


@pytest.mark.parametrize("partition", ["default_partition", "min_cut_rematerialization_partition"])
def test_aot_partitioners_keep_control_nodes_whole(partition):
    from kiln import aot

    def loss(xs, h0, w):
        return kiln.fori_loop(0, xs.shape[0], lambda i, h: (xs[i] + h @ w).tanh(), h0).sum()

    xs, h0 = kiln.randn(4, 3, dtype=F64), kiln.zeros(3, dtype=F64)
    w0 = kiln.randn(3, 3, dtype=F64) * 0.3
    w = w0.detach().requires_grad_()
    loss(xs, h0, w).backward()
    f = aot.aot_function(loss, aot.nop, partition_fn=getattr(aot, partition))
    w2 = w0.detach().requires_grad_()
    f(xs, h0, w2).backward()
    np.testing.assert_allclose(_np(w2.grad), _np(w.grad), rtol=1e-12)
