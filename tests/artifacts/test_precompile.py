"""Explicit precompile: aot_compile, save_compiled_function, load_compiled_function in a
fresh process without a compiler, every traced signature saved, weights bound at load."""

from __future__ import annotations

import io
import pathlib

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from artifacts.helpers import BACKENDS, loss_and_grads, run_without_compiler
from kiln.artifacts import AOTCompiledFunction, load_compiled_function
from kiln.errors import GuardError
from kiln.models import MLP

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_step_in_a_fresh_process_without_compiler(backend: str,
                                                        tmp_path: pathlib.Path) -> None:
    kiln.manual_seed(0)
    model = MLP((8, 16, 4))
    x, y = kiln.randn(5, 8), kiln.randint(0, 4, (5,))
    step = kiln.compile(lambda x, y: F.cross_entropy(model(x), y), backend=backend)
    aot = step.aot_compile(((x, y), {}))
    assert isinstance(aot, AOTCompiledFunction)
    aot.save_compiled_function(tmp_path / "step.kiln")
    # Train after saving: the loaded function must run with these new weights.
    with kiln.no_grad():
        for p in model.parameters():
            p.sub_(0.1 * kiln.ones_like(p))
    model.zero_grad()
    want = loss_and_grads(model, F.cross_entropy(model(x), y))
    np.savez(tmp_path / "w.npz", **{k: v.numpy() for k, v in model.state_dict().items()})
    got = run_without_compiler(tmp_path, f"""
        model = MLP((8, 16, 4))
        weights = np.load({str(tmp_path / "w.npz")!r})
        model.load_state_dict({{k: kiln.from_numpy(v) for k, v in weights.items()}})
        g = kiln.compiler.load_compiled_function({str(tmp_path / "step.kiln")!r}, module=model)
    """, x, y)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_save_every_signature_and_pick_by_guards(backend: str, tmp_path: pathlib.Path) -> None:
    f = kiln.compile(lambda x: (x * x).sum(-1), backend=backend)
    a, b = kiln.randn(2, 3), kiln.randn(4, 5)
    f(a)
    f(b)
    f.save(tmp_path / "f.kiln")
    g = kiln.load_compiled(tmp_path / "f.kiln")
    assert len(g.signatures) == 2
    for x in (a, b):
        np.testing.assert_allclose(g(x).numpy(), (x.numpy() ** 2).sum(-1), rtol=1e-5)
    assert g.guard_check(a) and not g.guard_check(kiln.randn(7, 7))
    with pytest.raises(GuardError, match="signature 0: .*signature 1: "):
        g(kiln.randn(7, 7))
    with pytest.raises(GuardError):
        g(a.to(kiln.float64))


def test_disable_guard_check_keeps_input_checks() -> None:
    aot = kiln.compile(lambda x: x + 1.0).aot_compile(((kiln.zeros(2),), {}))
    aot.disable_guard_check()
    assert aot(kiln.zeros(2)).tolist() == [1.0, 1.0]
    with pytest.raises(GuardError):
        aot(kiln.zeros(3))


def test_module_inference_binds_the_given_module() -> None:
    kiln.manual_seed(2)
    model = MLP((4, 6, 3))
    x = kiln.randn(2, 4)
    with kiln.no_grad():
        data = kiln.compile(model).aot_compile(((x,), {})).serialize()
        other = MLP((4, 6, 3))
        g = AOTCompiledFunction.deserialize(data, module=other)
        np.testing.assert_allclose(g(x).numpy(), other(x).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(kiln.KilnError, match="module="):
        AOTCompiledFunction.deserialize(data)


def test_module_training_from_a_file_object() -> None:
    kiln.manual_seed(3)
    model = MLP((4, 6, 3))
    x = kiln.randn(2, 4)
    data = kiln.compile(model).aot_compile(((x,), {})).serialize()
    twin = MLP((4, 6, 3))
    twin.load_state_dict(model.state_dict())
    g = load_compiled_function(io.BytesIO(data), module=twin)
    g(x).square().sum().backward()
    model(x).square().sum().backward()
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_c_train_step_runs_without_decoding_its_forward_and_backward_graphs() -> None:
    # The signed file vouches for every byte: the C functions run from their plans, and
    # their graphs are decoded (and checked) only when asked for.
    kiln.manual_seed(4)
    model = MLP((4, 6, 3))
    x = kiln.randn(2, 4)
    data = kiln.compile(model, backend="c").aot_compile(((x,), {})).serialize()
    g = AOTCompiledFunction.deserialize(data, module=model)
    entry = g.signatures[0].entry
    assert entry.fw._graph is None and entry.bw._graph is None
    g(x).square().sum().backward()
    assert entry.fw._graph is None and entry.bw._graph is None
    assert entry.program.gm._graph is None  # the joint graph too: calls check the interface
    grads = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    model(x).square().sum().backward()
    for p, want in zip(model.parameters(), grads, strict=True):
        np.testing.assert_allclose(want, p.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert entry.fw_gm.graph is entry.fw.graph  # decoded once, on demand
    joint = entry.program.gm.graph
    assert [p.name for p in joint.placeholders] == \
        [p.name for p in entry.program.interface.placeholders]
    assert len(entry.bw_gm.graph.outputs) == entry.bw.num_outputs


def test_bad_arguments() -> None:
    f = kiln.compile(lambda x: x)
    with pytest.raises(kiln.KilnError, match="example_inputs"):
        f.aot_compile((kiln.ones(2),))
    with pytest.raises(kiln.KilnError, match="path or a binary file"):
        load_compiled_function(42)
    with pytest.raises(kiln.KilnError, match="bad magic"):
        load_compiled_function(io.BytesIO(b"not an artifact at all"))
