"""kiln_conv.h pooling kernels against the NumPy reference kernels of the op registry."""

from __future__ import annotations

import numpy as np
import pytest

from kiln.core.prims.registry import REGISTRY

from .conftest import rel_err

# (N, C, H, W, kernel, stride, padding, dilation, ceil_mode)
MAX_CONFIGS = [
    (1, 2, 8, 8, (2, 2), (2, 2), (0, 0), (1, 1), False),
    (2, 3, 11, 13, (3, 3), (2, 2), (1, 1), (1, 1), False),  # ResNet's max pool, odd sizes
    (2, 3, 11, 13, (3, 3), (2, 2), (1, 1), (1, 1), True),
    (1, 2, 10, 9, (3, 2), (3, 2), (1, 1), (2, 2), True),  # dilation + ceil_mode
    (3, 1, 7, 7, (7, 7), (1, 1), (3, 3), (1, 1), False),
    (1, 4, 5, 6, (1, 1), (1, 1), (0, 0), (1, 1), False),
    (1, 1, 1, 2, (2, 2), (2, 2), (0, 0), (1, 1), True),  # ceil_mode from a negative span
    (1, 2, 9, 9, (2, 2), (3, 3), (1, 1), (4, 4), True),  # windows made only of padding
    (0, 3, 6, 6, (2, 2), (2, 2), (0, 0), (1, 1), False),
]
MAX_IDS = [f"n{c[0]}h{c[2]}w{c[3]}k{c[4][0]}{c[4][1]}s{c[5][0]}{c[5][1]}p{c[6][0]}"
           f"d{c[7][0]}{'c' if c[8] else ''}" for c in MAX_CONFIGS]

# (N, C, H, W, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_CONFIGS = [
    (1, 2, 8, 8, (2, 2), (2, 2), (0, 0), False, True, None),
    (2, 3, 11, 13, (3, 3), (2, 2), (1, 1), False, True, None),
    (2, 3, 11, 13, (3, 3), (2, 2), (1, 1), True, False, None),
    (2, 3, 11, 13, (3, 3), (2, 2), (1, 1), True, True, None),
    (1, 2, 10, 9, (3, 2), (3, 2), (1, 1), True, False, 3),
    (1, 2, 7, 7, (7, 7), (1, 1), (3, 3), False, False, None),
    (1, 2, 7, 7, (7, 7), (1, 1), (3, 3), False, True, 5),
    (3, 1, 5, 6, (1, 1), (1, 1), (0, 0), False, True, None),
    (1, 1, 6, 6, (4, 4), (3, 3), (2, 2), True, False, None),
    (0, 3, 6, 6, (2, 2), (2, 2), (0, 0), False, True, None),
]
AVG_IDS = [f"n{c[0]}h{c[2]}w{c[3]}k{c[4][0]}{c[4][1]}s{c[5][0]}{c[5][1]}p{c[6][0]}"
           f"{'c' if c[7] else ''}{'i' if c[8] else ''}{c[9] or ''}" for c in AVG_CONFIGS]


def _max_attrs(cfg: tuple) -> dict:
    return dict(zip(("kernel", "stride", "padding", "dilation", "ceil_mode"), cfg[4:],
                    strict=True))


def _avg_attrs(cfg: tuple) -> dict:
    return dict(zip(("kernel", "stride", "padding", "ceil_mode", "count_include_pad",
                     "divisor_override"), cfg[4:], strict=True))


def _ties(shape: tuple, dtype: type, rng: np.random.Generator) -> np.ndarray:
    """Few distinct values, so windows often hold several maxima, and some -inf."""
    x = rng.integers(-2, 3, size=shape).astype(dtype)
    x[rng.random(shape) < 0.05] = -np.inf
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("data", ["normal", "ties", "nan"])
@pytest.mark.parametrize("cfg", MAX_CONFIGS, ids=MAX_IDS)
def test_max_pool2d_and_backward_match_exactly(kern, cfg, data, dtype):
    rng = np.random.default_rng(0)
    shape = cfg[:4]
    x = _ties(shape, dtype, rng) if data == "ties" else rng.standard_normal(shape).astype(dtype)
    if data == "nan" and x.size:
        x.reshape(-1)[rng.choice(x.size, max(1, x.size // 10), replace=False)] = np.nan
    at = _max_attrs(cfg)
    ref = REGISTRY["max_pool2d"].eager(x, **at)
    np.testing.assert_array_equal(kern.max_pool2d(x, **at), ref)
    g = rng.standard_normal(ref.shape).astype(dtype)
    want = REGISTRY["max_pool2d_backward"].eager(g, x, **at)
    got = kern.max_pool2d_backward(g, x, **at)
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-14, atol=0)


def test_max_pool2d_backward_first_maximum_may_be_padding(kern):
    """A window whose first maximum is a padding slot (-inf ties) feeds no input element."""
    x = np.full((1, 1, 3, 3), -np.inf, np.float32)
    at = {"kernel": (3, 3), "stride": (1, 1), "padding": (1, 1), "dilation": (1, 1),
          "ceil_mode": False}
    g = np.arange(1, 10, dtype=np.float32).reshape(1, 1, 3, 3)
    want = REGISTRY["max_pool2d_backward"].eager(g, x, **at)
    np.testing.assert_array_equal(kern.max_pool2d_backward(g, x, **at), want)
    # Only windows starting inside the input feed it: outputs (1..2, 1..2) -> 5 + 6 + 8 + 9.
    assert want[0, 0, 0, 0] == 5 and want.sum() == 28


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", AVG_CONFIGS, ids=AVG_IDS)
def test_avg_pool2d_and_backward(kern, cfg, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(cfg[:4]).astype(dtype)
    at = _avg_attrs(cfg)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    ref = REGISTRY["avg_pool2d"].eager(x.astype(np.float64), **at)
    assert rel_err(kern.avg_pool2d(x, **at), ref) < tol
    g = rng.standard_normal(ref.shape).astype(dtype)
    want = REGISTRY["avg_pool2d_backward"].eager(g.astype(np.float64), input_hw=x.shape[2:],
                                                 **at)
    assert rel_err(kern.avg_pool2d_backward(g, input_hw=x.shape[2:], **at), want) < tol


def test_avg_pool2d_propagates_nan(kern):
    x = np.ones((1, 1, 4, 4), np.float32)
    x[0, 0, 0, 0] = np.nan
    at = _avg_attrs(AVG_CONFIGS[0])
    np.testing.assert_array_equal(kern.avg_pool2d(x, **at), REGISTRY["avg_pool2d"].eager(x, **at))
