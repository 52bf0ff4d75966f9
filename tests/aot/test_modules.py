"""aot_module: parameters and buffers as inputs, gradients, BatchNorm state, real models."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import kiln
from kiln import nn
from kiln.aot import (
    aot_module,
    default_partition,
    min_cut_rematerialization_partition,
    nop,
    saved_activations,
)
from kiln.models import MLP, ConvNet, TransformerBlock, resnet18

PARTITIONS = [default_partition, min_cut_rematerialization_partition]


def _grads(model):
    return {n: p.grad.numpy().copy() for n, p in model.named_parameters() if p.grad is not None}


def _state(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def _compare(got, want, rtol):
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=rtol * 1e-3, err_msg=k)


def _train_steps(model, inputs, steps=3, lr=0.05):
    """Loss, gradients and state of ``steps`` plain SGD steps on a sum-of-squares loss."""
    losses, grads = [], []
    for x in inputs[:steps]:
        model.zero_grad()
        out = model(x)
        loss = (out * out).mean()
        loss.backward()
        losses.append(loss.item())
        with kiln.no_grad():
            for p in (p for p in _params(model) if p.grad is not None):
                p.sub_(p.grad * lr)
        grads.append(_grads(getattr(model, "orig_module", model)))
    return losses, grads


def _params(model):
    return model.parameters()


def _check_training(make_model, inputs, partition, rtol=1e-10):
    kiln.manual_seed(0)
    eager = make_model()
    compiled_model = copy.deepcopy(eager)
    want_losses, want_grads = _train_steps(eager, inputs)
    compiled = aot_module(compiled_model, nop, partition_fn=partition)
    got_losses, got_grads = _train_steps(compiled, inputs)
    np.testing.assert_allclose(got_losses, want_losses, rtol=rtol)
    for g, w in zip(got_grads, want_grads):
        _compare(g, w, rtol)
    _compare(_state(compiled_model), _state(eager), rtol)
    return compiled


def _inputs(shape, n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [kiln.tensor(rng.normal(size=shape), dtype=kiln.float64) for _ in range(n)]


@pytest.mark.parametrize("partition", PARTITIONS)
def test_mlp_matches_eager(partition):
    compiled = _check_training(lambda: MLP((12, 16, 16, 4), activation="gelu",
                                           dtype=kiln.float64), _inputs((5, 12)), partition)
    assert compiled.cache_info() == {"signatures": 1, "traces": 1}


@pytest.mark.parametrize("partition", PARTITIONS)
def test_convnet_with_batchnorm_matches_eager(partition):
    # Train mode: running statistics (and num_batches_tracked) follow eager step by step.
    compiled = _check_training(
        lambda: ConvNet(in_channels=2, num_classes=3, image_size=8, channels=(3, 4),
                        dtype=kiln.float64), _inputs((2, 2, 8, 8)), partition)
    bn = compiled.orig_module.features[1]
    assert int(bn.num_batches_tracked.item()) == 3


@pytest.mark.parametrize("partition", PARTITIONS)
def test_transformer_block_matches_eager(partition):
    _check_training(lambda: TransformerBlock(d_model=8, nhead=2, dim_feedforward=16,
                                             dtype=kiln.float64), _inputs((2, 5, 8)), partition)


def test_batchnorm_eval_mode_is_another_signature():
    kiln.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6))
    compiled = aot_module(model, nop)
    x = kiln.randn(8, 4)
    compiled(x).sum().backward()
    stats = model[1].running_mean.numpy().copy()
    model.eval()
    out = compiled(x)
    ref = model(x)
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-6)
    np.testing.assert_array_equal(model[1].running_mean.numpy(), stats)  # eval: no update
    assert compiled.cache_info()["signatures"] == 2


def test_min_cut_saves_fewer_bytes_on_modules():
    kiln.manual_seed(2)
    mlp = MLP((16, 32, 32, 4), activation="gelu")
    block = TransformerBlock(d_model=16, nhead=2, dim_feedforward=32)
    for model, x in ((mlp, kiln.randn(8, 16)), (block, kiln.randn(2, 6, 16))):
        sizes = [saved_activations(aot_module(model, nop, partition_fn=p), x).total_bytes
                 for p in PARTITIONS]
        assert sizes[1] < sizes[0], type(model).__name__


def test_parameters_are_inputs_not_constants():
    seen = []

    def keep(gm, specs):
        seen.append(gm)
        return gm

    lin = nn.Linear(3, 2)
    compiled = aot_module(lin, keep)
    compiled(kiln.ones(4, 3)).sum().backward()
    fw = seen[0]
    assert not fw.constants and len(fw.graph.placeholders) == 3
    with kiln.no_grad():
        lin.weight.mul_(2.0)  # an optimizer step: the same compiled graphs see the new value
    out = compiled(kiln.ones(4, 3))
    np.testing.assert_allclose(out.detach().numpy(), lin(kiln.ones(4, 3)).detach().numpy())
    assert compiled.cache_info()["traces"] == 1
    assert [n for n, _ in compiled.named_parameters()] == ["orig_module.weight",
                                                           "orig_module.bias"]


def test_shared_parameter_is_one_input():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3, bias=False)
            self.b = nn.Linear(3, 3, bias=False)
            self.b.weight = self.a.weight

        def forward(self, x):
            return self.b(self.a(x).tanh())

    kiln.manual_seed(3)
    eager = Tied()
    twin = copy.deepcopy(eager)
    x = kiln.randn(2, 3)
    eager(x).sum().backward()
    aot_module(twin, nop)(x).sum().backward()
    assert twin.a.weight is twin.b.weight
    np.testing.assert_allclose(twin.a.weight.grad.numpy(), eager.a.weight.grad.numpy(),
                               rtol=1e-6)


def test_buffer_reassigned_in_forward_is_written_back():
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(kiln.ones(2))
            self.register_buffer("steps", kiln.zeros(2))

        def forward(self, x):
            self.steps = self.steps + 1.0  # rebinding, not an in-place update
            return x * self.w

    m = Counter()
    buf = m.steps
    compiled = aot_module(m, nop)
    for _ in range(2):
        compiled(kiln.ones(2)).sum().backward()
    assert m.steps is buf and buf.tolist() == [2.0, 2.0]


def test_resnet18_forward_and_backward():
    kiln.manual_seed(0)
    model = resnet18(num_classes=10)
    twin = copy.deepcopy(model)
    x = kiln.randn(1, 3, 64, 64)
    model(x).sum().backward()
    compiled = aot_module(twin, nop, partition_fn=min_cut_rematerialization_partition)
    out = compiled(x)
    assert out.shape == (1, 10)
    out.sum().backward()
    _compare(_grads(twin), _grads(model), rtol=1e-4)
    _compare(_state(twin), _state(model), rtol=1e-5)
