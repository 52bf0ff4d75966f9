"""``einsum`` as a composite: every contraction becomes permute, reshape, matmul and sum.

Operands are contracted left to right, two at a time. For a pair, each label is a *batch*
label (kept, in both operands), a *contracted* label (in both, needed by nobody later), or a
*free* label of one side; the pair becomes one batched ``matmul`` of shape
``(batch..., free_a, contracted) @ (batch..., contracted, free_b)``, so the C backend sees a
GEMM and autograd gets matmul's vjp. Labels that occur in a single operand and nowhere else
are summed out first. Repeated labels within one operand (diagonals, traces) are refused.

>>> import kiln
>>> a, b = kiln.ones(2, 3), kiln.ones(3, 4)
>>> kiln.einsum("ij,jk->ik", a, b).tolist()[0]
[3.0, 3.0, 3.0, 3.0]
>>> kiln.einsum("bij,bjk->bik", kiln.ones(5, 2, 3), kiln.ones(5, 3, 4)).shape
(5, 2, 4)
"""

from __future__ import annotations

import string
from typing import Any

from kiln import ops
from kiln.core import dtypes as dt
from kiln.core.functional import permute, reshape
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError
from kiln.symbolic.guards import is_one
from kiln.symbolic.sizes import prod

_ELLIPSIS_LABELS = string.ascii_uppercase  # stand-ins for the dims under "..."


def _parse(equation: str, operands: tuple) -> tuple[list[list[str]], list[str]]:
    eq = equation.replace(" ", "")
    if "->" in eq:
        lhs, rhs = eq.split("->", 1)
        explicit: str | None = rhs
    else:
        lhs, explicit = eq, None
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise ArgumentError(f"einsum: equation {equation!r} names {len(terms)} operands, got "
                            f"{len(operands)}")
    ell_rank = 0
    for term, x in zip(terms, operands):
        if "..." in term:
            ell_rank = max(ell_rank, x.ndim - (len(term) - 3))
    ell = list(_ELLIPSIS_LABELS[:ell_rank])
    labels: list[list[str]] = []
    for i, (term, x) in enumerate(zip(terms, operands)):
        if "..." in term:
            head, tail = term.split("...", 1)
            n = x.ndim - len(head) - len(tail)
            seq = list(head) + ell[ell_rank - n:] + list(tail)
        else:
            seq = list(term)
        for ch in seq:
            if ch not in _ELLIPSIS_LABELS and not ch.islower():
                raise ArgumentError(f"einsum: labels must be lowercase letters, got {ch!r} in "
                                    f"{equation!r}")
        if len(seq) != x.ndim:
            raise ShapeError(f"einsum: operand {i} has rank {x.ndim} but subscripts "
                             f"{term!r} name {len(seq)} dims")
        if len(set(seq)) != len(seq):
            raise ArgumentError(f"einsum: repeated label in operand {i} ({term!r}): diagonals "
                                "and traces are not supported")
        labels.append(seq)
    if explicit is None:
        counts: dict[str, int] = {}
        for seq in labels:
            for ch in seq:
                counts[ch] = counts.get(ch, 0) + 1
        out = ell + sorted(ch for ch, n in counts.items() if n == 1 and ch not in ell)
    else:
        head, _, tail = explicit.partition("...")
        out = list(head) + (ell if "..." in explicit else []) + list(tail)
        everywhere = {ch for seq in labels for ch in seq}
        for ch in out:
            if ch not in everywhere:
                raise ArgumentError(f"einsum: output label {ch!r} appears in no operand")
    return labels, out


def _sizes(labels: list[list[str]], operands: tuple) -> dict[str, Any]:
    sizes: dict[str, Any] = {}
    for seq, x in zip(labels, operands):
        for ch, n in zip(seq, x.shape):
            prev = sizes.get(ch)
            if prev is None or is_one(prev):
                sizes[ch] = n
            elif not is_one(n) and n != prev:  # a guard if symbolic
                raise ShapeError(f"einsum: label {ch!r} has sizes {prev} and {n}")
    return sizes


def _sum_out(x: Tensor, seq: list[str], keep: set[str]) -> tuple[Tensor, list[str]]:
    drop = tuple(i for i, ch in enumerate(seq) if ch not in keep)
    if not drop:
        return x, seq
    return ops.sum(x, dims=drop, keepdim=False), [ch for ch in seq if ch in keep]


def _contract(a: Tensor, la: list[str], b: Tensor, lb: list[str], needed: set[str],
              sizes: dict[str, Any]) -> tuple[Tensor, list[str]]:
    batch = [ch for ch in la if ch in lb and ch in needed]
    contracted = [ch for ch in la if ch in lb and ch not in needed]
    free_a = [ch for ch in la if ch not in lb]
    free_b = [ch for ch in lb if ch not in la]

    def arrange(x: Tensor, seq: list[str], order: list[str]) -> Tensor:
        return permute(x, *[seq.index(ch) for ch in order])

    a = arrange(a, la, batch + free_a + contracted)
    b = arrange(b, lb, batch + contracted + free_b)
    bshape_a = tuple(a.shape[:len(batch)])
    bshape_b = tuple(b.shape[:len(batch)])
    k = prod([sizes[ch] for ch in contracted])
    m = prod([a.shape[len(batch) + i] for i in range(len(free_a))])
    n = prod([b.shape[len(batch) + len(contracted) + i] for i in range(len(free_b))])
    ka = prod([a.shape[len(batch) + len(free_a) + i] for i in range(len(contracted))])
    kb = prod([b.shape[len(batch) + i] for i in range(len(contracted))])
    if ka != kb:  # torch broadcasts a size-1 contracted label; that rare form is refused
        raise ShapeError(f"einsum: contracted labels {contracted} have sizes {ka} and {kb}")
    a2 = reshape(a, *(bshape_a + (m, k)))
    b2 = reshape(b, *(bshape_b + (k, n)))
    if a2.dtype != b2.dtype:
        common = dt.promote_types(a2.dtype, b2.dtype)
        a2, b2 = a2.to(common), b2.to(common)
    out = ops.matmul(a2, b2)
    out_batch = tuple(out.shape[:len(batch)])
    out = reshape(out, *(out_batch + tuple(sizes[ch] for ch in free_a + free_b)))
    return out, batch + free_a + free_b


def einsum(equation: str, *operands: Any) -> Tensor:
    """Einstein summation over Kiln tensors (``torch.einsum``'s equation syntax, with ``...``).

    ``operands`` may also be passed as one list. See the module docstring for the method.

    >>> import kiln
    >>> a, b = kiln.ones(2, 3), kiln.ones(3, 4)
    >>> kiln.einsum("ij,jk->ik", a, b).tolist()[0]
    [3.0, 3.0, 3.0, 3.0]
    >>> kiln.einsum("bij->bji", kiln.zeros(5, 2, 3)).shape
    (5, 3, 2)
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise ArgumentError("einsum: expected at least one operand")
    for i, x in enumerate(operands):
        if not isinstance(x, Tensor):
            raise ArgumentError(f"einsum: operand {i} must be a kiln.Tensor, got "
                                f"{type(x).__name__}")
    labels, out = _parse(equation, operands)
    sizes = _sizes(labels, operands)
    # Labels that nothing later needs are summed away as early as possible.
    current, cur_labels = operands[0], labels[0]
    rest = list(zip(operands[1:], labels[1:]))
    need_later = set(out).union(*(set(seq) for _, seq in rest))
    current, cur_labels = _sum_out(current, cur_labels, need_later)
    for j, (x, seq) in enumerate(rest):
        later = set(out).union(*(set(s) for _, s in rest[j + 1:]))
        x, seq = _sum_out(x, seq, later | set(cur_labels))
        current, cur_labels = _sum_out(current, cur_labels, later | set(seq))
        current, cur_labels = _contract(current, cur_labels, x, seq, later, sizes)
    current, cur_labels = _sum_out(current, cur_labels, set(out))
    if cur_labels == out:
        return current
    return permute(current, *[cur_labels.index(ch) for ch in out])
