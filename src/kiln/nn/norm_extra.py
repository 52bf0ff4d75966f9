"""torch's remaining normalization functions as composites: ``F.instance_norm``,
``F.local_response_norm``, and the aten forms that also return the statistics,
``kiln.native_layer_norm``, ``kiln.native_group_norm``, ``kiln.native_batch_norm``
(``kiln._native_batch_norm_legit``).

>>> import kiln, kiln.nn.functional as F
>>> [round(v, 4) for v in F.instance_norm(kiln.tensor([[[1.0, 3.0]]]))[0, 0].tolist()]
[-1.0, 1.0]
"""

from __future__ import annotations

from typing import Any

from kiln import ops
from kiln.core.autograd.grad_mode import no_grad
from kiln.core.functional import mean, reshape
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError
from kiln.nn.checks import want_shape, want_tensor
from kiln.symbolic.sizes import prod

__all__ = ["instance_norm", "local_response_norm"]
ATEN = ("native_layer_norm", "native_group_norm", "native_batch_norm")


def _affine(out: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    shape = (1, out.shape[1]) + (1,) * (out.ndim - 2)
    if weight is not None:
        out = out * reshape(weight, *shape)
    if bias is not None:
        out = out + reshape(bias, *shape)
    return out


def instance_norm(input: Tensor, running_mean: Tensor | None = None,
                  running_var: Tensor | None = None, weight: Tensor | None = None,
                  bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize each (sample, channel) over its spatial dims (biased variance). With
    ``use_input_stats`` the running stats, when given, move towards the batch's average
    instance statistics (unbiased variance) in place, as torch; without it they normalize.

    >>> import kiln, kiln.nn.functional as F
    >>> F.instance_norm(kiln.ones(1, 2, 3)).tolist()
    [[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]
    """
    fn = "instance_norm"
    want_tensor(fn, "input", input)
    if input.ndim < 3:
        raise ShapeError(f"{fn}: expected input (N, C, ...) with spatial dims, got shape "
                         f"{tuple(input.shape)}")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        want_shape(fn, name, t, (c,), "one per channel, dim 1 of the input")
    dims = tuple(range(2, input.ndim))
    shape = (1, c) + (1,) * (input.ndim - 2)
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise ArgumentError(f"{fn}: use_input_stats=False needs running_mean and "
                                "running_var")
        out = (input - reshape(running_mean, *shape)) * \
            ops.rsqrt(reshape(running_var, *shape) + eps)
        return _affine(out, weight, bias)
    mu = mean(input, dims, keepdim=True)
    centered = input - mu
    variance = mean(centered * centered, dims, keepdim=True)
    if running_mean is not None or running_var is not None:
        n = prod(input.shape[2:])
        with no_grad():
            if running_mean is not None:
                batch_mean = mean(reshape(mu.detach(), input.shape[0], c), 0)
                running_mean.mul_(1.0 - momentum).add_(batch_mean * momentum)
            if running_var is not None:
                unbiased = reshape(variance.detach(), input.shape[0], c) * n / max(n - 1, 1)
                running_var.mul_(1.0 - momentum).add_(mean(unbiased, 0) * momentum)
    return _affine(centered * ops.rsqrt(variance + eps), weight, bias)


def local_response_norm(input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> Tensor:
    """``input / (k + alpha * mean of input^2 over size neighbouring channels)^beta``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.local_response_norm(kiln.ones(1, 2, 1), 2, alpha=1.0, beta=1.0, k=0.0).tolist()
    [[[2.0], [1.0]]]
    """
    fn = "local_response_norm"
    want_tensor(fn, "input", input)
    if input.ndim < 3:
        raise ShapeError(f"{fn}: expected input (N, C, ...) with at least 3 dims, got shape "
                         f"{tuple(input.shape)}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ArgumentError(f"{fn}: size must be a positive int, got {size!r}")
    if input.numel() == 0:
        return input
    sq = input * input
    c = input.shape[1]
    lo, hi = size // 2, (size - 1) // 2
    from kiln.nn.conv import pad

    padded = pad(sq, (0, 0) * (input.ndim - 2) + (lo, hi))
    total = padded[:, 0:c]
    for i in range(1, size):
        total = total + padded[:, i:i + c]
    div = (total * (alpha / size) + k) ** beta
    return input / div


# ---------------------------------------------------------------------------------------
# aten forms returning (out, mean, rstd)


def native_layer_norm(input: Tensor, normalized_shape: Any, weight: Tensor | None,
                      bias: Tensor | None, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """aten's layer norm: ``(out, mean, rstd)``, the statistics with the normalized dims
    kept as size 1.

    >>> import kiln
    >>> out, mu, rstd = kiln.native_layer_norm(kiln.tensor([[1.0, 3.0]]), (2,), None, None, 0.0)
    >>> out.tolist(), mu.tolist(), rstd.tolist()
    ([[-1.0, 1.0]], [[2.0]], [[1.0]])
    """
    from kiln.nn.functional import _norm_shape

    shape = _norm_shape(normalized_shape)
    if tuple(input.shape[input.ndim - len(shape):]) != shape:
        raise ShapeError(f"native_layer_norm: normalized_shape {shape} does not match the "
                         f"trailing dims of input {tuple(input.shape)}")
    dims = tuple(range(input.ndim - len(shape), input.ndim))
    mu = mean(input, dims, keepdim=True)
    centered = input - mu
    rstd = ops.rsqrt(mean(centered * centered, dims, keepdim=True) + eps)
    out = centered * rstd
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out, mu, rstd


def native_group_norm(input: Tensor, weight: Tensor | None, bias: Tensor | None, N: int,
                      C: int, HxW: int, group: int, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """aten's group norm: ``(out, mean, rstd)`` with the statistics (N, group).

    >>> import kiln
    >>> out, mu, rstd = kiln.native_group_norm(kiln.tensor([[1.0, 3.0]]), None, None, 1, 2, 1,
    ...                                        1, 0.0)
    >>> mu.tolist(), rstd.tolist()
    ([[2.0]], [[1.0]])
    """
    if tuple(input.shape[:2]) != (N, C) or C % group:
        raise ShapeError(f"native_group_norm: input {tuple(input.shape)} does not start with "
                         f"(N, C) = ({N}, {C}), or {C} channels do not split into {group} "
                         "groups")
    g = reshape(input, N, group, (C // group) * HxW)
    mu = mean(g, 2, keepdim=True)
    centered = g - mu
    rstd = ops.rsqrt(mean(centered * centered, 2, keepdim=True) + eps)
    out = _affine(reshape(centered * rstd, *input.shape), weight, bias)
    return out, reshape(mu, N, group), reshape(rstd, N, group)


def native_batch_norm(input: Tensor, weight: Tensor | None, bias: Tensor | None,
                      running_mean: Tensor | None, running_var: Tensor | None, training: bool,
                      momentum: float, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """aten's batch norm: ``(out, save_mean, save_invstd)``; in eval mode the saved
    statistics are empty (shape (0,)), as in torch. Training updates the running stats in
    place, as ``F.batch_norm``.

    >>> import kiln
    >>> out, mu, invstd = kiln.native_batch_norm(kiln.tensor([[1.0], [3.0]]), None, None,
    ...                                          None, None, True, 0.1, 0.0)
    >>> out.tolist(), mu.tolist(), invstd.tolist()
    ([[-1.0], [1.0]], [2.0], [1.0])
    """
    from kiln.nn.functional import batch_norm

    out = batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
    c = input.shape[1]
    if not training:
        empty = reshape(input, -1)[0:0]
        return out, empty, empty
    dims = (0,) + tuple(range(2, input.ndim))
    mu = mean(input, dims, keepdim=False)
    centered = input - reshape(mu, *((1, c) + (1,) * (input.ndim - 2)))
    invstd = ops.rsqrt(mean(centered * centered, dims, keepdim=False) + eps)
    return out, mu, invstd




def native_batch_norm_legit(input: Tensor, weight: Tensor | None, bias: Tensor | None,
                            *args: Any) -> tuple[Tensor, Tensor, Tensor]:
    """aten's ``_native_batch_norm_legit``: ``native_batch_norm``, also in its overload
    without running stats ``(input, weight, bias, training, momentum, eps)``.

    >>> import kiln
    >>> kiln._native_batch_norm_legit(kiln.tensor([[1.0], [3.0]]), None, None, True, 0.1,
    ...                               0.0)[0].tolist()
    [[-1.0], [1.0]]
    """
    if len(args) == 3:
        return native_batch_norm(input, weight, bias, None, None, *args)
    if len(args) != 5:
        raise ArgumentError("_native_batch_norm_legit: expected (input, weight, bias, "
                            "[running_mean, running_var,] training, momentum, eps), got "
                            f"{3 + len(args)} arguments")
    return native_batch_norm(input, weight, bias, *args)
