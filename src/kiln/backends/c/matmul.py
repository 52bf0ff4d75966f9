"""Plan a matmul node as GEMM calls on strided operand views.

An operand is any value that reads one buffer through an affine index map (a buffer, or a
permute / expand / slice / unit-dim reshape of one). GEMM needs a unit stride along one of
the two matrix dims: a unit column stride is a plain operand (``ld`` = row stride), a unit
row stride is a transposed one (``ld`` = column stride), so ``x @ w.T`` and ``q @ k.mT``
never copy. Batch dims broadcast with stride 0; adjacent batch dims whose strides nest are
merged, and what stays becomes an outer C loop around one batched call.
"""

from __future__ import annotations

from kiln.backends.c.ix import IX, contiguous_strides, lift
from kiln.backends.c.lower import Buffer, Lowering, is_one
from kiln.errors import BackendError
from kiln.graph.node import Node


def gemm_layout(rows: IX, cols: IX, s_row: IX, s_col: IX) -> tuple[int, IX] | None:
    """(trans, ld) for a rows x cols matrix with the given strides, or None."""
    if is_one(cols) or s_col == IX.const(1):
        return 0, s_row if not is_one(rows) else cols
    if is_one(rows) or s_row == IX.const(1):
        return 1, s_col if not is_one(cols) else rows
    return None


def _swap(t: tuple) -> tuple:
    return tuple(t[:-2]) + (t[-1], t[-2])


def operand_ok(lw: Lowering, node: Node) -> bool:
    view = lw.strided_view(node)
    if view is None:
        return False
    _, _, strides = view
    shape = tuple(lift(s) for s in node.meta.shape)
    return gemm_layout(shape[-2], shape[-1], strides[-2], strides[-1]) is not None


def plan_matmul(lw: Lowering, node: Node, out: Buffer, transposed: bool = False) -> dict:
    """GEMM calls for ``node`` writing ``out``; ``transposed``: ``out`` holds the product
    with its last two dims swapped, computed as B^T @ A^T."""
    a, b = node.args
    views = []
    for arg in (a, b):
        view = lw.strided_view(arg)
        if view is None:
            raise BackendError(f"c backend: internal error: matmul operand {arg.name} is not "
                               "a strided view")
        views.append(view)
    (abuf, abase, ast), (bbuf, bbase, bst) = views
    ashape = tuple(lift(s) for s in a.meta.shape)
    bshape = tuple(lift(s) for s in b.meta.shape)
    m, k = ashape[-2], ashape[-1]
    n = bshape[-1]
    if transposed:
        # C^T = B^T A^T: B^T is an n x k matrix, A^T a k x m one (their strides swapped)
        (abuf, abase, ast, ashape), (bbuf, bbase, bst, bshape) = \
            (bbuf, bbase, _swap(bst), _swap(bshape)), (abuf, abase, _swap(ast), _swap(ashape))
        m, n = n, m
    la = gemm_layout(m, k, ast[-2], ast[-1])
    lb = gemm_layout(k, n, bst[-2], bst[-1])
    if la is None or lb is None:
        raise BackendError(f"c backend: internal error: matmul {node.name} operand layout")
    batch = out.shape[:-2]
    nb = len(batch)
    cst = contiguous_strides(out.shape)

    def batch_strides(shape: tuple, strides: tuple) -> list[IX]:
        lead = nb - (len(shape) - 2)
        out_s = []
        for d in range(nb):
            j = d - lead
            if j < 0 or (is_one(shape[j]) and not is_one(batch[d])):
                out_s.append(IX.const(0))
            else:
                out_s.append(strides[j])
        return out_s

    sa = batch_strides(ashape, ast)
    sb = batch_strides(bshape, bst)
    sc = list(cst[:nb])
    dims = [d for d in range(nb) if not is_one(batch[d])]
    groups: list[list[int]] = []
    for d in dims:
        if groups:
            p = groups[-1][-1]
            if all(s[p] == s[d] * batch[d] for s in (sa, sb, sc)):
                groups[-1].append(d)
                continue
        groups.append([d])
    loops = []
    for g in groups:
        ext = IX.const(1)
        for d in g:
            ext = ext * batch[d]
        last = g[-1]
        loops.append((ext, sa[last], sb[last], sc[last]))
    return {"a": (abuf, abase, la), "b": (bbuf, bbase, lb), "m": m, "n": n, "k": k,
            "loops": loops, "out": out, "dtype": out.dtype, "node": node}
