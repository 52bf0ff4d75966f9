"""``kiln.nn.functional``: neural-network composites written with Kiln ops only.

Every function here is plain Python over primitives and shape composites, so eager autograd,
tracing and every backend handle it with no extra code (see DESIGN.md: composites). Losses
live in :mod:`kiln.nn.losses`, ``einsum`` in :mod:`kiln.nn.einsum`, convolution, pooling and
padding in :mod:`kiln.nn.conv`; all are re-exported here, as are the shape functions of
:mod:`kiln.core.functional`.

>>> import kiln
>>> import kiln.nn.functional as F
>>> F.softmax(kiln.tensor([[1.0, 1.0]]), dim=-1).tolist()
[[0.5, 0.5]]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kiln import ops
from kiln.core import dtypes as dt
from kiln.core.autograd.grad_mode import no_grad
from kiln.core.functional import (  # noqa: F401  (re-exported: F.reshape etc.)
    amax,
    amin,
    cat,
    chunk,
    clamp,
    expand,
    flatten,
    flip,
    logsumexp,
    matmul,
    mean,
    narrow,
    permute,
    reshape,
    split,
    sqrt_or_zero_grad,
    squeeze,
    stack,
    std,
    sum,
    transpose,
    unbind,
    unsqueeze,
    var,
    where,
)
from kiln.core.prims.shapes import fmt_shape, norm_dim
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, IndexError_, ShapeError, ValueArgumentError
from kiln.nn.checks import want_broadcast, want_shape, want_tensor
from kiln.symbolic.sizes import prod

# --------------------------------------------------------------------------------------
# activations


def _stable_max(x: Tensor, dim: int) -> Tensor:
    # The shift only improves conditioning, so it carries no gradient; an all -inf slice
    # gets shift 0 (not -inf) so that -inf - -inf does not appear.
    if x.shape[dim] == 0:
        return x  # an empty slice: nothing to shift (torch returns the empty result)
    m = ops.max(x, dims=(dim,), keepdim=True).detach()
    return ops.where(m == float("-inf"), 0.0, m)


def _softmax_input(x: Tensor, dim: int | None, dtype: Any, fn: str) -> tuple[Tensor, int]:
    if dim is None:
        raise ArgumentError(f"{fn}: dim is required (implicit dims are deprecated in torch)")
    if dtype is not None:
        x = x.to(dtype)
    elif not x.dtype.is_floating:
        raise ArgumentError(f"{fn}: input must be floating, got {x.dtype}")
    return x, norm_dim(fn, dim, max(x.ndim, 1))


def softmax(x: Tensor, dim: int | None = None, dtype: Any = None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``, computed stably.

    >>> import kiln, kiln.nn.functional as F
    >>> [round(v, 4) for v in F.softmax(kiln.tensor([0.0, 1.0]), 0).tolist()]
    [0.2689, 0.7311]
    """
    x, d = _softmax_input(x, dim, dtype, "softmax")
    if x.ndim == 0:
        return x * 0.0 + 1.0
    e = ops.exp(x - _stable_max(x, d))
    return e / ops.sum(e, dims=(d,), keepdim=True)


def log_softmax(x: Tensor, dim: int | None = None, dtype: Any = None) -> Tensor:
    """log(softmax(x)) along ``dim`` without overflow (x - max - log(sum(exp(x - max)))).

    >>> import kiln, kiln.nn.functional as F
    >>> [round(v, 4) for v in F.log_softmax(kiln.tensor([0.0, 0.0]), 0).tolist()]
    [-0.6931, -0.6931]
    """
    x, d = _softmax_input(x, dim, dtype, "log_softmax")
    if x.ndim == 0:
        return x - x
    shifted = x - _stable_max(x, d)
    return shifted - ops.log(ops.sum(ops.exp(shifted), dims=(d,), keepdim=True))


def softmin(x: Tensor, dim: int | None = None, dtype: Any = None) -> Tensor:
    """softmax(-x) along ``dim``.

    >>> import kiln, kiln.nn.functional as F
    >>> [round(v, 4) for v in F.softmin(kiln.tensor([0.0, 1.0]), 0).tolist()]
    [0.7311, 0.2689]
    """
    x, d = _softmax_input(x, dim, dtype, "softmin")
    return softmax(-x, d)


def relu(x: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0) (the gradient at 0 is 0, as in PyTorch).

    >>> import kiln, kiln.nn.functional as F
    >>> F.relu(kiln.tensor([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """
    return ops.relu(x)


def relu6(x: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6) elementwise.

    >>> import kiln, kiln.nn.functional as F
    >>> F.relu6(kiln.tensor([-1.0, 3.0, 8.0])).tolist()
    [0.0, 3.0, 6.0]
    """
    return hardtanh(x, 0.0, 6.0)


def hardtanh(x: Tensor, min_val: float = -1.0, max_val: float = 1.0,
             inplace: bool = False) -> Tensor:
    """clamp(x, min_val, max_val) elementwise.

    >>> import kiln, kiln.nn.functional as F
    >>> F.hardtanh(kiln.tensor([-3.0, 0.5, 2.0])).tolist()
    [-1.0, 0.5, 1.0]
    """
    # Not clamp: at the bounds hardtanh's gradient is 0 (torch), clamp's is 1.
    out = ops.where(x <= min_val, min_val, ops.where(x >= max_val, max_val, x))
    return out if out.dtype == x.dtype else out.to(x.dtype)  # integers stay integers (torch)


def leaky_relu(x: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x where x > 0, else ``negative_slope * x``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.leaky_relu(kiln.tensor([-2.0, 2.0]), 0.5).tolist()
    [-1.0, 2.0]
    """
    return ops.where(x > 0, x, x * negative_slope)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """x where x > 0, else ``weight * x``, with one slope per channel (dim 1) or one shared
    slope (``weight`` of one element), as ``torch.nn.functional.prelu``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.prelu(kiln.tensor([[-2.0, 2.0]]), kiln.tensor([0.25])).tolist()
    [[-0.5, 2.0]]
    """
    want_tensor("prelu", "input", input)
    w = want_tensor("prelu", "weight", weight)
    if w.ndim > 1:
        raise ShapeError(f"prelu: weight must be 0-D or 1-D, got shape {fmt_shape(w.shape)}")
    count = w.numel() if w.ndim else 1
    if count != 1:
        channels = input.shape[1] if input.ndim >= 2 else None
        if channels is None or (isinstance(channels, int) and channels != count):
            raise ShapeError(f"prelu: weight has {count} slopes, but the input of shape "
                             f"{fmt_shape(input.shape)} has {channels} channels (dim 1)")
        w = reshape(w, count, *([1] * (input.ndim - 2)))
    elif w.ndim:
        w = reshape(w, ())
    return ops.where(input > 0, input, input * w)


def elu(x: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x where x > 0, else ``alpha * (exp(x) - 1)``.

    >>> import kiln, kiln.nn.functional as F
    >>> [round(v, 4) for v in F.elu(kiln.tensor([-1.0, 2.0]), alpha=2.0).tolist()]
    [-1.2642, 2.0]
    """
    # expm1 of min(x, 0) keeps the untaken branch finite (no inf * 0 in the backward); at 0
    # the gradient is alpha * exp(0) = alpha, as in torch (minimum would halve it).
    return ops.where(x > 0, x, ops.expm1(ops.where(x > 0, 0.0, x)) * alpha)


_SQRT_HALF = 1.0 / math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit: exact (via erf) or the tanh approximation.

    >>> import kiln, kiln.nn.functional as F
    >>> round(F.gelu(kiln.tensor(1.0)).item(), 4)
    0.8413
    """
    if approximate == "none":
        return x * 0.5 * (ops.erf(x * _SQRT_HALF) + 1.0)
    if approximate == "tanh":
        inner = (x + x * x * x * 0.044715) * _SQRT_2_OVER_PI
        return x * 0.5 * (ops.tanh(inner) + 1.0)
    raise ArgumentError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(x: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x) (also called swish).

    >>> import kiln, kiln.nn.functional as F
    >>> F.silu(kiln.tensor([0.0])).tolist()
    [0.0]
    """
    return x * ops.sigmoid(x)


def mish(x: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x)) elementwise.

    >>> import kiln, kiln.nn.functional as F
    >>> round(F.mish(kiln.tensor([1.0])).item(), 4)
    0.8651
    """
    return x * ops.tanh(softplus(x))


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent.

    >>> import kiln, kiln.nn.functional as F
    >>> F.tanh(kiln.tensor([0.0])).tolist()
    [0.0]
    """
    return ops.tanh(x)


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)).

    >>> import kiln, kiln.nn.functional as F
    >>> F.sigmoid(kiln.tensor([0.0])).tolist()
    [0.5]
    """
    return ops.sigmoid(x)


def logsigmoid(x: Tensor) -> Tensor:
    """log(sigmoid(x)) elementwise, stable for large negative x.

    >>> import kiln, kiln.nn.functional as F
    >>> [round(v, 4) for v in F.logsigmoid(kiln.tensor([0.0, -100.0])).tolist()]
    [-0.6931, -100.0]
    """
    return -softplus(-x)


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * x)) / beta, linear above ``threshold`` (like torch).

    >>> import kiln, kiln.nn.functional as F
    >>> round(F.softplus(kiln.tensor(0.0)).item(), 4)
    0.6931
    """
    bx = x * beta
    # Clamping the exp argument keeps the untaken branch finite for large inputs.
    soft = ops.log1p(ops.exp(ops.where(bx > threshold, threshold, bx))) / beta
    return ops.where(bx > threshold, x, soft)


# --------------------------------------------------------------------------------------
# linear layers, normalization, embedding, dropout


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` (weight is (out_features, in_features), as in torch).

    >>> import kiln, kiln.nn.functional as F
    >>> F.linear(kiln.ones(1, 2), kiln.ones(3, 2), kiln.zeros(3)).tolist()
    [[2.0, 2.0, 2.0]]
    """
    want_tensor("linear", "input", x)
    want_tensor("linear", "weight", weight)
    if weight.ndim not in (1, 2) or x.ndim == 0 or x.shape[-1] != weight.shape[-1]:
        raise ShapeError(f"linear: input {fmt_shape(x.shape)} and weight "
                         f"{fmt_shape(weight.shape)} do not fit: expected weight "
                         "(out_features, in_features) or (in_features,) with in_features "
                         "equal to the input's last dim")
    out = matmul(x, transpose(weight, 0, 1) if weight.ndim == 2 else weight)
    if bias is None:
        return out
    try:
        return out + bias
    except ShapeError:  # named on failure only: a check up front costs every forward
        want_broadcast("linear", ("output", out), ("bias", bias))
        raise


def bilinear(x1: Tensor, x2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x1[..., i] * weight[o, i, j] * x2[..., j] + bias[o]``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.bilinear(kiln.ones(2, 3), kiln.ones(2, 4), kiln.ones(5, 3, 4)).shape
    (2, 5)
    """
    from kiln.nn.einsum import einsum

    for name, t in (("input1", x1), ("input2", x2), ("weight", weight)):
        want_tensor("bilinear", name, t)
    if weight.ndim != 3 or x1.ndim == 0 or x2.ndim == 0 or x1.shape[-1] != weight.shape[1] \
            or x2.shape[-1] != weight.shape[2] or tuple(x1.shape[:-1]) != tuple(x2.shape[:-1]):
        raise ShapeError(f"bilinear: input1 {fmt_shape(x1.shape)}, input2 "
                         f"{fmt_shape(x2.shape)} and weight {fmt_shape(weight.shape)} do not "
                         "fit: expected weight (out, in1, in2), inputs (..., in1) and "
                         "(..., in2) with the same leading dims")
    out = einsum("...i,oij,...j->...o", x1, weight, x2)
    if bias is None:
        return out
    want_shape("bilinear", "bias", bias, (weight.shape[0],), "out_features")
    return out + bias


def _norm_shape(normalized_shape: Any) -> tuple:
    if isinstance(normalized_shape, int):
        return (normalized_shape,)
    return tuple(normalized_shape)


def layer_norm(x: Tensor, normalized_shape: Any, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalize over the last ``len(normalized_shape)`` dims (biased variance).

    >>> import kiln, kiln.nn.functional as F
    >>> [round(v, 3) for v in F.layer_norm(kiln.tensor([[1.0, 3.0]]), (2,))[0].tolist()]
    [-1.0, 1.0]
    """
    shape = _norm_shape(normalized_shape)
    if tuple(x.shape[x.ndim - len(shape):]) != shape:
        raise ShapeError(f"layer_norm: normalized_shape {shape} does not match the trailing "
                         f"dims of input {tuple(x.shape)}")
    want_shape("layer_norm", "weight", weight, shape, "normalized_shape")
    want_shape("layer_norm", "bias", bias, shape, "normalized_shape")
    dims = tuple(range(x.ndim - len(shape), x.ndim))
    mu = mean(x, dims, keepdim=True)
    centered = x - mu
    variance = mean(centered * centered, dims, keepdim=True)
    out = centered * ops.rsqrt(variance + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def rms_norm(x: Tensor, normalized_shape: Any, weight: Tensor | None = None,
             eps: float | None = None) -> Tensor:
    """x / sqrt(mean(x^2) + eps) over the trailing dims, times ``weight``.

    >>> import kiln, kiln.nn.functional as F
    >>> [round(v, 4) for v in F.rms_norm(kiln.tensor([3.0, 4.0]), (2,)).tolist()]
    [0.8485, 1.1314]
    """
    shape = _norm_shape(normalized_shape)
    if len(shape) > x.ndim or tuple(x.shape[x.ndim - len(shape):]) != shape:
        raise ShapeError(f"rms_norm: normalized_shape {shape} does not match the trailing "
                         f"dims of input {tuple(x.shape)}")
    want_shape("rms_norm", "weight", weight, shape, "normalized_shape")
    dims = tuple(range(x.ndim - len(shape), x.ndim))
    if eps is None:
        eps = float(np.finfo(x.dtype.np_dtype).eps)  # torch's default: the dtype's eps
    out = x * ops.rsqrt(mean(x * x, dims, keepdim=True) + eps)
    return out * weight if weight is not None else out


def _channel_shape(x: Tensor) -> tuple:
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalization over every dim but dim 1 (channels).

    Training normalizes with the batch mean and biased variance and, like torch, updates the
    running stats in place with the *unbiased* variance:
    ``running = (1 - momentum) * running + momentum * batch_stat``. Under ``kiln.trace`` the
    in-place updates are recorded and written back after each call of the compiled graph.

    >>> import kiln, kiln.nn.functional as F
    >>> rm, rv = kiln.zeros(2), kiln.ones(2)
    >>> x = kiln.tensor([[0.0, 2.0], [2.0, 4.0]])
    >>> F.batch_norm(x, rm, rv, training=True).shape, rm.tolist()
    ((2, 2), [0.10000000149011612, 0.30000001192092896])
    """
    if x.ndim < 2:
        raise ShapeError(f"batch_norm: expected input of rank >= 2 (N, C, ...), got shape "
                         f"{tuple(x.shape)}")
    channels = (x.shape[1],)
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        want_shape("batch_norm", name, t, channels, "one per channel, dim 1 of the input")
    dims = (0,) + tuple(range(2, x.ndim))
    shape = _channel_shape(x)
    if training:
        n = 1
        for d in dims:
            n = n * x.shape[d]
        if isinstance(n, int) and n <= 1:
            raise ShapeError(f"batch_norm: expected more than 1 value per channel when "
                             f"training, got input of shape {tuple(x.shape)}")
        mu = mean(x, dims, keepdim=True)
        centered = x - mu
        variance = mean(centered * centered, dims, keepdim=True)
        if running_mean is not None and running_var is not None:
            with no_grad():
                batch_mean = reshape(mu.detach(), x.shape[1])
                # Tensor ops, not n / (n - 1): n may be a symbolic size (a SymInt).
                unbiased = reshape(variance.detach(), x.shape[1]) * n / (n - 1)
                running_mean.mul_(1.0 - momentum).add_(batch_mean * momentum)
                running_var.mul_(1.0 - momentum).add_(unbiased * momentum)
        out = centered * ops.rsqrt(variance + eps)
    else:
        if running_mean is None or running_var is None:
            raise ArgumentError("batch_norm: running_mean and running_var are required when "
                                "training=False")
        out = (x - reshape(running_mean, *shape)) * ops.rsqrt(reshape(running_var, *shape)
                                                              + eps)
    if weight is not None:
        out = out * reshape(weight, *shape)
    if bias is not None:
        out = out + reshape(bias, *shape)
    return out


def group_norm(x: Tensor, num_groups: int, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalize groups of channels per sample (biased variance).

    >>> import kiln, kiln.nn.functional as F
    >>> F.group_norm(kiln.tensor([[[1.0, 3.0], [2.0, 2.0]]]), 1).tolist()
    [[[-1.4141993522644043, 1.4141993522644043], [0.0, 0.0]]]
    """
    n, c = x.shape[0], x.shape[1]
    if c % num_groups:
        raise ShapeError(f"group_norm: {c} channels do not split into {num_groups} groups")
    want_shape("group_norm", "weight", weight, (c,), "one per channel, dim 1 of the input")
    want_shape("group_norm", "bias", bias, (c,), "one per channel, dim 1 of the input")
    # The group size is spelled out: a -1 cannot be inferred for an empty batch.
    g = reshape(x, n, num_groups, (c // num_groups) * prod(x.shape[2:]))
    mu = mean(g, 2, keepdim=True)
    centered = g - mu
    out = centered * ops.rsqrt(mean(centered * centered, 2, keepdim=True) + eps)
    out = reshape(out, *x.shape)
    shape = _channel_shape(x)
    if weight is not None:
        out = out * reshape(weight, *shape)
    if bias is not None:
        out = out + reshape(bias, *shape)
    return out


def embedding(idx: Tensor, weight: Tensor, padding_idx: int | None = None,
              max_norm: float | None = None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of ``weight`` picked by integer ``idx`` (any shape); ``padding_idx`` rows get no
    gradient, as in torch. ``max_norm`` (torch renormalizes the weight in place) and the
    gradient options ``scale_grad_by_freq`` / ``sparse`` are refused with a KilnError.

    >>> import kiln, kiln.nn.functional as F
    >>> F.embedding(kiln.tensor([[1, 0]]), kiln.tensor([[0.0], [5.0]])).tolist()
    [[[5.0], [0.0]]]
    """
    if not idx.dtype.is_integer:
        raise ArgumentError(f"embedding: indices must be an integer tensor, got {idx.dtype}")
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise ArgumentError("embedding: max_norm, scale_grad_by_freq and sparse are not "
                            "supported (max_norm rewrites the weight in place during the "
                            "forward); renormalize the weight yourself, e.g. under "
                            "kiln.no_grad(), before the lookup")
    n = weight.shape[0]
    if idx._node is None and idx.numel() and isinstance(n, int):
        # Checked here so the error names embedding, not the gather inside weight[idx].
        bad = idx._data[(idx._data >= n) | (idx._data < -n)]
        if bad.size:
            raise IndexError_(f"embedding: index {int(bad.flat[0])} is out of range for a "
                              f"weight of {n} rows (expected {-n} <= index < {n})")
    out = weight[idx]
    if padding_idx is not None:
        keep = unsqueeze(idx != padding_idx, -1)
        out = ops.where(keep, out, out.detach())
    return out


def dropout(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero elements with probability ``p`` and scale the rest by 1/(1-p) (training only).

    The mask comes from ``kiln.rand``, so under ``kiln.trace`` it is drawn on every call.

    >>> import kiln, kiln.nn.functional as F
    >>> F.dropout(kiln.ones(3), 0.5, training=False).tolist()
    [1.0, 1.0, 1.0]
    """
    if not 0.0 <= p <= 1.0:
        raise ArgumentError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    from kiln.core.creation import rand

    keep = rand(*x.shape, dtype=x.dtype if x.dtype.is_floating else None) >= p
    # Scale by a Python float so the factor keeps x's precision (a where() of two Python
    # scalars would round it to float32 first).
    return x * keep.to(x.dtype) * (1.0 / (1.0 - p))


def normalize(x: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """x / max(||x||_p, eps) along ``dim``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.normalize(kiln.tensor([[3.0, 4.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929]]
    """
    d = norm_dim("normalize", dim, x.ndim)
    dd = (d,) if x.ndim else ()  # (a 0-d tensor: dim 0 names the tensor itself)
    if p == 2.0:
        # A zero vector's norm has gradient 0 (torch), so its result's gradient is 1 / eps.
        norm = sqrt_or_zero_grad(ops.sum(x * x, dims=dd, keepdim=True))
    elif p == 1.0:
        norm = ops.sum(ops.abs(x), dims=dd, keepdim=True)
    elif p == float("inf"):
        norm = ops.max(ops.abs(x), dims=dd, keepdim=True)
    else:
        from kiln.core.linalg import vector_norm

        norm = vector_norm(x, p, d, keepdim=True)  # (p = 0 counts nonzeros, as torch)
    return x / ops.where(norm < eps, eps, norm)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """<x1, x2> / max(||x1|| * ||x2||, eps) along ``dim``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.cosine_similarity(kiln.tensor([[1.0, 0.0]]), kiln.tensor([[2.0, 0.0]])).tolist()
    [1.0]
    """
    want_broadcast("cosine_similarity", ("x1", x1), ("x2", x2))
    # Broadcast first (torch does): a norm over a dim one input only broadcasts along would
    # otherwise be taken over too few elements.
    from kiln.core.prims.shapes import broadcast_shapes

    shape = broadcast_shapes("cosine_similarity", tuple(x1.shape), tuple(x2.shape))
    x1, x2 = expand(x1, *shape), expand(x2, *shape)
    # torch's formula: each input over its own norm (at least eps), then the dot product.
    # A zero vector's norm has gradient 0, so its gradient is the other input / eps.
    n1 = sqrt_or_zero_grad(sum(x1 * x1, dim, keepdim=True))
    n2 = sqrt_or_zero_grad(sum(x2 * x2, dim, keepdim=True))
    return sum((x1 / ops.where(n1 < eps, eps, n1)) * (x2 / ops.where(n2 < eps, eps, n2)), dim)


def one_hot(idx: Tensor, num_classes: int = -1) -> Tensor:
    """An int64 tensor with a trailing dim of size ``num_classes``, 1 at each index.

    >>> import kiln, kiln.nn.functional as F
    >>> F.one_hot(kiln.tensor([0, 2]), 3).tolist()
    [[1, 0, 0], [0, 0, 1]]
    """
    if not idx.dtype.is_integer:
        raise ArgumentError(f"one_hot: expected an integer tensor, got {idx.dtype}")
    from kiln.core.creation import arange, zeros

    if idx._node is not None:
        if num_classes < 0:
            raise ArgumentError("one_hot: num_classes=-1 depends on the data; pass "
                                "num_classes when tracing")
        # Traced: the values are unknown until the graph runs; a scatter checks its indices
        # there (a class out of range is an error of the run, not an all-zero row).
        from kiln.core.methods import scatter

        out = zeros(*idx.shape, num_classes, dtype=dt.int64)
        return scatter(out, idx.ndim, unsqueeze(idx.to(dt.int64), -1), 1)
    if idx.numel():
        lo, hi = int(amin(idx).item()), int(amax(idx).item())
        if num_classes < 0:
            num_classes = hi + 1
        # torch refuses these; the comparison below would give an all-zero row.
        if lo < 0:
            raise ValueArgumentError(f"one_hot: class values must be non-negative, got {lo}")
        if hi >= num_classes:
            raise ValueArgumentError(f"one_hot: class value {hi} is out of range for "
                                     f"num_classes={num_classes}")
    elif num_classes < 0:
        num_classes = 0
    classes = arange(num_classes, dtype=idx.dtype)
    return (unsqueeze(idx, -1) == classes).to(dt.int64)


# --------------------------------------------------------------------------------------
# attention


def _causal_mask(q_len: Any, k_len: Any) -> Tensor:
    from kiln.core.creation import arange

    rows = unsqueeze(arange(q_len), 1)
    cols = unsqueeze(arange(k_len), 0)
    return rows >= cols


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor,
                                 attn_mask: Tensor | None = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """softmax(q @ k^T * scale + mask) @ v over the last two dims, as torch's reference.

    A bool ``attn_mask`` marks positions that may be attended (True = keep); a float mask is
    added to the scores. ``is_causal`` keeps the lower triangle.

    >>> import kiln, kiln.nn.functional as F
    >>> q = k = v = kiln.ones(1, 2, 3, 4)
    >>> F.scaled_dot_product_attention(q, k, v, is_causal=True).shape
    (1, 2, 3, 4)
    """
    if is_causal and attn_mask is not None:
        raise ArgumentError("scaled_dot_product_attention: pass either attn_mask or "
                            "is_causal, not both")
    fn = "scaled_dot_product_attention"
    for name, t in (("query", q), ("key", k), ("value", v)):
        if want_tensor(fn, name, t).ndim < 2:
            raise ShapeError(f"{fn}: {name} must have at least 2 dims (..., L, E), got shape "
                             f"{fmt_shape(t.shape)}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"{fn}: query {fmt_shape(q.shape)}, key {fmt_shape(k.shape)} and "
                         f"value {fmt_shape(v.shape)} do not fit: query and key share the "
                         "last dim (E), key and value the sequence dim (S)")
    e = q.shape[-1]
    if scale is None:
        scale = 1.0 / math.sqrt(e)
    if enable_gqa and q.ndim >= 3 and k.shape[-3] != q.shape[-3]:
        rep = q.shape[-3] // k.shape[-3]
        k = _repeat_heads(k, rep)
        v = _repeat_heads(v, rep)
    if not enable_gqa or q.ndim < 3:
        want_broadcast(fn, ("query batch dims", q.shape[:-2]), ("key batch dims", k.shape[:-2]),
                       ("value batch dims", v.shape[:-2]))
    scores = matmul(q, transpose(k, -2, -1)) * scale
    if attn_mask is not None:
        want_broadcast(fn, ("scores (query @ key^T)", scores), ("attn_mask", attn_mask))
    if is_causal:
        scores = ops.where(_causal_mask(q.shape[-2], k.shape[-2]), scores, float("-inf"))
    elif attn_mask is not None:
        if attn_mask.dtype.is_bool:
            scores = ops.where(attn_mask, scores, float("-inf"))
        else:
            scores = scores + attn_mask
    weights = softmax(scores, -1)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, training=True)
    return matmul(weights, v)


def _repeat_heads(x: Tensor, rep: int) -> Tensor:
    shape = tuple(x.shape)
    lead, h, rest = shape[:-3], shape[-3], shape[-2:]
    x = expand(unsqueeze(x, -3), *(lead + (h, rep) + rest))
    return reshape(x, *(lead + (h * rep,) + rest))


# --------------------------------------------------------------------------------------
# re-exports (imported last: these modules import helpers from this one)

from kiln.nn.activations import (  # noqa: E402
    celu,
    glu,
    hardshrink,
    hardswish,
    selu,
    softshrink,
    softsign,
    threshold,
)
from kiln.nn.conv import (  # noqa: E402
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
    avg_pool2d,
    conv1d,
    conv2d,
    max_pool2d,
    pad,
)
from kiln.nn.conv_transpose import conv_transpose1d, conv_transpose2d  # noqa: E402
from kiln.nn.einsum import einsum  # noqa: E402
from kiln.nn.fold import fold, tanhshrink, unfold  # noqa: E402
from kiln.nn.interpolate import (  # noqa: E402
    interpolate,
    upsample,
    upsample_bilinear,
    upsample_nearest,
)
from kiln.nn.losses import (  # noqa: E402
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)
from kiln.nn.pool_nd import (  # noqa: E402
    adaptive_avg_pool1d,
    adaptive_max_pool1d,
    avg_pool1d,
    avg_pool3d,
    max_pool1d,
    max_pool3d,
)
from kiln.nn.unpool import max_unpool2d  # noqa: E402

__all__ = [
    "softmax", "log_softmax", "softmin", "relu", "relu6", "hardtanh", "leaky_relu", "elu",
    "gelu", "silu", "mish", "tanh", "sigmoid", "logsigmoid", "softplus", "linear", "bilinear",
    "layer_norm", "rms_norm", "batch_norm", "group_norm", "embedding", "dropout",
    "normalize", "cosine_similarity", "one_hot", "scaled_dot_product_attention",
    "conv1d", "conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d",
    "pad", "einsum", "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss",
    "huber_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div",
    "reshape", "permute", "transpose", "squeeze", "unsqueeze", "flatten", "mean", "var",
    "std", "sum", "logsumexp", "clamp", "matmul", "cat", "stack", "split", "chunk",
    "unbind", "narrow", "flip", "amax", "amin", "where", "expand",
    # issue 12: layers a ported model needs
    "prelu", "conv_transpose1d", "conv_transpose2d", "max_pool1d", "avg_pool1d", "max_pool3d",
    "avg_pool3d", "adaptive_avg_pool1d", "adaptive_max_pool1d", "interpolate", "upsample",
    "upsample_nearest", "upsample_bilinear", "softsign", "softshrink", "hardshrink",
    "hardswish", "celu", "selu", "glu", "threshold", "fold", "unfold", "tanhshrink", "max_unpool2d",
]


# torch's losses, distances and the remaining layer functions (issue 12, nnops): each module
# lists its own names in __all__. (Before __getattr__: while they import, a probe of this
# partly built module must not reach the did-you-mean lookup.)
from kiln.nn.aten_extra import *  # noqa: E402, F403
from kiln.nn.aten_extra import __all__ as _aten_extra_names  # noqa: E402
from kiln.nn.attention import *  # noqa: E402, F403
from kiln.nn.attention import __all__ as _attention_names  # noqa: E402
from kiln.nn.bags import *  # noqa: E402, F403
from kiln.nn.bags import __all__ as _bag_names  # noqa: E402
from kiln.nn.conv3d import *  # noqa: E402, F403
from kiln.nn.conv3d import __all__ as _conv3d_names  # noqa: E402
from kiln.nn.ctc import *  # noqa: E402, F403
from kiln.nn.ctc import __all__ as _ctc_names  # noqa: E402
from kiln.nn.distance import *  # noqa: E402, F403
from kiln.nn.distance import __all__ as _distance_names  # noqa: E402
from kiln.nn.dropout_shuffle import *  # noqa: E402, F403
from kiln.nn.dropout_shuffle import __all__ as _dropout_names  # noqa: E402
from kiln.nn.fractional_pool import *  # noqa: E402, F403
from kiln.nn.fractional_pool import __all__ as _fractional_names  # noqa: E402
from kiln.nn.grid_sample import *  # noqa: E402, F403
from kiln.nn.grid_sample import __all__ as _grid_names  # noqa: E402
from kiln.nn.losses_margin import *  # noqa: E402, F403
from kiln.nn.losses_margin import __all__ as _margin_names  # noqa: E402
from kiln.nn.losses_prob import *  # noqa: E402, F403
from kiln.nn.losses_prob import __all__ as _prob_names  # noqa: E402
from kiln.nn.lp_pool import *  # noqa: E402, F403
from kiln.nn.lp_pool import __all__ as _lp_names  # noqa: E402
from kiln.nn.norm_extra import *  # noqa: E402, F403
from kiln.nn.norm_extra import __all__ as _norm_names  # noqa: E402

NNOPS_FUNCTIONS = (*_distance_names, *_margin_names, *_prob_names, *_attention_names,
                   *_norm_names, *_dropout_names, *_conv3d_names,
                   *_bag_names, *_ctc_names, *_lp_names, *_grid_names,
                   *_aten_extra_names, *_fractional_names)
__all__ += [*NNOPS_FUNCTIONS]


def __getattr__(name: str) -> Any:
    from kiln.errors import missing_attribute

    raise missing_attribute("module 'kiln.nn.functional'", name, globals())
