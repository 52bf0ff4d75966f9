"""kiln.jit.script: the acceptance programs (eager, interpreter; gradients against finite
differences in float64), error messages, ignore/unused and the ScriptModule surface."""

from __future__ import annotations

import copy
from typing import Optional

import numpy as np
import pytest

import kiln
from kiln.errors import ArgumentError, ScriptError

F64 = kiln.float64


def _np(x):
    return np.asarray(x.detach().numpy() if isinstance(x, kiln.Tensor) else x)


def _fd_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        g[idx] = (f(xp) - f(xm)) / (2 * eps)
    return g


# ----------------------------------------------------------------------------- programs

def sign_branch(x, scale: float = 2.0):
    if x.sum() > 0:
        return (x * scale).exp()
    y = -x
    return y.sin()


def test_if_on_tensor_value_eager_and_interpreter():
    sf = kiln.jit.script(sign_branch)
    compiled = kiln.compile(sf)
    for x in (kiln.tensor([0.5, 1.0]), kiln.tensor([-0.5, -1.0])):
        want = np.exp(2 * _np(x)) if _np(x).sum() > 0 else np.sin(-_np(x))
        np.testing.assert_allclose(_np(sf(x)), want, rtol=1e-6)
        np.testing.assert_allclose(_np(compiled(x)), want, rtol=1e-6)
    assert compiled.cache_info()["traces"] == 1  # one graph serves both signs
    assert "if bool(" in sf.code


def test_scripted_programs_on_the_c_backend():
    """The acceptance programs on the C backend, against the interpreter."""
    for x in (kiln.tensor([0.5, 1.0]), kiln.tensor([-0.5, -1.0])):
        got = kiln.compile(kiln.jit.script(sign_branch), backend="c")(x)
        np.testing.assert_allclose(_np(got), _np(sign_branch(x)), rtol=1e-5)
    s = kiln.tensor([0.1, 0.5, 0.95, 0.2])
    best, i = kiln.compile(kiln.jit.script(beam), backend="c")(s, 0.9)
    assert int(i.item()) == 2 and abs(best.item() - 0.95) < 1e-6
    m = Cell()
    cm = kiln.compile(kiln.jit.script(m), backend="c")
    x, h = kiln.randn(2, 3), kiln.randn(2, 3)
    for args in ((x,), (x, h)):
        np.testing.assert_allclose(_np(cm(*args)), _np(m(*args)), rtol=1e-5, atol=1e-6)
    rng = np.random.default_rng(7)
    xs0, wi0, wh0 = rng.standard_normal((4, 2)), rng.standard_normal((2, 3)), \
        rng.standard_normal((3, 3)) * 0.5
    ce = kiln.compile(kiln.jit.script(elman), backend="c", dynamic={"xs": {0: "T"}})
    grads = []
    for f in (elman, ce):
        wh = kiln.tensor(wh0, requires_grad=True)
        f(kiln.tensor(xs0), kiln.tensor(np.zeros(3)), kiln.tensor(wi0), wh).backward()
        grads.append(_np(wh.grad))
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-9)


def elman(xs, h, w_ih, w_hh):
    for t in range(xs.shape[0]):
        h = (xs[t] @ w_ih + h @ w_hh).tanh()
    return h.sum()


@pytest.mark.parametrize("t", [1, 4])
def test_elman_rnn_dynamic_length_gradients(t):
    rng = np.random.default_rng(t)
    xs0, h0 = rng.standard_normal((t, 2)), rng.standard_normal(3) * 0.3
    wi0, wh0 = rng.standard_normal((2, 3)) * 0.5, rng.standard_normal((3, 3)) * 0.5
    sf = kiln.jit.script(elman)
    compiled = kiln.compile(sf, dynamic={"xs": {0: "T"}})
    fd = _fd_grad(lambda v: elman(kiln.tensor(xs0), kiln.tensor(h0), kiln.tensor(wi0),
                                  kiln.tensor(v)).item(), wh0)
    for f in (sf, compiled):
        wh = kiln.tensor(wh0, requires_grad=True)
        f(kiln.tensor(xs0), kiln.tensor(h0), kiln.tensor(wi0), wh).backward()
        np.testing.assert_allclose(_np(wh.grad), fd, rtol=1e-5, atol=1e-8)
    gm = sf.graph_module(kiln.tensor(xs0), kiln.tensor(h0), kiln.tensor(wi0),
                         kiln.tensor(wh0))
    assert not any(n.op == "control" for n in gm.graph.nodes)  # static length: unrolled
    assert compiled.cache_info()["traces"] == 1


def beam(scores, limit: float):
    best = kiln.zeros((), dtype=scores.dtype)
    i = 0
    while i < scores.shape[0]:
        best = kiln.maximum(best, scores[i])
        if best > limit:
            break
        i += 1
    return best, i


def test_beam_search_style_while_with_break():
    sf = kiln.jit.script(beam)
    compiled = kiln.compile(sf)
    for scores, want_i in (([0.1, 0.5, 0.95, 0.2], 2), ([0.1, 0.2, 0.3, 0.4], 4)):
        s = kiln.tensor(scores)
        best, i = sf(s, 0.9)
        assert i == want_i
        best_c, i_c = compiled(s, 0.9)
        assert int(i_c.item()) == want_i and abs(best_c.item() - best.item()) < 1e-7
    assert compiled.cache_info()["traces"] == 1


class Cell(kiln.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = kiln.nn.Linear(3, 3)

    def forward(self, x, h: Optional[kiln.Tensor] = None, scale: Optional[float] = None):  # noqa: UP045  (the TorchScript spelling)
        if h is None:
            h = kiln.zeros_like(x)
        out = self.fc(x).tanh() + h
        if scale is not None:
            out = out * scale
        return out


def test_module_with_optional_inputs():
    m = Cell()
    sm = kiln.jit.script(m)
    x, h = kiln.randn(2, 3), kiln.randn(2, 3)
    compiled = kiln.compile(sm)
    for args in ((x,), (x, h), (x, None, 3.0), (x, h, 0.5)):
        want = m(*args)
        np.testing.assert_allclose(_np(sm(*args)), _np(want), rtol=1e-6)
        np.testing.assert_allclose(_np(compiled(*args)), _np(want), rtol=1e-6)


def helper(x):
    if x.mean() > 0:
        x = x * 2
    else:
        x = x - 1
    return x


def calls_helper(x, n: int):
    total = x
    for _ in range(n):
        total = helper(total)
    return total


def test_calls_to_other_functions_are_scripted():
    sf = kiln.jit.script(calls_helper)
    gm = sf.graph_module(kiln.ones(2), 3)
    assert sum(n.op == "control" for n in gm.graph.nodes) == 3
    x = kiln.tensor([0.5, -3.0])
    np.testing.assert_allclose(_np(gm(x, 3)), _np(calls_helper(x, 3)))


# ----------------------------------------------------------------------------- errors

def uses_lambda(x):
    f = lambda y: y + 1  # noqa: E731
    return f(x)


def uses_try(x):
    try:
        return x
    except ValueError:
        return x


def test_script_error_points_at_the_source():
    with pytest.raises(ScriptError) as info:
        kiln.jit.script(uses_lambda)
    msg = str(info.value)
    assert "test_script.py:" in msg and "f = lambda y: y + 1" in msg
    caret = msg.splitlines()[-1]
    line = msg.splitlines()[-2]
    assert line[caret.index("^"):].startswith("lambda")
    assert "Supported:" in msg and "define a function with def" in msg
    with pytest.raises(ScriptError, match="Try"):
        kiln.jit.script(uses_try)


def test_annotations_are_checked():
    sf = kiln.jit.script(sign_branch)
    with pytest.raises(ArgumentError, match="scale"):
        sf(kiln.ones(2), "x")
    with pytest.raises(ArgumentError, match="must be Tensor"):
        sf([1.0, 2.0])


@kiln.jit.ignore
def python_only(x):
    return x * float(len([1, 2, 3]))


@kiln.jit.unused
def never(x):
    return x


def calls_ignored(x):
    return python_only(x) + 1


def calls_unused(x):
    return never(x)


def test_ignore_and_unused():
    np.testing.assert_allclose(_np(kiln.jit.script(calls_ignored)(kiln.ones(2))), [4.0, 4.0])
    with pytest.raises(ScriptError, match="unused"):
        kiln.jit.script(calls_unused)(kiln.ones(2))
    with pytest.raises(ScriptError, match="ignore"):
        kiln.jit.script(python_only)


# ----------------------------------------------------------------------------- ScriptModule

def test_script_module_surface():
    m = Cell()
    calls = []
    m.register_forward_hook(lambda mod, args, out: calls.append("hook"))
    sm = kiln.jit.script(m)
    assert [id(p) for p in sm.parameters()] == [id(p) for p in m.parameters()]
    assert list(sm.state_dict()) == list(m.state_dict())
    sm(kiln.ones(1, 3))
    assert calls == ["hook"] and len(sm._get_forward_hooks()) == 1
    with pytest.raises(ScriptError, match="before"):
        sm.register_forward_hook(lambda *a: None)
    assert sm.eval() is sm and not sm.training and not m.training and not m.fc.training
    assert sm._method_names() == ["forward"] and sm._has_method("forward")
    assert sm._get_method("forward")(kiln.ones(1, 3)).shape == (1, 3)
    shallow, deep = copy.copy(sm), copy.deepcopy(sm)
    assert next(shallow.parameters()) is next(sm.parameters())
    assert next(deep.parameters()) is not next(sm.parameters())
    assert sm == sm and sm != shallow and hash(sm) == id(sm) // 16 or hash(sm) == hash(sm)
    sm.load_state_dict(m.state_dict())
    code, consts = sm.code_with_constants
    assert "def forward" in code and set(consts) == {"fc.weight", "fc.bias"}
    assert "fc.weight: f32[3, 3]" in sm.dump_to_str()
    assert sm.inlined_graph is not None and "def forward" in sm.code


# ----------------------------------------------------------------------------- ts_compile

def test_ts_compile_with_aot_function_matches_eager():
    from kiln.aot import aot_function, script_compile, ts_compile

    assert script_compile is ts_compile

    def f(x, w):
        return ((x @ w) * kiln.arange(3.0, dtype=F64).exp()).tanh().sum()

    rng = np.random.default_rng(3)
    x0, w0 = rng.standard_normal((2, 4)), rng.standard_normal((4, 3))
    g = aot_function(f, fw_compiler=ts_compile, bw_compiler=ts_compile)
    fd = _fd_grad(lambda v: f(kiln.tensor(x0), kiln.tensor(v)).item(), w0)
    w = kiln.tensor(w0, requires_grad=True)
    g(kiln.tensor(x0), w).backward()
    np.testing.assert_allclose(_np(w.grad), fd, rtol=1e-6, atol=1e-8)


def test_ts_compile_on_a_scripted_loop():
    from kiln.aot import aot_function, ts_compile

    g = aot_function(kiln.jit.script(elman), fw_compiler=ts_compile, bw_compiler=ts_compile,
                     dynamic={"xs": {0: "T"}})
    rng = np.random.default_rng(5)
    xs0, h0 = rng.standard_normal((3, 2)), rng.standard_normal(3)
    wi0, wh0 = rng.standard_normal((2, 3)), rng.standard_normal((3, 3)) * 0.5
    wh = kiln.tensor(wh0, requires_grad=True)
    g(kiln.tensor(xs0), kiln.tensor(h0), kiln.tensor(wi0), wh).backward()
    wh2 = kiln.tensor(wh0, requires_grad=True)
    elman(kiln.tensor(xs0), kiln.tensor(h0), kiln.tensor(wi0), wh2).backward()
    np.testing.assert_allclose(_np(wh.grad), _np(wh2.grad), rtol=1e-10)


def test_define_register_attribute_and_methods_from_trace():
    m = kiln.jit.script(kiln.nn.Linear(2, 2))
    m.define("def twice(self, x):\n    if x.sum() > 0:\n        return self.forward(x) * 2\n"
             "    return x")
    x = kiln.ones(1, 2)
    np.testing.assert_allclose(_np(m.twice(x)), _np(m(x)) * 2, rtol=1e-6)
    np.testing.assert_allclose(_np(m.twice(-x)), _np(-x))
    m._create_method_from_trace("triple", lambda x: x * 3, (kiln.ones(2),))
    m._create_method_from_trace_with_dict("quad", lambda x: x * 4, {"x": kiln.ones(2)})
    assert m._method_names() == ["forward", "twice", "triple", "quad"]
    assert m.triple(kiln.ones(2)).tolist() == [3.0, 3.0]
    assert m.quad(kiln.ones(2)).tolist() == [4.0, 4.0]
    m._register_attribute("k", int, 3)
    assert m.k == 3
    with pytest.raises(ScriptError, match="<define>:2"):
        m.define("def bad(self, x):\n    return [y for y in x]")


def test_freeze_folds_parameters_and_batchnorm_arithmetic():
    seq = kiln.nn.Sequential(kiln.nn.Linear(3, 4), kiln.nn.BatchNorm1d(4))
    sm = kiln.jit.script(seq)
    x = kiln.randn(5, 3)
    with pytest.raises(ArgumentError, match="eval"):
        kiln.jit.freeze(sm, x)
    sm.eval()
    frozen = kiln.jit.freeze(sm, x)
    np.testing.assert_allclose(_np(frozen(x)), _np(seq(x)), rtol=1e-5, atol=1e-6)
    assert not [n for n in frozen.graph.calls() if n.target in ("permute", "rsqrt")]


def test_freeze_folds_batchnorm_into_the_conv_and_linear_weights():
    kiln.manual_seed(0)
    net = kiln.nn.Sequential(kiln.nn.Conv2d(3, 4, 3, bias=False), kiln.nn.BatchNorm2d(4),
                             kiln.nn.ReLU(), kiln.nn.Flatten(), kiln.nn.Linear(64, 5),
                             kiln.nn.BatchNorm1d(5))
    x = kiln.randn(8, 3, 6, 6)
    net(x), net(x * 2.0)  # running statistics that are not the initial ones
    net.eval()
    sm = kiln.jit.script(net)
    frozen = kiln.jit.freeze(sm, x)
    assert [n.target for n in frozen.graph.calls()] == \
        ["conv2d", "add", "relu", "reshape", "matmul", "add"]
    with kiln.no_grad():
        want = net(x)
    np.testing.assert_allclose(_np(frozen(x)), _np(want), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(kiln.compile(frozen, backend="c")(x)), _np(want),
                               rtol=1e-5, atol=1e-6)


def test_freeze_leaves_a_shared_weight_and_non_channel_constants_alone():
    from kiln.jit.fold_affine import fold_affine

    w = kiln.randn(4, 4)
    row = kiln.randn(3, 1)  # varies along the batch, not the channels: not foldable

    def f(x):
        y = x @ w
        return y * row, x @ w  # the weight also feeds a second product
    gm = kiln.trace(f, kiln.randn(3, 4))
    assert fold_affine(gm) == 0
    gm2 = kiln.trace(lambda x: (x @ w) * row, kiln.randn(3, 4))
    assert fold_affine(gm2) == 0


def mixed_loops(xs: list[kiln.Tensor], x, n: int):
    total = kiln.zeros_like(x)
    for t in xs:
        total += t
    k = 0
    while k < n:
        k += 1
        if k == 2:
            continue
        if total.sum() > 10:
            total = total * 0.5
        elif total.sum() < 0:
            total = total - 1
        else:
            total = total + x
    return total, k


def test_for_over_list_while_continue_elif():
    sf = kiln.jit.script(mixed_loops)
    compiled = kiln.compile(sf)
    for scale in (1.0, 5.0, -1.0):
        xs = [kiln.ones(2) * scale, kiln.ones(2)]
        want, k = mixed_loops(xs, kiln.ones(2), 4)
        got, k2 = sf(xs, kiln.ones(2), 4)
        np.testing.assert_allclose(_np(got), _np(want))
        got_c, _ = compiled(xs, kiln.ones(2), 4)
        np.testing.assert_allclose(_np(got_c), _np(want))
        assert k == k2 == 4


def containers(d: dict[str, kiln.Tensor], pair: tuple[int, float], names: list[str],
               tag: str = "a"):
    out = d[tag] * pair[1] + pair[0]
    if len(names) > 1:
        out = out + 1
    return out


def test_container_annotations_are_checked():
    sf = kiln.jit.script(containers)
    d = {"a": kiln.ones(2)}
    assert _np(sf(d, (1, 2.0), ["x", "y"])).tolist() == [4.0, 4.0]
    with pytest.raises(ArgumentError, match="pair"):
        sf(d, (1, "2"), ["x"])
    with pytest.raises(ArgumentError, match="names"):
        sf(d, (1, 2.0), [1])
    with pytest.raises(ArgumentError, match="tag"):
        sf(d, (1, 2.0), ["x"], 3)


def branch_locals(x, ws: list[kiln.Tensor]):
    if x.sum() > 0:
        acc = x
        for w in ws:
            acc = acc * w
        y = acc
    else:
        y = -x
    return y


def test_branch_local_names_stay_local():
    sf = kiln.jit.script(branch_locals)
    ws = [kiln.ones(2) * 2, kiln.ones(2) * 3]
    gm = sf.graph_module(kiln.ones(2), ws)
    for x in (kiln.ones(2), -kiln.ones(2)):
        np.testing.assert_allclose(_np(gm(x, ws)), _np(branch_locals(x, ws)))


@kiln.jit._overload
def scaled(x, k: int = 2): ...  # noqa: E704


@kiln.jit._overload
def scaled(x, k: float): ...  # noqa: E704,F811


def scaled(x, k):  # noqa: F811
    return x * k


def test_overloads_with_defaults():
    sf = kiln.jit.script(scaled)
    assert _np(sf(kiln.ones(1))).tolist() == [2.0]  # the first overload's default
    assert _np(sf(kiln.ones(1), 0.5)).tolist() == [0.5]
    with pytest.raises(ArgumentError, match="no overload"):
        sf(kiln.ones(1), "k")
