"""The building blocks of the op table (``tests/opinfo.py``): OpInfo, Sample, ErrorCase and the
helpers that turn a sample into Kiln tensors, NumPy arrays or torch tensors.

Contract shared by every entry: ``info.op``, ``info.ref`` and ``info.torch_ref`` all take the
sample's ``args`` (converted to Kiln tensors, NumPy arrays or torch tensors; Python scalars,
lists of tensors and other values pass through) and the sample's ``kwargs`` unchanged. They
return one tensor or a (nested) tuple/list of tensors; :func:`flat_outputs` and
:func:`as_arrays` flatten those. Random entries are called after ``kiln.manual_seed(SEED)``
and their NumPy reference draws from ``np.random.default_rng(SEED)``: Kiln's generator, so
the reference is exact and gradient checks can re-run the op.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import kiln
from kiln.errors import KilnError

SEED = 1234

FLOAT_DTYPES = ("float32", "float64")
INT_DTYPES = ("int64", "int32")
ALL_DTYPES = FLOAT_DTYPES + INT_DTYPES + ("bool",)

# Skips for a sample at a kink, tie or zero (clamp at its bounds, max with ties): finite
# differences average the one-sided derivatives there, so PyTorch's gradient is the oracle
# (test_vjp_matches_torch runs these samples).
KINK = {"grad": "at a kink finite differences average the two sides; torch is the oracle",
        "grad2": "at a kink finite differences average the two sides; torch is the oracle"}

# (rtol, atol) of eager Kiln vs the NumPy reference, per dtype.
DEFAULT_TOL = {"float32": (1e-5, 1e-6), "float64": (1e-10, 1e-12)}
# (rtol, atol) of eager Kiln vs PyTorch: the 1e-5 in float32.
DEFAULT_TORCH_TOL = {"float32": (1e-5, 1e-6), "float64": (1e-9, 1e-11)}


def _torch() -> Any:
    import torch

    return torch


def _tf() -> Any:
    import torch.nn.functional as tf

    return tf


# --------------------------------------------------------------------------------------
# sample inputs


@dataclass
class Sample:
    """One call of an op: positional ``args`` (NumPy arrays, lists of arrays, Python values)
    and keyword ``kwargs`` (passed unchanged to the Kiln op and both references).

    ``grad_args`` overrides the entry's differentiable positions for this sample.
    """

    args: tuple
    kwargs: dict = field(default_factory=dict)
    desc: str = ""
    grad_args: tuple[int, ...] | None = None
    skips: dict = field(default_factory=dict)  # like OpInfo.skips, for this sample only

    def __post_init__(self) -> None:
        # Arrays travel in args only, so every layer knows which values are tensors.
        assert not any(isinstance(v, np.ndarray) for v in self.kwargs.values()), \
            "pass arrays positionally (wrap the op in a lambda), not in kwargs"

    def __repr__(self) -> str:
        return f"Sample({self.desc or describe_args(self.args, self.kwargs)})"

    def arrays(self) -> list[np.ndarray]:
        """Every array in ``args`` (also inside lists/tuples), in order."""
        out: list[np.ndarray] = []
        _map_arrays(self.args, out.append)
        return out

    def with_arrays(self, arrays: list[Any]) -> tuple:
        """``args`` with its arrays replaced, in order, by ``arrays`` (any objects)."""
        it = iter(arrays)
        out = _map_arrays(self.args, lambda _: next(it))
        assert next(it, None) is None, "more replacements than arrays"
        return out

    def numpy_args(self) -> tuple:
        """Fresh copies of the arrays (references may not alias the Kiln inputs)."""
        return tuple(_map_arrays(a, lambda x: x.copy()) for a in self.args)

    def kiln_args(self, requires_grad: Iterable[int] = ()) -> tuple:
        """The args as Kiln tensors sharing the arrays' memory (odd strides are kept);
        floating arrays at the positions in ``requires_grad`` get ``requires_grad=True``."""
        want = set(requires_grad)
        return tuple(to_kiln(a, i in want) for i, a in enumerate(self.args))

    def torch_args(self, requires_grad: Iterable[int] = ()) -> tuple:
        want = set(requires_grad)
        return tuple(to_torch(a, i in want) for i, a in enumerate(self.args))

    def astype(self, dtype: str) -> Sample:
        """The same sample with floating arrays cast to ``dtype`` (layout not kept)."""
        def cast(x: np.ndarray) -> np.ndarray:
            return x.astype(dtype) if x.dtype.kind == "f" else x

        return Sample(tuple(_map_arrays(a, cast) for a in self.args), dict(self.kwargs),
                      self.desc, self.grad_args, dict(self.skips))


def describe_args(args: tuple, kwargs: dict) -> str:
    def one(a: Any) -> str:
        if isinstance(a, np.ndarray):
            tag = "" if a.flags.c_contiguous or a.size <= 1 else "~"
            return f"{a.dtype.name}{list(a.shape)}{tag}"
        if isinstance(a, (list, tuple)):
            return "[" + ", ".join(one(x) for x in a) + "]"
        return repr(a)

    parts = [one(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return ", ".join(parts)


@dataclass
class ErrorCase:
    """A bad call: ``op(*args, **kwargs)`` must raise ``exc`` (a KilnError subclass) with a
    message matching ``match`` (which should name the op and the argument at fault).

    With ``ref_raises=True`` the NumPy reference also raises on these inputs, and the test
    checks both exceptions share a builtin family (ValueError, TypeError, IndexError...).
    """

    args: tuple
    kwargs: dict = field(default_factory=dict)
    exc: type = KilnError
    match: str = ""
    ref_raises: bool = False


@dataclass
class OpInfo:
    """One op of the table. See the module docstring for the call contract.

    ``samples(dtype, rng)`` yields :class:`Sample` s for a primary dtype (one of ``dtypes``).
    ``grad_args`` lists differentiable positions (None: every floating array argument);
    ``primitives`` names the registry ops an entry covers (the registry walk needs one entry
    per primitive). ``skips`` maps a check ("forward", "torch", "torch_grad", "trace", "grad",
    "grad2") to the reason it does not apply. ``torch_note`` documents a tolerance that differs from
    the issue's rtol 1e-5.
    """

    name: str
    op: Callable[..., Any]
    ref: Callable[..., Any] | None
    sample_fn: Callable[[str, np.random.Generator], Iterable[Sample]]
    torch_ref: Callable[..., Any] | str | None = None
    dtypes: tuple[str, ...] = FLOAT_DTYPES
    supports_grad: bool = True
    supports_grad2: bool = False
    supports_float64: bool = True
    grad_args: tuple[int, ...] | None = None
    primitives: tuple[str, ...] = ()
    random: bool = False
    tol: dict = field(default_factory=dict)
    torch_tol: dict = field(default_factory=dict)
    torch_note: str = ""
    grad_tol: tuple[float, float] = (1e-6, 1e-8)
    skips: dict = field(default_factory=dict)
    error_fn: Callable[[], Iterable[ErrorCase]] | None = None
    exact: bool = False  # compare with assert_array_equal (integer-valued results)

    # access --------------------------------------------------------------------------
    def samples(self, dtype: str = "float32") -> list[Sample]:
        """The samples for ``dtype``, deterministic (seeded by the entry name and dtype)."""
        seed = zlib.crc32(f"{self.name}/{dtype}".encode())
        return list(self.sample_fn(dtype, np.random.default_rng(seed)))

    def errors(self) -> list[ErrorCase]:
        return list(self.error_fn()) if self.error_fn is not None else []

    def bind(self, sample: Sample) -> Callable[..., Any]:
        """``f(*args)`` = the Kiln op with the sample's kwargs fixed (for kiln.trace/compile)."""
        kwargs = sample.kwargs

        def f(*args: Any) -> Any:
            if self.random:
                kiln.manual_seed(SEED)
            return self.op(*args, **kwargs)

        f.__name__ = self.name.replace(".", "_")
        return f

    def flat_bind(self, sample: Sample) -> Callable[..., Any]:
        """``f(*tensors)``: the op as a function of the sample's arrays only (as tensors, in
        :meth:`Sample.arrays` order); every other argument and kwarg is closed over. This is
        what kiln.trace/compile and backends see: all inputs are tensors."""
        bound = self.bind(sample)

        def f(*tensors: Any) -> Any:
            return bound(*sample.with_arrays(list(tensors)))

        f.__name__ = bound.__name__
        return f

    def skip_reason(self, check: str, sample: Sample | None = None) -> str | None:
        """Why ``check`` does not apply to this entry (or to ``sample``), else None."""
        if sample is not None and check in sample.skips:
            return sample.skips[check]
        return self.skips.get(check)

    def run(self, sample: Sample, args: tuple | None = None) -> Any:
        """The Kiln op on ``args`` (default: the sample's args as tensors)."""
        args = sample.kiln_args() if args is None else args
        return self.bind(sample)(*args)

    def run_ref(self, sample: Sample) -> list[np.ndarray]:
        if self.ref is None:
            raise ValueError(f"{self.name} has no NumPy reference")
        return as_arrays(self.ref(*sample.numpy_args(), **sample.kwargs))

    def run_torch(self, sample: Sample, args: tuple | None = None) -> Any:
        fn = self.torch_ref
        if isinstance(fn, str):
            fn = _resolve(fn)
        if fn is None:
            raise ValueError(f"{self.name} has no torch reference")
        if self.random:
            _torch().manual_seed(SEED)
        return fn(*(sample.torch_args() if args is None else args), **sample.kwargs)

    def diff_positions(self, sample: Sample) -> tuple[int, ...]:
        """Positions of differentiable arguments in ``sample`` (floating arrays only)."""
        want = sample.grad_args if sample.grad_args is not None else self.grad_args
        out = []
        for i, a in enumerate(sample.args):
            if want is not None and i not in want:
                continue
            if _has_float_array(a):
                out.append(i)
        return tuple(out)

    def tolerance(self, dtype: str) -> tuple[float, float]:
        return self.tol.get(dtype, DEFAULT_TOL.get(dtype, DEFAULT_TOL["float32"]))

    def torch_tolerance(self, dtype: str) -> tuple[float, float]:
        return self.torch_tol.get(dtype, DEFAULT_TORCH_TOL.get(dtype, DEFAULT_TORCH_TOL[
            "float32"]))

    def __repr__(self) -> str:
        return f"OpInfo({self.name})"


def _resolve(dotted: str) -> Any:
    import importlib

    mod, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(mod), attr)


# --------------------------------------------------------------------------------------
# conversions


def _map_arrays(value: Any, fn: Callable[[np.ndarray], Any]) -> Any:
    if isinstance(value, np.ndarray):
        return fn(value)
    if isinstance(value, list):
        return [_map_arrays(v, fn) for v in value]
    if isinstance(value, tuple):
        return tuple(_map_arrays(v, fn) for v in value)
    return value


def _has_float_array(value: Any) -> bool:
    found = []
    _map_arrays(value, lambda x: found.append(x.dtype.kind == "f"))
    return any(found)


def to_kiln(value: Any, requires_grad: bool = False) -> Any:
    """NumPy arrays (also inside lists/tuples) -> Kiln tensors sharing memory."""
    def conv(x: np.ndarray) -> kiln.Tensor:
        t = kiln.from_numpy(x)
        if requires_grad and x.dtype.kind == "f":
            t.requires_grad_(True)
        return t

    return _map_arrays(value, conv)


def to_torch(value: Any, requires_grad: bool = False) -> Any:
    torch = _torch()

    def conv(x: np.ndarray) -> Any:
        t = torch.from_numpy(np.array(x, copy=True))
        if requires_grad and x.dtype.kind == "f":
            t.requires_grad_(True)
        return t

    return _map_arrays(value, conv)


def flat_outputs(out: Any) -> list[Any]:
    """Outputs as a flat list (tensors of any library, arrays, numbers)."""
    if isinstance(out, (tuple, list)):
        return [o for item in out for o in flat_outputs(item)]
    return [out]


def as_arrays(out: Any) -> list[np.ndarray]:
    """Flat outputs as NumPy arrays (Kiln, torch, NumPy or Python values)."""
    arrays = []
    for o in flat_outputs(out):
        if isinstance(o, kiln.Tensor):
            arrays.append(np.asarray(o.detach()._concrete("as_arrays")))
        elif hasattr(o, "detach") and hasattr(o, "numpy"):
            arrays.append(o.detach().numpy())
        else:
            arrays.append(np.asarray(o))
    return arrays


def assert_close(actual: list[np.ndarray], expected: list[np.ndarray], rtol: float,
                 atol: float, what: str, check_dtype: bool = False) -> None:
    """Same count, shapes and values (exact for bool/int results, NaN equal to NaN)."""
    assert len(actual) == len(expected), f"{what}: {len(actual)} outputs, expected " \
        f"{len(expected)}"
    for i, (a, e) in enumerate(zip(actual, expected)):
        a, e = np.asarray(a), np.asarray(e)
        assert a.shape == e.shape, f"{what}: output {i} has shape {a.shape}, expected {e.shape}"
        if check_dtype:
            assert a.dtype == e.dtype, f"{what}: output {i} has dtype {a.dtype}, expected " \
                f"{e.dtype}"
        if a.dtype.kind in "biu" and e.dtype.kind in "biu":
            np.testing.assert_array_equal(a, e, err_msg=f"{what}: output {i}")
        else:
            np.testing.assert_allclose(a.astype(np.float64), e.astype(np.float64), rtol=rtol,
                                       atol=atol, equal_nan=True,
                                       err_msg=f"{what}: output {i}")


# --------------------------------------------------------------------------------------
# making arrays


def _values(rng: np.random.Generator, shape: tuple, domain: Any) -> np.ndarray:
    n = int(np.prod(shape)) if shape else 1
    if callable(domain):
        return np.asarray(domain(rng, shape), dtype=np.float64).reshape(shape)
    if domain == "real":
        v = rng.uniform(-2.0, 2.0, n)
    elif domain == "positive":
        v = rng.uniform(0.5, 2.0, n)
    elif domain == "prob":
        v = rng.uniform(0.05, 0.95, n)
    elif domain == "nonzero":  # away from a kink at 0
        v = rng.uniform(0.2, 2.0, n) * rng.choice([-1.0, 1.0], n)
    elif domain == "distinct":  # no ties: spaced values in random order
        v = (rng.permutation(n) - n / 2) * 0.25 + rng.uniform(-0.05, 0.05, n)
    elif domain == "nonint":  # away from integers and halves (floor, ceil, round)
        v = rng.integers(-3, 3, n) + rng.choice([0.2, 0.3, 0.7, 0.8], n)
    elif domain == "small":
        v = rng.uniform(-0.9, 0.9, n)
    else:
        raise ValueError(f"unknown domain {domain!r}")
    return v.reshape(shape)


def make(rng: np.random.Generator, shape: tuple, dtype: str = "float32", domain: Any = "real",
         layout: str = "contig") -> np.ndarray:
    """An array of ``shape`` and ``dtype`` with values from ``domain``.

    ``layout``: "contig"; "T" (a transposed view: reversed strides); "strided" (every other
    element of a larger array along the last dim); "permuted" (a random permutation of the
    dims of a contiguous array, permuted back).
    """
    shape = tuple(shape)
    if dtype == "bool":
        base = rng.random(shape) < 0.5
    elif dtype in INT_DTYPES:
        lo, hi = (1, 5) if domain == "positive" else (-4, 5)
        base = rng.integers(lo, hi, shape).astype(dtype)
    else:
        base = _values(rng, shape, domain).astype(dtype)
    if layout == "contig" or not shape or (len(shape) < 2 and layout in ("T", "permuted")):
        return np.array(base, order="C", copy=True)  # (ascontiguousarray makes 0-d 1-d)
    if layout == "T":
        out = np.ascontiguousarray(base.T).T
    elif layout == "strided":
        big = np.zeros(shape[:-1] + (shape[-1] * 2,), dtype=base.dtype)
        view = big[..., ::2]
        view[...] = base
        out = view
    elif layout == "permuted":
        perm = rng.permutation(len(shape))
        out = np.ascontiguousarray(base.transpose(perm)).transpose(np.argsort(perm))
    else:
        raise ValueError(f"unknown layout {layout!r}")
    assert out.shape == shape
    return out


def is_float(dtype: str) -> bool:
    return dtype in FLOAT_DTYPES


def fl(x: np.ndarray) -> np.ndarray:
    """What Kiln's floating ops see: non-float arrays become float32."""
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float32)


def errmsg(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
