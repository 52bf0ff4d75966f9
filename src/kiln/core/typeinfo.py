"""``kiln.finfo`` and ``kiln.iinfo``: the numerical limits of Kiln's dtypes, as in torch.

>>> import kiln
>>> kiln.finfo(kiln.float32).eps, kiln.iinfo(kiln.int32).max
(1.1920928955078125e-07, 2147483647)
>>> kiln.finfo().bits  # the default float dtype
32
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.core import dtypes as _dt
from kiln.errors import DTypeError


class finfo:  # noqa: N801  (torch.finfo's name)
    """Limits of a floating dtype: ``bits``, ``eps``, ``max``, ``min``, ``tiny`` (=
    ``smallest_normal``), ``resolution``, ``dtype`` (its name).

    >>> import kiln
    >>> kiln.finfo(kiln.float64).bits, kiln.finfo("float32").resolution
    (64, 1e-06)
    """

    def __init__(self, type: Any = None) -> None:  # noqa: A002
        d = _dt.DEFAULT_FLOAT if type is None else _dt.get_dtype(type, arg="finfo")
        if not d.is_floating:
            raise DTypeError(f"kiln.finfo: expected a floating dtype, got {d} (use kiln.iinfo "
                             "for integers)")
        info = np.finfo(d.np_dtype)
        self.bits = int(info.bits)
        self.eps = float(info.eps)
        self.max = float(info.max)
        self.min = float(info.min)
        self.tiny = float(info.tiny)
        self.smallest_normal = self.tiny
        self.resolution = 10.0 ** -int(info.precision)
        self.dtype = d.name

    def __repr__(self) -> str:
        return (f"finfo(resolution={self.resolution}, min={self.min:.6g}, max={self.max:.6g}, "
                f"eps={self.eps:.6g}, smallest_normal={self.tiny:.6g}, tiny={self.tiny:.6g}, "
                f"dtype={self.dtype})")


class iinfo:  # noqa: N801  (torch.iinfo's name)
    """Limits of an integer (or bool) dtype: ``bits``, ``max``, ``min``, ``dtype``.

    >>> import kiln
    >>> kiln.iinfo(kiln.int64).min
    -9223372036854775808
    """

    def __init__(self, type: Any) -> None:  # noqa: A002
        d = _dt.get_dtype(type, arg="iinfo")
        if d.is_floating:
            raise DTypeError(f"kiln.iinfo: expected an integer dtype, got {d} (use kiln.finfo "
                             "for floats)")
        if d.is_bool:
            self.bits, self.max, self.min = 8, 1, 0
        else:
            info = np.iinfo(d.np_dtype)
            self.bits, self.max, self.min = int(info.bits), int(info.max), int(info.min)
        self.dtype = d.name

    def __repr__(self) -> str:
        return f"iinfo(min={self.min}, max={self.max}, dtype={self.dtype})"
