"""nn.Module behaviour: hooks, state-dict strictness, traversal order, modes, dtype casts,
containers and the errors raised for bad constructor arguments or input shapes."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import kiln
from kiln import nn
from kiln.errors import KilnError, ShapeError, ValueArgumentError
from kiln.nn import StateDictError


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.bn = nn.BatchNorm1d(8)
        self.block = nn.Sequential(nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
        self.shared = self.fc1  # the same module twice: listed once

    def forward(self, x):
        return self.block(self.bn(self.shared(x)))


def test_named_members_order_and_dedup():
    net = Net()
    assert [n for n, _ in net.named_modules()] == ["", "fc1", "bn", "block", "block.0",
                                                     "block.1", "block.2"]
    assert [n for n, _ in net.named_parameters()] == [
        "fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "block.2.weight", "block.2.bias"]
    assert [n for n, _ in net.named_buffers()] == ["bn.running_mean", "bn.running_var",
                                                     "bn.num_batches_tracked"]
    assert [n for n, _ in net.named_children()] == ["fc1", "bn", "block"]
    assert len(list(net.named_parameters(remove_duplicate=False))) == 8
    # state_dict, like PyTorch's, lists a shared module under every name
    assert "shared.weight" in net.state_dict() and "fc1.weight" in net.state_dict()
    assert net.get_submodule("block.2") is net.block[2]


def test_train_eval_propagate_and_change_outputs():
    kiln.manual_seed(0)
    net = Net()
    x = kiln.randn(16, 4)
    assert all(m.training for m in net.modules())
    net.eval()
    assert not any(m.training for m in net.modules())
    a, b = net(x), net(x)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert net.bn.num_batches_tracked.item() == 0
    net.train()
    net(x)
    assert net.bn.num_batches_tracked.item() == 1
    with pytest.raises(KilnError, match="bool"):
        net.train("yes")


def test_hooks_run_modify_and_remove():
    lin = nn.Linear(2, 2)
    calls = []
    h1 = lin.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    h2 = lin.register_forward_hook(lambda m, args, out: calls.append(out.shape) or out + 1)
    out = lin(kiln.ones(3, 2))
    np.testing.assert_allclose(out.detach().numpy(),
                               np.broadcast_to(lin.bias.detach().numpy() + 1, (3, 2)))
    assert calls == [(3, 2)]
    h1.remove()
    h2.remove()
    out = lin(kiln.ones(1, 2))
    assert calls == [(3, 2)]
    with lin.register_forward_hook(lambda m, a, o: o * 0):
        assert not lin(kiln.ones(1, 2)).detach().numpy().any()
    assert lin(kiln.ones(1, 2)).detach().numpy().any()


@pytest.mark.parametrize("kind", ["forward", "pre"])
def test_hooks_of_the_traced_module_itself_are_part_of_the_program(kind):
    from kiln.aot import aot_module, nop

    lin = nn.Linear(3, 2)
    if kind == "forward":
        lin.register_forward_hook(lambda m, args, out: out * 0 + 2.0)
    else:
        lin.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    x = kiln.randn(4, 3)
    want = lin(x).detach().numpy()
    runs = [kiln.trace(lin, x), kiln.compile(lin), kiln.compile(lin, backend="c"),
            aot_module(lin, nop)]
    for run in runs:
        np.testing.assert_allclose(run(x).detach().numpy(), want, rtol=1e-6, atol=1e-6)
    # Training through compile (the AOT path) sees them too.
    y = kiln.compile(lin)(x.requires_grad_())
    np.testing.assert_allclose(y.detach().numpy(), want, rtol=1e-6, atol=1e-6)


def test_state_dict_roundtrip_and_strictness():
    a, b = Net(), Net()
    b.load_state_dict(a.state_dict())
    for (k, v), (k2, v2) in zip(a.state_dict().items(), b.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(v.numpy(), v2.numpy())
    state = dict(a.state_dict())
    del state["bn.running_var"]
    state["extra.weight"] = kiln.zeros(1)
    with pytest.raises(StateDictError) as err:
        b.load_state_dict(state)
    assert '"bn.running_var"' in str(err.value) and '"extra.weight"' in str(err.value)
    n = tuple(a.bn.running_var.shape)
    assert f'"bn.running_var" {n}' in str(err.value) and '"extra.weight" (1,)' in str(err.value)
    result = b.load_state_dict(state, strict=False)
    assert result.missing_keys == ["bn.running_var"]
    assert result.unexpected_keys == ["extra.weight"]
    bad = dict(a.state_dict())
    bad["fc1.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(StateDictError, match=r"size mismatch for fc1.weight: copying a param "
                                             r"with shape \(3, 3\)"):
        b.load_state_dict(bad, strict=False)
    with pytest.raises(KilnError, match="mapping"):
        b.load_state_dict([1, 2])


def test_load_numpy_state_dict_in_place():
    net = Net()
    weight = net.fc1.weight
    state = {k: np.full(tuple(v.shape), 0.25, dtype=v.numpy().dtype)
             for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    assert net.fc1.weight is weight  # same Parameter object, new values
    assert np.all(weight.detach().numpy() == 0.25)
    assert net.bn.num_batches_tracked.dtype == kiln.int64


def test_to_dtype_zero_grad_and_apply():
    net = Net()
    net.to(kiln.float64)
    assert all(p.dtype == kiln.float64 for p in net.parameters())
    assert net.bn.num_batches_tracked.dtype == kiln.int64
    net(kiln.randn(5, 4, dtype="float64")).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(not p.grad.numpy().any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen.count("Linear") == 2  # shared fc1 visited once
    net.float()
    assert net.fc1.weight.dtype == kiln.float32


def test_deepcopy_and_requires_grad():
    net = Net()
    clone = copy.deepcopy(net)
    assert isinstance(clone.fc1.weight, nn.Parameter)
    assert clone.fc1.weight is not net.fc1.weight
    assert clone.shared is clone.fc1
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_sequential_container_api():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b)
    seq.append(c)
    assert len(seq) == 3 and seq[-1] is c and list(seq) == [a, b, c]
    assert isinstance(seq[1:], nn.Sequential) and list(seq[1:]) == [b, c]
    seq[1] = nn.GELU()
    assert isinstance(seq[1], nn.GELU)
    del seq[1]
    assert list(seq._modules) == ["0", "1"] and seq[1] is c
    seq.insert(1, b)
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    assert seq.pop(0) is a and len(seq) == 2
    seq.extend([nn.Tanh()])
    assert len(seq + nn.Sequential(nn.Identity())) == 4
    with pytest.raises(IndexError):
        seq[5]
    with pytest.raises(KilnError):
        seq["x"]
    from collections import OrderedDict
    named = nn.Sequential(OrderedDict(first=nn.Linear(2, 2), act=nn.ReLU()))
    assert [n for n, _ in named.named_parameters()] == ["first.weight", "first.bias"]
    assert named(kiln.ones(1, 2)).shape == (1, 2)


def test_module_list_dict_and_parameter_containers():
    ml = nn.ModuleList([nn.Linear(2, 2)])
    ml += [nn.ReLU()]
    ml.insert(0, nn.Tanh())
    assert [type(m).__name__ for m in ml] == ["Tanh", "Linear", "ReLU"]
    assert len(ml[1:]) == 2 and isinstance(ml[1:], nn.ModuleList)
    del ml[0]
    assert type(ml[0]).__name__ == "Linear" and list(ml._modules) == ["0", "1"]
    md = nn.ModuleDict([("a", nn.Linear(1, 1))])
    md["b"] = nn.ReLU()
    assert list(md.keys()) == ["a", "b"] and len(md) == 2
    assert md.pop("a").out_features == 1 and "a" not in md
    pl = nn.ParameterList([kiln.ones(2)])
    pl.append(nn.Parameter(kiln.zeros(3)))
    assert [tuple(p.shape) for p in pl] == [(2,), (3,)]
    assert all(isinstance(p, nn.Parameter) for p in pl)
    assert "Parameter containing: [kiln.float32 of size 3]" in repr(pl)
    pd = nn.ParameterDict({"w": kiln.ones(2)})
    pd["b"] = kiln.zeros(1)
    assert list(pd.state_dict()) == ["w", "b"] and "b" in pd
    del pd["w"]
    assert list(pd) == ["b"] and [n for n, _ in pd.named_parameters()] == ["b"]


@pytest.mark.parametrize("build,match", [
    (lambda: nn.Linear(3.5, 2), "in_features must be an int"),
    (lambda: nn.Linear(-1, 2), "in_features must be >= 0"),
    (lambda: nn.Conv2d(3, 4, 3, groups=2), "divisible by groups"),
    (lambda: nn.Conv2d(3, 4, 3, stride=2, padding="same"), "strided"),
    (lambda: nn.Conv2d(3, 4, 3, padding_mode="mirror"), "padding_mode"),
    (lambda: nn.Conv2d(3, 4, (3, 3, 3)), "kernel_size"),
    (lambda: nn.BatchNorm2d(0), "num_features"),
    (lambda: nn.BatchNorm2d(4, momentum=2.0), "momentum"),
    (lambda: nn.GroupNorm(4, 6), "divisible by num_groups"),
    (lambda: nn.LayerNorm("8"), "normalized_shape"),
    (lambda: nn.Dropout(1.5), "probability"),
    (lambda: nn.GELU(approximate="fast"), "approximate"),
    (lambda: nn.Embedding(10, 3, padding_idx=10), "padding_idx"),
    (lambda: nn.MaxPool2d(2, padding=2), "half of the kernel"),
    (lambda: nn.CrossEntropyLoss(reduction="avg"), "reduction"),
    (lambda: nn.Linear(2, 2, dtype="int64"), "floating"),
])
def test_bad_constructor_arguments(build, match):
    with pytest.raises(KilnError, match=match):
        build()


def test_value_errors_are_also_value_errors():
    with pytest.raises(ValueError):
        nn.Dropout(-0.1)
    assert issubclass(ValueArgumentError, KilnError)


@pytest.mark.parametrize("layer,x,match", [
    (nn.Linear(3, 2), kiln.ones(4, 5), "last dim is 3"),
    (nn.Conv2d(3, 4, 3), kiln.ones(1, 2, 8, 8), "3 channels"),
    (nn.Conv2d(3, 4, 3), kiln.ones(8, 8), "4-D"),
    (nn.BatchNorm2d(3), kiln.ones(2, 3, 4), "4D"),
    (nn.BatchNorm1d(3), kiln.ones(2, 4), "3 channels"),
    (nn.LayerNorm(4), kiln.ones(2, 5), "normalized_shape"),
    (nn.GroupNorm(2, 4), kiln.ones(2, 6, 3), r"\(N, 4"),
    (nn.Embedding(5, 2), kiln.ones(3), "integer"),
    (nn.Unflatten(1, (2, 2)), kiln.ones(2, 5), "multiply"),
])
def test_bad_input_shapes(layer, x, match):
    with pytest.raises(KilnError, match=match):
        layer(x)


def test_softmax_without_dim_is_a_clear_error():
    with pytest.raises(KilnError, match="dim"):
        nn.Softmax()(kiln.ones(2, 2))


def test_batchnorm_single_value_per_channel_in_training():
    with pytest.raises(ShapeError, match="more than 1 value"):
        nn.BatchNorm1d(3)(kiln.ones(1, 3))


def test_state_dict_round_trips_through_a_safetensors_file(tmp_path):
    from kiln.io.weights import load_file, save_file

    kiln.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    model(kiln.randn(5, 3))  # running stats move away from their initial values
    save_file(model.state_dict(), tmp_path / "model.safetensors")
    fresh = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    arrays = load_file(tmp_path / "model.safetensors")
    fresh.load_state_dict(arrays)
    for (k, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items(),
                              strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
        assert a.dtype == b.dtype


def test_a_non_module_child_is_refused_naming_the_container_and_slot():
    from kiln.errors import ArgumentError, IndexError_

    with pytest.raises(ArgumentError, match=r"Sequential: child '1' must be a kiln.nn.Module "
                                            r"\(or None\), got function"):
        nn.Sequential(nn.ReLU(), lambda x: x)
    with pytest.raises(IndexError_, match=r"unsupported index item of type float .*expected an "
                                          r"int, slice"):
        kiln.ones(3)[1.5]
