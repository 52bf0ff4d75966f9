"""torch's arithmetic, matrix and index composites: ``lerp``, ``addcmul``, ``addmm``, ``bmm``,
``roll``, ``repeat``, ``tril``, ``cumsum``, ``index_select`` and the like.

Each is plain Python over primitives (DESIGN.md: composites), so autograd, tracing and every
backend need nothing new. They are ``kiln.X`` functions and Tensor methods of the same name
(installed by :func:`install`).
"""

from __future__ import annotations

from typing import Any

from kiln.core import dtypes as dt
from kiln.core import functional as F
from kiln.core import prims as ops
from kiln.core.prims.shapes import fmt_shape, norm_dim
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError
from kiln.symbolic.sizes import SymInt


def _want(fn: str, arg: str, x: Any, ndim: int | None = None) -> Tensor:
    if not isinstance(x, Tensor):
        raise ArgumentError(f"{fn}: {arg} must be a kiln.Tensor, got {type(x).__name__}")
    if ndim is not None and x.ndim != ndim:
        raise ShapeError(f"{fn}: {arg} must be {ndim}-D, got shape {fmt_shape(x.shape)}")
    return x


def _dims(dims: Any) -> tuple:
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        return tuple(dims[0])
    return tuple(dims)


# ------------------------------------------------------------------------------------------
# arithmetic


def true_divide(input: Any, other: Any) -> Tensor:
    """``input / other`` in floating point (torch.true_divide, an alias of div).

    >>> import kiln
    >>> kiln.true_divide(kiln.tensor([3, 4]), 2).tolist()
    [1.5, 2.0]
    """
    return ops.div(input, other)


def round(input: Tensor, *, decimals: int = 0) -> Tensor:  # noqa: A001
    """Round half to even, to ``decimals`` decimal places (torch.round).

    >>> import kiln
    >>> kiln.round(kiln.tensor([1.5, 2.5, 0.125]), decimals=0).tolist()
    [2.0, 2.0, 0.0]
    >>> kiln.round(kiln.tensor([1.2345]), decimals=2).tolist()
    [1.2300000190734863]
    """
    if decimals == 0:
        return ops.round(input)
    scale = 10.0 ** decimals
    return ops.div(ops.round(ops.mul(input, scale)), scale)


def square(input: Tensor) -> Tensor:
    """``input * input``.

    >>> import kiln
    >>> kiln.square(kiln.tensor([-2.0, 3.0])).tolist()
    [4.0, 9.0]
    """
    return ops.mul(input, input)


def clamp_min(input: Tensor, min: Any) -> Tensor:  # noqa: A002
    """``max(input, min)`` elementwise (torch.clamp_min).

    >>> import kiln
    >>> kiln.clamp_min(kiln.tensor([-1.0, 2.0]), 0.0).tolist()
    [0.0, 2.0]
    """
    return F.clamp(input, min=min)


def clamp_max(input: Tensor, max: Any) -> Tensor:  # noqa: A002
    """``min(input, max)`` elementwise (torch.clamp_max).

    >>> import kiln
    >>> kiln.clamp_max(kiln.tensor([-1.0, 2.0]), 0.0).tolist()
    [-1.0, 0.0]
    """
    return F.clamp(input, max=max)


def lerp(input: Tensor, end: Any, weight: Any) -> Tensor:
    """``input + weight * (end - input)`` (torch.lerp; ``weight`` a number or a tensor).

    >>> import kiln
    >>> kiln.lerp(kiln.tensor([0.0, 10.0]), kiln.tensor([10.0, 20.0]), 0.5).tolist()
    [5.0, 15.0]
    """
    return input + weight * (end - input)


def addcmul(input: Tensor, tensor1: Any, tensor2: Any, *, value: Any = 1) -> Tensor:
    """``input + value * tensor1 * tensor2``.

    >>> import kiln
    >>> kiln.addcmul(kiln.ones(2), kiln.tensor([2.0, 3.0]), kiln.tensor([4.0, 5.0]),
    ...              value=0.5).tolist()
    [5.0, 8.5]
    """
    prod = tensor1 * tensor2
    return input + (prod if _is_one(value) else prod * value)


def addcdiv(input: Tensor, tensor1: Any, tensor2: Any, *, value: Any = 1) -> Tensor:
    """``input + value * tensor1 / tensor2``.

    >>> import kiln
    >>> kiln.addcdiv(kiln.ones(2), kiln.tensor([2.0, 3.0]), kiln.tensor([4.0, 6.0])).tolist()
    [1.5, 1.5]
    """
    quot = ops.div(tensor1, tensor2)
    return input + (quot if _is_one(value) else quot * value)


def _is_one(v: Any) -> bool:
    return not isinstance(v, Tensor) and v == 1


def _scaled_sum(fn: str, input: Any, product: Tensor, beta: Any, alpha: Any) -> Tensor:
    """``beta * input + alpha * product``; beta == 0 ignores ``input`` (NaN in it too), as
    torch. On integer tensors torch truncates float factors to ints (alpha=0.6 is 0)."""
    if not product.dtype.is_floating:
        alpha = int(alpha) if isinstance(alpha, float) else alpha
        beta = int(beta) if isinstance(beta, float) else beta
    if not _is_one(alpha):
        product = product * alpha
    if not isinstance(beta, Tensor) and beta == 0:
        return product
    return (input if _is_one(beta) else input * beta) + product


# ------------------------------------------------------------------------------------------
# matrix products


def mm(input: Tensor, mat2: Tensor) -> Tensor:
    """Matrix product of two 2-D tensors (no broadcasting).

    >>> import kiln
    >>> kiln.mm(kiln.ones(2, 3), kiln.ones(3, 4)).shape
    (2, 4)
    """
    _want("mm", "input", input, 2)
    _want("mm", "mat2", mat2, 2)
    return F.matmul(input, mat2)


def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    """Batched matrix product of (B, n, m) and (B, m, p) tensors (no broadcasting).

    >>> import kiln
    >>> kiln.bmm(kiln.ones(5, 2, 3), kiln.ones(5, 3, 4)).shape
    (5, 2, 4)
    """
    _want("bmm", "input", input, 3)
    _want("bmm", "mat2", mat2, 3)
    if input.shape[0] != mat2.shape[0]:
        raise ShapeError(f"bmm: batch sizes differ: input {fmt_shape(input.shape)}, mat2 "
                         f"{fmt_shape(mat2.shape)}")
    return F.matmul(input, mat2)


def mv(input: Tensor, vec: Tensor) -> Tensor:
    """Matrix (n, m) times vector (m,).

    >>> import kiln
    >>> kiln.mv(kiln.ones(2, 3), kiln.ones(3)).tolist()
    [3.0, 3.0]
    """
    _want("mv", "input", input, 2)
    _want("mv", "vec", vec, 1)
    return F.matmul(input, vec)


def dot(input: Tensor, other: Tensor) -> Tensor:
    """Inner product of two 1-D tensors of the same size and dtype.

    >>> import kiln
    >>> kiln.dot(kiln.tensor([1.0, 2.0]), kiln.tensor([3.0, 4.0])).item()
    11.0
    """
    _want("dot", "input", input, 1)
    _want("dot", "other", other, 1)
    if input.shape[0] != other.shape[0]:
        raise ShapeError(f"dot: sizes differ: {input.shape[0]} vs {other.shape[0]}")
    return F.sum(input * other)


def outer(input: Tensor, vec2: Tensor) -> Tensor:
    """``input[i] * vec2[j]`` for 1-D tensors (torch.outer, alias ger).

    >>> import kiln
    >>> kiln.outer(kiln.tensor([1.0, 2.0]), kiln.tensor([1.0, 10.0])).tolist()
    [[1.0, 10.0], [2.0, 20.0]]
    """
    _want("outer", "input", input, 1)
    _want("outer", "vec2", vec2, 1)
    return F.unsqueeze(input, 1) * F.unsqueeze(vec2, 0)


def addmm(input: Any, mat1: Tensor, mat2: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
    """``beta * input + alpha * (mat1 @ mat2)`` for 2-D ``mat1`` and ``mat2``.

    >>> import kiln
    >>> kiln.addmm(kiln.ones(2), kiln.ones(2, 3), kiln.ones(3, 2), alpha=2).tolist()
    [[7.0, 7.0], [7.0, 7.0]]
    """
    return _scaled_sum("addmm", input, mm(mat1, mat2), beta, alpha)


def addmv(input: Any, mat: Tensor, vec: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
    """``beta * input + alpha * (mat @ vec)``.

    >>> import kiln
    >>> kiln.addmv(kiln.ones(2), kiln.ones(2, 3), kiln.ones(3)).tolist()
    [4.0, 4.0]
    """
    return _scaled_sum("addmv", input, mv(mat, vec), beta, alpha)


def baddbmm(input: Any, batch1: Tensor, batch2: Tensor, *, beta: Any = 1,
            alpha: Any = 1) -> Tensor:
    """``beta * input + alpha * bmm(batch1, batch2)``.

    >>> import kiln
    >>> kiln.baddbmm(kiln.zeros(4, 2, 2), kiln.ones(4, 2, 3), kiln.ones(4, 3, 2)).shape
    (4, 2, 2)
    """
    return _scaled_sum("baddbmm", input, bmm(batch1, batch2), beta, alpha)


def addbmm(input: Any, batch1: Tensor, batch2: Tensor, *, beta: Any = 1,
           alpha: Any = 1) -> Tensor:
    """``beta * input + alpha * sum_b(batch1[b] @ batch2[b])``.

    >>> import kiln
    >>> kiln.addbmm(kiln.zeros(2, 2), kiln.ones(4, 2, 3), kiln.ones(4, 3, 2)).tolist()
    [[12.0, 12.0], [12.0, 12.0]]
    """
    return _scaled_sum("addbmm", input, F.sum(bmm(batch1, batch2), 0), beta, alpha)


def addr(input: Any, vec1: Tensor, vec2: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
    """``beta * input + alpha * outer(vec1, vec2)``.

    >>> import kiln
    >>> kiln.addr(kiln.zeros(2, 2), kiln.ones(2), kiln.ones(2)).tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """
    return _scaled_sum("addr", input, outer(vec1, vec2), beta, alpha)


def t(input: Tensor) -> Tensor:
    """The transpose of a tensor of at most 2 dims (torch.t).

    >>> import kiln
    >>> kiln.t(kiln.zeros(2, 3)).shape
    (3, 2)
    """
    _want("t", "input", input)
    if input.ndim > 2:
        raise ShapeError(f"t: expects a tensor of at most 2 dims, got shape "
                         f"{fmt_shape(input.shape)}; use transpose(dim0, dim1) or .mT")
    return F.transpose(input, 0, 1) if input.ndim == 2 else input


# ------------------------------------------------------------------------------------------
# shapes and indices


def broadcast_to(input: Tensor, size: Any) -> Tensor:
    """``input`` broadcast to ``size`` (torch.broadcast_to; -1 keeps a dim).

    >>> import kiln
    >>> kiln.broadcast_to(kiln.tensor([1, 2]), (3, 2)).shape
    (3, 2)
    """
    return F.expand(input, *tuple(size))


def repeat(input: Tensor, *sizes: Any) -> Tensor:
    """``input`` tiled ``sizes[i]`` times along each dim (Tensor.repeat; extra leading sizes
    add dims).

    >>> import kiln
    >>> kiln.tensor([1, 2]).repeat(2, 2).tolist()
    [[1, 2, 1, 2], [1, 2, 1, 2]]
    """
    reps = _dims(sizes)
    if len(reps) < input.ndim:
        raise ShapeError(f"repeat: got {len(reps)} repeat counts for a tensor of rank "
                         f"{input.ndim}; give at least one per dim")
    for r in reps:
        if isinstance(r, bool) or not isinstance(r, (int, SymInt)) or \
                (isinstance(r, int) and r < 0):
            raise ArgumentError(f"repeat: sizes must be non-negative ints, got {reps}")
    shape = (1,) * (len(reps) - input.ndim) + tuple(input.shape)
    x = F.reshape(input, *shape) if shape != tuple(input.shape) else input
    # (1, s0, 1, s1, ...) expanded to (r0, s0, r1, s1, ...), then each pair merged.
    spread = tuple(v for s in shape for v in (1, s))
    target = tuple(v for r, s in zip(reps, shape, strict=True) for v in (r, s))
    x = F.expand(F.reshape(x, *spread), *target)
    return F.reshape(x, *(r * s for r, s in zip(reps, shape, strict=True)))


def tile(input: Tensor, dims: Any) -> Tensor:
    """torch.tile: :func:`repeat`, with fewer counts than dims meaning leading 1s.

    >>> import kiln
    >>> kiln.tile(kiln.tensor([[1, 2]]), (2,)).tolist()
    [[1, 2, 1, 2]]
    """
    reps = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
    return repeat(input, *((1,) * (input.ndim - len(reps)) + reps))


def roll(input: Tensor, shifts: Any, dims: Any = None) -> Tensor:
    """Elements shifted cyclically by ``shifts`` along ``dims`` (the flattened tensor when
    ``dims`` is None).

    >>> import kiln
    >>> kiln.roll(kiln.arange(5), 2).tolist()
    [3, 4, 0, 1, 2]
    """
    if dims is None:
        if isinstance(shifts, (tuple, list)):
            if len(shifts) != 1:
                raise ArgumentError(f"roll: without dims, shifts must be one int, got {shifts}")
            shifts = shifts[0]
        return F.reshape(roll(F.flatten(input), shifts, 0), *input.shape)
    shifts = tuple(shifts) if isinstance(shifts, (tuple, list)) else (shifts,)
    dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
    if len(shifts) != len(dims):
        raise ArgumentError(f"roll: shifts {shifts} and dims {dims} differ in length")
    out = input
    for s, d in zip(shifts, dims, strict=True):
        d = norm_dim("roll", d, input.ndim)
        if input.ndim == 0:
            continue
        n = out.shape[d]
        if isinstance(n, SymInt):
            raise ArgumentError(f"roll: dim {d} has the symbolic size {n}; roll a static dim")
        if n == 0 or s % n == 0:
            continue
        k = n - s % n
        out = ops.cat(ops.slice(out, dim=d, start=k, stop=n, step=1),
                      ops.slice(out, dim=d, start=0, stop=k, step=1), dim=d)
    return out


def select(input: Tensor, dim: int, index: Any) -> Tensor:
    """The slice at ``index`` along ``dim``, with that dim removed (torch.select).

    >>> import kiln
    >>> kiln.select(kiln.tensor([[1, 2], [3, 4]]), 1, -1).tolist()
    [2, 4]
    """
    d = norm_dim("select", dim, input.ndim)
    if input.ndim == 0:
        raise ShapeError("select: cannot select on a 0-d tensor")
    index = _int_arg("select", "index", index)
    n = input.shape[d]
    if isinstance(n, int) and not -n <= index < n:
        raise ShapeError(f"select: index {index} is out of range for dim {d} of size {n}")
    if index < 0:
        index += n
    piece = ops.slice(input, dim=d, start=index, stop=index + 1, step=1)
    return F.squeeze(piece, d)


def _int_arg(fn: str, arg: str, v: Any) -> Any:
    """An int from an int, a SymInt or a one-element integer tensor (torch takes all)."""
    if isinstance(v, Tensor):
        if v.numel() != 1 or not (v.dtype.is_integer or v.dtype.is_bool):
            raise ArgumentError(f"{fn}: {arg} must be an int or a one-element integer "
                                f"tensor, got a {v.dtype} tensor of shape {fmt_shape(v.shape)}")
        return int(v.item())
    if isinstance(v, bool) or not isinstance(v, (int, SymInt)):
        raise ArgumentError(f"{fn}: {arg} must be an int, got {type(v).__name__}")
    return v


def index_select(input: Tensor, dim: int, index: Tensor) -> Tensor:
    """The entries of ``input`` at ``index`` (a 1-D or 0-d integer tensor) along ``dim``.

    >>> import kiln
    >>> kiln.index_select(kiln.tensor([[1, 2, 3]]), 1, kiln.tensor([2, 0])).tolist()
    [[3, 1]]
    """
    d = norm_dim("index_select", dim, input.ndim)
    _want("index_select", "index", index)
    if index.ndim > 1 or not index.dtype.is_integer:
        raise ArgumentError(f"index_select: index must be a 1-D or 0-d integer tensor, got "
                            f"{index.dtype} of shape {fmt_shape(index.shape)}")
    if input.ndim == 0:  # one element: the index must be [0] or 0, the result 0-d
        return ops.gather(input, F.reshape(index.to(dt.int64), *()), dim=0)
    k = index.shape[0] if index.ndim else 1
    lead = (1,) * d + (k,) + (1,) * (input.ndim - d - 1)
    shape = tuple(input.shape[:d]) + (k,) + tuple(input.shape[d + 1:])
    idx = F.expand(F.reshape(index.to(dt.int64), *lead), *shape)
    return ops.gather(input, idx, dim=d)


def masked_fill(input: Tensor, mask: Tensor, value: Any) -> Tensor:
    """``value`` where ``mask`` holds, else ``input`` (the dtype stays ``input``'s).

    >>> import kiln
    >>> kiln.masked_fill(kiln.zeros(3), kiln.tensor([True, False, True]), 5.0).tolist()
    [5.0, 0.0, 5.0]
    """
    _want("masked_fill", "mask", mask)
    if not mask.dtype.is_bool:
        raise ArgumentError(f"masked_fill: mask must be a bool tensor, got {mask.dtype}")
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise ShapeError(f"masked_fill: value must be a number or a 0-d tensor, got shape "
                             f"{fmt_shape(value.shape)}")
        value = value.to(input.dtype)
    out = ops.where(mask, value, input)  # (a larger mask broadcasts the input, as torch)
    return out if out.dtype == input.dtype else out.to(input.dtype)


def _tri(fn: str, input: Tensor, diagonal: int, lower: bool) -> Tensor:
    from kiln.core.creation import arange

    _want(fn, "input", input)
    if input.ndim < 2:
        raise ShapeError(f"{fn}: input must have at least 2 dims, got shape "
                         f"{fmt_shape(input.shape)}")
    rows = F.unsqueeze(arange(input.shape[-2]), 1)
    cols = F.unsqueeze(arange(input.shape[-1]), 0)
    keep = (cols - rows <= diagonal) if lower else (cols - rows >= diagonal)
    zero = False if input.dtype.is_bool else 0
    return ops.where(keep, input, zero)


def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (entries with col - row <= diagonal).

    >>> import kiln
    >>> kiln.tril(kiln.ones(2, 2)).tolist()
    [[1.0, 0.0], [1.0, 1.0]]
    """
    return _tri("tril", input, diagonal, True)


def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims (entries with col - row >= diagonal).

    >>> import kiln
    >>> kiln.triu(kiln.ones(2, 2)).tolist()
    [[1.0, 1.0], [0.0, 1.0]]
    """
    return _tri("triu", input, diagonal, False)


def _scan(fn: str, input: Tensor, dim: int, dtype: Any, combine: Any, identity: Any
          ) -> Tensor:
    """Inclusive scan along ``dim`` in log2(n) steps (Hillis-Steele): at step k every element
    combines with the one 2^k before it (the identity before the start). O(n log n) work of
    slices, pads and pointwise ops, which every backend fuses; gradients come for free."""
    _want(fn, "input", input)
    if dtype is not None:
        input = input.to(dtype)
    elif input.dtype.is_integer or input.dtype.is_bool:
        input = input.to(dt.int64)  # torch: integer scans give int64
    d = norm_dim(fn, dim, input.ndim)
    if input.ndim == 0:
        return clone(input)
    n = input.shape[d]
    if isinstance(n, SymInt):
        raise ArgumentError(f"{fn}: dim {d} has the symbolic size {n}; scan a static dim")
    out = input
    step = 1
    while step < n:
        pads = tuple((step, 0, 0) if i == d else (0, 0, 0) for i in range(input.ndim))
        shifted = ops.pad(ops.slice(out, dim=d, start=0, stop=n - step, step=1), pads=pads,
                          value=identity)
        out = combine(out, shifted)
        step *= 2
    return out


def cumsum(input: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    """Running sums along ``dim`` (integers and bool give int64, as torch).

    >>> import kiln
    >>> kiln.cumsum(kiln.tensor([1, 2, 3, 4]), 0).tolist()
    [1, 3, 6, 10]
    """
    return _scan("cumsum", input, dim, dtype, ops.add, 0)


def cumprod(input: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    """Running products along ``dim`` (integers and bool give int64, as torch).

    >>> import kiln
    >>> kiln.cumprod(kiln.tensor([1.0, 2.0, 3.0, 4.0]), 0).tolist()
    [1.0, 2.0, 6.0, 24.0]
    """
    return _scan("cumprod", input, dim, dtype, ops.mul, 1)


def clone(input: Tensor, *, memory_format: Any = None) -> Tensor:
    """A copy of ``input`` (gradients flow back to it).

    >>> import kiln
    >>> kiln.clone(kiln.tensor([1, 2])).tolist()
    [1, 2]
    """
    _want("clone", "input", input)
    return ops.cast(input, dtype=input.dtype)


# Names installed as kiln.X functions and as Tensor methods (where torch has the method).
FUNCTIONS = ("true_divide", "square", "clamp_min", "clamp_max", "lerp", "addcmul", "addcdiv",
             "mm", "bmm", "mv", "dot", "outer", "addmm", "addmv", "baddbmm", "addbmm", "addr",
             "t", "broadcast_to", "tile", "roll", "select", "index_select", "masked_fill",
             "tril", "triu", "cumsum", "cumprod", "clone", "add", "sub", "div", "round")
METHODS = FUNCTIONS + ("repeat",)


def install(cls: type) -> None:
    """Attach the Tensor methods of this module to ``cls``."""
    glob = globals()
    for name in METHODS:
        setattr(cls, name, glob[name])
    cls.ger = outer  # type: ignore[attr-defined]
    cls.divide = true_divide  # type: ignore[attr-defined]
    cls.true_divide = true_divide  # type: ignore[attr-defined]
    cls.norm = _tensor_norm  # type: ignore[attr-defined]


def _tensor_norm(self: Tensor, p: Any = "fro", dim: Any = None, keepdim: bool = False,
                 dtype: Any = None) -> Tensor:
    from kiln.core.linalg import torch_norm

    return torch_norm(self, p, dim, keepdim, dtype)


# ------------------------------------------------------------------------------------------
# torch's keyword forms of the elementwise ops: alpha=, rounding_mode=, out=


def add(input: Any, other: Any, *, alpha: Any = 1) -> Tensor:
    """``input + alpha * other`` (torch.add).

    >>> import kiln
    >>> kiln.add(kiln.ones(2), kiln.ones(2), alpha=3).tolist()
    [4.0, 4.0]
    """
    return ops.add(input, _times(other, alpha))


def sub(input: Any, other: Any, *, alpha: Any = 1) -> Tensor:
    """``input - alpha * other`` (torch.sub).

    >>> import kiln
    >>> kiln.sub(kiln.ones(2), kiln.ones(2), alpha=3).tolist()
    [-2.0, -2.0]
    """
    return ops.sub(input, _times(other, alpha))


def _times(other: Any, alpha: Any) -> Any:
    if _is_one(alpha):
        return other
    if isinstance(other, Tensor) or isinstance(alpha, Tensor):
        return ops.mul(other, alpha)
    return other * alpha


def div(input: Any, other: Any, *, rounding_mode: str | None = None) -> Tensor:
    """``input / other``; ``rounding_mode`` "trunc" rounds toward zero, "floor" toward -inf
    (integers stay integers then, as in torch).

    >>> import kiln
    >>> x = kiln.tensor([7, -7])
    >>> kiln.div(x, 2).tolist(), kiln.div(x, 2, rounding_mode="trunc").tolist()
    ([3.5, -3.5], [3, -3])
    """
    from kiln.core.methods import floor_divide

    if rounding_mode is None:
        return ops.div(input, other)
    if rounding_mode == "floor":
        return floor_divide(input, other)
    if rounding_mode != "trunc":
        raise ArgumentError(f"div: rounding_mode must be None, 'trunc' or 'floor', got "
                            f"{rounding_mode!r}")
    if _integral(input) and _integral(other):
        q = floor_divide(input, other)
        # floor and trunc differ where the division is inexact and the signs differ
        inexact = ops.ne(ops.sub(input, ops.mul(q, other)), 0)
        signs = ops.lt(ops.mul(_sign(input), _sign(other)), 0)
        return ops.where(ops.logical_and(inexact, signs), ops.add(q, 1), q)
    q = ops.div(input, other)
    return ops.where(ops.lt(q, 0), ops.ceil(q), ops.floor(q))


def _sign(x: Any) -> Any:
    return ops.sign(x) if isinstance(x, Tensor) else (x > 0) - (x < 0)


def _integral(x: Any) -> bool:
    if isinstance(x, Tensor):
        return x.dtype.is_integer or x.dtype.is_bool
    return isinstance(x, int)


def with_out(fn: Any) -> Any:
    """``fn`` also taking torch's ``out=``: the result is written into that tensor (of the
    result's shape) and returned."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, out: Any = None, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        if out is None:
            return result
        if not isinstance(out, Tensor):
            raise ArgumentError(f"{fn.__name__}: out must be a kiln.Tensor, got "
                                f"{type(out).__name__}")
        if tuple(out.shape) != tuple(result.shape):
            raise ShapeError(f"{fn.__name__}: out has shape {fmt_shape(out.shape)}, the result "
                             f"{fmt_shape(result.shape)}; pass an out of the result's shape "
                             "(Kiln does not resize it)")
        return out.copy_(result)

    return wrapper
