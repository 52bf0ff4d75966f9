"""Reference models against equivalent PyTorch modules: state-dict layout, forward, grads."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln import models
from kiln.errors import KilnError

torch = pytest.importorskip("torch")
# torchvision is not installed: benchmarks/torch_models.py rebuilds its ResNet-18 from
# torch.nn with the same parameter names (the benchmarks compare against the same twin).
from benchmarks.torch_models import resnet18 as TorchResNet18  # noqa: E402

tnn = torch.nn
TOL = {"rtol": 1e-9, "atol": 1e-10}


def _layout(module):
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


def _compare(kmod, tmod, x, grads=True, call_kw=None, tol=TOL):
    kmod.load_state_dict(tmod.state_dict())
    call_kw = call_kw or ({}, {})
    kx = kiln.tensor(x, dtype="float64", requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    yk, yt = kmod(kx, **call_kw[0]), tmod(tx, **call_kw[1])
    np.testing.assert_allclose(yk.detach().numpy(), yt.detach().numpy(), **tol)
    if not grads:
        return
    g = np.random.default_rng(9).standard_normal(tuple(yt.shape))
    (yk * kiln.tensor(g, dtype="float64")).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(kx.grad.numpy(), tx.grad.numpy(), **tol)
    kp = dict(kmod.named_parameters())
    for name, p in tmod.named_parameters():
        np.testing.assert_allclose(kp[name].grad.numpy(), p.grad.numpy(), err_msg=name, **tol)
    for name, b in tmod.named_buffers():
        np.testing.assert_allclose(kmod.state_dict()[name].numpy(), b.numpy(), err_msg=name,
                                   **tol)


def test_resnet18_layout_and_parameter_count():
    net = models.resnet18()
    assert _layout(net) == _layout(TorchResNet18())
    assert sum(p.numel() for p in net.parameters()) == 11689512  # torchvision's number
    keys = list(net.state_dict())
    assert keys[:3] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert "layer2.0.downsample.0.weight" in keys and "layer2.0.downsample.1.running_var" in keys
    assert "layer1.0.downsample.0.weight" not in keys
    assert keys[-2:] == ["fc.weight", "fc.bias"] and len(keys) == 122
    assert repr(net).count("BasicBlock(") == 8


def test_resnet18_init_follows_torchvision():
    kiln.manual_seed(0)
    net = models.resnet18(num_classes=10)
    w = net.layer3[1].conv2.weight.detach().numpy()
    # kaiming_normal_(mode="fan_out", nonlinearity="relu"): std = sqrt(2 / (256 * 9))
    assert abs(w.std() - np.sqrt(2.0 / (256 * 9))) < 0.002
    assert net.layer1[0].bn2.weight.tolist() == [1.0] * 64
    zero = models.resnet18(num_classes=10, zero_init_residual=True)
    assert not zero.layer2[1].bn2.weight.detach().numpy().any()


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_resnet18_matches_torch(mode):
    torch.manual_seed(0)
    tnet = TorchResNet18(num_classes=10).double().train(mode == "train")
    if mode == "eval":  # non-trivial running statistics
        for m in tnet.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    knet = models.resnet18(num_classes=10).double().train(mode == "train")
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32))
    # In training, layer4's BatchNorms normalize over only 2 values (batch 2, 1x1 maps): the
    # backward through them cancels heavily, so float64 rounding shows up at ~1e-7 relative
    # (grads reach ~1e3, so atol 1e-6 is still 1e-9 of their scale).
    tol = {"rtol": 1e-6, "atol": 1e-6} if mode == "train" else TOL
    _compare(knet, tnet, x, grads=mode == "train", tol=tol)


@pytest.mark.parametrize("norm_first,activation", [(True, "gelu"), (False, "relu")])
def test_transformer_block_matches_encoder_layer(norm_first, activation):
    kw = dict(dim_feedforward=48, dropout=0.0, activation=activation, norm_first=norm_first)
    tmod = tnn.TransformerEncoderLayer(16, 4, batch_first=True, dtype=torch.float64, **kw)
    kmod = models.TransformerBlock(16, 4, dtype="float64", **kw)
    assert _layout(kmod) == _layout(tmod)
    x = np.random.default_rng(1).standard_normal((3, 5, 16))
    _compare(kmod, tmod, x)


def test_transformer_block_masks_match_encoder_layer():
    tmod = tnn.TransformerEncoderLayer(16, 2, 32, 0.0, activation="gelu", batch_first=True,
                                       norm_first=True, dtype=torch.float64)
    kmod = models.TransformerBlock(16, 2, 32, dtype="float64")
    causal = np.triu(np.ones((5, 5), bool), 1)
    pad = np.zeros((3, 5), bool)
    pad[1, 3:] = True
    kw_k = {"src_mask": kiln.tensor(causal), "src_key_padding_mask": kiln.tensor(pad)}
    kw_t = {"src_mask": torch.tensor(causal), "src_key_padding_mask": torch.tensor(pad)}
    x = np.random.default_rng(2).standard_normal((3, 5, 16))
    _compare(kmod, tmod, x, call_kw=(kw_k, kw_t))
    # is_causal=True without a mask builds the same causal mask
    kx = kiln.tensor(x, dtype="float64")
    np.testing.assert_allclose(kmod(kx, is_causal=True).detach().numpy(),
                               kmod(kx, src_mask=kiln.tensor(causal)).detach().numpy())


def test_transformer_block_defaults():
    block = models.TransformerBlock()
    assert block.self_attn.embed_dim == 256 and block.self_attn.num_heads == 4
    assert block.linear1.out_features == 1024 and block.norm_first
    assert block.self_attn.batch_first and block.dropout.p == 0.0


def test_mlp_and_convnet_match_torch_equivalents():
    kmlp = models.MLP((6, 12, 12, 3), activation="gelu", dtype="float64")
    tmlp = tnn.Module()
    tmlp.layers = tnn.Sequential(tnn.Linear(6, 12), tnn.GELU(), tnn.Linear(12, 12), tnn.GELU(),
                                 tnn.Linear(12, 3)).double()
    tmlp.forward = tmlp.layers.forward
    assert _layout(kmlp) == _layout(tmlp)
    _compare(kmlp, tmlp, np.random.default_rng(3).standard_normal((4, 6)))

    kcnn = models.ConvNet(3, num_classes=5, image_size=8, channels=(4, 6), dtype="float64")
    tcnn = tnn.Module()
    tcnn.features = tnn.Sequential(
        tnn.Conv2d(3, 4, 3, padding=1, bias=False), tnn.BatchNorm2d(4), tnn.ReLU(),
        tnn.MaxPool2d(2), tnn.Conv2d(4, 6, 3, padding=1, bias=False), tnn.BatchNorm2d(6),
        tnn.ReLU(), tnn.MaxPool2d(2))
    tcnn.flatten = tnn.Flatten()
    tcnn.fc = tnn.Linear(6 * 2 * 2, 5)
    tcnn.double()
    tcnn.forward = lambda x: tcnn.fc(tcnn.flatten(tcnn.features(x)))
    assert _layout(kcnn) == _layout(tcnn)
    _compare(kcnn, tcnn, np.random.default_rng(4).standard_normal((3, 3, 8, 8)))


def test_model_argument_errors():
    with pytest.raises(KilnError, match="sizes"):
        models.MLP((10,))
    with pytest.raises(KilnError, match="activation"):
        models.MLP(activation="swish2")
    with pytest.raises(KilnError, match="multiple of 4"):
        models.ConvNet(image_size=30)
    with pytest.raises(KilnError, match="activation"):
        models.TransformerBlock(activation="tanh")
    with pytest.raises(KilnError, match="divisible"):
        models.TransformerBlock(d_model=30, nhead=4)
