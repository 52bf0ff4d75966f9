"""Op table entries for the functions issue 12 added to ``kiln.nn.functional`` and ``kiln``:
prelu, 1-D/3-D pooling, transposed convolution, interpolate, randperm.

Every entry runs (through tests/opinfo.py) in eager mode against a NumPy reference written
with loops (independent of Kiln's separable/adjoint formulations), against torch, with
float64 finite differences, traced, through AOT autograd and through the C backend.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from opinfo_base import SEED, ErrorCase, OpInfo, Sample, make

import kiln
import kiln.nn.functional as F
from kiln.errors import ArgumentError, ShapeError, ValueArgumentError

ENTRIES: list[OpInfo] = []


def add(info: OpInfo) -> OpInfo:
    ENTRIES.append(info)
    return info


def _tup(v: Any, n: int) -> tuple:
    if isinstance(v, (list, tuple)):
        return tuple(v) if len(v) == n else tuple(v) * n
    return (v,) * n


# --------------------------------------------------------------------------------------
# prelu


def _prelu_ref(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    if w.size > 1:
        w = w.reshape((-1,) + (1,) * (x.ndim - 2))
    else:
        w = w.reshape(())
    return np.where(x > 0, x, w * x).astype(x.dtype)


def _prelu_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (2, 3, 4, 5), dtype, "nonzero", "T"), make(rng, (3,), dtype)))
    yield Sample((make(rng, (2, 3), dtype, "nonzero"), make(rng, (1,), dtype)))
    yield Sample((make(rng, (4, 3, 2), dtype, "nonzero", "strided"), make(rng, (3,), dtype)))
    yield Sample((make(rng, (5,), dtype, "nonzero"), make(rng, (1,), dtype)), desc="1-D input")
    yield Sample((make(rng, (0, 3), dtype, "nonzero"), make(rng, (3,), dtype)), desc="empty")


add(OpInfo(name="F.prelu", op=F.prelu, ref=_prelu_ref, torch_ref="torch.nn.functional.prelu",
           sample_fn=_prelu_samples, supports_grad2=True,
           error_fn=lambda: [ErrorCase((np.ones((2, 3), np.float32), np.ones(2, np.float32)),
                                       exc=ShapeError, match="prelu: weight has 2 slopes")]))


# --------------------------------------------------------------------------------------
# pooling references: direct loops over every output position (N-D)


def _pool_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    span = size + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= size + p:
        out -= 1
    return out


def _pool_ref(x: np.ndarray, kind: str, k: tuple, s: tuple, p: tuple, d: tuple,
              ceil_mode: bool, count_include_pad: bool = True,
              divisor_override: Any = None) -> np.ndarray:
    n = len(k)
    spatial = x.shape[-n:]
    outs = [_pool_out(spatial[i], k[i], s[i], p[i], d[i], ceil_mode) for i in range(n)]
    y = np.zeros(x.shape[:-n] + tuple(outs), x.dtype)
    for pos in itertools.product(*[range(o) for o in outs]):
        starts = [pos[i] * s[i] - p[i] for i in range(n)]
        taps = [[starts[i] + j * d[i] for j in range(k[i])] for i in range(n)]
        inside = [[t for t in taps[i] if 0 <= t < spatial[i]] for i in range(n)]
        if kind == "max":
            if not all(inside):  # a window made only of padding
                y[(...,) + pos] = -np.inf
                continue
            vals = x[(...,) + np.ix_(*inside)]
            y[(...,) + pos] = vals.max(axis=tuple(range(-n, 0))) if vals.size else 0
        else:
            total = x[(...,) + np.ix_(*inside)].sum(axis=tuple(range(-n, 0)))
            if divisor_override is not None:
                div = divisor_override
            elif count_include_pad:
                div = math.prod(min(starts[i] + k[i], spatial[i] + p[i]) - starts[i]
                                for i in range(n))
            else:
                div = math.prod(len(v) for v in inside)
            y[(...,) + pos] = total / div
    return y


def _pool_fn(kind: str, n: int) -> Callable:
    def ref(x: np.ndarray, kernel_size: Any, stride: Any = None, padding: Any = 0,
            *args: Any, **kw: Any) -> np.ndarray:
        k = _tup(kernel_size, n)
        s = k if stride is None else _tup(stride, n)
        p = _tup(padding, n)
        if kind == "max":
            d = _tup(kw.get("dilation", args[0] if args else 1), n)
            return _pool_ref(x, kind, k, s, p, d, kw.get("ceil_mode", False))
        return _pool_ref(x, kind, k, s, p, (1,) * n, kw.get("ceil_mode", False),
                         kw.get("count_include_pad", True), kw.get("divisor_override"))

    return ref


def _pool1d_samples(kind: str) -> Callable:
    def gen(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample((make(rng, (2, 3, 8), dtype, "distinct", "T"), 2))
        yield Sample((make(rng, (1, 2, 7), dtype, "distinct"), 3),
                     {"stride": 2, "padding": 1, "ceil_mode": True})
        yield Sample((make(rng, (3, 9), dtype, "distinct", "strided"), (4,)),
                     {"stride": (3,)}, desc="unbatched")
        yield Sample((make(rng, (0, 2, 4), dtype, "distinct"), 2), desc="empty batch")
        if kind == "max":
            yield Sample((make(rng, (1, 2, 9), dtype, "distinct"), 3), {"dilation": 2})
        else:
            yield Sample((make(rng, (1, 2, 6), dtype), 3),
                         {"padding": 1, "count_include_pad": False})

    return gen


def _pool3d_samples(kind: str) -> Callable:
    def gen(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample((make(rng, (2, 2, 4, 4, 4), dtype, "distinct", "T"), 2))
        yield Sample((make(rng, (1, 2, 5, 6, 5), dtype, "distinct"), (3, 2, 3)),
                     {"stride": (2, 1, 2), "padding": (1, 1, 0), "ceil_mode": True})
        yield Sample((make(rng, (2, 4, 3, 5), dtype, "distinct", "strided"), (2, 3, 2)),
                     {"stride": 1}, desc="unbatched")
        yield Sample((make(rng, (0, 2, 3, 3, 3), dtype, "distinct"), 2), desc="empty batch")
        if kind == "max":
            yield Sample((make(rng, (1, 1, 5, 5, 6), dtype, "distinct"), 2),
                         {"dilation": (2, 1, 2)})
        else:
            yield Sample((make(rng, (1, 2, 4, 5, 5), dtype), 3),
                         {"stride": 2, "padding": 1, "count_include_pad": False})
            yield Sample((make(rng, (1, 1, 4, 4, 6), dtype), (2, 2, 3)),
                         {"divisor_override": 5})

    return gen


_MAX_SKIPS = {"grad2": "no second derivative through max pooling"}
for _n, _samples in ((1, _pool1d_samples), (3, _pool3d_samples)):
    add(OpInfo(name=f"F.max_pool{_n}d", op=getattr(F, f"max_pool{_n}d"),
               ref=_pool_fn("max", _n), torch_ref=f"torch.nn.functional.max_pool{_n}d",
               sample_fn=_samples("max"), skips=_MAX_SKIPS))
    add(OpInfo(name=f"F.avg_pool{_n}d", op=getattr(F, f"avg_pool{_n}d"),
               ref=_pool_fn("avg", _n), torch_ref=f"torch.nn.functional.avg_pool{_n}d",
               sample_fn=_samples("avg"), supports_grad2=True))


def _adaptive1d_ref(kind: str) -> Callable:
    def ref(x: np.ndarray, size: Any) -> np.ndarray:
        size = size[0] if isinstance(size, (list, tuple)) else size
        n = x.shape[-1]
        cols = []
        for i in range(size):
            lo, hi = i * n // size, -(-(i + 1) * n // size)
            part = x[..., lo:hi]
            cols.append(part.max(-1) if kind == "max" else part.mean(-1))
        return np.stack(cols, -1).astype(x.dtype)

    return ref


def _adaptive1d_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (2, 3, 7), dtype, "distinct", "T"), 3))
    yield Sample((make(rng, (1, 2, 8), dtype, "distinct"), (4,)), desc="divisible")
    yield Sample((make(rng, (3, 5), dtype, "distinct", "strided"), 1), desc="unbatched")
    yield Sample((make(rng, (0, 2, 4), dtype, "distinct"), 2), desc="empty batch")


for _kind in ("avg", "max"):
    add(OpInfo(name=f"F.adaptive_{_kind}_pool1d", op=getattr(F, f"adaptive_{_kind}_pool1d"),
               ref=_adaptive1d_ref(_kind), torch_ref=f"torch.nn.functional.adaptive_{_kind}_pool1d",
               sample_fn=_adaptive1d_samples, supports_grad2=_kind == "avg",
               skips={} if _kind == "avg" else _MAX_SKIPS))


# --------------------------------------------------------------------------------------
# transposed convolution: the reference scatters every input element through the kernel


def _conv_transpose_ref(x: np.ndarray, w: np.ndarray, b: Any = None, stride: Any = 1,
                        padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                        dilation: Any = 1) -> np.ndarray:
    n = w.ndim - 2
    unbatched = x.ndim == n + 1
    if unbatched:
        x = x[None]
    s, p, op, d = (_tup(v, n) for v in (stride, padding, output_padding, dilation))
    cin, og = w.shape[0], w.shape[1]
    cg = cin // groups
    spatial = x.shape[2:]
    outs = [(spatial[i] - 1) * s[i] - 2 * p[i] + d[i] * (w.shape[2 + i] - 1) + op[i] + 1
            for i in range(n)]
    full = [outs[i] + 2 * p[i] + s[i] + d[i] * w.shape[2 + i] for i in range(n)]
    y = np.zeros((x.shape[0], og * groups, *full), np.float64)
    for g in range(groups):
        xs = x[:, g * cg:(g + 1) * cg].astype(np.float64)
        ws = w[g * cg:(g + 1) * cg].astype(np.float64)
        for pos in itertools.product(*[range(v) for v in spatial]):
            contrib = np.einsum("nc,co...->no...", xs[(slice(None), slice(None)) + pos], ws)
            for tap in itertools.product(*[range(v) for v in w.shape[2:]]):
                at = tuple(pos[i] * s[i] + tap[i] * d[i] for i in range(n))
                y[(slice(None), slice(g * og, (g + 1) * og)) + at] += \
                    contrib[(slice(None), slice(None)) + tap]
    crop = tuple(slice(p[i], p[i] + outs[i]) for i in range(n))
    y = y[(slice(None), slice(None)) + crop]
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * n)
    y = y.astype(x.dtype)
    return y[0] if unbatched else y


def _convt2d_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (2, 4, 3, 3), dtype, layout="T"), make(rng, (4, 3, 3, 2), dtype),
                  make(rng, (3,), dtype)), {"stride": 2, "padding": 1, "output_padding": 1})
    yield Sample((make(rng, (1, 4, 4, 3), dtype), make(rng, (4, 1, 2, 3), dtype)),
                 {"stride": (2, 3), "groups": 2, "dilation": (1, 2), "output_padding": (1, 2)})
    yield Sample((make(rng, (1, 2, 3, 4), dtype), make(rng, (2, 2, 3, 2), dtype)),
                 {"stride": (1, 2), "dilation": (3, 1), "output_padding": (2, 1)},
                 desc="output_padding >= stride, < dilation")
    yield Sample((make(rng, (2, 3, 3), dtype, layout="strided"), make(rng, (2, 3, 2, 2),
                                                                      dtype)),
                 {"padding": (1, 0)}, desc="unbatched")
    yield Sample((make(rng, (0, 2, 3, 3), dtype), make(rng, (2, 2, 3, 3), dtype)),
                 desc="empty batch")


def _convt1d_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (2, 4, 5), dtype, layout="T"), make(rng, (4, 3, 3), dtype),
                  make(rng, (3,), dtype)), {"stride": 2, "padding": 1, "output_padding": 1})
    yield Sample((make(rng, (1, 4, 6), dtype), make(rng, (4, 2, 2), dtype)),
                 {"groups": 2, "dilation": 3})
    yield Sample((make(rng, (2, 5), dtype, layout="strided"), make(rng, (2, 3, 4), dtype)),
                 {"stride": 3}, desc="unbatched")
    yield Sample((make(rng, (0, 2, 4), dtype), make(rng, (2, 1, 3), dtype)), desc="empty batch")


_CONV_TOL = {"float32": (1e-5, 1e-5)}
add(OpInfo(name="F.conv_transpose2d", op=F.conv_transpose2d, ref=_conv_transpose_ref,
           torch_ref="torch.nn.functional.conv_transpose2d", sample_fn=_convt2d_samples,
           supports_grad2=True, tol=_CONV_TOL, torch_tol=_CONV_TOL,
           torch_note="summation order: atol 1e-5",
           error_fn=lambda: [ErrorCase((np.ones((1, 2, 3, 3), np.float32),
                                        np.ones((2, 1, 3, 3), np.float32)),
                                       {"stride": 2, "output_padding": 2},
                                       exc=ValueArgumentError,
                                       match="conv_transpose2d: output_padding"),
                             ErrorCase((np.ones((1, 3, 3, 3), np.float32),
                                        np.ones((2, 1, 3, 3), np.float32)), exc=ShapeError,
                                       match="conv_transpose2d: input has 3 channels")]))
add(OpInfo(name="F.conv_transpose1d", op=F.conv_transpose1d, ref=_conv_transpose_ref,
           torch_ref="torch.nn.functional.conv_transpose1d", sample_fn=_convt1d_samples,
           supports_grad2=True, tol=_CONV_TOL, torch_tol=_CONV_TOL,
           torch_note="summation order: atol 1e-5"))


# --------------------------------------------------------------------------------------
# interpolate: the reference follows torch's formulas one output element at a time


def _interp_ref(x: np.ndarray, size: Any = None, scale_factor: Any = None,
                mode: str = "nearest", align_corners: Any = None) -> np.ndarray:
    n = x.ndim - 2
    spatial = x.shape[2:]
    if size is not None:
        outs, scales = list(_tup(size, n)), [None] * n
    else:
        sf = _tup(scale_factor, n)
        outs = [int(math.floor(spatial[i] * sf[i])) for i in range(n)]
        scales = [float(v) for v in sf]
    y = x.astype(np.float64)
    for i in range(n):
        insz, out, dim = spatial[i], outs[i], 2 + i
        ct = np.float64 if (x.dtype == np.float64 and mode != "nearest") else np.float32
        if align_corners and mode not in ("nearest", "nearest-exact"):
            sc = ct((insz - 1) / (out - 1)) if out > 1 else ct(0)
        else:
            sc = ct(1.0 / scales[i]) if scales[i] is not None else ct(insz / out)
        rows = []
        for o in range(out):
            if mode == "nearest":
                src = min(int(np.floor(ct(o) * sc)), insz - 1)
                rows.append(np.take(y, src, axis=dim))
            elif mode == "nearest-exact":
                src = min(int(np.floor((ct(o) + ct(0.5)) * sc)), insz - 1)
                rows.append(np.take(y, src, axis=dim))
            else:
                src = ct(o) * sc if align_corners else max((ct(o) + ct(0.5)) * sc - ct(0.5), 0)
                i0 = min(int(src), insz - 1)
                i1 = min(i0 + 1, insz - 1)
                lam = float(src - i0)
                rows.append(np.take(y, i0, axis=dim) * (1 - lam) +
                            np.take(y, i1, axis=dim) * lam)
        y = np.stack(rows, axis=dim)
    return y.astype(x.dtype)


def _interp_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    x4 = make(rng, (2, 3, 4, 5), dtype, layout="T")
    yield Sample((x4,), {"scale_factor": 2})
    yield Sample((x4,), {"size": (7, 3)})
    yield Sample((x4,), {"scale_factor": 1.5, "mode": "nearest-exact"})
    for ac in (False, True):
        yield Sample((x4,), {"size": (6, 9), "mode": "bilinear", "align_corners": ac})
        yield Sample((x4,), {"scale_factor": (2, 0.5), "mode": "bilinear", "align_corners": ac})
    yield Sample((make(rng, (2, 3, 5), dtype),), {"scale_factor": 2.5, "mode": "linear"})
    yield Sample((make(rng, (1, 2, 3, 4, 3), dtype),),
                 {"size": (4, 6, 5), "mode": "trilinear", "align_corners": True})
    yield Sample((make(rng, (1, 2, 3, 4), dtype, layout="strided"),), {"size": 5},
                 desc="nearest, square size")
    yield Sample((make(rng, (0, 2, 3, 3), dtype),), {"scale_factor": 2, "mode": "bilinear"},
                 desc="empty batch")


add(OpInfo(name="F.interpolate", op=F.interpolate, ref=_interp_ref,
           torch_ref="torch.nn.functional.interpolate", sample_fn=_interp_samples,
           supports_grad2=True,
           error_fn=lambda: [ErrorCase((np.ones((1, 1, 4), np.float32),),
                                       {"size": 3, "mode": "bilinear"}, exc=ShapeError,
                                       match="interpolate: mode 'bilinear' needs 4-D"),
                             ErrorCase((np.ones((1, 1, 4, 4), np.float32),),
                                       {"size": 3, "scale_factor": 2}, exc=ArgumentError,
                                       match="exactly one of size and scale_factor")]))


# --------------------------------------------------------------------------------------
# randperm (a random primitive: the NumPy reference draws with Kiln's seed)


def _randperm_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((), {"n": 10, "dtype": "int64"})
    yield Sample((), {"n": 5, "dtype": "float32"})
    yield Sample((), {"n": 0, "dtype": "int64"})


add(OpInfo(name="randperm", op=kiln.ops.randperm,
           ref=lambda n, dtype: np.random.default_rng(SEED).permutation(n).astype(dtype),
           sample_fn=_randperm_samples, dtypes=("float32",), supports_grad=False,
           primitives=("randperm",), random=True, exact=True,
           skips={"torch": "torch draws from another generator: the NumPy reference with "
                           "Kiln's seed is exact instead"},
           error_fn=lambda: [ErrorCase((), {"n": 3, "dtype": "bool"}, exc=kiln.errors.DTypeError,
                                       match="randperm: dtype must be")]))
