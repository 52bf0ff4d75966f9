"""Distances as composites: ``kiln.cdist``, ``kiln.dist``, ``F.pdist``, ``F.pairwise_distance``.

Each is a broadcast difference reduced by :func:`kiln.linalg.vector_norm`, so the gradient at
a zero distance is 0 (not nan) for p = 2, as in torch.

>>> import kiln
>>> kiln.cdist(kiln.tensor([[0.0, 0.0]]), kiln.tensor([[3.0, 4.0], [0.0, 1.0]])).tolist()
[[5.0, 1.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.core import linalg
from kiln.core.creation import from_numpy
from kiln.core.functional import unsqueeze
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError
from kiln.nn.checks import want_tensor

__all__ = ["pairwise_distance", "pdist"]

_COMPUTE_MODES = ("use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist",
                  "donot_use_mm_for_euclid_dist")


def _want_p(fn: str, p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise ArgumentError(f"{fn}: p must be a number, got {type(p).__name__}")
    return float(p)


def cdist(x1: Tensor, x2: Tensor, p: float = 2.0, compute_mode: str | None = None) -> Tensor:
    """The p-norm distance between each row of ``x1`` (..., P, M) and each row of ``x2``
    (..., R, M): shape (..., P, R), batch dims broadcast. ``compute_mode`` is accepted and
    does not change the method (an exact difference, never the matrix-product shortcut).

    >>> import kiln
    >>> kiln.cdist(kiln.ones(1, 2), kiln.zeros(3, 2), p=1).tolist()
    [[2.0, 2.0, 2.0]]
    """
    fn = "cdist"
    want_tensor(fn, "x1", x1)
    want_tensor(fn, "x2", x2)
    p = _want_p(fn, p)
    if p < 0:
        raise ArgumentError(f"{fn}: p must be non-negative, got {p}")
    if compute_mode is not None and compute_mode not in _COMPUTE_MODES:
        raise ArgumentError(f"{fn}: compute_mode must be one of {_COMPUTE_MODES} or None, got "
                            f"{compute_mode!r}")
    if x1.ndim < 2 or x2.ndim < 2:
        raise ShapeError(f"{fn}: x1 and x2 must have at least 2 dims (..., rows, features), got "
                         f"shapes {tuple(x1.shape)} and {tuple(x2.shape)}")
    if x1.shape[-1] != x2.shape[-1]:
        raise ShapeError(f"{fn}: x1 and x2 must have the same number of features (last dim), "
                         f"got {x1.shape[-1]} and {x2.shape[-1]}")
    diff = unsqueeze(x1, -2) - unsqueeze(x2, -3)
    if diff.shape[-1] == 0:  # no features: every distance is 0
        return diff.sum(-1)
    return linalg.vector_norm(diff, p, dim=-1)


def dist(input: Tensor, other: Tensor, p: float = 2.0) -> Tensor:
    """The p-norm of ``input - other`` (broadcast) over all elements, as ``torch.dist``.

    >>> import kiln
    >>> kiln.dist(kiln.tensor([3.0, 4.0]), kiln.tensor(0.0)).item()
    5.0
    """
    want_tensor("dist", "input", input)
    return linalg.vector_norm(input - other, _want_p("dist", p))


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6,
                      keepdim: bool = False) -> Tensor:
    """The p-norm of ``x1 - x2 + eps`` over the last dim, as ``F.pairwise_distance``.

    >>> import kiln, kiln.nn.functional as F
    >>> round(F.pairwise_distance(kiln.tensor([[3.0, 4.0]]), kiln.zeros(1, 2)).item(), 4)
    5.0
    """
    want_tensor("pairwise_distance", "x1", x1)
    want_tensor("pairwise_distance", "x2", x2)
    diff = x1 - x2 + eps
    if diff.ndim == 0:
        diff = unsqueeze(diff, 0)
    return linalg.vector_norm(diff, _want_p("pairwise_distance", p), dim=-1, keepdim=keepdim)


def pdist(input: Tensor, p: float = 2.0) -> Tensor:
    """The p-norm distance between every pair of rows i < j of ``input`` (N, M), in row-major
    order: shape (N (N - 1) / 2,), as ``F.pdist``.

    >>> import kiln, kiln.nn.functional as F
    >>> F.pdist(kiln.tensor([[0.0], [1.0], [3.0]])).tolist()
    [1.0, 3.0, 2.0]
    """
    want_tensor("pdist", "input", input)
    p = _want_p("pdist", p)
    if input.ndim != 2:
        raise ShapeError(f"pdist: input must be 2-D (N, M), got shape {tuple(input.shape)}")
    if p < 0:
        raise ArgumentError(f"pdist: p must be non-negative, got {p}")
    n = int(input.shape[0])
    i, j = np.triu_indices(n, 1)
    diff = input[from_numpy(i.astype(np.int64))] - input[from_numpy(j.astype(np.int64))]
    if diff.shape[-1] == 0 or diff.shape[0] == 0:  # no pairs or no features
        return diff.sum(-1)
    return linalg.vector_norm(diff, p, dim=-1)
