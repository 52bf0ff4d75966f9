"""Devices: Kiln runs on the CPU, and says so when asked for anything else.

``"cpu"``, ``"cpu:0"``, ``kiln.device("cpu")`` (and a ``torch.device("cpu")``) are accepted
wherever PyTorch takes a device; ``"cuda"``, ``"mps"`` and the like raise a
:class:`~kiln.errors.DeviceError` naming the call.

>>> import kiln
>>> kiln.device("cpu")
device(type='cpu')
>>> kiln.ones(2).to("cpu").device
'cpu'
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from kiln.errors import ArgumentError, DeviceError, ValueArgumentError


def _cpu_only(where: str, got: Any) -> DeviceError:
    return DeviceError(f"{where}: Kiln runs on the CPU only, got device {got!r}; drop the "
                       "device argument or pass 'cpu' (kiln.cuda.is_available() is False)")


class device:  # noqa: N801  (torch.device's name)
    """A device description; only the CPU exists (``kiln.device("cpu")``, index 0 or None).

    >>> import kiln
    >>> kiln.device("cpu", 0).type, str(kiln.device("cpu"))
    ('cpu', 'cpu')
    """

    __slots__ = ("type", "index")

    def __init__(self, type: Any = "cpu", index: int | None = None) -> None:  # noqa: A002
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index
        if not isinstance(type, str):
            raise ArgumentError(f"kiln.device: expected a device string such as 'cpu', got "
                                f"{type!r}")
        name, _, suffix = type.partition(":")
        if name != "cpu":
            raise _cpu_only("kiln.device", type)
        if suffix:
            if not suffix.isdigit():
                raise ArgumentError(f"kiln.device: bad device index in {type!r}")
            index = int(suffix)
        if index not in (None, 0):
            raise _cpu_only("kiln.device", f"cpu:{index}")
        self.type = "cpu"
        self.index = index

    def __repr__(self) -> str:
        idx = "" if self.index is None else f", index={self.index}"
        return f"device(type='cpu'{idx})"

    def __str__(self) -> str:
        return "cpu" if self.index is None else f"cpu:{self.index}"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return other in ("cpu", str(self))
        return isinstance(other, device) and other.index == self.index

    def __hash__(self) -> int:
        return hash(("cpu", self.index))


def is_device(value: Any) -> bool:
    """True for what torch would read as a device (a string that is not a dtype name, a
    ``kiln.device``, an int ordinal, or an object with a ``type`` attribute like torch's)."""
    from kiln.core import dtypes

    if isinstance(value, device):
        return True
    if isinstance(value, str):
        return value not in dtypes._BY_NAME
    if isinstance(value, int) and not isinstance(value, bool):
        return True  # torch reads an int as a CUDA ordinal
    return type(value).__name__ == "device" and isinstance(getattr(value, "type", None), str)


def check_device(where: str, value: Any) -> None:
    """Accept None and every spelling of the CPU; refuse any other device with a
    :class:`~kiln.errors.DeviceError` that names ``where``."""
    if value is None or isinstance(value, device):
        return
    if isinstance(value, str):
        name, _, suffix = value.partition(":")
        if name == "cpu" and suffix in ("", "0"):
            return
        raise _cpu_only(where, value)
    kind = getattr(value, "type", None)
    if isinstance(kind, str) and type(value).__name__ == "device":
        if kind == "cpu" and getattr(value, "index", None) in (None, 0):
            return
        raise _cpu_only(where, str(value))
    if isinstance(value, int) and not isinstance(value, bool):
        raise _cpu_only(where, f"cuda:{value}")
    raise ArgumentError(f"{where}: device must be a string such as 'cpu' or a kiln.device, "
                        f"got {type(value).__name__}")


def parse_to(where: str, args: tuple, kwargs: dict) -> tuple[Any, Any]:
    """``(dtype, like)`` from torch's ``.to`` forms: ``to(dtype)``, ``to(device)``,
    ``to(device, dtype)``, ``to(other_tensor)`` and the keywords ``device=``, ``dtype=``,
    ``non_blocking=``, ``copy=``, ``memory_format=`` (the last three accepted, ignored).
    ``like`` is the tensor given as ``other`` (its dtype wins), else None. Devices are checked."""
    unknown = set(kwargs) - {"device", "dtype", "non_blocking", "copy", "memory_format"}
    if unknown:
        raise ArgumentError(f"{where}: unexpected keyword argument {sorted(unknown)[0]!r}")
    check_device(where, kwargs.get("device"))
    dtype = kwargs.get("dtype")
    like = None
    rest = list(args)
    if rest and is_device(rest[0]) and not hasattr(rest[0], "shape"):
        check_device(where, rest.pop(0))
    if rest and hasattr(rest[0], "shape") and hasattr(rest[0], "dtype"):
        like = rest.pop(0)
    elif rest and not isinstance(rest[0], bool):
        if dtype is not None:
            raise ArgumentError(f"{where}: dtype given twice")
        dtype = rest.pop(0)
    if len(rest) > 2 or any(not isinstance(v, bool) for v in rest):
        raise ArgumentError(f"{where}: expected .to(device, dtype, non_blocking, copy), got "
                            f"extra arguments {rest!r}")
    return dtype, like


def accepts_device(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` also taking torch's ``device=`` (checked by :func:`check_device`), ``layout=``,
    ``pin_memory=`` and ``memory_format=`` (accepted when they mean the default).

    >>> import kiln
    >>> kiln.zeros(2, device="cpu", pin_memory=False).tolist()
    [0.0, 0.0]
    """
    @functools.wraps(fn)
    def wrapper(*args: Any, device: Any = None, layout: Any = None, pin_memory: bool = False,
                memory_format: Any = None, **kwargs: Any) -> Any:
        check_device(fn.__name__, device)
        if layout is not None and str(layout) not in ("torch.strided", "strided"):
            raise ValueArgumentError(f"{fn.__name__}: layout={layout!r}: Kiln tensors are "
                                     "dense (strided) only")
        return fn(*args, **kwargs)

    return wrapper
