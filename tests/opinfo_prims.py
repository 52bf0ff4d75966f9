"""Op table entries for the registry's pointwise, reduction, movement, matmul, creation and
random primitives (called through ``kiln.ops``); kernel primitives are in opinfo_kernels.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import opinfo_refs as R
from opinfo_base import (
    ALL_DTYPES,
    FLOAT_DTYPES,
    INT_DTYPES,
    SEED,
    ErrorCase,
    OpInfo,
    Sample,
    _torch,
    fl,
    is_float,
    make,
)

import kiln
from kiln import ops
from kiln.errors import ArgumentError, DTypeError, ShapeError, ValueArgumentError

ENTRIES: list[OpInfo] = []


def add(info: OpInfo) -> OpInfo:
    ENTRIES.append(info)
    return info


def _quiet(fn: Callable) -> Callable:
    def ref(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return ref


def _tdtype(name: str) -> Any:
    return getattr(_torch(), "bool" if name == "bool" else name)


# --------------------------------------------------------------------------------------
# unary pointwise

UNARY_SHAPES = [((), "contig"), ((0,), "contig"), ((1,), "contig"), ((5,), "contig"),
                ((3, 4), "T"), ((2, 3, 4), "strided"), ((2, 1, 3), "permuted")]


def unary_samples(domain: Any) -> Callable[[str, np.random.Generator], Iterator[Sample]]:
    def gen(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
        for shape, layout in UNARY_SHAPES:
            if not is_float(dtype) and layout == "permuted":
                continue
            yield Sample((make(rng, shape, dtype, domain, layout),))

    return gen


def unary(name: str, ref: Callable, domain: Any = "real", dtypes: tuple = FLOAT_DTYPES,
          grad: bool = True, torch_name: str | None = None, **kw: Any) -> OpInfo:
    torch_fn = torch_name or f"torch.{name}"
    return add(OpInfo(
        name=name, op=getattr(ops, name), ref=_quiet(ref), sample_fn=unary_samples(domain),
        torch_ref=torch_fn, dtypes=dtypes, supports_grad=grad, supports_grad2=grad,
        primitives=(name,), **kw))


def _not_a_tensor(name: str) -> Callable[[], list[ErrorCase]]:
    return lambda: [ErrorCase(("x",), exc=ArgumentError, match=f"{name}: argument 0",
                              ref_raises=False)]


NUMERIC = FLOAT_DTYPES + INT_DTYPES
FLOATISH = FLOAT_DTYPES + ("int64",)  # ints are computed in float32, as in torch

unary("neg", np.negative, dtypes=NUMERIC,
      error_fn=lambda: [ErrorCase((np.array([True]),), exc=DTypeError, match="neg: input must "
                                  "be numeric, got bool")])
unary("abs", np.abs, "nonzero", dtypes=NUMERIC)
unary("exp", lambda x: np.exp(fl(x)), dtypes=FLOATISH + ("bool",),
      error_fn=lambda: [ErrorCase((2.0,), exc=ArgumentError, match="exp: input must be a "
                                  "tensor, got float")])
unary("log", lambda x: np.log(fl(x)), "positive", dtypes=FLOATISH)
unary("log1p", lambda x: np.log1p(fl(x)), "positive", dtypes=FLOATISH)
unary("expm1", lambda x: np.expm1(fl(x)), dtypes=FLOATISH)
unary("sqrt", lambda x: np.sqrt(fl(x)), "positive", dtypes=FLOATISH)
unary("rsqrt", lambda x: 1.0 / np.sqrt(fl(x)), "positive", dtypes=FLOATISH)
unary("sin", lambda x: np.sin(fl(x)), dtypes=FLOATISH)
unary("cos", lambda x: np.cos(fl(x)), dtypes=FLOATISH)
unary("tanh", lambda x: np.tanh(fl(x)), dtypes=FLOATISH)
unary("sigmoid", lambda x: R.sigmoid(fl(x)), dtypes=FLOATISH + ("bool",))
unary("erf", lambda x: R.erf(fl(x)).astype(fl(x).dtype), dtypes=FLOATISH)
unary("relu", lambda x: np.maximum(x, 0).astype(x.dtype), "nonzero", dtypes=NUMERIC)
unary("floor", np.floor, "nonint", dtypes=NUMERIC)
unary("ceil", np.ceil, "nonint", dtypes=NUMERIC)
unary("round", np.round, "nonint", dtypes=NUMERIC)
unary("sign", np.sign, "nonzero", dtypes=NUMERIC)
unary("reciprocal", lambda x: 1.0 / fl(x), "nonzero", dtypes=FLOAT_DTYPES)
unary("logical_not", np.logical_not, dtypes=ALL_DTYPES, grad=False, exact=True)
unary("bitwise_not", np.invert, dtypes=INT_DTYPES + ("bool",), grad=False, exact=True,
      error_fn=lambda: [ErrorCase((np.ones(2, np.float32),), exc=DTypeError, ref_raises=True,
                                  match="bitwise_not: input must be an integer or bool tensor, "
                                        "got float32")])


# --------------------------------------------------------------------------------------
# binary pointwise

BINARY_SHAPES = [
    ((3, 4), "contig", (3, 4), "contig"),
    ((3, 1), "contig", (1, 4), "contig"),
    ((2, 3, 4), "permuted", (4,), "contig"),
    ((), "contig", (3,), "contig"),
    ((0, 3), "contig", (1, 3), "contig"),
    ((3, 4), "T", (3, 4), "strided"),
]


def binary_samples(da: Any = "real", db: Any = "real", scalar: Any = 1.5,
                   int_scalar: Any = 3) -> Callable:
    def gen(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
        for sa, la, sb, lb in BINARY_SHAPES:
            yield Sample((make(rng, sa, dtype, da, la), make(rng, sb, dtype, db, lb)))
        s = scalar if is_float(dtype) else int_scalar
        if s is not None:
            yield Sample((make(rng, (2, 3), dtype, da), s), desc=f"tensor, scalar {s!r}")
            yield Sample((s, make(rng, (4,), dtype, db)), desc=f"scalar {s!r}, tensor")

    return gen


def binary(name: str, ref: Callable, dtypes: tuple = NUMERIC, grad: bool = True,
           samples: Callable | None = None, **kw: Any) -> OpInfo:
    def torch_ref(a: Any, b: Any) -> Any:
        torch = _torch()
        fn = getattr(torch, name)
        # torch's functions want tensors (a Python number becomes a 0-d tensor: weak dtype).
        if not isinstance(a, torch.Tensor):
            a = torch.tensor(a)
        if not isinstance(b, torch.Tensor) and name not in ("add", "sub", "mul", "div", "pow",
                                                             "eq", "ne", "lt", "le", "gt", "ge"):
            b = torch.tensor(b)
        return fn(a, b)

    return add(OpInfo(
        name=name, op=getattr(ops, name), ref=_quiet(ref),
        sample_fn=samples or binary_samples(), torch_ref=torch_ref, dtypes=dtypes,
        supports_grad=grad, supports_grad2=grad, primitives=(name,), **kw))


def _bcast_error(name: str) -> Callable[[], list[ErrorCase]]:
    return lambda: [ErrorCase((np.ones(3, np.float32), np.ones(4, np.float32)), exc=ShapeError,
                              match=f"{name}: shapes .* do not broadcast", ref_raises=True)]


def _grid(offset: float) -> Callable:
    # Values on a grid shifted by `offset`: two grids never tie (maximum/minimum kinks).
    return lambda rng, shape: rng.integers(-4, 4, shape) + offset


binary("add", np.add, dtypes=ALL_DTYPES, error_fn=_bcast_error("add"))
binary("sub", np.subtract, error_fn=lambda: [
    ErrorCase((np.array([True]), np.array([False])), exc=DTypeError,
              match="sub: operands must be numeric, got bool", ref_raises=True),
    *_bcast_error("sub")()])
binary("mul", np.multiply, dtypes=ALL_DTYPES)
binary("div", lambda a, b: np.true_divide(fl(a) if isinstance(a, np.ndarray) else a,
                                          fl(b) if isinstance(b, np.ndarray) else b),
       samples=binary_samples("real", "nonzero", scalar=-1.5, int_scalar=2),
       dtypes=FLOAT_DTYPES + ("int64",))
def _pow_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    if is_float(dtype):
        yield from binary_samples("positive", lambda rng, s: rng.uniform(-1.5, 2.5, s), 2.5,
                                  2)(dtype, rng)
        # x ** 0 at x == 0: the gradient is 0 (torch), not 0 * 0^-1 = nan.
        base = np.array([0.0, 1.5, -2.0, 0.0], dtype)
        yield Sample((base, 0.0), desc="x ** 0.0 with zeros")
        yield Sample((base, np.array([0.0, 0.0, 2.0, 3.0], dtype)), grad_args=(0,),
                     desc="zero base, zero exponents")
        return
    for sa, sb in (((3, 4), (3, 4)), ((3, 1), (4,)), ((), (2,))):
        yield Sample((make(rng, sa, dtype), rng.integers(0, 4, sb).astype(dtype)))
    yield Sample((make(rng, (2, 3), dtype), 3))


binary("pow", np.power, samples=_pow_samples,
       torch_note="float32 pow differs from torch by ~2 ulp (rtol 5e-6 covers it)",
       error_fn=lambda: [ErrorCase((np.array([2], np.int64), np.array([-1], np.int64)),
                                   exc=ArgumentError, match="pow: integers to negative",
                                   ref_raises=True)])
def _floordiv_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    def divisor(shape: tuple, layout: str) -> Any:
        if dtype == "bool":
            return np.ones(shape, bool)
        d = make(rng, shape, dtype, "positive", layout)  # 1..4, then random signs
        return d * rng.choice(np.array([-1, 1], dtype), shape) if d.size else d

    no_torch = {"torch": "torch.floor_divide refuses bool"} if dtype == "bool" else {}
    for sa, la, sb, lb in BINARY_SHAPES:
        yield Sample((make(rng, sa, dtype, "real", la), divisor(sb, lb)), skips=no_torch)
    if dtype != "bool":
        info = np.iinfo(dtype)
        yield Sample((np.array([info.min, info.max, -7, 7], dtype),
                      np.array([-1, -1, 2, -2], dtype)), desc="INT_MIN // -1 wraps")
        yield Sample((make(rng, (2, 3), dtype), -3), desc="tensor, scalar -3")
        yield Sample((7, divisor((4,), "contig")), desc="scalar 7, tensor")


def _as_int(v: Any) -> Any:
    return v.astype(np.int64) if isinstance(v, np.ndarray) and v.dtype == bool else v


binary("floor_divide", lambda a, b: np.floor_divide(_as_int(a), _as_int(b)),
       dtypes=INT_DTYPES + ("bool",), grad=False, exact=True, samples=_floordiv_samples,
       error_fn=lambda: [
           ErrorCase((np.array([4, 5], np.int64), np.array([2, 0], np.int64)),
                     exc=ValueArgumentError, match="floor_divide: integer division by zero"),
           ErrorCase((np.array([4.0], np.float32), np.array([2.0], np.float32)),
                     exc=DTypeError, match="floor_divide: operands must be integers")])
binary("maximum", np.maximum, samples=binary_samples(_grid(0.25), _grid(0.75), 0.5, 2))
binary("minimum", np.minimum, samples=binary_samples(_grid(0.25), _grid(0.75), 0.5, 2))
_TIES = binary_samples(lambda rng, s: rng.integers(-2, 3, s), lambda rng, s: rng.integers(-2, 3, s),
                       1.0, 1)
for _cmp, _ref in (("eq", np.equal), ("ne", np.not_equal), ("lt", np.less),
                   ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal)):
    binary(_cmp, _ref, dtypes=NUMERIC + ("bool",), grad=False, samples=_TIES, exact=True)
binary("logical_and", np.logical_and, dtypes=ALL_DTYPES, grad=False, exact=True)
binary("logical_or", np.logical_or, dtypes=ALL_DTYPES, grad=False, exact=True)


def _bitwise_errors(name: str) -> Callable[[], list[ErrorCase]]:
    ints, floats = np.array([1, 2], np.int64), np.ones(2, np.float32)
    return lambda: [
        ErrorCase((floats, ints), exc=DTypeError, ref_raises=True,
                  match=f"{name}: input must be an integer or bool tensor or number, got "
                        "float32"),
        ErrorCase((ints, 1.5), exc=DTypeError, ref_raises=True,
                  match=f"{name}: other must be an integer or bool tensor or number, got "
                        "float")]


for _bit, _ref in (("bitwise_and", np.bitwise_and), ("bitwise_or", np.bitwise_or),
                   ("bitwise_xor", np.bitwise_xor)):
    binary(_bit, _ref, dtypes=INT_DTYPES + ("bool",), grad=False, exact=True,
           samples=binary_samples(scalar=True, int_scalar=6), error_fn=_bitwise_errors(_bit))


# --------------------------------------------------------------------------------------
# where and cast


def _where_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    cases = [((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), (3, 4)), ((4,), (3, 4), ()),
             ((0, 2), (1, 2), (0, 2)), ((2, 3), (2, 3), None), ((), (2,), None)]
    for sc, sa, sb in cases:
        cond = make(rng, sc, "bool")
        a = make(rng, sa, dtype, layout="T")
        b = make(rng, sb, dtype) if sb is not None else (-1.0 if is_float(dtype) else 7)
        yield Sample((cond, a, b))


add(OpInfo(
    name="where", op=ops.where, ref=np.where, sample_fn=_where_samples,
    torch_ref=lambda c, a, b: _torch().where(c, a, b), dtypes=NUMERIC + ("bool",),
    grad_args=(1, 2), supports_grad2=True, primitives=("where",),
    error_fn=lambda: [ErrorCase((np.ones(2, np.float32), np.ones(2, np.float32),
                                 np.ones(2, np.float32)), exc=DTypeError,
                                match="where: condition must be bool")]))


def _cast_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    if is_float(dtype):
        for to in ("float32", "float64", "int64", "int32", "bool"):
            skips = {"grad": "a float32 result rounds away the finite difference"} \
                if (dtype, to) == ("float64", "float32") else {}
            yield Sample((make(rng, (3, 4), dtype, "nonint", "T"),), {"dtype": to}, skips=skips)
        yield Sample((make(rng, (0, 2), dtype),), {"dtype": "float64"})
        yield Sample((make(rng, (1, 3), dtype, "nonint", "strided"),), {"dtype": "float64"})
    else:
        for to in ("float32", "int64", "bool"):
            yield Sample((make(rng, (2, 3), dtype),), {"dtype": to})
        yield Sample((make(rng, (1, 3), dtype, layout="strided"),), {"dtype": "int64"})


add(OpInfo(
    name="cast", op=lambda x, dtype: ops.cast(x, dtype=dtype),
    ref=lambda x, dtype: x.astype(dtype),
    torch_ref=lambda x, dtype: x.to(_tdtype(dtype)), sample_fn=_cast_samples,
    dtypes=ALL_DTYPES, supports_grad2=True, primitives=("cast",),
    error_fn=lambda: [ErrorCase((np.ones(2, np.float32),), {"dtype": "float16"},
                                exc=DTypeError, match="dtype")]))


# --------------------------------------------------------------------------------------
# reductions


def _reduce_samples(domain: Any, empty: bool = True) -> Callable:
    def gen(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample((make(rng, (3, 4), dtype, domain),), {"dims": None, "keepdim": False})
        yield Sample((make(rng, (3, 4), dtype, domain, "T"),), {"dims": (1,), "keepdim": True})
        yield Sample((make(rng, (2, 3, 4), dtype, domain, "strided"),),
                     {"dims": (0, 2), "keepdim": False})
        yield Sample((make(rng, (2, 3, 4), dtype, domain, "permuted"),),
                     {"dims": (-1,), "keepdim": True})
        yield Sample((make(rng, (), dtype, domain),), {"dims": None, "keepdim": False})
        yield Sample((make(rng, (1, 5), dtype, domain),), {"dims": (0,), "keepdim": False})
        if empty:
            yield Sample((make(rng, (0, 3), dtype, domain),), {"dims": (0,), "keepdim": False})
        else:
            yield Sample((make(rng, (0, 3), dtype, domain),), {"dims": (1,), "keepdim": True})

    return gen


def _np_reduce(fn: Callable, out_dtype: Callable | None = None) -> Callable:
    def ref(x: np.ndarray, dims: Any = None, keepdim: bool = False) -> np.ndarray:
        axis = None if dims is None else tuple(dims)
        kw = {"dtype": out_dtype(x)} if out_dtype else {}
        return np.asarray(fn(x, axis=axis, keepdims=keepdim, **kw))

    return ref


def _torch_reduce(name: str) -> Callable:
    def ref(x: Any, dims: Any = None, keepdim: bool = False) -> Any:
        torch = _torch()
        dims = tuple(range(x.ndim)) if dims is None else tuple(dims)
        if name == "sum":
            return torch.sum(x, dim=dims, keepdim=keepdim) if dims else x.sum()
        if name == "prod":  # torch.prod takes one dim at a time
            out = x
            for d in sorted((d % max(x.ndim, 1) for d in dims), reverse=True):
                out = torch.prod(out, dim=d, keepdim=keepdim)
            return out if dims or x.ndim else torch.prod(x)
        return getattr(torch, name)(x, dim=dims, keepdim=keepdim)

    return ref


def _sum_dtype(x: np.ndarray) -> Any:
    return np.int64 if x.dtype.kind in "biu" else x.dtype


add(OpInfo(
    name="sum", op=ops.sum, ref=_np_reduce(np.sum, _sum_dtype), torch_ref=_torch_reduce("sum"),
    sample_fn=_reduce_samples("real"), dtypes=ALL_DTYPES, supports_grad2=True,
    primitives=("sum",),
    error_fn=lambda: [ErrorCase((np.ones((2, 3), np.float32),), {"dims": (2,)}, exc=ShapeError,
                                match=r"sum: dim=2 is out of range", ref_raises=True),
                      ErrorCase((np.ones((2, 3), np.float32),), {"dims": (1, -1)},
                                exc=ArgumentError, match="sum: dims .* repeat")]))
add(OpInfo(
    name="prod", op=ops.prod, ref=_np_reduce(np.prod), torch_ref=_torch_reduce("prod"),
    sample_fn=_reduce_samples("nonzero"), dtypes=NUMERIC, supports_grad2=True,
    primitives=("prod",)))
for _name, _np_fn, _torch_name in (("max", np.max, "amax"), ("min", np.min, "amin")):
    add(OpInfo(
        name=_name, op=getattr(ops, _name), ref=_np_reduce(_np_fn),
        torch_ref=_torch_reduce(_torch_name), sample_fn=_reduce_samples("distinct", empty=False),
        dtypes=NUMERIC, supports_grad2=True, primitives=(_name,),
        error_fn=lambda n=_name: [ErrorCase((np.ones((0, 3), np.float32),), {"dims": (0,)},
                                            exc=ShapeError, match=f"{n}: cannot reduce the "
                                            "empty dim", ref_raises=True)]))


def _arg_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (3, 4), dtype, "distinct"),), {"dim": None, "keepdim": False})
    yield Sample((make(rng, (3, 4), dtype, "distinct", "T"),), {"dim": 1, "keepdim": True})
    yield Sample((make(rng, (2, 3, 4), dtype, "distinct", "strided"),),
                 {"dim": -2, "keepdim": False})
    yield Sample((make(rng, (), dtype, "distinct"),), {"dim": None, "keepdim": False})
    yield Sample((make(rng, (2, 5), dtype, "distinct"),), {"dim": None, "keepdim": True})
    yield Sample((make(rng, (0, 3), dtype),), {"dim": 1, "keepdim": False})
    yield Sample((make(rng, (4, 1), dtype, "distinct", "T"),), {"dim": 1, "keepdim": True})
    ties = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], dtype=dtype)  # the first one wins
    yield Sample((ties,), {"dim": 1, "keepdim": False}, desc="ties")


def _np_arg(fn: Callable) -> Callable:
    def ref(x: np.ndarray, dim: Any = None, keepdim: bool = False) -> np.ndarray:
        if dim is None:
            i = np.asarray(fn(x.reshape(-1)))
            return i.reshape((1,) * x.ndim) if keepdim else i
        return fn(x, axis=dim, keepdims=keepdim)

    return ref


for _name, _np_fn in (("argmax", np.argmax), ("argmin", np.argmin)):
    add(OpInfo(
        name=_name, op=getattr(ops, _name), ref=_np_arg(_np_fn),
        torch_ref=lambda x, dim=None, keepdim=False, n=_name: getattr(_torch(), n)(
            x, dim=dim, keepdim=keepdim),
        sample_fn=_arg_samples, dtypes=NUMERIC, supports_grad=False, primitives=(_name,),
        exact=True,
        error_fn=lambda n=_name: [ErrorCase((np.ones((2, 0), np.float32),), {"dim": 1},
                                            exc=ShapeError, match=f"{n}: cannot reduce the "
                                            "empty dim", ref_raises=True)]))


# --------------------------------------------------------------------------------------
# movement


def _reshape_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    for shape, layout, to in [((3, 4), "contig", (4, 3)), ((2, 3, 4), "T", (6, 4)),
                              ((), "contig", (1, 1)), ((0, 3), "contig", (3, 0)),
                              ((5,), "contig", (5, 1)), ((2, 6), "strided", (3, 2, 2)),
                              ((1, 1), "contig", ())]:
        yield Sample((make(rng, shape, dtype, layout=layout),), {"shape": to})


add(OpInfo(
    name="reshape", op=ops.reshape, ref=lambda x, shape: np.reshape(x, shape),
    torch_ref=lambda x, shape: x.reshape(shape), sample_fn=_reshape_samples,
    dtypes=ALL_DTYPES, supports_grad2=True, primitives=("reshape",),
    error_fn=lambda: [ErrorCase((np.ones((2, 3), np.float32),), {"shape": (4, 2)},
                                exc=ShapeError, match=r"reshape: cannot reshape \(2, 3\)",
                                ref_raises=True),
                      ErrorCase((np.ones((2, 3), np.float32),), {"shape": (-1, 3)},
                                exc=ShapeError, match=r"reshape: shape must be non-negative")]))


def _permute_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (2, 3, 4), dtype),), {"dims": (2, 0, 1)})
    yield Sample((make(rng, (3, 4), dtype, layout="T"),), {"dims": (1, 0)})
    yield Sample((make(rng, (2, 0, 3), dtype),), {"dims": (1, 2, 0)})
    yield Sample((make(rng, (), dtype),), {"dims": ()})
    yield Sample((make(rng, (1, 2, 1, 3), dtype, layout="strided"),), {"dims": (3, 1, 0, 2)})


add(OpInfo(
    name="permute", op=ops.permute, ref=lambda x, dims: np.transpose(x, dims),
    torch_ref=lambda x, dims: x.permute(dims), sample_fn=_permute_samples, dtypes=ALL_DTYPES,
    supports_grad2=True, primitives=("permute",),
    error_fn=lambda: [ErrorCase((np.ones((2, 3), np.float32),), {"dims": (0, 0)},
                                exc=ArgumentError, match="permute: dims must be a permutation",
                                ref_raises=True)]))


def _expand_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    for shape, to in [((3, 1), (2, 3, 4)), ((), (2, 3)), ((1,), (0,)), ((2, 1, 3), (2, 5, 3)),
                      ((1, 1), (1, 1)), ((0, 1), (2, 0, 3))]:
        yield Sample((make(rng, shape, dtype, layout="T"),), {"shape": to})


add(OpInfo(
    name="expand", op=ops.expand, ref=lambda x, shape: np.broadcast_to(x, shape),
    torch_ref=lambda x, shape: x.expand(shape), sample_fn=_expand_samples, dtypes=ALL_DTYPES,
    supports_grad2=True, primitives=("expand",),
    error_fn=lambda: [ErrorCase((np.ones((2, 3), np.float32),), {"shape": (4, 3)},
                                exc=ShapeError, match="expand: cannot expand dim 0",
                                ref_raises=True)]))


def _slice_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    for shape, layout, attrs in [
        ((5, 4), "contig", (0, 1, 4, 2)), ((3, 7), "T", (-1, 0, 7, 3)),
        ((2, 3, 4), "strided", (2, 1, 3, 1)), ((4,), "contig", (0, 2, 2, 1)),
        ((0, 3), "contig", (1, 1, 3, 1)), ((6,), "contig", (0, 5, 6, 4)),
        ((1, 4), "T", (0, 0, 1, 1)),
    ]:
        d, start, stop, step = attrs
        yield Sample((make(rng, shape, dtype, layout=layout),),
                     {"dim": d, "start": start, "stop": stop, "step": step})


def _np_slice(x: np.ndarray, dim: int, start: int, stop: int, step: int) -> np.ndarray:
    index = [slice(None)] * x.ndim
    index[dim] = slice(start, stop, step)
    return x[tuple(index)]


add(OpInfo(
    name="slice", op=ops.slice, ref=_np_slice, torch_ref=_np_slice, sample_fn=_slice_samples,
    dtypes=ALL_DTYPES, supports_grad2=True, primitives=("slice",),
    error_fn=lambda: [
        ErrorCase((np.ones((2, 3), np.float32),), {"dim": 1, "start": 0, "stop": 3, "step": 0},
                  exc=ArgumentError, match="slice: step must be a positive int"),
        ErrorCase((np.ones((2, 3), np.float32),), {"dim": 1, "start": 0, "stop": 4, "step": 1},
                  exc=ShapeError, match="slice: stop=4 outside 0..3")]))


def _pad_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    value = 0.5 if is_float(dtype) else (True if dtype == "bool" else 2)
    for shape, layout, pads in [
        ((3, 4), "T", ((1, 2, 0), (0, 1, 0))), ((5,), "contig", ((0, 0, 1),)),
        ((2, 3), "strided", ((1, 0, 2), (2, 2, 1))), ((0, 2), "contig", ((1, 1, 0), (0, 0, 3))),
        ((), "contig", ()), ((1, 3), "contig", ((0, 1, 0), (1, 0, 1))),
    ]:
        yield Sample((make(rng, shape, dtype, layout=layout),), {"pads": pads, "value": value})


def _np_pad(x: np.ndarray, pads: tuple, value: Any = 0.0) -> np.ndarray:
    # Not the kernel's slicing: each element is placed one by one at its interior-padded
    # position, then np.pad adds the edges.
    inner = np.full([n + (n - 1) * k if n else 0 for (_, _, k), n in zip(pads, x.shape)],
                    value, dtype=x.dtype)
    for p in np.ndindex(*x.shape):
        inner[tuple(i * (k + 1) for i, (_, _, k) in zip(p, pads))] = x[p]
    if not pads:
        return inner
    return np.pad(inner, [(lo, hi) for lo, hi, _ in pads], constant_values=value)


def _torch_pad(x: Any, pads: tuple, value: Any = 0.0) -> Any:
    # torch has no interior padding: build it from torch ops, so torch's autograd checks the
    # vjp independently.
    torch = _torch()
    shape, index = [], []
    for (lo, hi, interior), n in zip(pads, x.shape):
        inner = n + (n - 1) * interior if n else 0
        shape.append(lo + inner + hi)
        index.append(slice(lo, lo + inner, interior + 1))
    out = torch.full(shape, value, dtype=x.dtype)
    out[tuple(index)] = x
    return out


add(OpInfo(
    name="pad", op=ops.pad, ref=_np_pad, torch_ref=_torch_pad, sample_fn=_pad_samples,
    dtypes=ALL_DTYPES, supports_grad2=True, primitives=("pad",),
    error_fn=lambda: [ErrorCase((np.ones((2, 3), np.float32),), {"pads": ((0, 0, 0),)},
                                exc=ArgumentError, match="pad: pads must hold one")]))


def _cat_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (2, 3), dtype), make(rng, (4, 3), dtype, layout="T")), {"dim": 0})
    yield Sample((make(rng, (2, 1), dtype), make(rng, (2, 0), dtype),
                  make(rng, (2, 3), dtype, layout="strided")), {"dim": -1})
    yield Sample((make(rng, (1, 2, 2), dtype, layout="permuted"),), {"dim": 1})


add(OpInfo(
    name="cat", op=lambda *xs, dim: ops.cat(*xs, dim=dim),
    ref=lambda *xs, dim: np.concatenate(xs, axis=dim),
    torch_ref=lambda *xs, dim: _torch().cat(xs, dim=dim), sample_fn=_cat_samples,
    dtypes=ALL_DTYPES, supports_grad2=True, primitives=("cat",),
    error_fn=lambda: [ErrorCase((np.ones((2, 3), np.float32), np.ones((2, 4), np.float32)),
                                {"dim": 0}, exc=ShapeError, match=r"cat: tensors\[1\] has "
                                "size 4 in dim 1", ref_raises=True)]))


def _flip_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (3, 4), dtype, layout="T"),), {"dims": (0,)})
    yield Sample((make(rng, (2, 3, 4), dtype, layout="strided"),), {"dims": (0, 2)})
    yield Sample((make(rng, (0, 2), dtype),), {"dims": (1,)})
    yield Sample((make(rng, (5,), dtype),), {"dims": ()})
    yield Sample((make(rng, (1, 3), dtype),), {"dims": (0, 1)})


add(OpInfo(
    name="flip", op=ops.flip, ref=lambda x, dims: np.flip(x, dims),
    torch_ref=lambda x, dims: _torch().flip(x, dims), sample_fn=_flip_samples,
    dtypes=ALL_DTYPES, supports_grad2=True, primitives=("flip",)))


# --------------------------------------------------------------------------------------
# matmul


def _matmul_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    for sa, la, sb, lb in [((3, 4), "contig", (4, 5), "T"), ((2, 3, 4), "strided", (4, 2), "T"),
                           ((2, 1, 3, 4), "permuted", (5, 4, 2), "contig"),
                           ((0, 4), "contig", (4, 3), "contig"),
                           # a shared 2-D weight: its gradient is one GEMM over stacked rows
                           ((2, 3, 2, 4), "permuted", (4, 3), "contig"),
                           ((0, 2, 4), "contig", (4, 3), "T"),
                           ((3, 0), "contig", (0, 2), "contig"), ((1, 1), "contig", (1, 1), "T")]:
        yield Sample((make(rng, sa, dtype, layout=la), make(rng, sb, dtype, layout=lb)))


add(OpInfo(
    name="matmul", op=ops.matmul, ref=np.matmul, torch_ref="torch.matmul",
    sample_fn=_matmul_samples, dtypes=NUMERIC, supports_grad2=True, primitives=("matmul",),
    torch_tol={"float32": (1e-5, 1e-5)}, torch_note="BLAS summation order: atol 1e-5",
    error_fn=lambda: [
        ErrorCase((np.ones((2, 3), np.float32), np.ones((4, 2), np.float32)), exc=ShapeError,
                  match="matmul: inner dims differ", ref_raises=True),
        ErrorCase((np.ones((2, 3), np.float32), np.ones((3, 2), np.float64)), exc=DTypeError,
                  match="matmul: operands must have the same dtype"),
        ErrorCase((np.ones(3, np.float32), np.ones((3, 2), np.float32)), exc=ShapeError,
                  match="matmul primitive: both operands need rank >= 2")]))


# --------------------------------------------------------------------------------------
# creation and random


def _full_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((), {"shape": (2, 3), "value": 1.5, "dtype": "float32"})
    yield Sample((), {"shape": (0, 2), "value": 3, "dtype": "int64"})
    yield Sample((), {"shape": (), "value": True, "dtype": "bool"})
    yield Sample((), {"shape": (4,), "value": -2.25, "dtype": "float64"})


add(OpInfo(
    name="full", op=ops.full,
    ref=lambda shape, value, dtype: np.full(shape, value, dtype=dtype),
    torch_ref=lambda shape, value, dtype: _torch().full(shape, value, dtype=_tdtype(dtype)),
    sample_fn=_full_samples, dtypes=("float32",), supports_grad=False, primitives=("full",),
    error_fn=lambda: [ErrorCase((), {"shape": (2, -1), "value": 1.0, "dtype": "float32"},
                                exc=ShapeError, match="full: shape must be non-negative",
                                ref_raises=True)]))


def _arange_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((), {"start": 0, "stop": 5, "step": 1, "dtype": "int64"})
    yield Sample((), {"start": 1.0, "stop": 2.0, "step": 0.25, "dtype": "float32"})
    yield Sample((), {"start": 5, "stop": -3, "step": -2, "dtype": "int32"})
    yield Sample((), {"start": 3, "stop": 3, "step": 1, "dtype": "float64"})
    yield Sample((), {"start": 0.0, "stop": 1.0, "step": 0.1, "dtype": "float64"})


def _np_arange(start: Any, stop: Any, step: Any, dtype: str) -> np.ndarray:
    n = max(0, int(np.ceil((stop - start) / step)))
    return (start + np.arange(n, dtype=np.float64) * step).astype(dtype)


add(OpInfo(
    name="arange", op=ops.arange, ref=_np_arange,
    torch_ref=lambda start, stop, step, dtype: _torch().arange(start, stop, step,
                                                               dtype=_tdtype(dtype)),
    sample_fn=_arange_samples, dtypes=("float32",), supports_grad=False,
    primitives=("arange",),
    error_fn=lambda: [ErrorCase((), {"start": 0, "stop": 3, "step": 0, "dtype": "int64"},
                                exc=ArgumentError, match="arange: step must be non-zero")]))
add(OpInfo(
    name="eye", op=ops.eye, ref=lambda n, m, dtype: np.eye(n, m, dtype=dtype),
    torch_ref=lambda n, m, dtype: _torch().eye(n, m, dtype=_tdtype(dtype)),
    sample_fn=lambda dtype, rng: [Sample((), {"n": 3, "m": 3, "dtype": "float32"}),
                                  Sample((), {"n": 2, "m": 4, "dtype": "int64"}),
                                  Sample((), {"n": 0, "m": 2, "dtype": "bool"})],
    dtypes=("float32",), supports_grad=False, primitives=("eye",)))


def _random_samples(name: str) -> Callable:
    def gen(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
        extra = {"low": -3, "high": 4} if name == "randint" else {}
        kinds = ("int64", "float32") if name == "randint" else ("float32", "float64")
        for d in kinds:
            yield Sample((), {"shape": (3, 4), "dtype": d, **extra})
        yield Sample((), {"shape": (0,), "dtype": kinds[0], **extra})
        yield Sample((), {"shape": (), "dtype": kinds[0], **extra})

    return gen


def _np_random(name: str) -> Callable:
    def ref(shape: tuple, dtype: str, **bounds: Any) -> np.ndarray:
        g = np.random.default_rng(SEED)
        if name == "rand":
            return g.random(shape).astype(dtype)
        if name == "randn":
            return g.standard_normal(shape).astype(dtype)
        return g.integers(bounds["low"], bounds["high"], size=shape).astype(dtype)

    return ref


for _name in ("rand", "randn", "randint"):
    add(OpInfo(
        name=_name, op=getattr(ops, _name), ref=_np_random(_name), sample_fn=_random_samples(
            _name), dtypes=("float32",), supports_grad=False, primitives=(_name,), random=True,
        skips={"torch": "torch draws from another generator: the NumPy reference with Kiln's "
                        "seed is exact instead"},
        error_fn=(lambda n=_name: [ErrorCase((), {"shape": (2,), "dtype": "int64"},
                                             exc=DTypeError, match=f"{n}: dtype must be "
                                             "floating")]) if _name != "randint" else None))

_ = kiln
