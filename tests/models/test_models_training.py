"""Training through kiln.compile matches eager training step by step, and graphs traced with a
symbolic batch dim run on many batch sizes without re-tracing."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln import models
from kiln.cli.demo import train
from kiln.nn import functional as F


def _model(name, dtype):
    kiln.manual_seed(11)
    if name == "mlp":
        return models.MLP((20, 32, 5), activation="gelu", dtype=dtype)
    if name == "convnet":
        return models.ConvNet(1, num_classes=5, image_size=8, channels=(4, 6), dtype=dtype)
    return models.TransformerBlock(16, 4, 32, dtype=dtype)


def _data(name, dtype, batch=8):
    kiln.manual_seed(5)
    shape = {"mlp": (batch, 20), "convnet": (batch, 1, 8, 8), "transformer": (batch, 6, 16)}
    return kiln.randn(*shape[name], dtype=dtype), kiln.randint(0, 5, (batch,))


OPTIMIZERS = {
    "sgd": (kiln.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True,
                             "weight_decay": 1e-3}),
    "adam": (kiln.optim.Adam, {"lr": 0.01, "amsgrad": True}),
}


@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("name,dtype", [("mlp", "float32"), ("mlp", "float64"),
                                        ("convnet", "float32"), ("convnet", "float64")])
def test_compiled_training_matches_eager(name, dtype, opt):
    x, y = _data(name, dtype)
    opt_cls, opt_kwargs = OPTIMIZERS[opt]
    eager_model, compiled_model = _model(name, dtype), _model(name, dtype)
    compiled = kiln.compile(compiled_model, backend="interpret")
    # The demo's loop: cross-entropy, zero_grad/backward/step, losses step by step.
    eager = train(eager_model, eager_model, x, y, 5, opt_cls, **opt_kwargs)
    comp = train(compiled_model, compiled, x, y, 5, opt_cls, **opt_kwargs)
    tol = {"rtol": 1e-6, "atol": 1e-7} if dtype == "float32" else {"rtol": 1e-12, "atol": 0}
    np.testing.assert_allclose(comp, eager, **tol)
    assert eager[-1] < eager[0]
    # Parameters and BatchNorm running statistics end up the same, too.
    for (k, a), (_, b) in zip(eager_model.state_dict().items(),
                              compiled_model.state_dict().items()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), err_msg=k, **tol)
    assert compiled.cache_info()["traces"] == 1


def test_compiled_eval_mode_retraces_and_matches():
    model = _model("convnet", "float32")
    compiled = kiln.compile(model, backend="interpret")
    x, _ = _data("convnet", "float32")
    compiled(x)
    model.eval()
    with kiln.no_grad():
        np.testing.assert_allclose(compiled(x).numpy(), model(x).numpy(), rtol=1e-6)
    assert compiled.cache_info()["traces"] == 2  # train and eval are different graphs


@pytest.mark.parametrize("name", ["mlp", "convnet", "transformer"])
def test_symbolic_batch_trace_runs_on_many_sizes(name):
    model = _model(name, "float32").eval()
    x, _ = _data(name, "float32", batch=4)
    gm = kiln.trace(model, x, dynamic={"input": {0: "B"}})
    assert "B" in str(gm.graph)
    for batch in (1, 3, 9):
        xb, _ = _data(name, "float32", batch=batch)
        with kiln.no_grad():
            out, ref = gm(xb), model(xb)
        assert out.shape[0] == batch
        np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-6, atol=1e-6)
    again = kiln.GraphModule.deserialize(gm.serialize())
    with kiln.no_grad():
        np.testing.assert_allclose(again(xb).numpy(), ref.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["mlp", "transformer"])
def test_symbolic_batch_gradients_match_eager(name):
    model = _model(name, "float64")
    compiled = kiln.compile(model, backend="interpret", dynamic={"input": {0: "B"}})
    for batch in (2, 5, 7):
        x, y = _data(name, "float64", batch=batch)
        model.zero_grad()
        F.cross_entropy(compiled(x).reshape(batch, -1), y).backward()
        grads = [p.grad.numpy().copy() for p in model.parameters()]
        model.zero_grad()
        F.cross_entropy(model(x).reshape(batch, -1), y).backward()
        for g, p in zip(grads, model.parameters()):
            np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert compiled.cache_info()["traces"] == 1


def test_symbolic_batch_batchnorm_training():
    model = _model("convnet", "float32")
    x, _ = _data("convnet", "float32", batch=4)
    gm = kiln.trace(model, x, dynamic={"input": {0: "B"}})
    xb, _ = _data("convnet", "float32", batch=6)
    assert gm(xb).shape == (6, 5)


def test_batchnorm_training_through_trace_updates_running_stats():
    model = _model("convnet", "float32")
    twin = _model("convnet", "float32")
    x, _ = _data("convnet", "float32")
    gm = kiln.trace(model, x)
    with kiln.no_grad():
        for _ in range(3):
            gm(x)
            twin(x)
    for (k, a), (_, b) in zip(model.state_dict().items(), twin.state_dict().items()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=k)
    assert model.features[1].num_batches_tracked.item() == 3


def test_cumulative_batchnorm_momentum_traces():
    bn = kiln.nn.BatchNorm1d(3, momentum=None)
    twin = kiln.nn.BatchNorm1d(3, momentum=None)
    gm = kiln.trace(bn, kiln.randn(4, 3))
    kiln.manual_seed(2)
    for _ in range(3):
        x = kiln.randn(4, 3)
        gm(x)
        twin(x)
    np.testing.assert_allclose(bn.running_mean.numpy(), twin.running_mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), twin.running_var.numpy(), rtol=1e-6)


def test_demo_runs_quickly(capsys):
    from kiln.cli import demo

    # The MiniLM part has its own tests (tests/models/test_bert.py, tests/cli).
    assert demo.main(["--steps", "3", "--no-embeddings"]) == 0
    out = capsys.readouterr().out
    assert "graph(" in out and "saved for backward" in out
    # Every compiled column trained to the eager losses.
    diffs = [float(line.split("=")[1].split(",")[0]) for line in out.splitlines()
             if "max |loss - eager loss|" in line]
    assert diffs and max(diffs) < 1e-5
