"""Named results of ops that return several tensors (like ``torch.return_types``)."""

from __future__ import annotations

from typing import Any, NamedTuple


class MinMax(NamedTuple):
    """``x.max(dim)`` / ``x.min(dim)``: the values and the indices where they are."""

    values: Any
    indices: Any
