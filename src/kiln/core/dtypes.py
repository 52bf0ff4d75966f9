"""Kiln dtypes and PyTorch-style type promotion.

A :class:`DType` wraps a NumPy dtype with the facts Kiln's ops and backends need (category,
C type name). Promotion follows PyTorch: categories rank bool < integer < floating; within a
category the wider type wins; Python scalars and 0-d tensors are "weak" and only change the
result's category, never its width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kiln.errors import DTypeError


@dataclass(frozen=True)
class DType:
    """A Kiln dtype.

    >>> import kiln
    >>> kiln.float32.itemsize, kiln.float32.is_floating
    (4, True)
    """

    name: str
    np_dtype: np.dtype
    category: int  # 0 bool, 1 integer, 2 floating
    c_type: str

    @property
    def itemsize(self) -> int:
        return self.np_dtype.itemsize

    @property
    def is_floating(self) -> bool:
        return self.category == 2

    @property
    def is_integer(self) -> bool:
        return self.category == 1

    @property
    def is_bool(self) -> bool:
        return self.category == 0

    def __repr__(self) -> str:
        return f"kiln.{self.name}"

    def __str__(self) -> str:
        return self.name


bool_ = DType("bool", np.dtype(np.bool_), 0, "bool")
int32 = DType("int32", np.dtype(np.int32), 1, "int32_t")
int64 = DType("int64", np.dtype(np.int64), 1, "int64_t")
float32 = DType("float32", np.dtype(np.float32), 2, "float")
float64 = DType("float64", np.dtype(np.float64), 2, "double")

ALL_DTYPES: tuple[DType, ...] = (bool_, int32, int64, float32, float64)
_BY_NAME = {d.name: d for d in ALL_DTYPES}
_BY_NAME.update({"bool_": bool_, "float": float32, "double": float64, "long": int64, "int": int32})
_BY_NP = {d.np_dtype: d for d in ALL_DTYPES}

# The defaults a user coming from PyTorch expects: float tensors are float32, ints int64.
DEFAULT_FLOAT = float32
DEFAULT_INT = int64


def get_dtype(value: object, *, arg: str = "dtype") -> DType:
    """Turn a dtype-like value (DType, name, NumPy dtype or Python type) into a DType.

    >>> get_dtype("float64")
    kiln.float64
    """
    if isinstance(value, DType):
        return value
    if isinstance(value, str):
        if value in _BY_NAME:
            return _BY_NAME[value]
        raise DTypeError(f"{arg}: expected one of {sorted(_BY_NAME)}, got {value!r}")
    if value is float:
        return DEFAULT_FLOAT
    if value is int:
        return DEFAULT_INT
    if value is bool:
        return bool_
    try:
        npd = np.dtype(value)  # type: ignore[call-overload]
    except TypeError:
        raise DTypeError(f"{arg}: expected a kiln dtype, got {value!r}") from None
    if npd in _BY_NP:
        return _BY_NP[npd]
    raise DTypeError(
        f"{arg}: NumPy dtype {npd} is not supported; expected one of "
        f"{[d.name for d in ALL_DTYPES]}"
    )


def from_numpy_dtype(npd: np.dtype) -> DType:
    """The Kiln dtype of a NumPy dtype (float16 and friends are refused with a clear error)."""
    try:
        return _BY_NP[npd]
    except KeyError:
        raise DTypeError(
            f"NumPy dtype {npd} is not supported; expected one of "
            f"{[d.name for d in ALL_DTYPES]}"
        ) from None


def promote_types(a: DType, b: DType) -> DType:
    """The smallest dtype both ``a`` and ``b`` convert to without losing their category.

    >>> promote_types(int32, float32)
    kiln.float32
    """
    if a is b:
        return a
    if a.category != b.category:
        return a if a.category > b.category else b
    return a if a.itemsize >= b.itemsize else b


def scalar_dtype(value: object) -> DType:
    """The default dtype of a Python scalar (bool, int, float)."""
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return DEFAULT_INT
    if isinstance(value, (float, np.floating)):
        return DEFAULT_FLOAT
    raise DTypeError(f"expected a Python number, got {type(value).__name__}")


def result_type(dims: list[DType], zero_dims: list[DType], scalars: list[DType]) -> DType:
    """PyTorch's promotion over three priority classes.

    ``dims`` are dtypes of tensors with ndim > 0, ``zero_dims`` of 0-d tensors, ``scalars``
    the default dtypes of Python scalars. A weaker class only matters when its category is
    higher than every stronger class's.
    """
    def fold(ds: list[DType]) -> DType | None:
        out = None
        for d in ds:
            out = d if out is None else promote_types(out, d)
        return out

    d, z, s = fold(dims), fold(zero_dims), fold(scalars)
    best = d
    for weak in (z, s):
        if weak is None:
            continue
        if best is None:
            best = weak
        elif weak.category > best.category:
            best = weak if weak is z else _default_for(weak.category)
    if best is None:
        raise DTypeError("result_type needs at least one operand")
    return best


def _default_for(category: int) -> DType:
    return (bool_, DEFAULT_INT, DEFAULT_FLOAT)[category]


def to_float(d: DType) -> DType:
    """The dtype a floating op (exp, sqrt, mean...) returns for an input of dtype ``d``."""
    return d if d.is_floating else DEFAULT_FLOAT
