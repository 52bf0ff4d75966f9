"""kiln.compile trains through AOT autograd exactly like eager (SGD and Adam)."""

from __future__ import annotations

import copy
import importlib.util

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from kiln.backends import get_backend
from kiln.models import MLP, ConvNet


def _data(shape, classes, steps=4, seed=0, dtype=kiln.float32):
    rng = np.random.default_rng(seed)
    return [(kiln.tensor(rng.normal(size=shape), dtype=dtype),
             kiln.tensor(rng.integers(0, classes, shape[0]))) for _ in range(steps)]


def _train(model, step_fn, opt, data):
    losses = []
    for x, y in data:
        opt.zero_grad()
        loss = F.cross_entropy(step_fn(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _state(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


class Counting:
    """A backend that counts what it compiles, then defers to another backend."""

    def __init__(self, backend: str = "interpret") -> None:
        self.inner = get_backend(backend)
        self.graphs = []
        self.__name__ = f"counting_{backend}"

    def __call__(self, gm, specs, **options):
        self.graphs.append(gm)
        return self.inner(gm, specs, **options)


MODELS = {
    "mlp": (lambda: MLP((20, 32, 32, 5), activation="gelu"), (6, 20), 5),
    "convnet": (lambda: ConvNet(in_channels=2, num_classes=4, image_size=8, channels=(3, 4)),
                (3, 2, 8, 8), 4),
}
OPTIMIZERS = {
    "sgd": lambda p: kiln.optim.SGD(p, lr=0.1, momentum=0.9),
    "adam": lambda p: kiln.optim.Adam(p, lr=1e-2),
}


def _check(model_name, opt_name, backend, rtol):
    make, shape, classes = MODELS[model_name]
    kiln.manual_seed(0)
    eager = make()
    twin = copy.deepcopy(eager)
    data = _data(shape, classes)
    want = _train(eager, eager, OPTIMIZERS[opt_name](eager.parameters()), data)
    counting = Counting(backend)
    compiled = kiln.compile(twin, backend=counting)
    got = _train(twin, compiled, OPTIMIZERS[opt_name](twin.parameters()), data)
    np.testing.assert_allclose(got, want, rtol=rtol)
    for k, v in _state(eager).items():
        np.testing.assert_allclose(_state(twin)[k], v, rtol=rtol, atol=rtol * 1e-2, err_msg=k)
    # One signature: a compiled forward and a compiled backward, traced once.
    assert compiled.cache_info() == {"signatures": 1, "traces": 1}
    roles = [any(p.target.startswith("tangents") for p in gm.graph.placeholders)
             for gm in counting.graphs]
    assert roles == [False, True]
    return compiled


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_interpret_backend_trains_like_eager(model_name, opt_name):
    _check(model_name, opt_name, "interpret", rtol=1e-6)


_HAS_C = importlib.util.find_spec("kiln.backends.c.backend") is not None


@pytest.mark.skipif(not _HAS_C, reason="the C backend (src/kiln/backends/c/backend.py) is not "
                                      "there yet")
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_c_backend_trains_like_eager(model_name, opt_name):
    # Fused C kernels round differently from NumPy: float32 agreement, not bit equality.
    _check(model_name, opt_name, "c", rtol=1e-4)


def test_no_grad_calls_keep_the_plain_trace_path():
    kiln.manual_seed(1)
    model = MLP((4, 8, 2))
    compiled = kiln.compile(model)
    x = kiln.randn(3, 4)
    with kiln.no_grad():
        out = compiled(x)
    assert not out.requires_grad and compiled._aot is None
    (gm,) = compiled.graphs()
    assert sorted(gm.constants) == sorted(n for n, _ in model.named_parameters())
    np.testing.assert_allclose(out.numpy(), model(x).detach().numpy(), rtol=1e-6)
    # Parameters frozen: no gradient needed, so the plain path again.
    model.requires_grad_(False)
    assert not compiled(x).requires_grad and compiled._aot is None


def test_function_with_grad_input_goes_through_aot():
    f = kiln.compile(lambda x: (x.sin() * x).sum())
    x = kiln.tensor([0.5, 1.5], dtype=kiln.float64, requires_grad=True)
    f(x).backward()
    xs = np.array([0.5, 1.5])
    np.testing.assert_allclose(x.grad.numpy(), np.cos(xs) * xs + np.sin(xs), rtol=1e-12)
    assert f._aot is not None and f.cache_info()["signatures"] == 1
    assert len(f.graphs()) == 1  # the joint graph of the one signature


def test_compiled_helper_inside_a_compiled_model_is_inlined():
    helper = kiln.compile(lambda h: F.gelu(h) * 2.0)

    class Net(kiln.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = kiln.nn.Linear(3, 2, dtype=kiln.float64)

        def forward(self, x):
            return helper(self.fc(x)).sum()

    kiln.manual_seed(2)
    eager = Net()
    twin = copy.deepcopy(eager)
    x = kiln.randn(4, 3, dtype=kiln.float64)
    eager(x).backward()  # eagerly, the helper compiles (and runs) on its own
    with kiln.no_grad():
        want = eager(x).item()
    before = helper.cache_info()
    compiled = kiln.compile(twin)
    compiled(x).backward()
    for (k, a), (_, b) in zip(eager.named_parameters(), twin.named_parameters(), strict=True):
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-12, err_msg=k)
    with kiln.no_grad():
        np.testing.assert_allclose(compiled(x).item(), want, rtol=1e-12)
    # Under the outer traces the helper is inlined into the outer graphs.
    assert helper.cache_info() == before
    assert compiled.cache_info()["traces"] == 2  # training (joint) and no_grad (plain)
    assert any(n.target == "erf" for gm in compiled.graphs() for n in gm.graph.calls())


def test_training_without_networkx_falls_back_to_the_default_partition(monkeypatch):
    # `make demo` installs NumPy only: kiln.compile must still train (min-cut needs networkx).
    import sys

    from kiln.aot import default_partition

    monkeypatch.setitem(sys.modules, "networkx", None)  # `import networkx` now fails
    kiln.manual_seed(4)
    eager = MLP((4, 8, 2))
    twin = copy.deepcopy(eager)
    data = _data((3, 4), 2, steps=2)
    want = _train(eager, eager, OPTIMIZERS["sgd"](eager.parameters()), data)
    compiled = kiln.compile(twin)
    got = _train(twin, compiled, OPTIMIZERS["sgd"](twin.parameters()), data)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert compiled._aot.partition_fn is default_partition
