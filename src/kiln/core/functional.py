"""Shape and arithmetic composites behind Tensor methods and ``kiln.*`` functions.

Composites are plain Python over primitives: autograd, tracing and every backend get them
for free. Neural-network composites (softmax, layer_norm, losses...) live in
``kiln.nn.functional``.
"""

from __future__ import annotations

import builtins
from typing import Any

from kiln.core import dtypes as dt
from kiln.core import prims as ops
from kiln.core.prims.shapes import broadcast_shapes, fmt_shape, norm_dim, norm_dims
from kiln.core.tensor import Tensor
from kiln.core.views import has_zero
from kiln.errors import ArgumentError, ShapeError, TraceError, ValueArgumentError
from kiln.symbolic.guards import same_shape
from kiln.symbolic.sizes import SymInt, prod


def _shape_args(shape: tuple) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def infer_shape(op: str, shape: tuple, numel: Any) -> tuple:
    """Resolve one -1 in ``shape`` from ``numel`` (works with symbolic sizes)."""
    shape = tuple(shape)
    holes = [i for i, d in enumerate(shape) if isinstance(d, int) and d == -1]
    if len(holes) > 1:
        raise ShapeError(f"{op}: only one dim can be -1, got {shape}")
    if not holes:
        return shape
    known = prod([d for d in shape if not (isinstance(d, int) and d == -1)])
    if isinstance(numel, int) and isinstance(known, int):
        if known == 0 or numel % known:
            raise ShapeError(f"{op}: cannot infer -1 in {shape} for {numel} elements")
        rest: Any = numel // known
    else:
        rest = numel.exact_div(known) if isinstance(numel, SymInt) else None
        if rest is None:
            raise ShapeError(f"{op}: cannot infer -1 in {fmt_shape(shape)} for "
                             f"{numel} elements")
    return shape[:holes[0]] + (rest,) + shape[holes[0] + 1:]


def reshape(x: Tensor, *shape: Any) -> Tensor:
    """``x.reshape(2, -1)``: same elements in a new shape (one dim may be -1).

    >>> import kiln
    >>> kiln.arange(6).reshape(2, -1).tolist()
    [[0, 1, 2], [3, 4, 5]]
    """
    target = infer_shape("reshape", _shape_args(shape), x.numel())
    if same_shape(target, x.shape):
        return x
    return ops.reshape(x, shape=target)


def view(x: Tensor, *shape: Any) -> Tensor:
    """``x.view(2, -1)``: ``x`` in a new shape, sharing its memory (an in-place op on either
    changes both). Like torch, a layout that only a copy can reshape (a transposed tensor
    flattened) is an error; ``reshape`` copies then.

    >>> import kiln
    >>> x = kiln.zeros(2, 3)
    >>> x.view(-1)[1:3].fill_(1.0).tolist(), x.tolist()
    ([1.0, 1.0], [[0.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    """
    out = reshape(x, *shape)
    # (an empty result has no memory to share)
    if out is not x and out._view is None and not has_zero(out.shape):
        raise ShapeError(f"view: cannot view a tensor of shape {fmt_shape(x.shape)} as "
                         f"{fmt_shape(out.shape)} without copying: its memory layout does not "
                         "allow it (it is transposed or strided); use .reshape(...), which "
                         "copies, or .contiguous().view(...)")
    return out


def expand(x: Tensor, *shape: Any) -> Tensor:
    """Broadcast size-1 dims to ``shape`` (-1 keeps a dim).

    >>> import kiln
    >>> kiln.tensor([[1.0], [2.0]]).expand(2, 3).tolist()
    [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]
    """
    shape = _shape_args(shape)
    lead = len(shape) - x.ndim
    target = tuple(x.shape[i - lead] if (isinstance(d, int) and d == -1) else d
                   for i, d in enumerate(shape))
    if same_shape(target, x.shape):
        return x
    return ops.expand(x, shape=target)


def permute(x: Tensor, *dims: Any) -> Tensor:
    """Reorder the dims of ``x`` (``x.permute(2, 0, 1)``).

    >>> import kiln
    >>> kiln.permute(kiln.zeros(2, 3, 4), (2, 0, 1)).shape
    (4, 2, 3)
    """
    dims = tuple(norm_dim("permute", d, x.ndim) for d in _shape_args(dims))
    if dims == tuple(range(x.ndim)):
        return x
    return ops.permute(x, dims=dims)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two dims.

    >>> import kiln
    >>> kiln.transpose(kiln.zeros(2, 3, 4), 0, -1).shape
    (4, 3, 2)
    """
    d0, d1 = norm_dim("transpose", dim0, x.ndim), norm_dim("transpose", dim1, x.ndim)
    if x.ndim == 0:
        return x  # torch: dims 0 and -1 of a 0-d tensor name the tensor itself
    order = list(range(x.ndim))
    order[d0], order[d1] = order[d1], order[d0]
    return permute(x, *order)


def squeeze(x: Tensor, dim: Any = None) -> Tensor:
    """Drop size-1 dims (all of them, or those in ``dim`` that have size 1).

    >>> import kiln
    >>> kiln.squeeze(kiln.zeros(1, 3, 1)).shape, kiln.squeeze(kiln.zeros(1, 3, 1), 0).shape
    ((3,), (3, 1))
    """
    # Whether a symbolic dim is 1 is decided from the trace's example size and guarded
    # (kiln.symbolic.guards): a graph traced with B=3 keeps the dim and refuses B=1.
    candidates = range(x.ndim) if dim is None else norm_dims("squeeze", dim, x.ndim)
    dims = [d for d in candidates if x.shape[d] == 1]
    if not dims:
        return x
    return ops.reshape(x, shape=tuple(d for i, d in enumerate(x.shape) if i not in dims))


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    """Insert a size-1 dim at ``dim``.

    >>> import kiln
    >>> kiln.unsqueeze(kiln.zeros(2, 3), -1).shape
    (2, 3, 1)
    """
    d = norm_dim("unsqueeze", dim, x.ndim + 1)
    shape = tuple(x.shape)
    return ops.reshape(x, shape=shape[:d] + (1,) + shape[d:])


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims ``start_dim..end_dim`` into one.

    >>> import kiln
    >>> kiln.flatten(kiln.zeros(2, 3, 4), 1).shape
    (2, 12)
    """
    if x.ndim == 0:
        return reshape(x, 1)
    s = norm_dim("flatten", start_dim, x.ndim)
    e = norm_dim("flatten", end_dim, x.ndim)
    if s > e:
        raise ValueArgumentError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = tuple(x.shape)
    return reshape(x, *(shape[:s] + (prod(shape[s:e + 1]),) + shape[e + 1:]))


def mT(x: Tensor) -> Tensor:
    """The last two dims swapped (a batch of matrices transposed).

    >>> import kiln
    >>> kiln.zeros(5, 2, 3).mT.shape
    (5, 3, 2)
    """
    if x.ndim < 2:
        raise ShapeError(f"mT: expected rank >= 2, got shape {tuple(x.shape)}")
    return transpose(x, -2, -1)


def T(x: Tensor) -> Tensor:
    """All dims reversed (``x.T``); 0-d and 1-d tensors are returned as they are.

    >>> import kiln
    >>> kiln.zeros(2, 3).T.shape
    (3, 2)
    """
    return permute(x, *reversed(range(x.ndim))) if x.ndim >= 2 else x


def _reduce(op: Any, x: Tensor, dim: Any, keepdim: bool) -> Tensor:
    return op(x, dims=norm_dims(op.__name__, dim, x.ndim), keepdim=keepdim)


def sum(x: Tensor, dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
    """Sum over ``dim`` (int, tuple, or None for all).

    >>> import kiln
    >>> x = kiln.tensor([[1, 2], [3, 4]])
    >>> kiln.sum(x).item(), kiln.sum(x, 0).tolist(), x.sum(1, keepdim=True).tolist()
    (10, [4, 6], [[3], [7]])
    """
    if dtype is None:
        return _reduce(ops.sum, x, dim, keepdim)
    out = _reduce(ops.sum, x.to(dtype), dim, keepdim)
    return out.to(dtype)  # integer sums accumulate in int64; torch returns the asked dtype


def prod_(x: Tensor, dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
    if dtype is None:
        return _reduce(ops.prod, x, dim, keepdim)
    return _reduce(ops.prod, x.to(dtype), dim, keepdim).to(dtype)


def element_count(x: Tensor, dims: tuple[int, ...]) -> Any:
    """How many elements ``dims`` of ``x`` hold: an int, or with symbolic sizes a 0-d tensor of
    x's dtype computed in the graph (a Tensor cannot be divided by a SymInt).

    >>> import kiln
    >>> element_count(kiln.ones(2, 3, 4), (0, 2))
    8
    """
    static = prod([x.shape[d] for d in dims if not isinstance(x.shape[d], SymInt)])
    count: Any = None
    for d in dims:
        if isinstance(x.shape[d], SymInt):
            from kiln.core.creation import ones

            size = ops.sum(ones(x.shape[d], dtype=x.dtype), dims=(0,), keepdim=False)
            count = size if count is None else count * size
    if count is None:
        return static
    return count * static if static != 1 else count


def mean(x: Tensor, dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
    """Arithmetic mean over ``dim`` (floating inputs).

    >>> import kiln
    >>> kiln.mean(kiln.tensor([[1.0, 2.0], [3.0, 5.0]]), dim=1).tolist()
    [1.5, 4.0]
    """
    if dtype is not None:
        x = x.to(dtype)
    if not x.dtype.is_floating:
        raise ArgumentError(f"mean: input must be floating, got {x.dtype}; pass dtype=")
    dims = norm_dims("mean", dim, x.ndim)
    return ops.sum(x, dims=dims, keepdim=keepdim) / element_count(x, dims)


def var(x: Tensor, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
        correction: Any = None) -> Tensor:
    """Variance with Bessel's correction by default (``correction=1``), like torch.var.

    >>> import kiln
    >>> x = kiln.tensor([1.0, 2.0, 3.0, 4.0])
    >>> round(kiln.var(x).item(), 4), kiln.var(x, correction=0).item()
    (1.6667, 1.25)
    """
    return _var(x, dim, unbiased, keepdim, correction, "var")


def _var(x: Tensor, dim: Any, unbiased: Any, keepdim: bool, correction: Any, fn: str
         ) -> Tensor:
    if not x.dtype.is_floating:
        raise ArgumentError(f"{fn}: input must be floating, got {x.dtype}")
    if isinstance(dim, bool):  # torch's older form var(x, unbiased)
        dim, unbiased = None, dim
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    dims = norm_dims(fn, dim, x.ndim)
    n = element_count(x, dims)
    centered = x - mean(x, dims, keepdim=True)
    denom = n - correction
    if isinstance(denom, (int, float)):
        denom = builtins.max(denom, 0)  # torch: too few elements give nan (0 / 0), not -0
    return ops.sum(centered * centered, dims=dims, keepdim=keepdim) / denom


def std(x: Tensor, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
        correction: Any = None) -> Tensor:
    """Standard deviation: the square root of :func:`var` (same arguments).

    >>> import kiln
    >>> kiln.std(kiln.tensor([1.0, 3.0])).item()
    1.4142135381698608
    """
    return sqrt_or_zero_grad(_var(x, dim, unbiased, keepdim, correction, "std"))


def amax(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """Maximum over ``dim`` (values only; ``x.max(dim)`` also gives the indices).

    >>> import kiln
    >>> kiln.amax(kiln.tensor([[1, 5], [7, 2]]), 1).tolist()
    [5, 7]
    """
    return _reduce(ops.max, x, dim, keepdim)


def amin(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """Minimum over ``dim`` (values only; ``x.min(dim)`` also gives the indices).

    >>> import kiln
    >>> kiln.amin(kiln.tensor([[1, 5], [7, 2]]), 0).tolist()
    [1, 2]
    """
    return _reduce(ops.min, x, dim, keepdim)


def logsumexp(x: Tensor, dim: Any, keepdim: bool = False) -> Tensor:
    """log(sum(exp(x))) computed stably (the max is subtracted first).

    >>> import kiln
    >>> kiln.logsumexp(kiln.tensor([1000.0, 1000.0]), 0).item()
    1000.6931762695312
    """
    dims = norm_dims("logsumexp", dim, x.ndim)
    if any(x.shape[d] == 0 for d in dims):  # log(0) = -inf, as torch
        return ops.sum(x.exp(), dims=dims, keepdim=keepdim).log()
    m = ops.max(x, dims=dims, keepdim=True).detach()
    # An all -inf slice would give nan through inf - inf; zero its shift instead.
    m = ops.where(m.abs() == float("inf"), 0.0, m)
    out = ops.sum((x - m).exp(), dims=dims, keepdim=True).log() + m
    return out if keepdim else squeeze(out, dims)


def clamp(x: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """Limit values to [min, max] (either may be None or a tensor).

    >>> import kiln
    >>> kiln.clamp(kiln.tensor([-2.0, 0.5, 3.0]), min=0.0, max=1.0).tolist()
    [0.0, 0.5, 1.0]
    """
    if min is None and max is None:
        raise ArgumentError("clamp: at least one of min and max must be given")
    # where, not maximum/minimum: at a bound the gradient goes to x whole (torch's rule),
    # where maximum would split a tie in halves. NaN in x stays NaN.
    out = x
    if min is not None:
        out = ops.where(out < min, min, out)
    if max is not None:
        out = ops.where(out > max, max, out)
    return out


def sqrt_or_zero_grad(v: Tensor) -> Tensor:
    """sqrt(v) whose gradient at v == 0 is 0 rather than inf * 0 = NaN: norms and standard
    deviations of all-zero (or constant) inputs, differentiated as torch does.

    >>> import kiln
    >>> v = kiln.tensor([0.0, 4.0], requires_grad=True)
    >>> sqrt_or_zero_grad(v).sum().backward()
    >>> v.grad.tolist()
    [0.0, 0.25]
    """
    zero = ops.eq(v, 0.0)
    return ops.where(zero, 0.0, ops.sqrt(ops.where(zero, 1.0, v)))


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product with torch.matmul's rules for vectors and batch broadcasting.

    >>> import kiln
    >>> kiln.matmul(kiln.ones(2, 3), kiln.ones(3)).tolist()
    [3.0, 3.0]
    >>> (kiln.ones(5, 2, 3) @ kiln.ones(3, 4)).shape
    (5, 2, 4)
    """
    for name, t in (("input", a), ("other", b)):
        if not isinstance(t, Tensor):
            raise ArgumentError(f"matmul: {name} must be a kiln.Tensor, got "
                                f"{type(t).__name__} (scale with * instead)")
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError("matmul: both operands need at least one dim")
    inner = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if a.shape[-1] != inner:
        raise ShapeError(f"matmul: {fmt_shape(a.shape)} @ {fmt_shape(b.shape)}: the inner dims "
                         f"differ ({a.shape[-1]} vs {inner})")
    try:
        broadcast_shapes("matmul", tuple(a.shape[:-2]), tuple(b.shape[:-2]))
    except ShapeError:
        raise ShapeError(f"matmul: {fmt_shape(a.shape)} @ {fmt_shape(b.shape)}: the batch dims "
                         f"{fmt_shape(a.shape[:-2])} and {fmt_shape(b.shape[:-2])} do not "
                         "broadcast") from None
    if a.dtype != b.dtype:
        common = dt.promote_types(a.dtype, b.dtype)
        a, b = a.to(common), b.to(common)
    squeeze_a = a.ndim == 1
    squeeze_b = b.ndim == 1
    if squeeze_a:
        a = unsqueeze(a, 0)
    if squeeze_b:
        b = unsqueeze(b, -1)
    out = ops.matmul(a, b)
    if squeeze_a:
        out = squeeze(out, -2)
    if squeeze_b:
        out = squeeze(out, -1)
    return out


def cat(tensors: Any, dim: int = 0) -> Tensor:
    """Join tensors along ``dim`` (dtypes are promoted first).

    >>> import kiln
    >>> kiln.cat([kiln.zeros(1, 2), kiln.ones(2, 2)]).tolist()
    [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
    """
    tensors = list(tensors)
    if not tensors:
        raise ValueArgumentError("cat: expected a non-empty sequence of tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise ArgumentError(f"cat: tensors[{i}] must be a kiln.Tensor, got "
                                f"{type(t).__name__}")
    common = tensors[0].dtype
    for t in tensors[1:]:
        common = dt.promote_types(common, t.dtype)
    # torch skips legacy empty 1-d tensors (shape (0,)) next to tensors of another rank.
    legacy = [t for t in tensors if t.ndim == 1 and same_shape(t.shape, (0,))]
    if legacy and len(legacy) < len(tensors) and any(t.ndim != 1 for t in tensors):
        tensors = [t for t in tensors if not (t.ndim == 1 and same_shape(t.shape, (0,)))]
    tensors = [t.to(common) for t in tensors]
    if len(tensors) == 1:
        return tensors[0]
    return ops.cat(*tensors, dim=norm_dim("cat", dim, tensors[0].ndim))


def stack(tensors: Any, dim: int = 0) -> Tensor:
    """Join tensors along a new dim.

    >>> import kiln
    >>> kiln.stack([kiln.zeros(3), kiln.ones(3)], dim=1).shape
    (3, 2)
    """
    tensors = list(tensors)
    if not tensors:
        raise ValueArgumentError("stack: expected a non-empty sequence of tensors")
    d = norm_dim("stack", dim, tensors[0].ndim + 1)
    for i, t in enumerate(tensors):
        if tuple(t.shape) != tuple(tensors[0].shape):
            raise ShapeError(f"stack: tensors[{i}] has shape {tuple(t.shape)}, expected "
                             f"{tuple(tensors[0].shape)}")
    return cat([unsqueeze(t, d) for t in tensors], d)


def narrow(x: Tensor, dim: int, start: Any, length: Any) -> Tensor:
    """``length`` elements of dim ``dim`` from ``start`` on (a view in PyTorch, a slice here).

    >>> import kiln
    >>> kiln.narrow(kiln.arange(6), 0, 2, 3).tolist()
    [2, 3, 4]
    """
    d = norm_dim("narrow", dim, x.ndim)
    size = x.shape[d]
    if isinstance(start, Tensor):  # torch takes a 0-d integer tensor as start
        if start.numel() != 1 or start.dtype.is_floating:
            raise ArgumentError(f"narrow: start must be an int or a 0-d integer tensor, got "
                                f"a {start.dtype} tensor of shape {fmt_shape(start.shape)}")
        start = int(start.item())
    for name, v in (("start", start), ("length", length)):
        if isinstance(v, bool) or not isinstance(v, (int, SymInt)):
            raise ArgumentError(f"narrow: {name} must be an int, got {type(v).__name__}")
    if isinstance(start, int) and start < 0 and isinstance(size, int):
        start += size  # torch accepts a negative start
    if isinstance(start, int) and isinstance(length, int) and isinstance(size, int) and \
            not (0 <= start <= size and 0 <= length <= size - start):
        raise ShapeError(f"narrow: start={start} and length={length} do not fit dim {d} of "
                         f"size {size}")
    return ops.slice(x, dim=d, start=start, stop=start + length, step=1)


def split(x: Tensor, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """Split into pieces of a size (the last may be smaller) or of listed sizes.

    >>> import kiln
    >>> [t.tolist() for t in kiln.split(kiln.arange(5), 2)]
    [[0, 1], [2, 3], [4]]
    >>> [t.shape for t in kiln.split(kiln.zeros(2, 5), [1, 4], dim=1)]
    [(2, 1), (2, 4)]
    """
    d = norm_dim("split", dim, x.ndim)
    size = x.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise ValueArgumentError(f"split: split_size must be positive, got {step}")
        _static_pieces("split", d, size)
        sizes = [min(step, size - s) for s in range(0, size, step)] or [0]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != size:
            raise ShapeError(f"split: sections {sizes} do not add up to {size} on dim {d}")
    out = []
    start = 0
    for n in sizes:
        out.append(ops.slice(x, dim=d, start=start, stop=start + n, step=1))
        start += n
    return tuple(out)


def _static_pieces(fn: str, d: int, size: Any) -> None:
    if isinstance(size, SymInt):
        raise TraceError(f"{fn}: dim {d} has the symbolic size {size}, and the number of "
                         "pieces depends on it; split with sections that add up to it, or "
                         "leave this dim static")


def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """Split into ``chunks`` pieces of equal size (the last may be smaller), as torch.chunk.

    >>> import kiln
    >>> [t.tolist() for t in kiln.chunk(kiln.arange(5), 2)]
    [[0, 1, 2], [3, 4]]
    """
    if isinstance(chunks, bool) or not isinstance(chunks, int):
        raise ArgumentError(f"chunk: chunks must be an int, got {type(chunks).__name__}")
    if chunks <= 0:
        raise ValueArgumentError(f"chunk: chunks must be positive, got {chunks}")
    d = norm_dim("chunk", dim, x.ndim)
    size = x.shape[d]
    _static_pieces("chunk", d, size)
    if size == 0:
        return split(x, [0] * chunks, d)  # torch gives `chunks` empty pieces
    step = -(-size // chunks)
    return split(x, max(step, 1), d)


def unbind(x: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    """The slices along ``dim``, with that dim removed.

    >>> import kiln
    >>> [t.tolist() for t in kiln.unbind(kiln.tensor([[1, 2], [3, 4]]), 1)]
    [[1, 3], [2, 4]]
    """
    d = norm_dim("unbind", dim, x.ndim)
    return tuple(squeeze(p, d) for p in split(x, 1, d))


def flip(x: Tensor, dims: Any) -> Tensor:
    """Reverse the order of elements along ``dims``.

    >>> import kiln
    >>> kiln.flip(kiln.tensor([[1, 2], [3, 4]]), 1).tolist()
    [[2, 1], [4, 3]]
    """
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    dims = tuple(norm_dim("flip", d, x.ndim) for d in dims)
    return ops.flip(x, dims=dims if x.ndim else ())


def where(condition: Tensor, a: Any, b: Any) -> Tensor:
    """``a`` where ``condition`` holds, else ``b`` (tensors or numbers, broadcast together).

    >>> import kiln
    >>> x = kiln.tensor([-1.0, 2.0])
    >>> kiln.where(x > 0, x, 0.0).tolist()
    [0.0, 2.0]
    """
    return ops.where(condition, a, b)
