"""Op table entries for ``kiln.nn.functional``: activations, normalization, linear layers,
attention, convolution/pooling/padding composites."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import opinfo_refs as R
from opinfo_base import (
    FLOAT_DTYPES,
    KINK,
    SEED,
    ErrorCase,
    OpInfo,
    Sample,
    _tf,
    _torch,
    make,
)

import kiln.nn.functional as F
from kiln.errors import ArgumentError, IndexError_, ShapeError

ENTRIES: list[OpInfo] = []


def add(info: OpInfo) -> OpInfo:
    ENTRIES.append(info)
    return info


def _f64(fn: Callable) -> Callable:
    """A reference computed in float64 and returned in the input's dtype."""
    def ref(x: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(fn(x.astype(np.float64), *args, **kwargs)).astype(x.dtype)

    return ref


# --------------------------------------------------------------------------------------
# activations

ACT_SHAPES = [((3, 4), "T"), ((2, 3, 4), "strided"), ((), "contig"), ((0, 2), "contig"),
              ((5,), "contig"), ((4, 1), "contig")]


def _act_samples(domain: Any = "nonzero", kwargs: tuple = ({},), kinks: tuple = ()
                 ) -> Callable:
    def gen(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
        for k, (shape, layout) in enumerate(ACT_SHAPES):
            yield Sample((make(rng, shape, dtype, domain, layout),), dict(kwargs[k % len(
                kwargs)]))
        for values, kw in kinks:
            yield Sample((np.array(values, dtype),), dict(kw), desc=f"kinks {values}",
                         skips=KINK)

    return gen


def act(name: str, ref: Callable, domain: Any = "nonzero", kwargs: tuple = ({},),
        torch_name: str | None = None, kinks: tuple = (), **kw: Any) -> OpInfo:
    """``kinks``: (values, kwargs) at the function's kinks, checked against torch's gradient."""
    return add(OpInfo(name=f"F.{name}", op=getattr(F, name), ref=_f64(ref),
                      torch_ref=f"torch.nn.functional.{torch_name or name}",
                      sample_fn=_act_samples(domain, kwargs, kinks), supports_grad2=True, **kw))


def _gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + R.erf(x / math.sqrt(2)))


def _big(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    # Crosses softplus's threshold (beta * x > 20) on both sides, away from it.
    return rng.choice([-30.0, -3.0, -0.5, 0.5, 3.0, 25.0, 40.0], shape)


act("relu", lambda x: np.maximum(x, 0), kinks=(([0.0, -1.0, 1.0], {}),))
act("relu6", lambda x: np.clip(x, 0, 6), lambda rng, s: rng.choice([-1.0, 2.5, 7.0], s)
    + rng.uniform(-0.3, 0.3, s), kinks=(([0.0, 6.0, 3.0, -1.0, 7.0], {}),))
act("hardtanh", lambda x, min_val=-1.0, max_val=1.0: np.clip(x, min_val, max_val),
    lambda rng, s: rng.choice([-2.0, -0.5, 0.5, 2.0], s) + rng.uniform(-0.3, 0.3, s),
    kwargs=({}, {"min_val": -0.25, "max_val": 1.5}),
    kinks=(([-1.0, 1.0, 0.0], {}), ([-0.25, 1.5], {"min_val": -0.25, "max_val": 1.5})))
act("leaky_relu", lambda x, negative_slope=0.01: np.where(x > 0, x, x * negative_slope),
    kwargs=({}, {"negative_slope": 0.2}), kinks=(([0.0, 1.0], {"negative_slope": 0.2}),))
act("elu", lambda x, alpha=1.0: np.where(x > 0, x, alpha * np.expm1(x)),
    kwargs=({}, {"alpha": 0.5}), kinks=(([0.0, -1.0], {}), ([0.0], {"alpha": 2.0})))
act("gelu", _gelu, "real", kwargs=({}, {"approximate": "tanh"}),
    error_fn=lambda: [ErrorCase((np.ones(2, np.float32),), {"approximate": "fast"},
                                exc=ArgumentError, match="gelu: approximate must be")])
act("silu", lambda x: x / (1 + np.exp(-x)), "real")
act("mish", lambda x: x * np.tanh(np.log1p(np.exp(x))), "real")
act("softplus", lambda x, beta=1.0, threshold=20.0: R.softplus(x, beta, threshold), _big,
    kwargs=({}, {"beta": 2.0}, {"beta": 0.5, "threshold": 5.0}),
    kinks=(([2.0, 1.0], {"threshold": 2.0}), ([10.0], {"beta": 0.5, "threshold": 5.0})))
act("logsigmoid", lambda x: -np.log1p(np.exp(-x)), "real")
act("tanh", np.tanh, "real")
act("sigmoid", R.sigmoid, "real")


def _softmax_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (3, 4), dtype, layout="T"),), {"dim": -1})
    yield Sample((make(rng, (2, 3, 4), dtype, layout="strided"),), {"dim": 1})
    yield Sample((make(rng, (2, 3), dtype) * 30 + 80.0,), {"dim": 0}, desc="large logits")
    yield Sample((make(rng, (0, 3), dtype),), {"dim": 1})
    yield Sample((make(rng, (), dtype),), {"dim": 0})
    yield Sample((make(rng, (1, 3), dtype),), {"dim": 0})
    yield Sample((np.array([[0.0, -np.inf, 1.0], [-np.inf, 2.0, -np.inf]], dtype),),
                 {"dim": 1}, desc="-inf entries", grad_args=())


for _name, _ref in (("softmax", R.softmax), ("log_softmax", R.log_softmax),
                    ("softmin", lambda x, dim: R.softmax(-x, dim))):
    add(OpInfo(name=f"F.{_name}", op=getattr(F, _name),
               ref=_f64(lambda x, dim, r=_ref: r(x, dim) if x.ndim else r(x[None], 0)[0]),
               torch_ref=f"torch.nn.functional.{_name}", sample_fn=_softmax_samples,
               supports_grad2=True,
               error_fn=lambda n=_name: [ErrorCase((np.ones(3, np.int64),), {"dim": 0},
                                                   exc=ArgumentError,
                                                   match=f"{n}: input must be floating")]))


# --------------------------------------------------------------------------------------
# normalization


def _np_layer_norm(x: np.ndarray, shape: tuple, w: Any = None, b: Any = None,
                   eps: float = 1e-5) -> np.ndarray:
    x64 = x.astype(np.float64)
    dims = tuple(range(x.ndim - len(shape), x.ndim))
    mu = x64.mean(dims, keepdims=True)
    var = ((x64 - mu) ** 2).mean(dims, keepdims=True)
    out = (x64 - mu) / np.sqrt(var + eps)
    if w is not None:
        out = out * w
    if b is not None:
        out = out + b
    return out.astype(x.dtype)


def _ln_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (3, 4), dtype, layout="T"), (4,)))
    yield Sample((make(rng, (2, 3, 4), dtype, layout="strided"), (3, 4),
                  make(rng, (3, 4), dtype), make(rng, (3, 4), dtype)))
    yield Sample((make(rng, (2, 5), dtype), (5,), make(rng, (5,), dtype), None), {"eps": 1e-3})
    yield Sample((make(rng, (0, 1, 4), dtype), (4,)))


add(OpInfo(name="F.layer_norm", op=F.layer_norm, ref=_np_layer_norm,
           torch_ref="torch.nn.functional.layer_norm", sample_fn=_ln_samples,
           supports_grad2=True, tol={"float32": (1e-5, 1e-5)},
           torch_tol={"float32": (1e-5, 1e-5)}, torch_note="normalized values near 0: atol "
                                                             "1e-5",
           error_fn=lambda: [ErrorCase((np.ones((2, 3), np.float32), (4,)), exc=ShapeError,
                                       match="layer_norm: normalized_shape")]))


def _np_rms_norm(x: np.ndarray, shape: tuple, w: Any = None, eps: Any = None) -> np.ndarray:
    if eps is None:
        eps = float(np.finfo(x.dtype).eps)
    x64 = x.astype(np.float64)
    dims = tuple(range(x.ndim - len(shape), x.ndim))
    out = x64 / np.sqrt((x64 ** 2).mean(dims, keepdims=True) + eps)
    return (out * w if w is not None else out).astype(x.dtype)


add(OpInfo(name="F.rms_norm", op=F.rms_norm, ref=_np_rms_norm,
           torch_ref="torch.nn.functional.rms_norm",
           sample_fn=lambda dtype, rng: [
               Sample((make(rng, (3, 4), dtype, layout="T"), (4,))),
               Sample((make(rng, (2, 3, 4), dtype), (3, 4), make(rng, (3, 4), dtype))),
               Sample((make(rng, (2, 3), dtype), (3,), None), {"eps": 1e-2}),
               Sample((make(rng, (0, 1, 4), dtype), (4,)))],
           supports_grad2=True))


def _np_batch_norm(x: np.ndarray, rm: Any, rv: Any, w: Any = None, b: Any = None,
                   training: bool = False, momentum: float = 0.1,
                   eps: float = 1e-5) -> tuple:
    x64 = x.astype(np.float64)
    dims = (0,) + tuple(range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    if training:
        mu = x64.mean(dims, keepdims=True)
        var = ((x64 - mu) ** 2).mean(dims, keepdims=True)
        n = x64.size // x.shape[1]
        if rm is not None:
            rm = (1 - momentum) * rm + momentum * mu.reshape(-1)
            rv = (1 - momentum) * rv + momentum * var.reshape(-1) * n / (n - 1)
    else:
        mu, var = rm.reshape(shape), rv.reshape(shape)
    out = (x64 - mu) / np.sqrt(var + eps)
    if w is not None:
        out = out * w.reshape(shape)
    if b is not None:
        out = out + b.reshape(shape)
    stats = () if rm is None else (rm.astype(x.dtype), rv.astype(x.dtype))
    return (out.astype(x.dtype),) + stats


def _kiln_batch_norm(x: Any, rm: Any, rv: Any, *rest: Any, **kwargs: Any) -> tuple:
    # Running stats are updated in place: return them so every check sees the update
    # (fresh copies, so the sample's arrays stay untouched).
    rm = rm.clone() if rm is not None else None
    rv = rv.clone() if rv is not None else None
    out = F.batch_norm(x, rm, rv, *rest, **kwargs)
    return (out,) + (() if rm is None else (rm, rv))


def _torch_batch_norm(x: Any, rm: Any, rv: Any, *rest: Any, **kwargs: Any) -> tuple:
    rm = rm.clone() if rm is not None else None
    rv = rv.clone() if rv is not None else None
    out = _tf().batch_norm(x, rm, rv, *rest, **kwargs)
    return (out,) + (() if rm is None else (rm, rv))


def _bn_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    c = 3
    stats = lambda: (make(rng, (c,), dtype), make(rng, (c,), dtype, "positive"))  # noqa: E731
    affine = lambda: (make(rng, (c,), dtype), make(rng, (c,), dtype))  # noqa: E731
    yield Sample((make(rng, (4, c), dtype, layout="T"), *stats(), *affine()),
                 {"training": True}, grad_args=(0, 3, 4))
    yield Sample((make(rng, (2, c, 3, 2), dtype, layout="strided"), *stats()),
                 {"training": True, "momentum": 0.3}, grad_args=(0,))
    yield Sample((make(rng, (2, c, 4), dtype), None, None, *affine()), {"training": True},
                 grad_args=(0, 3, 4))
    yield Sample((make(rng, (4, c), dtype), *stats(), *affine()), {"training": False},
                 grad_args=(0, 3, 4))
    yield Sample((make(rng, (2, c, 2, 2), dtype, layout="permuted"), *stats()),
                 {"training": False, "eps": 1e-3}, grad_args=(0,))
    yield Sample((make(rng, (0, c), dtype), *stats()), {"training": False}, grad_args=(0,))
    yield Sample((make(rng, (2, c, 1), dtype), *stats()), {"training": True}, grad_args=(0,))


add(OpInfo(name="F.batch_norm", op=_kiln_batch_norm, ref=_np_batch_norm,
           torch_ref=_torch_batch_norm, sample_fn=_bn_samples, supports_grad2=True,
           tol={"float32": (1e-5, 1e-5)}, torch_tol={"float32": (1e-5, 1e-5)},
           torch_note="normalized values near 0: atol 1e-5",
           error_fn=lambda: [ErrorCase((np.ones((1, 3), np.float32), None, None),
                                       {"training": True}, exc=ShapeError,
                                       match="batch_norm: expected more than 1 value per "
                                       "channel")]))


def _np_group_norm(x: np.ndarray, groups: int, w: Any = None, b: Any = None,
                   eps: float = 1e-5) -> np.ndarray:
    x64 = x.astype(np.float64)
    g = x64.reshape(x.shape[0], groups, int(np.prod(x.shape[1:])) // groups)
    mu = g.mean(2, keepdims=True)
    var = ((g - mu) ** 2).mean(2, keepdims=True)
    out = ((g - mu) / np.sqrt(var + eps)).reshape(x.shape)
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    if w is not None:
        out = out * w.reshape(shape)
    if b is not None:
        out = out + b.reshape(shape)
    return out.astype(x.dtype)


add(OpInfo(name="F.group_norm", op=F.group_norm, ref=_np_group_norm,
           torch_ref="torch.nn.functional.group_norm",
           sample_fn=lambda dtype, rng: [
               Sample((make(rng, (2, 4, 3), dtype, layout="T"), 2, make(rng, (4,), dtype),
                       make(rng, (4,), dtype))),
               Sample((make(rng, (1, 6, 2, 2), dtype, layout="strided"), 3)),
               Sample((make(rng, (2, 3), dtype), 1)),
               Sample((make(rng, (0, 4, 3), dtype), 2))],
           supports_grad2=True, tol={"float32": (1e-5, 1e-5)},
           torch_tol={"float32": (1e-5, 1e-5)}, torch_note="normalized values near 0: atol "
                                                             "1e-5",
           error_fn=lambda: [ErrorCase((np.ones((2, 3, 2), np.float32), 2), exc=ShapeError,
                                       match="group_norm: 3 channels do not split into 2")]))


def _np_normalize(x: np.ndarray, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Any:
    n = np.linalg.norm(x.astype(np.float64), ord=p, axis=dim, keepdims=True)
    return (x / np.maximum(n, eps)).astype(x.dtype)


add(OpInfo(name="F.normalize", op=F.normalize, ref=_np_normalize,
           torch_ref="torch.nn.functional.normalize",
           sample_fn=lambda dtype, rng: [
               Sample((make(rng, (3, 4), dtype, "nonzero", "T"),)),
               Sample((make(rng, (2, 3, 4), dtype, "nonzero"),), {"p": 1.0, "dim": -1}),
               Sample((make(rng, (2, 3), dtype, "distinct"),), {"p": float("inf"), "dim": 0}),
               Sample((make(rng, (2, 3), dtype, "positive"),), {"p": 3.0}),
               Sample((np.zeros((2, 3), dtype),), {}, desc="zero rows", skips=KINK),
               Sample((make(rng, (0, 1, 3), dtype, "nonzero"),), {"dim": 2})],
           supports_grad2=True))


def _np_cos(x1: np.ndarray, x2: np.ndarray, dim: int = 1, eps: float = 1e-8) -> np.ndarray:
    a, b = x1.astype(np.float64), x2.astype(np.float64)
    na = np.maximum(np.sqrt((a * a).sum(dim, keepdims=True)), eps)
    nb = np.maximum(np.sqrt((b * b).sum(dim, keepdims=True)), eps)
    return ((a / na) * (b / nb)).sum(dim).astype(x1.dtype)


add(OpInfo(name="F.cosine_similarity", op=F.cosine_similarity, ref=_np_cos,
           torch_ref="torch.nn.functional.cosine_similarity",
           sample_fn=lambda dtype, rng: [
               Sample((make(rng, (3, 4), dtype, layout="T"), make(rng, (3, 4), dtype))),
               Sample((make(rng, (2, 3, 4), dtype), make(rng, (1, 3, 4), dtype, layout="strided")),
                      {"dim": -1}),
               Sample((make(rng, (0, 3), dtype), make(rng, (1, 3), dtype))),
               Sample((np.array([[0.0, 0.0], [1.0, 2.0]], dtype),
                       np.array([[1.0, 1.0], [0.0, 0.0]], dtype)), desc="zero vectors",
                      skips=KINK)],
           supports_grad2=True))


# --------------------------------------------------------------------------------------
# linear layers, embedding, dropout, one_hot


def _np_linear(x: np.ndarray, w: np.ndarray, b: Any = None) -> np.ndarray:
    out = x.astype(np.float64) @ w.astype(np.float64).T
    return (out + b if b is not None else out).astype(x.dtype)


_MM_TOL = {"float32": (1e-5, 1e-5)}
add(OpInfo(name="F.linear", op=F.linear, ref=_np_linear, torch_ref="torch.nn.functional.linear",
           sample_fn=lambda dtype, rng: [
               Sample((make(rng, (3, 4), dtype, layout="T"), make(rng, (5, 4), dtype),
                       make(rng, (5,), dtype))),
               Sample((make(rng, (2, 3, 4), dtype, layout="strided"),
                       make(rng, (2, 4), dtype, layout="T"))),
               Sample((make(rng, (4,), dtype), make(rng, (3, 4), dtype), make(rng, (3,), dtype))),
               Sample((make(rng, (0, 4), dtype), make(rng, (2, 4), dtype))),
               Sample((make(rng, (1, 4), dtype), make(rng, (1, 4), dtype),
                       make(rng, (1,), dtype)))],
           supports_grad2=True, tol=_MM_TOL, torch_tol=_MM_TOL,
           torch_note="BLAS summation order: atol 1e-5"))


def _np_bilinear(x1: np.ndarray, x2: np.ndarray, w: np.ndarray, b: Any = None) -> np.ndarray:
    out = np.einsum("...i,oij,...j->...o", x1.astype(np.float64), w, x2)
    return (out + b if b is not None else out).astype(x1.dtype)


add(OpInfo(name="F.bilinear", op=F.bilinear, ref=_np_bilinear,
           torch_ref="torch.nn.functional.bilinear",
           sample_fn=lambda dtype, rng: [
               Sample((make(rng, (3, 4), dtype), make(rng, (3, 2), dtype, layout="T"),
                       make(rng, (5, 4, 2), dtype), make(rng, (5,), dtype))),
               Sample((make(rng, (2, 3, 4), dtype), make(rng, (2, 3, 2), dtype),
                       make(rng, (1, 4, 2), dtype, layout="strided"))),
               Sample((make(rng, (0, 4), dtype), make(rng, (0, 2), dtype),
                       make(rng, (3, 4, 2), dtype)))],
           supports_grad2=True, tol=_MM_TOL, torch_tol=_MM_TOL,
           torch_note="summation order: atol 1e-5"))


def _np_embedding(idx: np.ndarray, w: np.ndarray, padding_idx: Any = None) -> np.ndarray:
    return w[idx]


add(OpInfo(name="F.embedding", op=F.embedding, ref=_np_embedding,
           torch_ref="torch.nn.functional.embedding",
           sample_fn=lambda dtype, rng: [
               Sample((rng.integers(0, 5, (2, 3)), make(rng, (5, 4), dtype, layout="T"))),
               Sample((np.array([1, 1, 4, 0]), make(rng, (5, 3), dtype)), {"padding_idx": 1},
                      skips={"grad": "padding_idx rows get no gradient by definition"}),
               Sample((np.array(3), make(rng, (4, 2), dtype))),
               Sample((np.array([-1, 0]), make(rng, (3, 2), dtype)), desc="negative index"),
               Sample((np.zeros((0,), np.int64), make(rng, (3, 2), dtype))),
               Sample((np.array([[2]]), make(rng, (4, 1), dtype)))],
           supports_grad2=True,
           skips={"torch": "torch.nn.functional.embedding refuses negative indices; Kiln "
                           "wraps them like x[idx]"},
           error_fn=lambda: [ErrorCase((np.array([0.0]), np.ones((2, 2), np.float32)),
                                       exc=ArgumentError, match="embedding: indices must be"),
                             # Traced, the gather inside raises when the graph runs.
                             ErrorCase((np.array([[1, 5]]), np.ones((3, 2), np.float32)),
                                       exc=IndexError_, match="index 5 is out of")]))
add(OpInfo(name="F.embedding(no negatives)", op=F.embedding, ref=_np_embedding,
           torch_ref="torch.nn.functional.embedding",
           sample_fn=lambda dtype, rng: [
               Sample((rng.integers(0, 5, (2, 3)), make(rng, (5, 4), dtype, layout="T"))),
               Sample((np.array([1, 1, 4, 0]), make(rng, (5, 3), dtype)), {"padding_idx": 1},
                      skips={"grad": "padding_idx rows get no gradient by definition"}),
               Sample((np.zeros((0, 1), np.int64), make(rng, (3, 1), dtype)))]))


def _np_dropout(x: np.ndarray, p: float = 0.5, training: bool = True) -> np.ndarray:
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = np.random.default_rng(SEED).random(x.shape).astype(x.dtype) >= p
    return (x * np.where(keep, 1.0 / (1.0 - p), 0.0).astype(x.dtype)).astype(x.dtype)


add(OpInfo(name="F.dropout", op=F.dropout, ref=_np_dropout, random=True,
           torch_ref="torch.nn.functional.dropout",
           sample_fn=lambda dtype, rng: [
               Sample((make(rng, (3, 4), dtype, layout="T"),), {"p": 0.0}),
               Sample((make(rng, (3, 4), dtype),), {"p": 0.5, "training": False}),
               Sample((make(rng, (2, 5), dtype, layout="strided"),), {"p": 0.3},
                      desc="random mask (reference uses Kiln's seed)",
                      skips={"torch": "masks come from different generators"}),
               Sample((make(rng, (2, 2), dtype),), {"p": 1.0}),
               Sample((make(rng, (0, 1), dtype),), {"p": 0.3})],
           supports_grad2=True,
           error_fn=lambda: [ErrorCase((np.ones(2, np.float32),), {"p": 1.5},
                                       exc=ArgumentError, match="dropout: p must be in")]))


def _np_one_hot(idx: np.ndarray, num_classes: int = -1) -> np.ndarray:
    n = int(idx.max()) + 1 if num_classes < 0 else num_classes
    return (idx[..., None] == np.arange(n)).astype(np.int64)


add(OpInfo(name="F.one_hot", op=F.one_hot, ref=_np_one_hot,
           torch_ref=lambda idx, num_classes=-1: _tf().one_hot(idx, num_classes),
           sample_fn=lambda dtype, rng: [Sample((rng.integers(0, 4, (2, 3)),), {"num_classes": 5}),
                                         Sample((np.array([0, 2, 1]),), skips={
                                             "trace": "num_classes=-1 reads the data"}),
                                         Sample((np.array(3),), {"num_classes": 4}),
                                         Sample((make(rng, (3, 2), "int64", "positive",
                                                      "T"),), {"num_classes": 5}),
                                         Sample((np.zeros((0, 1), np.int64),),
                                                {"num_classes": 3})],
           dtypes=("int64",), supports_grad=False, exact=True,
           error_fn=lambda: [ErrorCase((np.array([0.0]),), exc=ArgumentError,
                                       match="one_hot: expected an integer tensor")]))


# --------------------------------------------------------------------------------------
# attention


def _np_sdpa(q: np.ndarray, k: np.ndarray, v: np.ndarray, attn_mask: Any = None,
             is_causal: bool = False, scale: Any = None, enable_gqa: bool = False) -> np.ndarray:
    q64, k64, v64 = (a.astype(np.float64) for a in (q, k, v))
    if enable_gqa and q.shape[-3] != k.shape[-3]:
        rep = q.shape[-3] // k.shape[-3]
        k64 = np.repeat(k64, rep, axis=-3)
        v64 = np.repeat(v64, rep, axis=-3)
    s = q64 @ np.swapaxes(k64, -1, -2) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if is_causal:
        s = np.where(np.tril(np.ones((q.shape[-2], k.shape[-2]), bool)), s, -np.inf)
    elif attn_mask is not None:
        s = np.where(attn_mask, s, -np.inf) if attn_mask.dtype == bool else s + attn_mask
    return (R.softmax(s, -1) @ v64).astype(q.dtype)


def _sdpa_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    q, k, v = (make(rng, (1, 2, 3, 4), dtype, layout=lay) for lay in ("contig", "T", "strided"))
    yield Sample((q, k, v))
    yield Sample((q, k, v), {"is_causal": True})
    yield Sample((make(rng, (2, 3, 4), dtype), make(rng, (2, 5, 4), dtype),
                  make(rng, (2, 5, 3), dtype), make(rng, (3, 5), "bool") | (np.arange(5) == 0)),
                 desc="bool mask (every row keeps one key)")
    yield Sample((q, k, v, make(rng, (3, 3), dtype)), {"scale": 0.3}, desc="float mask")
    yield Sample((make(rng, (1, 4, 3, 2), dtype), make(rng, (1, 2, 3, 2), dtype),
                  make(rng, (1, 2, 3, 2), dtype)), {"enable_gqa": True})
    yield Sample((make(rng, (0, 2, 3, 4), dtype), make(rng, (0, 2, 5, 4), dtype),
                  make(rng, (0, 2, 5, 4), dtype)), desc="empty batch")


add(OpInfo(name="F.scaled_dot_product_attention", op=F.scaled_dot_product_attention,
           ref=_np_sdpa, torch_ref="torch.nn.functional.scaled_dot_product_attention",
           sample_fn=_sdpa_samples, grad_args=(0, 1, 2), supports_grad2=True,
           tol=_MM_TOL, torch_tol=_MM_TOL, torch_note="fused softmax in torch: atol 1e-5"))


# --------------------------------------------------------------------------------------
# convolution, pooling and padding composites


def _conv2d_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (2, 3, 5, 5), dtype, layout="T"), make(rng, (4, 3, 3, 3), dtype),
                  make(rng, (4,), dtype)), {"padding": 1})
    yield Sample((make(rng, (1, 2, 6, 5), dtype), make(rng, (2, 2, 2, 3), dtype)),
                 {"padding": "same", "dilation": (2, 1)}, desc="same, even kernel")
    yield Sample((make(rng, (2, 4, 5, 5), dtype, layout="strided"),
                  make(rng, (2, 2, 3, 1), dtype)), {"stride": (2, 1), "groups": 2,
                                                     "padding": "valid"})
    yield Sample((make(rng, (3, 4, 4), dtype), make(rng, (2, 3, 2, 2), dtype)), {"stride": 2},
                 desc="unbatched")
    yield Sample((make(rng, (0, 2, 4, 4), dtype), make(rng, (3, 2, 3, 3), dtype)),
                 desc="empty batch")


_CONV_TOL = {"float32": (1e-5, 1e-5)}
add(OpInfo(name="F.conv2d", op=F.conv2d, ref=lambda x, w, b=None, stride=1, padding=0,
           dilation=1, groups=1: _np_conv2d(x, w, b, stride, padding, dilation, groups),
           torch_ref="torch.nn.functional.conv2d", sample_fn=_conv2d_samples,
           supports_grad2=True, tol=_CONV_TOL, torch_tol=_CONV_TOL,
           torch_note="summation order: atol 1e-5",
           error_fn=lambda: [ErrorCase((np.ones((2, 4, 4), np.float32),
                                        np.ones((1, 1, 3, 3), np.float32)), exc=ShapeError,
                                       match=r"conv2d: input has 2 channels"),
                             ErrorCase((np.ones((1, 1, 4, 4), np.float32),
                                        np.ones((1, 1, 3, 3), np.float32)),
                                       {"padding": "same", "stride": 2}, exc=ArgumentError,
                                       match="conv2d: padding='same' is not supported")]))


def _pair(v: Any) -> tuple:
    return (v, v) if isinstance(v, int) else tuple(v)


def _np_conv2d(x: np.ndarray, w: np.ndarray, b: Any, stride: Any, padding: Any, dilation: Any,
               groups: int) -> np.ndarray:
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    s, d = _pair(stride), _pair(dilation)
    if padding == "valid":
        padding = 0
    if padding == "same":
        lo, hi = [], []
        for i in range(2):
            total = d[i] * (w.shape[2 + i] - 1)
            lo.append(total // 2)
            hi.append(total - total // 2)
        x = np.pad(x, ((0, 0), (0, 0), (lo[0], hi[0]), (lo[1], hi[1])))
        padding = 0
    out = R.conv2d(x, w, s, _pair(padding), d, groups)
    if b is not None:
        out = out + b.reshape(1, -1, 1, 1)
    return out[0] if unbatched else out


def _conv1d_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (2, 3, 7), dtype, layout="T"), make(rng, (4, 3, 3), dtype),
                  make(rng, (4,), dtype)), {"stride": 2, "padding": 1})
    yield Sample((make(rng, (1, 4, 6), dtype), make(rng, (2, 2, 2), dtype)),
                 {"dilation": 2, "groups": 2})
    yield Sample((make(rng, (2, 5), dtype, layout="strided"), make(rng, (3, 2, 3), dtype)),
                 {"padding": "same"}, desc="unbatched, same")
    yield Sample((make(rng, (0, 2, 5), dtype), make(rng, (3, 2, 3), dtype)), desc="empty batch")


def _np_conv1d(x: np.ndarray, w: np.ndarray, b: Any = None, stride: int = 1, padding: Any = 0,
               dilation: int = 1, groups: int = 1) -> np.ndarray:
    unbatched = x.ndim == 2
    xb = x[None] if unbatched else x
    pad2 = padding if isinstance(padding, str) else (0, padding)
    out = _np_conv2d(xb[:, :, None], w[:, :, None], b, (1, stride), pad2, (1, dilation), groups)
    out = out[:, :, 0]
    return out[0] if unbatched else out


add(OpInfo(name="F.conv1d", op=F.conv1d, ref=_np_conv1d, torch_ref="torch.nn.functional.conv1d",
           sample_fn=_conv1d_samples, supports_grad2=True, tol=_CONV_TOL, torch_tol=_CONV_TOL,
           torch_note="summation order: atol 1e-5"))


def _pool_samples(kinds: str) -> Callable:
    def gen(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample((make(rng, (2, 3, 6, 6), dtype, "distinct", "T"), 2))
        yield Sample((make(rng, (1, 2, 7, 5), dtype, "distinct"), 3),
                     {"stride": 2, "padding": 1, "ceil_mode": True})
        yield Sample((make(rng, (2, 5, 4), dtype, "distinct", "strided"), (2, 3)),
                     {"stride": (1, 2)}, desc="unbatched")
        yield Sample((make(rng, (0, 2, 4, 4), dtype, "distinct"), 2), desc="empty batch")
        if kinds == "max":
            yield Sample((make(rng, (1, 1, 7, 7), dtype, "distinct"), 2), {"dilation": 2})
        else:
            yield Sample((make(rng, (1, 2, 5, 5), dtype), 3),
                         {"padding": 1, "count_include_pad": False})
            yield Sample((make(rng, (1, 1, 4, 6), dtype), (2, 3)), {"divisor_override": 5})

    return gen


def _np_max_pool(x: np.ndarray, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 dilation: Any = 1, ceil_mode: bool = False) -> np.ndarray:
    unbatched = x.ndim == 3
    xb = x[None] if unbatched else x
    k = _pair(kernel_size)
    out = R.max_pool2d(xb, k, k if stride is None else _pair(stride), _pair(padding),
                       _pair(dilation), ceil_mode)[0]
    return out[0] if unbatched else out


def _np_avg_pool(x: np.ndarray, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: Any = None) -> np.ndarray:
    unbatched = x.ndim == 3
    xb = x[None] if unbatched else x
    k = _pair(kernel_size)
    out = R.avg_pool2d(xb, k, k if stride is None else _pair(stride), _pair(padding),
                       ceil_mode, count_include_pad, divisor_override)
    return out[0] if unbatched else out


add(OpInfo(name="F.max_pool2d", op=F.max_pool2d, ref=_np_max_pool,
           torch_ref="torch.nn.functional.max_pool2d", sample_fn=_pool_samples("max"),
           skips={"grad2": "no second derivative through max pooling"}))
add(OpInfo(name="F.avg_pool2d", op=F.avg_pool2d, ref=_np_avg_pool,
           torch_ref="torch.nn.functional.avg_pool2d", sample_fn=_pool_samples("avg"),
           supports_grad2=True))


def _adaptive_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (2, 3, 6, 6), dtype, "distinct", "T"), 1))
    yield Sample((make(rng, (1, 2, 6, 4), dtype, "distinct"), (3, 2)), desc="divisible")
    yield Sample((make(rng, (1, 2, 7, 5), dtype, "distinct", "strided"), (3, 4)),
                 desc="overlapping bins")
    yield Sample((make(rng, (2, 5, 3), dtype, "distinct"), (None, 2)), desc="unbatched, None")
    yield Sample((make(rng, (0, 2, 4, 4), dtype, "distinct"), 2), desc="empty batch")


for _kind in ("avg", "max"):
    add(OpInfo(name=f"F.adaptive_{_kind}_pool2d", op=getattr(F, f"adaptive_{_kind}_pool2d"),
               ref=lambda x, size, k=_kind: R.adaptive_pool2d(x, size, "mean" if k == "avg"
                                                              else "max"),
               torch_ref=f"torch.nn.functional.adaptive_{_kind}_pool2d",
               sample_fn=_adaptive_samples, supports_grad2=_kind == "avg",
               skips={} if _kind == "avg" else {"grad2": "max pooling has no second "
                                                         "derivative"}))


def _pad_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (2, 3), dtype, layout="T"), (1, 2)))
    yield Sample((make(rng, (2, 3, 4), dtype), (1, 0, 2, 1)), {"value": 1.5})
    yield Sample((make(rng, (3, 5), dtype), (-1, 2, 0, -1)), desc="negative pads crop")
    yield Sample((make(rng, (0, 3), dtype), (1, 1)), desc="empty")
    for mode in ("reflect", "replicate", "circular"):
        yield Sample((make(rng, (1, 2, 4, 5), dtype, layout="strided"), (2, 1, 3, 0)),
                     {"mode": mode})
        yield Sample((make(rng, (2, 4), dtype), (3, 3)), {"mode": mode})


add(OpInfo(name="F.pad", op=F.pad, ref=R.pad, torch_ref="torch.nn.functional.pad",
           sample_fn=_pad_samples, supports_grad2=True,
           error_fn=lambda: [ErrorCase((np.ones((2, 3), np.float32), (1, 1, 1)),
                                       exc=ArgumentError, match="pad: expected an even number"),
                             ErrorCase((np.ones((2, 3), np.float32), (3, 0)), {"mode": "reflect"},
                                       exc=ArgumentError, match="pad: reflect padding"),
                             ErrorCase((np.ones((2, 3), np.float32), (1, 1)), {"mode": "wrap"},
                                       exc=ArgumentError, match="pad: mode must be")]))

_ = FLOAT_DTYPES, _torch
