"""Op table entries for shape/math composites, Tensor methods and indexing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from opinfo_base import (
    ALL_DTYPES,
    FLOAT_DTYPES,
    INT_DTYPES,
    KINK,
    ErrorCase,
    OpInfo,
    Sample,
    _torch,
    is_float,
    make,
)

import kiln
from kiln.errors import ArgumentError, IndexError_, ShapeError

ENTRIES: list[OpInfo] = []
NUMERIC = FLOAT_DTYPES + INT_DTYPES


def add(info: OpInfo) -> OpInfo:
    ENTRIES.append(info)
    return info


def _axis(dim: Any) -> Any:
    return tuple(dim) if isinstance(dim, (list, tuple)) else dim


# --------------------------------------------------------------------------------------
# reductions as Tensor methods and kiln functions

DIM_CASES = [((3, 4), "contig", None, False), ((3, 4), "T", 1, True),
             ((2, 3, 4), "strided", (0, 2), False), ((2, 3, 4), "permuted", -1, True),
             ((), "contig", None, False), ((5,), "contig", 0, False),
             ((2, 1, 3), "T", 1, False), ((1, 4), "strided", -1, True)]


def _dim_samples(domain: Any = "real", empty_ok: bool = True) -> Callable:
    def gen(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
        for shape, layout, dim, keep in DIM_CASES:
            yield Sample((make(rng, shape, dtype, domain, layout),),
                         {"dim": dim, "keepdim": keep})
        if empty_ok:
            yield Sample((make(rng, (0, 3), dtype, domain),), {"dim": 1, "keepdim": False})

    return gen


def _reduced(sample: Sample) -> int:
    """How many elements each output of a dim-reduction sample reduces over."""
    x, dim = sample.args[0], sample.kwargs["dim"]
    dims = range(x.ndim) if dim is None else (dim,) if isinstance(dim, int) else dim
    return int(np.prod([x.shape[d] for d in dims]))


def _np_red(fn: Callable, **extra: Any) -> Callable:
    def ref(x: np.ndarray, dim: Any = None, keepdim: bool = False) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(fn(x, axis=_axis(dim), keepdims=keepdim, **extra))

    return ref


def _t_red(name: str, **extra: Any) -> Callable:
    def ref(x: Any, dim: Any = None, keepdim: bool = False) -> Any:
        if dim is None:
            out = getattr(x, name)(**extra)
            if keepdim:
                out = out.reshape((1,) * x.ndim)
            return out
        return getattr(x, name)(dim=dim, keepdim=keepdim, **extra)

    return ref


def _sum_np(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    return np.sum(x, axis=axis, keepdims=keepdims,
                  dtype=np.int64 if x.dtype.kind in "biu" else x.dtype)


add(OpInfo(name="Tensor.sum", op=lambda x, dim=None, keepdim=False: x.sum(dim, keepdim),
           ref=_np_red(_sum_np), torch_ref=_t_red("sum"), sample_fn=_dim_samples(),
           dtypes=ALL_DTYPES, supports_grad2=True))
add(OpInfo(name="kiln.mean", op=lambda x, dim=None, keepdim=False: kiln.mean(x, dim, keepdim),
           ref=_np_red(np.mean), torch_ref=_t_red("mean"), sample_fn=_dim_samples(),
           supports_grad2=True,
           error_fn=lambda: [ErrorCase((np.ones(3, np.int64),), exc=ArgumentError,
                                       match="mean: input must be floating")]))
for _name, _corr in (("var", 1), ("std", 1), ("var0", 0)):
    _np_fn = np.var if _name.startswith("var") else np.std
    add(OpInfo(
        name=f"Tensor.{_name}",
        op=(lambda x, dim=None, keepdim=False, n=_name, c=_corr:
            getattr(x, n[:3])(dim, keepdim=keepdim, correction=c)),
        ref=_np_red(_np_fn, ddof=_corr),
        torch_ref=(lambda x, dim=None, keepdim=False, n=_name, c=_corr:
                   getattr(x, n[:3])(dim=dim, keepdim=keepdim, correction=c)),
        sample_fn=lambda dtype, rng, c=_corr: [s for s in _dim_samples()(dtype, rng)
                                               if _reduced(s) > c and s.kwargs["dim"] != 0
                                               and s.args[0].size] + [
            # A constant row: zero spread, where std's gradient is 0 (torch), not nan.
            Sample((np.array([[1.5, 1.5, 1.5], [0.5, -1.0, 2.0]], dtype),),
                   {"dim": 1, "keepdim": False}, desc="constant row",
                   skips={"grad2": KINK["grad2"]})],
        skips={"size-0": "an empty input has no degrees of freedom (torch and NumPy warn)"},
        supports_grad2=True))
def _prod_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield from (s for s in _dim_samples("nonzero")(dtype, rng)
                if not isinstance(s.kwargs["dim"], tuple)
                and not (s.kwargs["dim"] is None and s.kwargs["keepdim"]))
    # Rows with no, one and two zeros: the gradient at a zero is the product of the others.
    rows = make(rng, (3, 4), dtype, "nonzero")
    rows[1, 2] = 0
    rows[2, 0] = rows[2, 3] = 0
    yield Sample((rows,), {"dim": 1, "keepdim": False}, desc="rows with 0, 1, 2 zeros")
    yield Sample((rows[1],), {"dim": None, "keepdim": False}, desc="one zero")
    yield Sample((rows.T.copy(),), {"dim": 0, "keepdim": True}, desc="zeros, keepdim")


add(OpInfo(name="Tensor.prod", op=lambda x, dim=None, keepdim=False: x.prod(dim, keepdim),
           ref=_np_red(np.prod),
           torch_ref=lambda x, dim=None, keepdim=False: (
               x.prod() if dim is None else x.prod(dim, keepdim=keepdim)),
           sample_fn=_prod_samples, dtypes=NUMERIC, supports_grad2=True))
for _name in ("amax", "amin"):
    add(OpInfo(
        name=f"kiln.{_name}",
        op=lambda x, dim=None, keepdim=False, n=_name: getattr(kiln, n)(x, dim, keepdim),
        ref=_np_red(np.max if _name == "amax" else np.min),
        torch_ref=lambda x, dim=None, keepdim=False, n=_name: getattr(_torch(), n)(
            x, dim=() if dim is None else dim, keepdim=keepdim),
        sample_fn=_dim_samples("distinct"), dtypes=NUMERIC, supports_grad2=True))


def _max_dim_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (3, 4), dtype, "distinct", "T"),), {"dim": 1, "keepdim": False})
    yield Sample((make(rng, (2, 3, 4), dtype, "distinct", "strided"),),
                 {"dim": -3, "keepdim": True})
    yield Sample((make(rng, (5,), dtype, "distinct"),), {"dim": 0, "keepdim": False})
    yield Sample((make(rng, (0, 1), dtype, "distinct"),), {"dim": 1, "keepdim": True})
    # Ties: the gradient goes to the returned (first) index, as in torch.
    yield Sample((np.array([[1, 3, 3, 0], [2, 2, 2, 2], [0, -1, 0, -1]], dtype),),
                 {"dim": 1, "keepdim": False}, desc="ties", skips=KINK)


for _name in ("max", "min"):
    add(OpInfo(
        name=f"Tensor.{_name}(dim)",
        op=lambda x, dim, keepdim, n=_name: tuple(getattr(x, n)(dim, keepdim)),
        ref=lambda x, dim, keepdim, n=_name: (
            getattr(np, n)(x, axis=dim, keepdims=keepdim),
            getattr(np, "arg" + n)(x, axis=dim, keepdims=keepdim)),
        torch_ref=lambda x, dim, keepdim, n=_name: tuple(getattr(x, n)(dim, keepdim)),
        sample_fn=_max_dim_samples, dtypes=NUMERIC, supports_grad2=True))
    add(OpInfo(
        name=f"Tensor.{_name}()", op=lambda x, n=_name: getattr(x, n)(),
        ref=lambda x, n=_name: getattr(np, n)(x),
        torch_ref=lambda x, n=_name: getattr(x, n)(),
        sample_fn=lambda dtype, rng: [Sample((make(rng, s, dtype, "distinct", "T"),))
                                      for s in ((3, 4), (), (1,))],
        skips={"size-0": "max() of an empty tensor is an error, as in torch"},
        dtypes=NUMERIC, supports_grad2=True))
    add(OpInfo(
        name=f"Tensor.{_name}(other)", op=lambda a, b, n=_name: getattr(a, n)(b),
        ref=lambda a, b, n=_name: getattr(np, n + "imum")(a, b),
        torch_ref=lambda a, b, n=_name: getattr(a, n)(b),
        sample_fn=lambda dtype, rng: [
            Sample((make(rng, (2, 3), dtype, "distinct"),
                    make(rng, (3,), dtype, "distinct") + 0.125)),
            Sample((make(rng, (1, 3), dtype, "distinct", "strided"),
                    make(rng, (0, 1), dtype, "distinct")))],
        supports_grad2=True))
for _name in ("argmax", "argmin"):
    add(OpInfo(
        name=f"Tensor.{_name}",
        op=lambda x, dim=None, keepdim=False, n=_name: getattr(x, n)(dim, keepdim),
        ref=lambda x, dim=None, keepdim=False, n=_name: getattr(np, n)(
            x, axis=dim, keepdims=keepdim) if dim is not None else getattr(np, n)(x),
        torch_ref=lambda x, dim=None, keepdim=False, n=_name: getattr(x, n)(dim, keepdim),
        sample_fn=lambda dtype, rng: [
            Sample((make(rng, (3, 4), dtype, "distinct", "T"),), {"dim": 0, "keepdim": True}),
            Sample((make(rng, (3, 4), dtype, "distinct"),), {}),
            Sample((make(rng, (0, 1), dtype, "distinct"),), {"dim": 1, "keepdim": False})],
        dtypes=NUMERIC, supports_grad=False, exact=True))
for _name, _np_fn in (("all", np.all), ("any", np.any)):
    add(OpInfo(
        name=f"Tensor.{_name}",
        op=lambda x, dim=None, keepdim=False, n=_name: getattr(x, n)(dim, keepdim),
        ref=lambda x, dim=None, keepdim=False, f=_np_fn: np.asarray(f(x, axis=dim,
                                                                       keepdims=keepdim)),
        torch_ref=lambda x, dim=None, keepdim=False, n=_name: (
            getattr(x, n)() if dim is None else getattr(x, n)(dim, keepdim)),
        sample_fn=lambda dtype, rng: [
            Sample((make(rng, (3, 4), dtype),), {"dim": 1, "keepdim": False}),
            Sample((make(rng, (2, 5), dtype, layout="T"),), {}),
            Sample((np.ones((2, 0), dtype),), {"dim": 1, "keepdim": True},
                   desc="empty: all() is True, any() is False"),
            Sample((make(rng, (1, 3), dtype),), {"dim": 0, "keepdim": False})],
        dtypes=("bool", "float32", "int64"), supports_grad=False, exact=True))


def _lse_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (3, 4), dtype, layout="T"),), {"dim": 1, "keepdim": False})
    yield Sample((make(rng, (2, 3, 4), dtype, layout="strided"),),
                 {"dim": (0, 2), "keepdim": True})
    big = make(rng, (2, 3), dtype) * 10 + 500.0
    yield Sample((big,), {"dim": -1, "keepdim": False}, desc="large values (no overflow)")
    inf = np.array([[-np.inf, -np.inf], [0.0, -np.inf]], dtype)
    yield Sample((inf,), {"dim": 1, "keepdim": False}, desc="-inf rows", grad_args=())
    yield Sample((make(rng, (0, 1), dtype),), {"dim": 1, "keepdim": True})


def _np_lse(x: np.ndarray, dim: Any, keepdim: bool = False) -> np.ndarray:
    x64 = x.astype(np.float64)
    m = np.max(x64, axis=_axis(dim), keepdims=True)
    m = np.where(np.isinf(m), 0.0, m)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x64 - m), axis=_axis(dim), keepdims=True)) + m
    return (out if keepdim else np.squeeze(out, axis=_axis(dim))).astype(x.dtype)


add(OpInfo(name="kiln.logsumexp", op=lambda x, dim, keepdim=False: kiln.logsumexp(x, dim,
                                                                                    keepdim),
           ref=_np_lse, torch_ref=lambda x, dim, keepdim=False: _torch().logsumexp(x, dim,
                                                                                   keepdim),
           sample_fn=_lse_samples, supports_grad2=True))


# --------------------------------------------------------------------------------------
# shape composites


def _simple(shapes: list, domain: Any = "real") -> Callable:
    def gen(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
        layouts = ("contig", "T", "strided", "permuted")
        for k, (shape, kwargs) in enumerate(shapes):
            yield Sample((make(rng, shape, dtype, domain, layouts[k % 4]),), dict(kwargs))

    return gen


def _shape_entry(name: str, op: Callable, ref: Callable, torch_ref: Callable, shapes: list,
                 **kw: Any) -> OpInfo:
    return add(OpInfo(name=name, op=op, ref=ref, torch_ref=torch_ref, sample_fn=_simple(shapes),
                      dtypes=kw.pop("dtypes", ALL_DTYPES), supports_grad2=True, **kw))


def _view_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    # Layouts a view can reshape without copying (torch's .view accepts the same).
    for shape, layout, target in [((3, 4), "contig", (2, -1)), ((2, 3, 4), "strided", (6, 4)),
                                  ((0, 4), "contig", (-1, 2)), ((), "contig", (1, 1, 1)),
                                  ((6,), "contig", (2, 3)), ((1, 4), "T", (4, 1)),
                                  ((3, 4), "T", (3, 1, 4, 1))]:
        yield Sample((make(rng, shape, dtype, layout=layout),), {"shape": target})


add(OpInfo(name="Tensor.view", op=lambda x, shape: x.view(*shape),
           ref=lambda x, shape: x.reshape(shape), torch_ref=lambda x, shape: x.view(shape),
           sample_fn=_view_samples, dtypes=ALL_DTYPES, supports_grad2=True,
           # A layout only a copy reshapes is refused eagerly (a trace takes its inputs as
           # contiguous): tests/core/test_inplace_views.py, tests/tracing/test_inplace_traced.py
           error_fn=lambda: [
               ErrorCase((np.ones((2, 3), np.float32), (-1, -1)), exc=ShapeError,
                         match="only one dim can be -1", ref_raises=True)]))
_shape_entry("kiln.squeeze", lambda x, dim=None: kiln.squeeze(x, dim),
             lambda x, dim=None: np.squeeze(x, axis=dim if dim is None or x.shape[dim] == 1
                                            else ()),
             lambda x, dim=None: x.squeeze() if dim is None else x.squeeze(dim),
             [((1, 3, 1), {}), ((1, 3, 1), {"dim": -1}), ((2, 3), {"dim": 0}), ((1,), {}),
              ((1, 0, 1), {"dim": 0})])
_shape_entry("kiln.unsqueeze", lambda x, dim: kiln.unsqueeze(x, dim),
             lambda x, dim: np.expand_dims(x, dim), lambda x, dim: x.unsqueeze(dim),
             [((3, 4), {"dim": 0}), ((3, 4), {"dim": -1}), ((), {"dim": 0}),
              ((2, 3), {"dim": 1}), ((0, 1), {"dim": 1})])
_shape_entry("kiln.flatten", lambda x, start_dim=0, end_dim=-1: kiln.flatten(x, start_dim,
                                                                            end_dim),
             lambda x, start_dim=0, end_dim=-1: x.reshape(
                 x.shape[:start_dim] + (-1,) + x.shape[end_dim % max(x.ndim, 1) + 1:])
             if x.ndim else x.reshape(1),
             lambda x, start_dim=0, end_dim=-1: x.flatten(start_dim, end_dim),
             [((2, 3, 4), {}), ((2, 3, 4), {"start_dim": 1}), ((2, 3, 4, 2), {"start_dim": 1,
                                                                             "end_dim": 2}),
              ((), {}), ((2, 0, 1), {"start_dim": 1})])
_shape_entry("kiln.transpose", lambda x, d0, d1: kiln.transpose(x, d0, d1),
             lambda x, d0, d1: np.swapaxes(x, d0, d1), lambda x, d0, d1: x.transpose(d0, d1),
             [((3, 4), {"d0": 0, "d1": 1}), ((2, 3, 4), {"d0": -1, "d1": 0}),
              ((2, 3), {"d0": 1, "d1": 1}), ((1, 0, 3), {"d0": 0, "d1": 2})])
_shape_entry("Tensor.expand", lambda x, shape: x.expand(*shape),
             lambda x, shape: np.broadcast_to(x, tuple(
                 x.shape[i - (len(shape) - x.ndim)] if s == -1 else s
                 for i, s in enumerate(shape))),
             lambda x, shape: x.expand(*shape),
             [((3, 1), {"shape": (2, -1, 4)}), ((), {"shape": (3,)}),
              ((1, 2), {"shape": (0, 2)}), ((0, 1), {"shape": (0, 3)})])
_shape_entry("kiln.permute", lambda x, dims: kiln.permute(x, dims),
             lambda x, dims: np.transpose(x, dims), lambda x, dims: x.permute(dims),
             [((2, 3, 4), {"dims": (-1, 0, 1)}), ((3, 4), {"dims": (0, 1)}),
              ((1, 0, 2), {"dims": (2, 0, 1)})])
_shape_entry("kiln.flip", lambda x, dims: kiln.flip(x, dims), lambda x, dims: np.flip(x, dims),
             lambda x, dims: _torch().flip(x, (dims,) if isinstance(dims, int) else dims),
             [((3, 4), {"dims": -1}), ((2, 3, 4), {"dims": (0, 1)}),
              ((1, 0, 3), {"dims": (0, 2)})])
_shape_entry("kiln.narrow", lambda x, dim, start, length: kiln.narrow(x, dim, start, length),
             lambda x, dim, start, length: np.take(x, range(start, start + length), axis=dim),
             lambda x, dim, start, length: x.narrow(dim, start, length),
             [((5, 4), {"dim": 0, "start": 1, "length": 3}),
              ((3, 6), {"dim": -1, "start": 2, "length": 0}),
              ((1, 0), {"dim": 0, "start": 0, "length": 1})])
_shape_entry("kiln.split", lambda x, sizes, dim=0: kiln.split(x, sizes, dim),
             lambda x, sizes, dim=0: tuple(np.split(
                 x, range(sizes, x.shape[dim], sizes) if isinstance(sizes, int)
                 else np.cumsum(sizes)[:-1], axis=dim)),
             lambda x, sizes, dim=0: _torch().split(x, sizes, dim),
             [((5, 3), {"sizes": 2}), ((3, 6), {"sizes": [1, 0, 5], "dim": 1}),
              ((4, 2), {"sizes": 4}), ((1, 0), {"sizes": 1})])
_shape_entry("kiln.chunk", lambda x, chunks, dim=0: kiln.chunk(x, chunks, dim),
             lambda x, chunks, dim=0: tuple(np.split(
                 x, range(-(-x.shape[dim] // chunks), x.shape[dim], -(-x.shape[dim] // chunks)),
                 axis=dim)) if x.shape[dim] else (x,) * chunks,
             lambda x, chunks, dim=0: _torch().chunk(x, chunks, dim),
             [((5, 3), {"chunks": 2}), ((3, 6), {"chunks": 3, "dim": -1}),
              ((2, 2), {"chunks": 4}), ((0, 2), {"chunks": 3}),
              ((1, 4), {"chunks": 2, "dim": 1})])
_shape_entry("kiln.unbind", lambda x, dim=0: kiln.unbind(x, dim),
             lambda x, dim=0: tuple(np.moveaxis(x, dim, 0)),
             lambda x, dim=0: _torch().unbind(x, dim),
             [((3, 2), {}), ((2, 3, 4), {"dim": 1}), ((1, 0), {})])
_shape_entry("Tensor.T", lambda x: x.T, lambda x: x.T, lambda x: x.permute(
    *reversed(range(x.ndim))), [((3, 4), {}), ((2, 3, 4), {}), ((5,), {}), ((1, 0), {})])
_shape_entry("Tensor.mT", lambda x: x.mT, lambda x: np.swapaxes(x, -1, -2), lambda x: x.mT,
             [((3, 4), {}), ((2, 3, 4), {}), ((1, 0, 3), {})])


def _multi(shapes: list, count_diff: bool = True) -> Callable:
    def gen(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
        for k, (group, kwargs) in enumerate(shapes):
            tensors = [make(rng, s, dtype, layout=("T", "strided", "contig")[(k + i) % 3])
                       for i, s in enumerate(group)]
            yield Sample((tensors,), dict(kwargs))

    return gen


add(OpInfo(name="kiln.cat", op=lambda xs, dim=0: kiln.cat(xs, dim),
           ref=lambda xs, dim=0: np.concatenate(xs, axis=dim),
           torch_ref=lambda xs, dim=0: _torch().cat(xs, dim),
           sample_fn=_multi([([(2, 3), (1, 3)], {}), ([(2, 1), (2, 4), (2, 0)], {"dim": -1}),
                             ([(3,)], {})]), dtypes=ALL_DTYPES, supports_grad2=True,
           error_fn=lambda: [ErrorCase(([],), exc=ArgumentError, match="cat: expected a "
                                       "non-empty", ref_raises=True)]))
add(OpInfo(name="kiln.cat(mixed dtypes)",
           op=lambda xs, dim=0: kiln.cat(xs, dim),
           ref=lambda xs, dim=0: np.concatenate(xs, axis=dim),
           torch_ref=lambda xs, dim=0: _torch().cat(xs, dim),
           sample_fn=lambda dtype, rng: [Sample(([make(rng, (2,), "int64"),
                                                  make(rng, (3,), dtype)],)),
                                         Sample(([make(rng, (0, 2), "int32"),
                                                  make(rng, (1, 2), dtype),
                                                  make(rng, (2, 2), dtype, layout="T")],))],
           supports_grad=False))
add(OpInfo(name="kiln.stack", op=lambda xs, dim=0: kiln.stack(xs, dim),
           ref=lambda xs, dim=0: np.stack(xs, axis=dim),
           torch_ref=lambda xs, dim=0: _torch().stack(xs, dim),
           sample_fn=_multi([([(2, 3), (2, 3)], {}), ([(4,), (4,), (4,)], {"dim": -1}),
                             ([(), ()], {}), ([(0, 2)], {"dim": 2}),
                             ([(1, 3), (1, 3)], {"dim": 1})]),
           dtypes=ALL_DTYPES, supports_grad2=True,
           error_fn=lambda: [ErrorCase(([np.ones(2, np.float32), np.ones(3, np.float32)],),
                                       exc=ShapeError, match=r"stack: tensors\[1\] has shape",
                                       ref_raises=True)]))


# --------------------------------------------------------------------------------------
# arithmetic composites


def _clamp_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    dom = lambda rng, s: rng.integers(-8, 8, s) * 0.25 + 0.125  # noqa: E731  (no ties)
    lo, hi = (-0.5, 0.5) if is_float(dtype) else (-1, 2)
    yield Sample((make(rng, (3, 4), dtype, dom, "T"),), {"min": lo, "max": hi})
    yield Sample((make(rng, (5,), dtype, dom),), {"min": lo})
    yield Sample((make(rng, (2, 3), dtype, dom, "strided"),), {"max": hi})
    yield Sample((make(rng, (0, 1), dtype, dom),), {"min": lo, "max": hi})
    if is_float(dtype):
        yield Sample((make(rng, (2, 3), dtype, dom), make(rng, (3,), dtype, dom) - 0.0625),
                     {"max": 1.0}, desc="tensor min")
        # Values at the bounds: the gradient is 1 there (torch), not the 0.5 of a tie.
        at = np.array([[-0.5, 0.5, 0.0], [-1.0, 1.0, 0.5]], dtype)
        yield Sample((at,), {"min": lo, "max": hi}, desc="at the bounds", skips=KINK)
        yield Sample((at, np.array([-0.5, 0.75, 0.5], dtype)), {"max": 1.0},
                     desc="at a tensor min", skips=KINK)


def _torch_clamp(x: Any, lo: Any, hi: Any) -> Any:
    torch = _torch()
    if isinstance(lo, torch.Tensor) and hi is not None:  # torch wants both tensors then
        hi = torch.tensor(hi, dtype=x.dtype)
    return torch.clamp(x, lo, hi)


add(OpInfo(name="kiln.clamp", op=lambda x, lo=None, min=None, max=None: kiln.clamp(
    x, min if lo is None else lo, max),
    ref=lambda x, lo=None, min=None, max=None: np.clip(x, min if lo is None else lo, max),
    torch_ref=lambda x, lo=None, min=None, max=None: _torch_clamp(x, min if lo is None else lo,
                                                                  max),
    sample_fn=_clamp_samples, dtypes=NUMERIC, supports_grad2=True,
    error_fn=lambda: [ErrorCase((np.ones(2, np.float32),), exc=ArgumentError,
                                match="clamp: at least one of min and max")]))
add(OpInfo(name="Tensor.where", op=lambda x, c, y: x.where(c, y),
           ref=lambda x, c, y: np.where(c, x, y), torch_ref=lambda x, c, y: x.where(c, y),
           sample_fn=lambda dtype, rng: [Sample((make(rng, (3, 4), dtype, layout="T"),
                                                 make(rng, (3, 1), "bool"),
                                                 make(rng, (4,), dtype, layout="T"))),
                                         Sample((make(rng, (0, 3), dtype),
                                                 make(rng, (1, 3), "bool"),
                                                 make(rng, (3,), dtype)))],
           grad_args=(0, 2), supports_grad2=True))
add(OpInfo(name="Tensor.masked_fill", op=lambda x, m, v: x.masked_fill(m, v),
           ref=lambda x, m, v: np.where(m, v, x), torch_ref=lambda x, m, v: x.masked_fill(m, v),
           sample_fn=lambda dtype, rng: [Sample((make(rng, (3, 4), dtype, layout="T"),
                                                 make(rng, (4,), "bool"), -2.0)),
                                         Sample((make(rng, (0, 1), dtype),
                                                 make(rng, (3,), "bool"), 1.5))],
           supports_grad2=True))


def _arith_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (3, 4), dtype, "positive", "T"), make(rng, (4,), dtype, "positive")))
    yield Sample((make(rng, (2, 1), dtype, "positive"), 2.0))
    yield Sample((make(rng, (0, 3), dtype, "positive"), make(rng, (1, 3), dtype, "positive")))


for _name, _op, _np_op in (
    ("Tensor.__add__", lambda a, b: a + b, np.add),
    ("Tensor.__rsub__", lambda a, b: 2.5 - a * b, lambda a, b: 2.5 - a * b),
    ("Tensor.__truediv__", lambda a, b: a / b, np.divide),
    ("Tensor.__rtruediv__", lambda a, b: 1.0 / (a + b), lambda a, b: 1.0 / (a + b)),
    ("Tensor.__pow__", lambda a, b: a ** b, np.power),
    ("Tensor.__rpow__", lambda a, b: 2.0 ** (a - b), lambda a, b: 2.0 ** (a - b)),
    ("Tensor.square", lambda a, b: (a * b).square(), lambda a, b: np.square(a * b)),
):
    add(OpInfo(name=_name, op=_op, ref=_np_op, torch_ref=_op, sample_fn=_arith_samples,
               supports_grad2=True))


def _divmod_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    def divisor(shape: tuple) -> np.ndarray:
        if is_float(dtype):
            return make(rng, shape, dtype, "nonzero")
        return rng.choice([-3, -2, -1, 1, 2, 3], shape).astype(dtype)

    yield Sample((make(rng, (3, 4), dtype, "real", "T") * 3, divisor((4,))))
    yield Sample((make(rng, (2, 3), dtype), 2 if not is_float(dtype) else -1.5))
    yield Sample((7 if not is_float(dtype) else 7.5, divisor((3,))))
    yield Sample((make(rng, (0, 1), dtype), divisor((1, 3))))
    if not is_float(dtype):
        yield Sample((make(rng, (2, 2), dtype), make(rng, (2, 2), "int32", "positive")),
                     desc="int64 and int32")


for _name, _op, _np_op in (("Tensor.__floordiv__", lambda a, b: a // b, np.floor_divide),
                           ("Tensor.__mod__", lambda a, b: a % b, np.remainder)):
    add(OpInfo(name=_name, op=_op, ref=_np_op, torch_ref=_op, sample_fn=_divmod_samples,
               dtypes=NUMERIC, supports_grad2=True,
               skips={"torch_grad": "torch has no derivative for floor_divide/remainder"}))


def _matmul_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    for sa, sb in [((4,), (4,)), ((4,), (4, 3)), ((2, 4), (4,)), ((3, 4), (4, 2)),
                   ((2, 3, 4), (4,)), ((2, 1, 3, 4), (5, 4, 2)), ((0, 3), (3, 2))]:
        yield Sample((make(rng, sa, dtype, layout="T"), make(rng, sb, dtype, layout="strided")))


add(OpInfo(name="kiln.matmul", op=kiln.matmul, ref=np.matmul, torch_ref="torch.matmul",
           sample_fn=_matmul_samples, dtypes=NUMERIC, supports_grad2=True,
           torch_tol={"float32": (1e-5, 1e-5)}, torch_note="BLAS summation order: atol 1e-5",
           error_fn=lambda: [ErrorCase((np.ones((), np.float32), np.ones(2, np.float32)),
                                       exc=ShapeError, match="matmul: both operands need",
                                       ref_raises=True)]))
add(OpInfo(name="Tensor.__matmul__(mixed dtypes)", op=lambda a, b: a @ b,
           ref=lambda a, b: np.matmul(a, b.astype(a.dtype)), torch_ref=None,
           sample_fn=lambda dtype, rng: [Sample((make(rng, (2, 3), dtype),
                                                 make(rng, (3, 2), "int64"))),
                                         Sample((make(rng, (1, 3), dtype, layout="strided"),
                                                 make(rng, (3, 0), "int64")))],
           supports_grad=False, skips={"torch": "torch.matmul refuses mixed dtypes; Kiln "
                                                "promotes like the other binary ops"}))


_EINSUM_CASES = [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ij,ij->i", [(3, 4), (3, 4)]), ("i,j->ij", [(3,), (4,)]), ("ij->ji", [(3, 4)]),
    ("ij->", [(3, 4)]), ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]), ("ij,kj", [(3, 4), (5, 4)]),
    ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]), ("i,i->", [(4,), (4,)]),
    ("ijk,ikl->jl", [(2, 3, 4), (2, 4, 3)]), ("ij,jk->ik", [(0, 4), (4, 1)]),
    ("ii->i", [(3, 3)]), ("ii", [(3, 3)]), ("bii->bi", [(2, 3, 3)]), ("iji->j", [(2, 3, 2)]),
]


def _einsum_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    for k, (eq, shapes) in enumerate(_EINSUM_CASES):
        layout = ("contig", "T", "strided")[k % 3]
        yield Sample((eq, *[make(rng, s, dtype, layout=layout) for s in shapes]), desc=eq)


add(OpInfo(name="kiln.einsum", op=lambda eq, *xs: kiln.einsum(eq, *xs),
           ref=lambda eq, *xs: np.einsum(eq, *xs), torch_ref=lambda eq, *xs: _torch().einsum(
               eq, *xs),
           sample_fn=_einsum_samples, supports_grad2=True, torch_tol={"float32": (1e-5, 1e-5)},
           tol={"float32": (1e-5, 1e-5)}, torch_note="summation order: atol 1e-5",
           error_fn=lambda: [
               ErrorCase(("ii->i", np.ones((2, 3), np.float32)), exc=ShapeError,
                         match="einsum: the repeated label 'i' has sizes 2 and 3",
                         ref_raises=True),
               ErrorCase(("ij,jk->ik", np.ones((2, 3), np.float32), np.ones((4, 2), np.float32)),
                         exc=ShapeError, match="einsum: label 'j' has sizes 3 and 4",
                         ref_raises=True)]))


# --------------------------------------------------------------------------------------
# indexing

_GET_INDICES = [
    (1, "int"), (-1, "negative int"), ((1, 2), "two ints"), (slice(None, None, 2), "step"),
    ((Ellipsis, 1), "ellipsis"), ((None, 0), "None"), ((slice(1, None), None,
                                                        slice(None, None, 3)), "mixed"),
    ((0, Ellipsis, None), "int ellipsis None"), (slice(-2, 10), "clamped slice"),
    (slice(3, 1), "empty slice"), ("idx", "int tensor"), ((slice(None), "idx2d"),
                                                          "2-d int tensor on dim 1"),
    ((1, "idx"), "int then tensor"), ("negidx", "negative tensor index"),
]


def _get_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    for k, (index, desc) in enumerate(_GET_INDICES):
        x = make(rng, (3, 4, 5), dtype, layout=("contig", "T", "strided")[k % 3])
        yield Sample((x, _index_value(index, rng)), desc=desc, grad_args=(0,))
    yield Sample((make(rng, (1, 0, 2), dtype), (0, Ellipsis)), desc="size-0 and size-1 dims",
                 grad_args=(0,))
    mask = np.array([True, False, True, True])
    yield Sample((make(rng, (3, 4), dtype), (slice(None), mask)), desc="bool mask on dim 1",
                 grad_args=(0,), skips={"trace": "a mask's true count sets the shape: eager only"})


def _index_value(index: Any, rng: np.random.Generator) -> Any:
    def one(i: Any) -> Any:
        if i == "idx":
            return np.array([2, 0, 2], np.int64)
        if i == "idx2d":
            return np.array([[1, 3], [0, 0]], np.int64)
        if i == "negidx":
            return np.array([-1, 0], np.int64)
        return i

    return tuple(one(i) for i in index) if isinstance(index, tuple) else one(index)


def _np_index(index: Any) -> Any:
    return index


add(OpInfo(name="Tensor.__getitem__", op=lambda x, index: x[index],
           ref=lambda x, index: np.asarray(x[index]), torch_ref=lambda x, index: x[
               _torch_index(index)],
           sample_fn=_get_samples, dtypes=ALL_DTYPES, supports_grad2=True,
           error_fn=lambda: [
               ErrorCase((np.ones((2, 3), np.float32), 5), exc=IndexError_,
                         match="index 5 is out of bounds for dim 0 with size 2",
                         ref_raises=True),
               ErrorCase((np.ones((2, 3), np.float32), (0, 0, 0)), exc=IndexError_,
                         match="too many indices", ref_raises=True),
               ErrorCase((np.ones((2, 3), np.float32), slice(None, None, -1)),
                         exc=ArgumentError, match="slice step must be a positive int"),
               ErrorCase((np.ones((2, 3), np.float32), np.array([0.5])), exc=IndexError_,
                         match="tensors used as indices must be integer or bool",
                         ref_raises=True)]))


def _torch_index(index: Any) -> Any:
    torch = _torch()
    if isinstance(index, np.ndarray):
        return torch.from_numpy(index)
    if isinstance(index, tuple):
        return tuple(_torch_index(i) for i in index)
    return index


_ = _np_index
