"""The layers issue 12 added (PReLU, ConvTranspose1d/2d, 1-D/3-D pooling, Upsample) against
torch: reprs, parameter layouts, outputs and gradients after loading torch's state_dict; a
small model made of them traced, through AOT autograd and compiled with the C backend."""

from __future__ import annotations

import numpy as np
import pytest
from oracle_nn import F64_TOL, check_against_torch

import kiln
from kiln import nn
from kiln.aot import aot_function, nop
from kiln.errors import ShapeError

# (layer name, constructor args, kwargs, input shape)
LAYERS = [
    ("PReLU", (), {}, (2, 3, 4)),
    ("PReLU", (3,), {"init": 0.1}, (2, 3, 4, 5)),
    ("ConvTranspose2d", (4, 6, 3), {"stride": 2, "padding": 1, "output_padding": 1,
                                    "groups": 2}, (2, 4, 3, 5)),
    ("ConvTranspose2d", (2, 3, (2, 3)), {"dilation": 2, "bias": False}, (2, 4, 4)),
    ("ConvTranspose1d", (4, 2, 4), {"stride": 2, "padding": 1}, (2, 4, 6)),
    ("MaxPool1d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}, (2, 3, 9)),
    ("AvgPool1d", (3,), {"stride": 2, "count_include_pad": False, "padding": 1}, (2, 3, 8)),
    ("MaxPool3d", (2,), {"stride": (1, 2, 2)}, (1, 2, 4, 5, 6)),
    ("AvgPool3d", ((2, 3, 3),), {"padding": 1, "stride": 2}, (1, 2, 4, 5, 6)),
    ("AdaptiveAvgPool1d", (3,), {}, (2, 3, 8)),
    ("AdaptiveMaxPool1d", (4,), {}, (2, 3, 9)),
    ("Upsample", (), {"scale_factor": 2, "mode": "nearest"}, (1, 2, 3, 4)),
    ("Upsample", (), {"size": (5, 7), "mode": "bilinear", "align_corners": True}, (1, 2, 3, 4)),
    ("Upsample", (), {"scale_factor": 1.5, "mode": "bilinear"}, (1, 2, 4, 4)),
    ("UpsamplingNearest2d", (), {"scale_factor": 3}, (1, 1, 2, 2)),
    ("UpsamplingBilinear2d", (), {"size": (4, 5)}, (1, 1, 2, 3)),
]


def _id(case):
    return case[0] + str(case[1]) + ",".join(f"{k}={v}" for k, v in case[2].items())


@pytest.mark.torch
@pytest.mark.parametrize("case", LAYERS, ids=_id)
def test_layer_matches_torch(case):
    torch = pytest.importorskip("torch")
    name, args, kwargs, shape = case
    torch.manual_seed(0)
    tm = getattr(torch.nn, name)(*args, **kwargs).double()
    km = getattr(nn, name)(*args, **kwargs).double()
    assert repr(km) == repr(tm)
    assert [(n, tuple(p.shape)) for n, p in km.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in tm.named_parameters()]
    x = np.random.default_rng(0).standard_normal(shape)
    check_against_torch(km, tm, [x], torch, tol=F64_TOL)


@pytest.mark.torch
def test_conv_transpose_output_size_matches_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm = torch.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1).double()
    km = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1).double()
    km.load_state_dict(tm.state_dict())
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 4))
    for size in ((7, 7), (8, 7), [1, 2, 8, 8]):
        k = km(kiln.tensor(x), output_size=size)
        t = tm(torch.tensor(x), output_size=size)
        np.testing.assert_allclose(k.detach().numpy(), t.detach().numpy(), rtol=1e-9)
    with pytest.raises(ShapeError, match="output_size"):
        km(kiln.tensor(x), output_size=(10, 10))


def _decoder():
    kiln.manual_seed(0)
    return nn.Sequential(
        nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1), nn.PReLU(3),
        nn.Upsample(scale_factor=2, mode="bilinear"), nn.MaxPool2d(2),
        nn.Flatten(2), nn.MaxPool1d(2), nn.AvgPool1d(3, stride=2), nn.AdaptiveAvgPool1d(4))


def _volume():
    kiln.manual_seed(0)
    return nn.Sequential(nn.MaxPool3d(2, stride=1), nn.AvgPool3d(2, padding=1),
                         nn.Upsample(scale_factor=(1, 2, 2), mode="trilinear"))


@pytest.mark.parametrize("build, shape", [(_decoder, (2, 4, 5, 5)), (_volume, (1, 2, 4, 5, 5))],
                         ids=["decoder", "volume"])
def test_models_traced_aot_and_c_match_eager(build, shape):
    model = build()
    x = kiln.tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32),
                    requires_grad=True)

    def loss(x):
        return (model(x) ** 2).sum()

    with kiln.no_grad():
        ref = model(x).numpy()
    gm = kiln.trace(model, x.detach())
    np.testing.assert_allclose(gm(x.detach()).detach().numpy(), ref, rtol=1e-6, atol=1e-6)
    with kiln.no_grad():
        out = kiln.compile(model, backend="c")(x.detach())
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5)
    loss(x).backward()
    want = [x.grad.numpy().copy()] + [p.grad.numpy().copy() for p in model.parameters()]
    for fn in (aot_function(loss, nop), kiln.compile(loss, backend="c")):
        x.grad = None
        model.zero_grad()
        fn(x).backward()
        got = [x.grad.numpy()] + [p.grad.numpy() for p in model.parameters()]
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
