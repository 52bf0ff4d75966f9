"""aot_function: the seed programs, signatures, caching, grad modes, errors."""

from __future__ import annotations

import functools
import os
import stat

import numpy as np
import pytest

import kiln
import kiln.aot
import kiln.nn.functional as F
from kiln.aot import (
    aot_function,
    default_partition,
    draw_graph,
    min_cut_rematerialization_partition,
    nop,
)
from kiln.backends import get_backend
from kiln.errors import ArgumentError, AutogradError, GraphError, KilnError, TraceError

PARTITIONS = [default_partition, min_cut_rematerialization_partition]


def _leaf(a, requires_grad=True, dtype=kiln.float64):
    return kiln.tensor(np.asarray(a), dtype=dtype, requires_grad=requires_grad)


def _eager_and_aot(fn, arrays, partition=default_partition, **kw):
    """(eager grads, aot grads) of sum(fn(*xs)) for float64 leaves made from ``arrays``."""
    grads = []
    for wrap in (fn, aot_function(fn, nop, partition_fn=partition, **kw)):
        xs = [_leaf(a) for a in arrays]
        wrap(*xs).sum().backward()
        grads.append([x.grad.numpy() for x in xs])
    return grads


# --------------------------------------------------------------------------------------
# seed programs


def test_seed_print_forward_and_backward(capsys):
    def compiler_fn(gm, example_specs):
        print(gm.code)
        return gm

    def f(x):
        return x.cos().cos()

    nf = aot_function(f, fw_compiler=compiler_fn, bw_compiler=compiler_fn)
    x = kiln.randn(3, requires_grad=True)
    nf(x)
    fw_code, bw_code = ("def forward" + c for c in
                        capsys.readouterr().out.split("def forward")[1:3])
    assert fw_code.count("ops.cos(") == 2 and "ops.sin(" not in fw_code
    assert bw_code.startswith("def forward(self, primals_1, cos, tangents_1)")
    assert bw_code.count("ops.sin(") == 2 and bw_code.count("ops.mul(") == 2
    assert "ops.cos(" not in bw_code


@pytest.mark.parametrize("partition", PARTITIONS)
def test_seed_compose_with_eager_before_and_after(partition):
    def f(x):
        return x.cos().cos()

    kiln.manual_seed(3)
    base = kiln.randn(3, requires_grad=True)
    nf = aot_function(f, nop, partition_fn=partition)
    inp = base.cos()
    out = nf(inp)
    out.sin().sum().backward()
    ref = kiln.tensor(base.detach().numpy(), requires_grad=True)
    f(ref.cos()).sin().sum().backward()
    np.testing.assert_array_equal(base.grad.numpy(), ref.grad.numpy())


def _no_dot_path(tmp_path):
    empty = tmp_path / "empty_bin"
    empty.mkdir(exist_ok=True)
    return str(empty)


def test_seed_draw_graph_without_dot(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", _no_dot_path(tmp_path))

    def graph_drawer(name):
        def f(gm, inps):
            draw_graph(gm, tmp_path / name)
            return gm
        return f

    nf = aot_function(lambda x: x.cos().cos(), fw_compiler=graph_drawer("forward.svg"),
                      bw_compiler=graph_drawer("backward.svg"))
    nf(kiln.randn(3, requires_grad=True)).sum().backward()
    files = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert files == ["backward.dot", "forward.dot"]
    assert (tmp_path / "forward.dot").read_text().startswith('digraph "forward"')
    hints = [line for line in capsys.readouterr().err.splitlines() if "dot` not found" in line]
    assert len(hints) == 2


def test_draw_graph_with_dot(tmp_path, monkeypatch):
    # A stand-in `dot` that writes a fixed SVG proves the rendering path end to end.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"
    fake.write_text("#!/bin/sh\ncat > /dev/null\necho '<svg>fake</svg>'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))
    nf = aot_function(lambda x: x.exp(), kiln.aot.graph_drawer(tmp_path / "fw.svg"))
    nf(kiln.ones(2, requires_grad=True))
    assert (tmp_path / "fw.svg").read_text().strip() == "<svg>fake</svg>"
    fake.write_text("#!/bin/sh\necho boom >&2\nexit 3\n")
    gm = kiln.trace(lambda x: x.exp(), kiln.ones(2))
    with pytest.raises(KilnError, match="dot failed.*boom"):
        draw_graph(gm, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
    with pytest.raises(ArgumentError, match="unsupported file type"):
        draw_graph(gm, tmp_path / "g.jpeg")


# --------------------------------------------------------------------------------------
# signatures


@pytest.mark.parametrize("partition", PARTITIONS)
def test_pytree_inputs_and_outputs(partition):
    def f(inputs, scale, *, mode):
        a, b = inputs["a"], inputs["b"]
        y = (a * b).tanh() * scale
        return {"y": y, "stats": (y.sum(), (a - b).exp()), "mode": mode}

    arrays = np.random.default_rng(0).uniform(-1, 1, (2, 3, 4))
    results = []
    for wrap in (f, aot_function(f, nop, partition_fn=partition)):
        a, b = _leaf(arrays[0]), _leaf(arrays[1])
        out = wrap({"b": b, "a": a}, 2.0, mode="train")
        assert out["mode"] == "train" and isinstance(out["stats"], tuple)
        (out["y"].sum() * 3.0 + out["stats"][1].sum()).backward()
        results.append((out["y"].detach().numpy(), a.grad.numpy(), b.grad.numpy()))
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_inputs_without_grad_and_outputs_without_grad():
    def f(x, w, idx):
        y = x @ w
        return y.relu(), y.argmax(1), ops_gather(y, idx)

    def ops_gather(y, idx):
        return kiln.ops.gather(y, idx, dim=1)

    rng = np.random.default_rng(1)
    xa, wa = rng.uniform(-1, 1, (4, 3)), rng.uniform(-1, 1, (3, 5))
    idx = kiln.tensor(rng.integers(0, 5, (4, 2)))
    grads = []
    for wrap in (f, aot_function(f, nop)):
        x, w = _leaf(xa, requires_grad=False), _leaf(wa)
        r, am, g = wrap(x, w, idx)
        assert not am.requires_grad and am.dtype == kiln.int64
        assert r.requires_grad and g.requires_grad
        (r.sum() + g.sum() * 2.0).backward()
        assert x.grad is None
        grads.append(w.grad.numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-12)


def test_output_unused_in_loss_gets_zero_tangent():
    f = aot_function(lambda x: (x.exp(), x.sin(), x * 2.0), nop)
    x = _leaf([0.1, 0.2])
    a, b, c = f(x)
    b.sum().backward()  # a and c get no gradient: zeros reach the compiled backward
    np.testing.assert_allclose(x.grad.numpy(), np.cos([0.1, 0.2]))


def test_outputs_aliasing_inputs_and_each_other():
    def f(x, y):
        z = x * y
        return x, z, z, y

    nf = aot_function(f, nop)
    x, y = _leaf([1.0, 2.0]), _leaf([3.0, 4.0])
    ox, z1, z2, oy = nf(x, y)
    assert ox is not x and ox.grad_fn is not None and x.is_leaf
    (ox.sum() + z1.sum() * 2.0 + z2.sum() * 3.0).backward()
    np.testing.assert_allclose(x.grad.numpy(), 1.0 + 5.0 * np.array([3.0, 4.0]))
    np.testing.assert_allclose(y.grad.numpy(), 5.0 * np.array([1.0, 2.0]))


def test_unused_input_gets_no_grad():
    nf = aot_function(lambda x, y: x * 2.0, nop)
    x, y = _leaf([1.0]), _leaf([2.0])
    nf(x, y).sum().backward()
    assert y.grad is None and x.grad.tolist() == [2.0]


def test_cache_per_signature():
    calls = []

    def counting(gm, specs):
        calls.append(len(gm.graph.placeholders))
        return gm

    nf = aot_function(lambda x, n: x * n, counting)
    x = _leaf([1.0, 2.0])
    nf(x, 2)
    nf(_leaf([3.0, 4.0]), 2)
    assert nf.cache_info() == {"signatures": 1, "traces": 1}
    nf(x, 3)  # static arguments are specialized
    nf(_leaf([1.0, 2.0, 3.0]), 2)  # new shape
    nf(_leaf([1.0, 2.0], dtype=kiln.float32), 2)  # new dtype
    nf(_leaf([1.0, 2.0], requires_grad=False), 2)  # inference graph
    with kiln.no_grad():
        nf(x, 2)  # grad mode off: inference graph
    assert nf.cache_info() == {"signatures": 6, "traces": 6}
    assert nf(x, 3).tolist() == [3.0, 6.0]


def test_inference_graph_only_when_no_grad_needed():
    seen = {"fw": 0, "bw": 0, "inf": 0}

    def make(role):
        def compiler(gm, specs):
            seen[role] += 1
            has_tangents = any(p.target.startswith("tangents") for p in gm.graph.placeholders)
            assert has_tangents == (role == "bw")
            return gm
        return compiler

    nf = aot_function(lambda x: x.exp() * 2.0, make("fw"), make("bw"),
                      inference_compiler=make("inf"))
    out = nf(kiln.ones(2))
    assert not out.requires_grad and seen == {"fw": 0, "bw": 0, "inf": 1}
    with kiln.no_grad():
        assert not nf(kiln.ones(2, requires_grad=True)).requires_grad
    nf(kiln.ones(2, requires_grad=True))
    assert seen == {"fw": 1, "bw": 1, "inf": 2}


def test_interpret_backend_as_compiler():
    interp = get_backend("interpret")
    grads = _eager_and_aot(lambda a, b: (a @ b).sigmoid(), [np.ones((2, 3)) * 0.1,
                                                            np.ones((3, 2)) * 0.2])
    nf = aot_function(lambda a, b: (a @ b).sigmoid(), interp)
    a, b = _leaf(np.ones((2, 3)) * 0.1), _leaf(np.ones((3, 2)) * 0.2)
    nf(a, b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), grads[0][0], rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), grads[0][1], rtol=1e-12)


def test_dynamic_batch_dim_one_trace():
    def f(x, w):
        return (x @ w).tanh().sum()

    for partition in PARTITIONS:
        nf = aot_function(f, nop, partition_fn=partition, dynamic={"x": {0: "B"}})
        w = _leaf(np.full((3, 2), 0.3))
        for b in (2, 5):
            xa = np.arange(3 * b, dtype=np.float64).reshape(b, 3) / 10
            w.grad = None
            nf(_leaf(xa), w).backward()
            ref_w = _leaf(np.full((3, 2), 0.3))
            f(_leaf(xa), ref_w).backward()
            np.testing.assert_allclose(w.grad.numpy(), ref_w.grad.numpy(), rtol=1e-12)
        assert nf.cache_info()["traces"] == 1


def test_dynamic_dims_through_a_shared_weight_gradient():
    # (B, T, 3) @ (3, 2): the weight's gradient is one GEMM over B*T stacked rows, with a
    # symbolic row count
    def f(x, w):
        return (x @ w).tanh().sum()

    nf = aot_function(f, nop, dynamic={"x": {0: "B", 1: "T"}})
    w = _leaf(np.full((3, 2), 0.3))
    for b, t in ((2, 3), (4, 1), (1, 5)):
        xa = np.arange(3 * b * t, dtype=np.float64).reshape(b, t, 3) / 10
        w.grad = None
        nf(_leaf(xa), w).backward()
        ref_w = _leaf(np.full((3, 2), 0.3))
        f(_leaf(xa), ref_w).backward()
        np.testing.assert_allclose(w.grad.numpy(), ref_w.grad.numpy(), rtol=1e-12)
    assert nf.cache_info()["traces"] == 1


def test_decompositions_replace_primitives():
    def sigmoid(x):
        return 1.0 / ((-x).exp() + 1.0)

    graphs = []

    def keep(gm, specs):
        graphs.append(gm)
        return gm

    fn = lambda x: (x * 2.0).sigmoid()  # noqa: E731
    nf = aot_function(fn, keep, decompositions={"sigmoid": sigmoid})
    x, ref = _leaf([0.3, -1.2]), _leaf([0.3, -1.2])
    nf(x).sum().backward()
    fn(ref).sum().backward()
    targets = [n.target for gm in graphs for n in gm.graph.calls()]
    assert "sigmoid" not in targets and "exp" in targets
    np.testing.assert_allclose(x.grad.numpy(), ref.grad.numpy(), rtol=1e-12)


def test_input_mutation_is_written_back():
    def f(x, counter):
        counter.add_(1.0)
        return x * counter

    nf = aot_function(f, nop)
    counter = kiln.zeros(2, dtype=kiln.float64)
    x = _leaf([1.0, 2.0])
    nf(x, counter).sum().backward()
    nf(x, counter)
    assert counter.tolist() == [2.0, 2.0]
    assert x.grad.tolist() == [1.0, 1.0]


# --------------------------------------------------------------------------------------
# errors


def test_compiler_returning_non_callable():
    def bad(gm, specs):
        return 42

    with pytest.raises(ArgumentError, match="fw_compiler 'bad' returned int 42"):
        aot_function(lambda x: x * 2.0, bad)(kiln.ones(2, requires_grad=True))
    with pytest.raises(ArgumentError, match="bw_compiler 'bad'"):
        aot_function(lambda x: x * 2.0, nop, bad)(kiln.ones(2, requires_grad=True))
    with pytest.raises(ArgumentError, match="inference_compiler 'bad'"):
        aot_function(lambda x: x * 2.0, nop, inference_compiler=bad)(kiln.ones(2))


def test_partition_fn_wrong_arity():
    def three(joint, inputs, *, num_fwd_outputs):
        fw, bw = default_partition(joint, inputs, num_fwd_outputs=num_fwd_outputs)
        return fw, bw, fw

    with pytest.raises(ArgumentError, match="partition_fn 'three' returned 3 values"):
        aot_function(lambda x: x.exp(), nop, partition_fn=three)(kiln.ones(2,
                                                                           requires_grad=True))

    def not_graphs(joint, inputs, *, num_fwd_outputs):
        return "fw", "bw"

    with pytest.raises(ArgumentError, match="partition_fn 'not_graphs'"):
        aot_function(lambda x: x.exp(), nop, partition_fn=not_graphs)(
            kiln.ones(2, requires_grad=True))

    def swapped(joint, inputs, *, num_fwd_outputs):
        fw, bw = default_partition(joint, inputs, num_fwd_outputs=num_fwd_outputs)
        return bw, fw

    with pytest.raises(ArgumentError, match="partition_fn 'swapped'.*expected 1"):
        aot_function(lambda x: x.exp(), nop, partition_fn=swapped)(
            kiln.ones(2, requires_grad=True))


@pytest.mark.parametrize("partition", [lambda j: j, lambda j, i: (j, i),
                                       lambda j, i, k, *, num_fwd_outputs: (j, i)])
def test_partition_fn_with_the_wrong_signature_is_refused_when_made(partition):
    with pytest.raises(ArgumentError, match=r"aot_function: partition_fn '<lambda>' takes "
                                            r"\(j.*cannot be called as partition_fn\(joint_graph, "
                                            r"joint_inputs, \*, num_fwd_outputs=\.\.\.\)"):
        aot_function(lambda x: x.exp(), nop, partition_fn=partition)


def test_compiler_with_the_wrong_signature_is_refused_when_made():
    with pytest.raises(ArgumentError, match=r"bw_compiler '<lambda>' takes \(gm\), so it "
                                            r"cannot be called as compiler\(GraphModule, "
                                            r"example_specs\)"):
        aot_function(lambda x: x.exp(), nop, bw_compiler=lambda gm: gm)
    # Defaults, *args and partials bind: they are accepted.
    aot_function(lambda x: x.exp(), lambda *a: a[0],
                 partition_fn=functools.partial(default_partition))


def test_non_tensor_output_in_grad_position():
    def f(x):
        return x * 2.0, 3.5

    with pytest.raises(TraceError, match=r"output leaf 1 of 2 is float 3\.5"):
        aot_function(f, nop)(kiln.ones(2, requires_grad=True))
    # Without gradients, a Python value is specialized like kiln.trace does.
    assert aot_function(f, nop)(kiln.ones(2))[1] == 3.5


def test_data_dependent_branch():
    def f(x):
        if x.sum() > 0:
            return x * 2.0
        return x

    with pytest.raises(TraceError, match=r"data-dependent control flow at .*test_aot_function"
                                         r".*`if x.sum\(\) > 0:`"):
        aot_function(f, nop)(kiln.ones(2, requires_grad=True))


def test_closed_over_tensors_that_require_grad_get_gradients():
    # A loss function that uses a parameter it closes over: the parameter becomes an input
    # of the joint graph, whether or not the arguments require grad.
    w = kiln.tensor([1.0, 2.0], requires_grad=True)
    f = aot_function(lambda x: (x * w).exp().sum(), nop)
    x = kiln.tensor([0.5, -1.0], requires_grad=True)
    f(x).backward()
    xv, wv = x.detach().numpy(), w.detach().numpy()
    np.testing.assert_allclose(w.grad.numpy(), xv * np.exp(xv * wv), rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), wv * np.exp(xv * wv), rtol=1e-6)
    w.grad = None
    loss = f(kiln.tensor([0.5, -1.0]))  # no argument requires grad: w still does
    assert loss.requires_grad
    loss.backward()
    assert w.grad is not None
    entries = f.entries()  # x requiring grad or not: two joint graphs, w an input of both
    assert len(entries) == 2 and all(e.program.closure_inputs == (w,) for e in entries)
    c = kiln.ones(2) * 3.0  # a constant that needs no gradient stays a constant
    x = kiln.ones(2, requires_grad=True)
    aot_function(lambda x: x * c, nop)(x).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_compile_of_a_loss_function_closing_over_a_model_trains():
    model = kiln.nn.Linear(4, 3)
    x, y = kiln.randn(6, 4), kiln.tensor([0, 1, 2, 0, 1, 2])
    step = kiln.compile(lambda x, y: F.cross_entropy(model(x), y), backend="c")
    step(x, y).backward()
    got = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    for g, p in zip(got, model.parameters(), strict=True):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-5, atol=1e-6)
    with kiln.no_grad():
        assert not step(x, y).requires_grad


def test_bad_arguments():
    with pytest.raises(ArgumentError, match="fw_compiler must be callable"):
        aot_function(lambda x: x, "nop")
    with pytest.raises(GraphError, match="unknown op 'sigmod'.*sigmoid"):
        aot_function(lambda x: x, nop, decompositions={"sigmod": lambda x: x})
    with pytest.raises(ArgumentError, match=r"decompositions\['exp'\] returned"):
        aot_function(lambda x: x.exp(), nop, decompositions={"exp": lambda x: x.sum()})(
            kiln.ones(2))
    with pytest.raises(ArgumentError, match="not hashable"):
        aot_function(lambda x, opts: x, nop)(kiln.ones(2), {1})


def test_double_backward_is_refused_and_graph_is_freed():
    nf = aot_function(lambda x: (x ** 3).sum(), nop)
    x = _leaf([2.0])
    y = nf(x)
    with pytest.raises(AutogradError, match="double backward"):
        kiln.autograd.grad(y, [x], create_graph=True)
    y = nf(x)
    y.backward()
    with pytest.raises(AutogradError, match="second time"):
        y.backward()


def test_saved_input_modified_in_place_is_detected():
    nf = aot_function(lambda x, y: (x * y).sum(), nop)
    x, y = _leaf([1.0]), _leaf([2.0], requires_grad=False)
    out = nf(x, y)
    y.add_(1.0)
    with pytest.raises(AutogradError, match="modified in place"):
        out.backward()


def test_no_files_left_behind_on_dot_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _no_dot_path(tmp_path))
    gm = kiln.trace(lambda x: x.exp(), kiln.ones(2))
    out = draw_graph(gm, tmp_path / "g")
    assert out.name == "g.dot" and not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
