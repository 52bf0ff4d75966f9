"""torch's channel-wise and self-normalizing dropouts (``F.dropout1d/2d/3d``,
``F.alpha_dropout``, ``F.feature_alpha_dropout``) and the pixel and channel shuffles
(``F.pixel_shuffle``, ``F.pixel_unshuffle``, ``F.channel_shuffle``), as composites.

The dropout masks come from ``kiln.rand``, so under ``kiln.trace`` they are drawn on every
call; with ``training=False`` or ``p=0`` each is the identity.

>>> import kiln, kiln.nn.functional as F
>>> F.pixel_shuffle(kiln.arange(4.0).reshape(1, 4, 1, 1), 2).tolist()
[[[[0.0, 1.0], [2.0, 3.0]]]]
"""

from __future__ import annotations

from kiln.core.functional import reshape
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError
from kiln.nn.checks import want_tensor

__all__ = ["dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
           "pixel_shuffle", "pixel_unshuffle", "channel_shuffle"]

# SELU's negative saturation value, -scale * alpha: what alpha dropout drops to.
_ALPHA = -1.7580993408473766


def _want_p(fn: str, p: float) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ArgumentError(f"{fn}: p must be a probability in [0, 1], got {p!r}")


def _keep(x: Tensor, p: float, shape: tuple) -> Tensor:
    from kiln.core.creation import rand

    return (rand(*shape, dtype=x.dtype) >= p).to(x.dtype)


def _feature_shape(x: Tensor, spatial: int) -> tuple:
    """The mask shape of a channel-wise dropout: one value per (sample, channel), or per
    channel for an unbatched input."""
    lead = x.ndim - spatial
    return tuple(x.shape[:lead]) + (1,) * spatial


def _feature_dropout(fn: str, x: Tensor, p: float, training: bool, spatial: int) -> Tensor:
    _want_p(fn, p)
    want_tensor(fn, "input", x)
    if x.ndim not in (spatial + 1, spatial + 2):
        raise ShapeError(f"{fn}: expected a {spatial + 1}-D (unbatched) or {spatial + 2}-D "
                         f"input, got shape {tuple(x.shape)}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return x * _keep(x, p, _feature_shape(x, spatial)) * (1.0 / (1.0 - p))


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True,
              inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, L) / (C, L) input with probability ``p``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.dropout1d(kiln.ones(1, 2, 3), 0.5, training=False).shape
    (1, 2, 3)
    """
    return _feature_dropout("dropout1d", input, p, training, 1)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True,
              inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, H, W) / (C, H, W) input with probability ``p`` (a 3-D
    input is taken as unbatched (C, H, W)).

    >>> import kiln, kiln.nn.functional as F
    >>> F.dropout2d(kiln.ones(1, 2, 3, 3), 1.0).sum().item()
    0.0
    """
    return _feature_dropout("dropout2d", input, p, training, 2)


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True,
              inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, D, H, W) / (C, D, H, W) input with probability ``p``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.dropout3d(kiln.ones(1, 2, 2, 2, 2), 0.0).sum().item()
    16.0
    """
    return _feature_dropout("dropout3d", input, p, training, 3)


def _alpha(fn: str, x: Tensor, p: float, training: bool, shape: tuple) -> Tensor:
    _want_p(fn, p)
    want_tensor(fn, "input", x)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = _keep(x, p, shape)
    a = ((1.0 - p) * (1.0 + p * _ALPHA * _ALPHA)) ** -0.5
    b = -a * _ALPHA * p
    return (x * keep + (1.0 - keep) * _ALPHA) * a + b


def alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False,
                  inplace: bool = False) -> Tensor:
    """Dropout that keeps SELU's zero mean and unit variance: dropped elements go to SELU's
    saturation value, then an affine map restores the statistics.

    >>> import kiln, kiln.nn.functional as F
    >>> F.alpha_dropout(kiln.ones(3), 0.5).tolist()
    [1.0, 1.0, 1.0]
    """
    return _alpha("alpha_dropout", input, p, training, tuple(input.shape))


def feature_alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False,
                          inplace: bool = False) -> Tensor:
    """``alpha_dropout`` of whole channels (one draw per (sample, channel)).

    >>> import kiln, kiln.nn.functional as F
    >>> F.feature_alpha_dropout(kiln.ones(1, 2, 3), 0.5).shape
    (1, 2, 3)
    """
    shape = tuple(input.shape[:2]) + (1,) * max(input.ndim - 2, 0)
    return _alpha("feature_alpha_dropout", input, p, training, shape)


def _factor(fn: str, name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArgumentError(f"{fn}: {name} must be a positive int, got {value!r}")
    return value


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """(*, C r^2, H, W) -> (*, C, H r, W r).

    >>> import kiln, kiln.nn.functional as F
    >>> F.pixel_shuffle(kiln.ones(1, 8, 2, 3), 2).shape
    (1, 2, 4, 6)
    """
    fn = "pixel_shuffle"
    r = _factor(fn, "upscale_factor", upscale_factor)
    if input.ndim < 3 or input.shape[-3] % (r * r):
        raise ShapeError(f"{fn}: expected input (*, C * {r}^2, H, W), got shape "
                         f"{tuple(input.shape)}")
    *lead, c, h, w = input.shape
    oc = c // (r * r)
    x = reshape(input, *lead, oc, r, r, h, w)
    n = len(lead)
    x = x.permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)
    return reshape(x, *lead, oc, h * r, w * r)


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
    """(*, C, H r, W r) -> (*, C r^2, H, W), the inverse of ``pixel_shuffle``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.pixel_unshuffle(kiln.ones(1, 2, 4, 6), 2).shape
    (1, 8, 2, 3)
    """
    fn = "pixel_unshuffle"
    r = _factor(fn, "downscale_factor", downscale_factor)
    if input.ndim < 3 or input.shape[-1] % r or input.shape[-2] % r:
        raise ShapeError(f"{fn}: expected input (*, C, H, W) with H and W divisible by {r}, "
                         f"got shape {tuple(input.shape)}")
    *lead, c, h, w = input.shape
    x = reshape(input, *lead, c, h // r, r, w // r, r)
    n = len(lead)
    x = x.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)
    return reshape(x, *lead, c * r * r, h // r, w // r)


def channel_shuffle(input: Tensor, groups: int) -> Tensor:
    """Interleave the channels of ``groups`` groups: (N, g * k, *) viewed as (N, g, k, *) and
    transposed to (N, k, g, *).

    >>> import kiln, kiln.nn.functional as F
    >>> F.channel_shuffle(kiln.arange(4.0).reshape(1, 4, 1), 2).reshape(4).tolist()
    [0.0, 2.0, 1.0, 3.0]
    """
    fn = "channel_shuffle"
    g = _factor(fn, "groups", groups)
    if input.ndim < 3 or input.shape[1] % g:
        raise ShapeError(f"{fn}: expected input (N, C, *) with C divisible by {g}, got shape "
                         f"{tuple(input.shape)}")
    n, c, *rest = input.shape
    x = reshape(input, n, g, c // g, *rest).transpose(1, 2)
    return reshape(x, *input.shape)
