"""The op registry: one :class:`OpDef` per primitive, read by everything else.

An OpDef holds, in one place, what every layer of Kiln needs to know about an op:

- ``meta``: output :class:`TensorMeta` from input metas and attributes (symbolic dims allowed);
- ``eager``: the NumPy kernel, the reference every backend is tested against;
- ``vjp``: the backward rule, written with Kiln ops so that eager autograd, double backward
  and AOT autograd (on tracer tensors) all run the very same rule;
- ``kind`` and ``c_expr``: traits and lowering data for passes and backends.

Passes ask traits (``op.is_pointwise``), never hand-kept lists of names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kiln.core.dtypes import DType
from kiln.errors import GraphError
from kiln.symbolic.sizes import Size

KINDS = (
    "pointwise",  # elementwise with broadcasting; c_expr gives the C expression
    "reduction",  # reduces dims (sum, max, argmax, prod)
    "movement",  # reshape, permute, expand, slice, pad, cat, flip: pure index arithmetic
    "matmul",
    "conv",  # conv2d and its two backward kernels
    "pool",  # pooling forward and backward kernels
    "gather",  # gather and scatter_add along a dim
    "creation",  # full, arange, eye: no tensor input
    "random",  # rand, randn, randint, bernoulli: draw from Kiln's generator
    "linalg",  # inv, det, solves, cholesky, qr, svd, eigh: NumPy's LAPACK (no C kernel yet)
)


@dataclass(frozen=True)
class TensorMeta:
    """Shape and dtype of a value: all a tracer tensor carries, and all a node records."""

    shape: tuple[Size, ...]
    dtype: DType

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        dims = ", ".join(str(d) for d in self.shape)
        short = {"float32": "f32", "float64": "f64", "int64": "i64", "int32": "i32",
                 "bool": "b8"}[self.dtype.name]
        return f"{short}[{dims}]"


@dataclass(frozen=True)
class OpDef:
    """One primitive op. See the module docstring for the meaning of each field."""

    name: str
    meta: Callable[..., TensorMeta]
    eager: Callable[..., Any]
    vjp: Callable[..., tuple] | None
    kind: str
    doc: str
    c_expr: str | None = None
    differentiable: bool = True
    # Names of the attributes the op takes, in order; attrs are keyword-only everywhere.
    attrs: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise GraphError(f"op {self.name}: kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def is_pointwise(self) -> bool:
        return self.kind == "pointwise"

    @property
    def is_reduction(self) -> bool:
        return self.kind == "reduction"

    @property
    def is_movement(self) -> bool:
        return self.kind == "movement"

    @property
    def is_random(self) -> bool:
        return self.kind == "random"

    @property
    def has_tensor_inputs(self) -> bool:
        return self.kind not in ("creation", "random") or self.name == "bernoulli"

    def __repr__(self) -> str:
        return f"<op {self.name} ({self.kind})>"


REGISTRY: dict[str, OpDef] = {}


# Kinds whose kernels do floating-point arithmetic (and could make NumPy warn).
_ARITHMETIC_KINDS = ("pointwise", "reduction", "matmul", "conv", "pool")


def _quiet(kernel: Callable[..., Any]) -> Callable[..., Any]:
    """The kernel with NumPy's floating-point warnings off: like torch, log(0) is -inf and
    inf - inf is nan without a RuntimeWarning (which `filterwarnings = error` would raise).
    (errstate as a decorator: about half the per-call cost of a ``with`` block.)"""
    import numpy as np

    return np.errstate(all="ignore")(kernel)


def register(op: OpDef) -> OpDef:
    if op.name in REGISTRY:
        raise GraphError(f"op {op.name} registered twice")
    if op.kind in _ARITHMETIC_KINDS:
        import dataclasses

        op = dataclasses.replace(op, eager=_quiet(op.eager))
    REGISTRY[op.name] = op
    return op


def get_op(name: str) -> OpDef:
    """Look an op up by name; an unknown name is a :class:`GraphError` listing close names."""
    try:
        return REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, REGISTRY, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise GraphError(f"unknown op {name!r}{hint}") from None
