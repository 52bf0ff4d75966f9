"""torch's padding modules over ``F.pad``: ``ConstantPad{1,2,3}d``, ``ZeroPad{1,2,3}d``,
``ReflectionPad{1,2,3}d``, ``ReplicationPad{1,2,3}d`` and ``CircularPad{1,2,3}d``.

``padding`` is an int (every side) or 2 * n ints (last dim first: left, right, top,
bottom, front, back), as torch; the modules hold no parameters.
"""

from __future__ import annotations

from typing import Any

from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError
from kiln.nn import functional as F
from kiln.nn.module import Module


class _PadNd(Module):
    _n = 1
    _mode = "constant"

    def __init__(self, padding: Any) -> None:
        super().__init__()
        name, sides = type(self).__name__, 2 * self._n
        if isinstance(padding, int) and not isinstance(padding, bool):
            padding = (padding,) * sides
        if not isinstance(padding, (tuple, list)) or len(padding) != sides or \
                any(isinstance(v, bool) or not isinstance(v, int) for v in padding):
            raise ArgumentError(f"{name}: padding must be an int or {sides} ints, got "
                                f"{padding!r}")
        self.padding = tuple(padding)

    def forward(self, input: Tensor) -> Tensor:
        return F.pad(input, self.padding, mode=self._mode)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding: Any, value: float) -> None:
        super().__init__(padding)
        self.value = value

    def forward(self, input: Tensor) -> Tensor:
        return F.pad(input, self.padding, mode="constant", value=self.value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class _ZeroPadNd(_ConstantPadNd):
    def __init__(self, padding: Any) -> None:
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


# What each kind pads with, and F.pad's mode for it.
_KINDS = {"Constant": ("with ``value``", "constant"), "Zero": ("with zeros", "constant"),
          "Reflection": ("with its reflection (the edge not repeated)", "reflect"),
          "Replication": ("by repeating the edge values", "replicate"),
          "Circular": ("by wrapping around", "circular")}


def _padding_module(kind: str, n: int) -> type:
    """The class ``{kind}Pad{n}d``, with its own docstring and runnable example."""
    what, mode = _KINDS[kind]
    base = {"Constant": _ConstantPadNd, "Zero": _ZeroPadNd}.get(kind, _PadNd)
    name = f"{kind}Pad{n}d"
    dims = "the last dim" if n == 1 else f"the last {n} dims"
    args = "1, 0.5" if kind == "Constant" else "1"
    doc = (f"Pad {dims} {what}, as ``torch.nn.{name}``.\n\n"
           f"    >>> import kiln\n"
           f"    >>> kiln.nn.{name}({args})(kiln.ones{(1, 1) + (2,) * n}).shape\n"
           f"    {(1, 1) + (4,) * n}\n    ")
    return type(name, (base,), {"_n": n, "_mode": mode, "__doc__": doc,
                                "__module__": __name__, "__qualname__": name})


__all__: list[str] = []
for _kind in _KINDS:
    for _n in (1, 2, 3):
        __all__.append(f"{_kind}Pad{_n}d")
        globals()[__all__[-1]] = _padding_module(_kind, _n)
del _kind, _n
