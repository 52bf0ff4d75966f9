"""kiln_conv.h convolutions against the NumPy reference kernels of the op registry."""

from __future__ import annotations

import numpy as np
import pytest

from kiln.core.prims.registry import REGISTRY

from .conftest import TOL, rel_err

# (N, C, H, W, O, KH, KW, stride, padding, dilation, groups)
CONFIGS = [
    (1, 3, 11, 13, 8, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    (2, 4, 9, 7, 6, 3, 3, (2, 2), (1, 1), (1, 1), 2),
    (3, 5, 10, 9, 7, 3, 3, (1, 1), (0, 0), (2, 2), 1),
    (1, 6, 15, 17, 16, 7, 7, (2, 2), (3, 3), (1, 1), 1),  # conv1-like, odd sizes
    (2, 16, 9, 9, 24, 1, 1, (1, 1), (0, 0), (1, 1), 1),  # pointwise: GEMM with no copy
    (1, 32, 13, 11, 40, 1, 1, (2, 2), (0, 0), (1, 1), 1),  # downsample 1x1/2
    (3, 8, 12, 12, 8, 3, 3, (1, 1), (1, 1), (1, 1), 8),  # depthwise
    (2, 6, 11, 10, 12, 5, 5, (2, 1), (2, 1), (1, 2), 6),  # depthwise x2 multiplier, mixed
    (1, 12, 8, 8, 20, 3, 3, (1, 1), (1, 1), (1, 1), 4),  # grouped, 3 -> 5 per group
    (2, 40, 14, 14, 30, 3, 3, (1, 1), (1, 1), (1, 1), 1),  # K = 360: two K slices
    (1, 64, 20, 20, 64, 3, 3, (1, 1), (1, 1), (1, 1), 1),  # 13 column panels
    (1, 256, 5, 5, 128, 3, 3, (1, 1), (1, 1), (1, 1), 1),  # one panel: output rows split
    (4, 64, 7, 7, 96, 3, 3, (2, 2), (1, 1), (1, 1), 1),  # several images per run
    (3, 24, 7, 7, 40, 3, 3, (1, 1), (1, 1), (1, 1), 1),  # column panels span images
    (1, 3, 1, 1, 5, 3, 3, (1, 1), (1, 1), (1, 1), 1),  # 1x1 input, all but one tap padded
    (2, 4, 6, 40, 9, 2, 3, (3, 2), (0, 3), (2, 1), 1),  # wide rows, stride 3
    (0, 4, 6, 6, 8, 3, 3, (1, 1), (1, 1), (1, 1), 1),  # empty batch
    (1, 5, 1, 37, 3, 1, 3, (1, 1), (0, 1), (1, 1), 1),  # 1-row image
]
IDS = [f"n{c[0]}c{c[1]}h{c[2]}w{c[3]}o{c[4]}k{c[5]}{c[6]}s{c[7][0]}{c[7][1]}p{c[8][0]}{c[8][1]}"
       f"d{c[9][0]}{c[9][1]}g{c[10]}" for c in CONFIGS]


def _data(cfg: tuple, dtype: type, seed: int = 0) -> tuple:
    n, c, h, w, o, kh, kw, s, p, d, g = cfg
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c // g, kh, kw)).astype(dtype)
    at = {"stride": s, "padding": p, "dilation": d, "groups": g}
    ref = REGISTRY["conv2d"].eager(x.astype(np.float64), wt.astype(np.float64), **at)
    gy = rng.standard_normal(ref.shape).astype(dtype)
    return x, wt, gy, at, ref


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_conv2d_forward(kern, cfg, dtype):
    x, w, _, at, ref = _data(cfg, dtype)
    out = kern.conv2d(x, w, **at)
    assert out.dtype == dtype
    assert rel_err(out, ref) < TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_conv2d_input_grad(kern, cfg, dtype):
    x, w, gy, at, _ = _data(cfg, dtype)
    hw = x.shape[2:]
    ref = REGISTRY["conv2d_input_grad"].eager(gy.astype(np.float64), w.astype(np.float64),
                                              input_hw=hw, **at)
    assert rel_err(kern.conv2d_input_grad(gy, w, input_hw=hw, **at), ref) < TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_conv2d_weight_grad(kern, cfg, dtype):
    x, w, gy, at, _ = _data(cfg, dtype)
    khw = w.shape[2:]
    ref = REGISTRY["conv2d_weight_grad"].eager(x.astype(np.float64), gy.astype(np.float64),
                                               kernel_hw=khw, **at)
    assert rel_err(kern.conv2d_weight_grad(x, gy, kernel_hw=khw, **at), ref) < TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", [
    (5, 134, 10, 10, 16, 3, 3, (1, 1), (1, 1), (1, 1), 1),  # K > N*P: two K chunks
    (2, 70, 9, 9, 8, 3, 3, (2, 2), (1, 1), (1, 1), 2),  # K chunks of two groups
])
def test_weight_grad_in_k_chunks(kern, cfg, dtype):
    """Chunks along K, whose rows change threads between chunks (kiln__conv_wgrad_chunks)."""
    from kiln.backends.c import conv_kernels as ck

    n, c, h, w, o, kh, kw, s, p, d, g = cfg
    oh, ow = (h + 2 * p[0] - kh) // s[0] + 1, (w + 2 * p[1] - kw) // s[1] + 1
    kg = c // g * kh * kw
    kch, _ = ck._wgrad_chunks(kg, n * oh * ow)
    assert kg > n * oh * ow and (kch < kg or g > 1)
    test_conv2d_weight_grad(kern, cfg, dtype)


@pytest.mark.parametrize("cfg", [CONFIGS[i] for i in (0, 3, 6, 10, 12)])
def test_adjoint_identities(kern, cfg):
    """<conv(x, w), g> = <x, input_grad(g, w)> = <w, weight_grad(x, g)>, kernels only."""
    x, w, gy, at, _ = _data(cfg, np.float64, seed=3)
    y = kern.conv2d(x, w, **at)
    dx = kern.conv2d_input_grad(gy, w, input_hw=x.shape[2:], **at)
    dw = kern.conv2d_weight_grad(x, gy, kernel_hw=w.shape[2:], **at)
    a, b, c = np.vdot(y, gy), np.vdot(x, dx), np.vdot(w, dw)
    assert abs(a - b) <= 1e-10 * abs(a) + 1e-10 and abs(a - c) <= 1e-10 * abs(a) + 1e-10


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", [CONFIGS[i] for i in (0, 4, 6, 9, 11, 13)])
@pytest.mark.parametrize("epilogue", ["bias", "relu", "bias+relu", "bias+residual+relu"])
def test_fused_epilogue(kern, cfg, dtype, epilogue):
    x, w, _, at, ref = _data(cfg, dtype)
    rng = np.random.default_rng(5)
    bias = rng.standard_normal(w.shape[0]).astype(dtype) if "bias" in epilogue else None
    res = rng.standard_normal(ref.shape).astype(dtype) if "residual" in epilogue else None
    act = "relu" if "relu" in epilogue else "none"
    want = ref + (0 if bias is None else bias.astype(np.float64)[:, None, None])
    want = want + (0 if res is None else res.astype(np.float64))
    want = np.maximum(want, 0) if act == "relu" else want
    out = kern.conv2d(x, w, bias=bias, residual=res, act=act, **at)
    assert rel_err(out, want) < 2 * TOL[dtype]


def test_relu_propagates_nan_and_nan_inputs_spread_like_the_reference(kern):
    x, w, _, at, ref = _data(CONFIGS[1], np.float32)
    x[1, 2, 4, 3] = np.nan
    ref = REGISTRY["conv2d"].eager(x.astype(np.float64), w.astype(np.float64), **at)
    out = kern.conv2d(x, w, act="relu", **at)
    assert rel_err(out, np.maximum(ref, 0)) < 1e-5  # same NaN positions, relu keeps them


@pytest.mark.parametrize("cfg", [CONFIGS[i] for i in (0, 3, 9)])
def test_without_workspace_the_kernels_allocate(cfg):
    from kiln.backends.c.conv_kernels import ConvKernels

    kern = ConvKernels(generic=True, use_workspace=False)
    x, w, gy, at, ref = _data(cfg, np.float64)
    assert rel_err(kern.conv2d(x, w, **at), ref) < 1e-12
    want = REGISTRY["conv2d_weight_grad"].eager(x, gy.astype(np.float64),
                                                kernel_hw=w.shape[2:], **at)
    assert rel_err(kern.conv2d_weight_grad(x, gy, kernel_hw=w.shape[2:], **at), want) < 1e-12


def test_no_input_channels_gives_the_epilogue_of_zero(kern):
    x = np.zeros((2, 0, 5, 5), np.float32)
    w = np.zeros((3, 0, 3, 3), np.float32)
    bias = np.array([-1.0, 0.5, 2.0], np.float32)
    out = kern.conv2d(x, w, stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1,
                      bias=bias, act="relu")
    np.testing.assert_array_equal(out, np.broadcast_to(np.maximum(bias, 0)[:, None, None],
                                                       (2, 3, 5, 5)))
