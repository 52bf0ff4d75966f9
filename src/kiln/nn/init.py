"""``kiln.nn.init``: parameter initializers with PyTorch's names, fans and distributions.

Every initializer fills its tensor in place under ``no_grad`` and returns it. Samples come
from Kiln's seeded generator (``kiln.manual_seed``), or from a NumPy ``Generator`` passed
as ``generator=``. Values are drawn in float64 and rounded to the tensor's dtype.

>>> import kiln
>>> from kiln.nn import init
>>> w = kiln.zeros(256, 128)
>>> kiln.manual_seed(0)
>>> _ = init.kaiming_uniform_(w, nonlinearity="relu")
>>> bound = (2.0 ** 0.5) * (3.0 / 128) ** 0.5   # gain * sqrt(3 / fan_in)
>>> bool(w.abs().max().item() <= bound)
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kiln.core.autograd.grad_mode import no_grad
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError, ValueArgumentError

_LINEAR_FNS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
               "conv_transpose3d")


def _gen(generator: np.random.Generator | None) -> np.random.Generator:
    if generator is not None:
        if not isinstance(generator, np.random.Generator):
            raise ArgumentError(f"init: generator must be a numpy.random.Generator, got "
                                f"{type(generator).__name__}")
        return generator
    from kiln.core.random import generator as kiln_generator

    return kiln_generator()


def _check(tensor: Any, fn: str) -> Tensor:
    if not isinstance(tensor, Tensor):
        raise ArgumentError(f"{fn}: expected a kiln.Tensor, got {type(tensor).__name__}")
    if tensor.is_tracer:
        raise ArgumentError(f"{fn}: cannot initialize a tracer tensor; initialize parameters "
                            "before tracing")
    return tensor


def _write(tensor: Tensor, values: Any) -> Tensor:
    arr = np.asarray(values, dtype=tensor.dtype.np_dtype).reshape(tensor.shape)
    with no_grad():
        tensor.copy_(Tensor._wrap(arr))
    return tensor


def _shape(tensor: Tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in tensor.shape)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (same table as ``torch.nn.init``).

    >>> from kiln.nn import init
    >>> init.calculate_gain("relu") == 2 ** 0.5, init.calculate_gain("tanh")
    (True, 1.6666666666666667)
    """
    if nonlinearity in _LINEAR_FNS or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueArgumentError(f"calculate_gain: negative_slope {param!r} is not a valid "
                                     "number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueArgumentError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight: dim 1 and dim 0 times the receptive field size.

    >>> import kiln
    >>> from kiln.nn import init
    >>> init._calculate_fan_in_and_fan_out(kiln.zeros(16, 3, 5, 5))
    (75, 400)
    """
    shape = _shape(tensor)
    if len(shape) < 2:
        raise ShapeError("init: fan in and fan out can not be computed for a tensor with fewer "
                         f"than 2 dimensions (got shape {shape})")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueArgumentError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0,
             generator: np.random.Generator | None = None) -> Tensor:
    """Fill with samples from U(a, b).

    >>> import kiln
    >>> from kiln.nn import init
    >>> t = init.uniform_(kiln.empty(1000), -2.0, 2.0)
    >>> -2.0 <= t.min().item() and t.max().item() < 2.0
    True
    """
    _check(tensor, "uniform_")
    return _write(tensor, _gen(generator).uniform(a, b, _shape(tensor)))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0,
            generator: np.random.Generator | None = None) -> Tensor:
    """Fill with samples from N(mean, std^2).

    >>> import kiln
    >>> from kiln.nn import init
    >>> t = init.normal_(kiln.empty(10000), mean=3.0, std=0.5)
    >>> abs(t.mean().item() - 3.0) < 0.05, abs(t.std().item() - 0.5) < 0.05
    (True, True)
    """
    _check(tensor, "normal_")
    if std < 0:
        raise ValueArgumentError(f"normal_: std must be non-negative, got {std}")
    return _write(tensor, _gen(generator).normal(mean, std, _shape(tensor)))


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0, generator: np.random.Generator | None = None) -> Tensor:
    """Fill with N(mean, std^2) samples restricted to [a, b] (resampling those outside).

    >>> import kiln
    >>> from kiln.nn import init
    >>> t = init.trunc_normal_(kiln.zeros(1000), std=1.0, a=-0.5, b=0.5)
    >>> bool(t.abs().max().item() <= 0.5)
    True
    """
    _check(tensor, "trunc_normal_")
    if not a < b:
        raise ValueArgumentError(f"trunc_normal_: expected a < b, got a={a}, b={b}")
    gen = _gen(generator)
    n = math.prod(_shape(tensor))
    out = gen.normal(mean, std, n)
    bad = (out < a) | (out > b)
    # Rejection sampling gives exactly the truncated distribution; it needs many rounds only
    # when [a, b] holds little mass, so fall back to clipping after a bounded number.
    for _ in range(100):
        k = int(bad.sum())
        if k == 0:
            break
        out[bad] = gen.normal(mean, std, k)
        bad = (out < a) | (out > b)
    return _write(tensor, np.clip(out, a, b))


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``.

    >>> import kiln
    >>> from kiln.nn import init
    >>> init.constant_(kiln.empty(2), 0.5).tolist()
    [0.5, 0.5]
    """
    _check(tensor, "constant_")
    return _write(tensor, np.full(_shape(tensor), val))


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with 0.

    >>> import kiln
    >>> from kiln.nn import init
    >>> init.zeros_(kiln.ones(2)).tolist()
    [0.0, 0.0]
    """
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with 1.

    >>> import kiln
    >>> from kiln.nn import init
    >>> init.ones_(kiln.zeros(2)).tolist()
    [1.0, 1.0]
    """
    return constant_(tensor, 1.0)


def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-D tensor with the identity (ones on the main diagonal).

    >>> import kiln
    >>> from kiln.nn import init
    >>> init.eye_(kiln.zeros(2, 3)).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    _check(tensor, "eye_")
    if tensor.ndim != 2:
        raise ShapeError(f"eye_: only 2-D tensors are supported, got shape {_shape(tensor)}")
    return _write(tensor, np.eye(*_shape(tensor)))


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """Fill a 3-, 4- or 5-D conv weight with the Dirac delta (identity convolution).

    >>> import kiln
    >>> from kiln.nn import init
    >>> w = init.dirac_(kiln.empty(2, 2, 3, 3))
    >>> x = kiln.randn(1, 2, 5, 5)
    >>> bool((kiln.nn.functional.conv2d(x, w, padding=1) == x).all())
    True
    """
    _check(tensor, "dirac_")
    shape = _shape(tensor)
    if len(shape) not in (3, 4, 5):
        raise ShapeError(f"dirac_: only 3-, 4- or 5-D tensors are supported, got {shape}")
    if shape[0] % groups:
        raise ValueArgumentError(f"dirac_: dim 0 ({shape[0]}) must be divisible by groups "
                                 f"({groups})")
    out = np.zeros(shape)
    per_group = shape[0] // groups
    centre = tuple(s // 2 for s in shape[2:])
    for g in range(groups):
        for d in range(min(per_group, shape[1])):
            out[(g * per_group + d, d) + centre] = 1.0
    return _write(tensor, out)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0,
                    generator: np.random.Generator | None = None) -> Tensor:
    """U(-a, a) with ``a = gain * sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio).

    >>> import kiln, math
    >>> from kiln.nn import init
    >>> w = init.xavier_uniform_(kiln.empty(30, 20))
    >>> w.abs().max().item() <= math.sqrt(6 / 50)
    True
    """
    _check(tensor, "xavier_uniform_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    a = math.sqrt(3.0) * std
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0,
                   generator: np.random.Generator | None = None) -> Tensor:
    """N(0, std^2) with ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    >>> import kiln, math
    >>> from kiln.nn import init
    >>> w = init.xavier_normal_(kiln.empty(300, 200))
    >>> abs(w.std().item() / math.sqrt(2 / 500) - 1) < 0.05
    True
    """
    _check(tensor, "xavier_normal_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu",
                     generator: np.random.Generator | None = None) -> Tensor:
    """U(-bound, bound) with ``bound = gain * sqrt(3 / fan)`` (He et al.).

    ``Linear`` and ``Conv2d`` use ``a=sqrt(5)``, which gives ``bound = 1 / sqrt(fan_in)``.

    >>> import kiln, math
    >>> from kiln.nn import init
    >>> w = init.kaiming_uniform_(kiln.empty(8, 16), a=math.sqrt(5))
    >>> w.abs().max().item() <= 1 / math.sqrt(16)
    True
    """
    _check(tensor, "kaiming_uniform_")
    if 0 in _shape(tensor):
        return tensor  # torch warns and leaves an empty tensor alone
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu",
                    generator: np.random.Generator | None = None) -> Tensor:
    """N(0, std^2) with ``std = gain / sqrt(fan)`` (ResNet uses mode="fan_out", "relu").

    >>> import kiln, math
    >>> from kiln.nn import init
    >>> w = init.kaiming_normal_(kiln.empty(400, 300), nonlinearity="relu")
    >>> abs(w.std().item() / math.sqrt(2 / 300) - 1) < 0.05
    True
    """
    _check(tensor, "kaiming_normal_")
    if 0 in _shape(tensor):
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return normal_(tensor, 0.0, std, generator)


def orthogonal_(tensor: Tensor, gain: float = 1.0,
                generator: np.random.Generator | None = None) -> Tensor:
    """A (semi-)orthogonal matrix from the QR decomposition of a Gaussian one, times ``gain``.

    Dims after the first are flattened, as in PyTorch.

    >>> import kiln, numpy as np
    >>> from kiln.nn import init
    >>> q = init.orthogonal_(kiln.zeros(4, 4, dtype="float64")).numpy()
    >>> bool(np.allclose(q @ q.T, np.eye(4)))
    True
    """
    _check(tensor, "orthogonal_")
    shape = _shape(tensor)
    if len(shape) < 2:
        raise ShapeError(f"orthogonal_: only tensors with 2 or more dimensions are supported, "
                         f"got shape {shape}")
    if 0 in shape:
        return tensor
    rows = shape[0]
    cols = math.prod(shape[1:])
    flat = _gen(generator).normal(0.0, 1.0, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    # Fix the signs so that the result is uniformly distributed (Mezzadri 2007).
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _write(tensor, q * gain)


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01,
            generator: np.random.Generator | None = None) -> Tensor:
    """A 2-D tensor with N(0, std^2) entries and a ``sparsity`` fraction of each column zero.

    >>> import kiln
    >>> from kiln.nn import init
    >>> w = init.sparse_(kiln.empty(10, 3), sparsity=0.3)
    >>> (w == 0).sum(0).tolist()
    [3, 3, 3]
    """
    _check(tensor, "sparse_")
    if tensor.ndim != 2:
        raise ShapeError(f"sparse_: only 2-D tensors are supported, got {_shape(tensor)}")
    rows, cols = _shape(tensor)
    gen = _gen(generator)
    out = gen.normal(0.0, std, (rows, cols))
    zeros = int(math.ceil(sparsity * rows))
    for c in range(cols):
        out[gen.permutation(rows)[:zeros], c] = 0.0
    return _write(tensor, out)


# PyTorch's deprecated spellings without the trailing underscore.
uniform = uniform_
normal = normal_
constant = constant_
xavier_uniform = xavier_uniform_
xavier_normal = xavier_normal_
kaiming_uniform = kaiming_uniform_
kaiming_normal = kaiming_normal_
orthogonal = orthogonal_

__all__ = [
    "calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_",
    "eye_", "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
    "kaiming_normal_", "orthogonal_", "sparse_",
]
