"""Argument checks for composites, so that bad input is reported by the function the user
called (``linear: input (2, 3) and weight (5, 4) ...``) and not by a primitive inside it
(``matmul (2, 3) @ (4, 5)``, with a weight the user never saw transposed).

>>> import kiln
>>> want_shape("layer_norm", "weight", kiln.ones(4), (3,))
Traceback (most recent call last):
...
kiln.errors.ShapeError: layer_norm: weight must have shape (3,), got (4,)
"""

from __future__ import annotations

from typing import Any

from kiln.core.prims.shapes import broadcast_shapes, fmt_shape
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, IndexError_, ShapeError


def want_tensor(fn: str, name: str, value: Any) -> Tensor:
    if not isinstance(value, Tensor):
        raise ArgumentError(f"{fn}: {name} must be a kiln.Tensor, got {type(value).__name__}")
    return value


def want_shape(fn: str, name: str, t: Any, shape: tuple, why: str = "") -> None:
    """``t`` (a tensor or None) has exactly ``shape``."""
    if t is None:
        return
    want_tensor(fn, name, t)
    if tuple(t.shape) != tuple(shape):  # a guard only where a symbolic size must be decided
        tail = f" ({why})" if why else ""
        raise ShapeError(f"{fn}: {name} must have shape {fmt_shape(shape)}{tail}, got "
                         f"{fmt_shape(t.shape)}")


def want_broadcast(fn: str, *named: tuple[str, Any]) -> None:
    """The (name, tensor or shape) pairs broadcast together (None entries are skipped)."""
    shapes = [(n, tuple(t.shape) if isinstance(t, Tensor) else tuple(t))
              for n, t in named if t is not None]
    try:
        broadcast_shapes(fn, *(s for _, s in shapes))
    except ShapeError:
        text = " and ".join(f"{n} {fmt_shape(s)}" for n, s in shapes)
        raise ShapeError(f"{fn}: {text} do not broadcast together") from None


def want_classes_in_range(fn: str, target: Tensor, n: Any, ignore_index: int) -> None:
    """Class-index targets in [0, n) (``ignore_index`` aside), checked on concrete data: the
    error names the loss, not the gather that picks the log-probabilities."""
    if target._node is not None or not isinstance(n, int) or not target.numel():
        return
    data = target._data
    bad = data[((data < 0) | (data >= n)) & (data != ignore_index)]
    if bad.size:
        raise IndexError_(f"{fn}: target value {int(bad.flat[0])} is out of range for {n} "
                          f"classes (expected 0 <= target < {n}, or ignore_index="
                          f"{ignore_index})")
