"""Tensor creation: ``kiln.tensor``, ``zeros``, ``arange``, ``randn`` and friends.

Shapes may be given as ``zeros(2, 3)`` or ``zeros((2, 3))``. Creation goes through the op
registry (``full``, ``arange``, ``eye``, ``rand``...), so inside a trace it is recorded.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kiln.core import dtypes as dt
from kiln.core import prims as ops
from kiln.core.random import using
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ValueArgumentError
from kiln.symbolic.sizes import SymInt


def _to_array(data: Any, dtype: Any = None) -> np.ndarray:
    """NumPy array for ``data`` with Kiln's defaults (floats -> float32, ints -> int64)."""
    want = dt.get_dtype(dtype) if dtype is not None else None
    if isinstance(data, Tensor):
        arr = data._concrete("kiln.tensor()")
    elif isinstance(data, np.ndarray):
        arr = data
    else:
        if _has_tensor(data):
            data = _tensors_to_lists(data)
        try:
            arr = np.asarray(data)
        except ValueError as e:  # nested lists of different lengths
            raise ValueArgumentError(f"kiln.tensor: data must be rectangular (nested lists of "
                                     f"equal lengths at each level): {e}") from None
        if want is None and arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
    if arr.dtype.kind == "U" or arr.dtype == object:
        raise ArgumentError(f"kiln.tensor: data must be numbers, got {arr.dtype}")
    if want is None:
        if arr.dtype == np.float16:
            want = dt.float32
        elif arr.dtype.kind in "iu" and arr.dtype not in (np.int32, np.int64):
            want = dt.int64
        else:
            want = dt.from_numpy_dtype(arr.dtype)
    return np.array(arr, dtype=want.np_dtype, copy=True)


def _has_tensor(data: Any) -> bool:
    if isinstance(data, Tensor):
        return True
    if isinstance(data, (list, tuple)):
        return any(_has_tensor(d) for d in data)
    return False


def _tensors_to_lists(data: Any) -> Any:
    if isinstance(data, Tensor):
        return data.tolist()
    return [_tensors_to_lists(d) for d in data]


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data``.

    >>> import kiln
    >>> kiln.tensor([1, 2]).dtype, kiln.tensor([1.0]).dtype
    (kiln.int64, kiln.float32)
    """
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def as_tensor(data: Any, dtype: Any = None) -> Tensor:
    """Like :func:`tensor`, but returns ``data`` itself when it is already a fitting Tensor
    (and shares memory with a NumPy array of a Kiln dtype).

    >>> import kiln
    >>> t = kiln.ones(2)
    >>> kiln.as_tensor(t) is t, kiln.as_tensor(t, dtype=kiln.float64).dtype
    (True, kiln.float64)
    """
    if isinstance(data, Tensor) and (dtype is None or dt.get_dtype(dtype) == data.dtype):
        return data
    if isinstance(data, np.ndarray) and dtype is None:
        try:
            dt.from_numpy_dtype(data.dtype)
            return Tensor._wrap(data)
        except Exception:
            pass
    return Tensor(data, dtype=dtype)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``array`` (writes show through, as in PyTorch).

    >>> import numpy as np, kiln
    >>> a = np.zeros(2, np.float32); t = kiln.from_numpy(a); a[0] = 5
    >>> t.tolist()
    [5.0, 0.0]
    """
    if not isinstance(array, np.ndarray):
        raise ArgumentError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    dt.from_numpy_dtype(array.dtype)
    return Tensor._wrap(array)


def _shape(shape: tuple, fn: str) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, (int, SymInt, np.integer)):
            raise ArgumentError(f"{fn}: sizes must be ints, got {shape!r}")
    return tuple(int(d) if isinstance(d, np.integer) else d for d in shape)


def _finish(t: Tensor, requires_grad: bool) -> Tensor:
    if requires_grad:
        t.requires_grad_(True)
    return t


def full(size: Any, fill_value: Any, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of shape ``size`` filled with ``fill_value`` (its dtype follows the value, as
    in PyTorch: an int gives int64, a float float32).

    >>> import kiln
    >>> kiln.full((2,), 7).tolist(), kiln.full((1, 2), 0.5).dtype
    ([7, 7], kiln.float32)
    """
    if isinstance(fill_value, np.generic):
        fill_value = fill_value.item()
    d = dt.get_dtype(dtype) if dtype is not None else dt.scalar_dtype(fill_value)
    t = ops.full(shape=_shape((size,) if isinstance(size, int) else (tuple(size),), "full"),
                 value=fill_value, dtype=d)
    return _finish(t, requires_grad)


def zeros(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros (float32 unless ``dtype`` says otherwise).

    >>> import kiln
    >>> kiln.zeros(2, 3).shape, kiln.zeros((2,), dtype=kiln.int64).tolist()
    ((2, 3), [0, 0])
    """
    d = dt.get_dtype(dtype) if dtype is not None else dt.DEFAULT_FLOAT
    return _finish(ops.full(shape=_shape(size, "zeros"), value=0, dtype=d), requires_grad)


def ones(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones (float32 unless ``dtype`` says otherwise).

    >>> import kiln
    >>> kiln.ones(2, requires_grad=True)
    tensor([1., 1.], requires_grad=True)
    """
    d = dt.get_dtype(dtype) if dtype is not None else dt.DEFAULT_FLOAT
    return _finish(ops.full(shape=_shape(size, "ones"), value=1, dtype=d), requires_grad)


def empty(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """An uninitialized tensor; Kiln fills it with zeros so results are reproducible.

    >>> import kiln
    >>> kiln.empty(2, 2).shape
    (2, 2)
    """
    return zeros(*size, dtype=dtype, requires_grad=requires_grad)


def zeros_like(x: Tensor, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros with the shape (and dtype, unless given) of ``x``.

    >>> import kiln
    >>> kiln.zeros_like(kiln.ones(2, dtype=kiln.int64)).tolist()
    [0, 0]
    """
    return zeros(*x.shape, dtype=dtype or x.dtype, requires_grad=requires_grad)


def ones_like(x: Tensor, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones with the shape (and dtype, unless given) of ``x``.

    >>> import kiln
    >>> kiln.ones_like(kiln.zeros(2), dtype=kiln.float64).tolist()
    [1.0, 1.0]
    """
    return ones(*x.shape, dtype=dtype or x.dtype, requires_grad=requires_grad)


def full_like(x: Tensor, fill_value: Any, *, dtype: Any = None,
              requires_grad: bool = False) -> Tensor:
    """``fill_value`` with the shape (and dtype, unless given) of ``x``.

    >>> import kiln
    >>> kiln.full_like(kiln.zeros(2), 3).tolist()
    [3.0, 3.0]
    """
    return full(tuple(x.shape), fill_value, dtype=dtype or x.dtype, requires_grad=requires_grad)


def empty_like(x: Tensor, *, dtype: Any = None) -> Tensor:
    """An uninitialized (in Kiln: zero) tensor like ``x``.

    >>> import kiln
    >>> kiln.empty_like(kiln.ones(3)).shape
    (3,)
    """
    return zeros_like(x, dtype=dtype)


def arange(start: Any, end: Any = None, step: Any = 1, *, dtype: Any = None,
           requires_grad: bool = False) -> Tensor:
    """Values from ``start`` to ``end`` (exclusive) by ``step``; one argument means [0, n).

    >>> import kiln
    >>> kiln.arange(4).tolist(), kiln.arange(1.0, 2.0, 0.25).tolist()
    ([0, 1, 2, 3], [1.0, 1.25, 1.5, 1.75])
    """
    if end is None:
        start, end = 0, start
    if dtype is None:
        floats = any(isinstance(v, float) for v in (start, end, step))
        dtype = dt.DEFAULT_FLOAT if floats else dt.DEFAULT_INT
    dtype = dt.get_dtype(dtype)
    if dtype.is_integer and any(isinstance(v, float) for v in (start, end, step)):
        return _finish(_integer_arange(start, end, step, dtype), requires_grad)
    t = ops.arange(start=start, stop=end, step=step, dtype=dtype)
    return _finish(t, requires_grad)


def _integer_arange(start: float, end: float, step: float, dtype: dt.DType) -> Tensor:
    """torch's integer arange from float arguments: the values are ``int(start) + i *
    int(step)``; int64 also counts in int64 (the bounds truncate first:
    ``arange(0.0, -8.000001, -4.0)`` is [0, -4]), int32 counts with the float step."""
    istart, iend, istep = int(start), int(end), int(step)
    if step == 0 or (dtype == dt.int64 and istep == 0):
        raise ValueArgumentError(f"arange: step {step} is 0 as an int64 (torch counts int64 "
                                 "ranges in integers and refuses it too); pass a nonzero "
                                 "integer step or a float dtype")
    if dtype == dt.int64:
        sign = (istep > 0) - (istep < 0)
        n = (iend - istart + istep - sign) // istep
    else:
        n = math.ceil((end - start) / step)
    if n < 0:
        raise ValueArgumentError(f"arange: step {step} goes away from end {end} (start "
                                 f"{start})")
    idx = ops.arange(start=0, stop=n, step=1, dtype=dt.int64)
    return (idx * istep + istart).to(dtype)


def linspace(start: float, end: float, steps: int, *, dtype: Any = None,
             requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive.

    >>> import kiln
    >>> kiln.linspace(0, 1, 5).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if steps < 0:
        raise ValueArgumentError(f"linspace: steps must be non-negative, got {steps}")
    d = dt.get_dtype(dtype) if dtype is not None else dt.DEFAULT_FLOAT
    if not d.is_floating:  # torch converts the bounds to the dtype first (truncating)
        start, end = int(start), int(end)
    if steps == 1:
        return full((1,), float(start), dtype=d, requires_grad=requires_grad)
    idx = ops.arange(start=0, stop=steps, step=1, dtype=dt.float64)
    step = (end - start) / (steps - 1) if steps > 1 else 0.0
    # torch's kernel: the first half counts up from start, the second down from end, so
    # the last value is exactly end (integer dtypes then truncate each value).
    up = idx * step + float(start)
    down = float(end) - (float(steps - 1) - idx) * step
    return _finish(ops.where(idx < steps // 2, up, down).to(d), requires_grad)


def eye(n: int, m: int | None = None, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """An ``n`` x ``m`` (default square) matrix with ones on the diagonal.

    >>> import kiln
    >>> kiln.eye(2, 3).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    d = dt.get_dtype(dtype) if dtype is not None else dt.DEFAULT_FLOAT
    return _finish(ops.eye(n=n, m=n if m is None else m, dtype=d), requires_grad)


def rand(*size: Any, dtype: Any = None, requires_grad: bool = False,
         generator: Any = None) -> Tensor:
    """Uniform samples in [0, 1) from Kiln's generator (see ``kiln.manual_seed``).

    >>> import kiln
    >>> kiln.manual_seed(0); a = kiln.rand(3)
    >>> kiln.manual_seed(0); bool((kiln.rand(3) == a).all()), a.shape
    (True, (3,))
    """
    d = dt.get_dtype(dtype) if dtype is not None else dt.DEFAULT_FLOAT
    with using(generator, "rand"):
        return _finish(ops.rand(shape=_shape(size, "rand"), dtype=d), requires_grad)


def randn(*size: Any, dtype: Any = None, requires_grad: bool = False,
          generator: Any = None) -> Tensor:
    """Standard normal samples from Kiln's generator.

    >>> import kiln
    >>> x = kiln.randn(2, 3, dtype=kiln.float64)
    >>> x.shape, x.dtype
    ((2, 3), kiln.float64)
    """
    d = dt.get_dtype(dtype) if dtype is not None else dt.DEFAULT_FLOAT
    with using(generator, "randn"):
        return _finish(ops.randn(shape=_shape(size, "randn"), dtype=d), requires_grad)


def randint(low: int, high: int | None = None, size: Any = (), *, dtype: Any = None,
            generator: Any = None) -> Tensor:
    """Integers in [low, high) (``randint(high, size)`` also works, as in PyTorch).

    >>> import kiln
    >>> t = kiln.randint(0, 3, (100,))
    >>> t.dtype, 0 <= t.min().item() and t.max().item() < 3
    (kiln.int64, True)
    """
    if high is None or isinstance(high, (tuple, list)):
        if isinstance(high, (tuple, list)):
            size = high
        low, high = 0, low
    if high <= low:
        raise ValueArgumentError(f"randint: expected low < high, got low={low}, high={high}")
    d = dt.get_dtype(dtype) if dtype is not None else dt.DEFAULT_INT
    with using(generator, "randint"):
        return ops.randint(shape=_shape((tuple(size),), "randint"), dtype=d, low=int(low),
                           high=int(high))


def randperm(n: int, *, generator: Any = None, dtype: Any = None,
             requires_grad: bool = False, device: Any = None) -> Tensor:
    """A random permutation of ``0 .. n-1`` (int64 unless ``dtype`` says otherwise).

    >>> import kiln
    >>> sorted(kiln.randperm(5, generator=kiln.Generator().manual_seed(1)).tolist())
    [0, 1, 2, 3, 4]
    """
    from kiln.core.devices import check_device

    check_device("randperm", device)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueArgumentError(f"randperm: n must be a non-negative int, got {n!r}")
    d = dt.get_dtype(dtype) if dtype is not None else dt.DEFAULT_INT
    with using(generator, "randperm"):
        return _finish(ops.randperm(n=n, dtype=d), requires_grad)


def rand_like(x: Tensor, *, dtype: Any = None) -> Tensor:
    """:func:`rand` with the shape (and dtype, unless given) of ``x``.

    >>> import kiln
    >>> kiln.rand_like(kiln.zeros(2, dtype=kiln.float64)).dtype
    kiln.float64
    """
    return rand(*x.shape, dtype=dtype or x.dtype)


def randn_like(x: Tensor, *, dtype: Any = None) -> Tensor:
    """:func:`randn` with the shape (and dtype, unless given) of ``x``.

    >>> import kiln
    >>> kiln.randn_like(kiln.zeros(2, 2)).shape
    (2, 2)
    """
    return randn(*x.shape, dtype=dtype or x.dtype)


_ = math


def _accept_device() -> None:
    # torch's creation functions take device= (and layout=, pin_memory=): "cpu" is accepted,
    # any other device refused with a DeviceError (kiln.core.devices).
    from kiln.core.devices import accepts_device

    for name in ("tensor", "as_tensor", "full", "zeros", "ones", "empty", "zeros_like",
                 "ones_like", "full_like", "empty_like", "arange", "linspace", "eye", "rand",
                 "randn", "randint", "rand_like", "randn_like"):
        globals()[name] = accepts_device(globals()[name])


_accept_device()
