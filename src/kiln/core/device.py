"""The ``device=`` argument torch functions take: Kiln runs on the CPU, so "cpu" (also
"cpu:0", a torch.device("cpu")) is accepted everywhere and anything else is refused.

>>> import kiln
>>> kiln.zeros(2, device="cpu").tolist()
[0.0, 0.0]
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from kiln.errors import ValueArgumentError


def check_device(fn: str, device: Any) -> None:
    """Accept None and the CPU; refuse any other device with a KilnError that says why.

    >>> check_device("zeros", "cpu")
    >>> check_device("zeros", "cuda")
    Traceback (most recent call last):
    ...
    kiln.errors.ValueArgumentError: zeros: device='cuda': Kiln runs on the CPU (compiled code \
included), so device must be None or 'cpu'; drop the argument or pass 'cpu'
    """
    if device is None:
        return
    name = getattr(device, "type", device)  # torch.device("cpu").type == "cpu"
    if isinstance(name, str) and name.split(":")[0] == "cpu":
        return
    raise ValueArgumentError(f"{fn}: device={device!r}: Kiln runs on the CPU (compiled code "
                             "included), so device must be None or 'cpu'; drop the argument "
                             "or pass 'cpu'")


def accepts_device(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` also taking torch's ``device=`` (checked), ``layout=``, ``pin_memory=`` and
    ``memory_format=`` (accepted when they mean the default)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, device: Any = None, layout: Any = None, pin_memory: bool = False,
                memory_format: Any = None, **kwargs: Any) -> Any:
        check_device(fn.__name__, device)
        if layout is not None and str(layout) not in ("torch.strided", "strided"):
            raise ValueArgumentError(f"{fn.__name__}: layout={layout!r}: Kiln tensors are "
                                     "dense (strided) only")
        return fn(*args, **kwargs)

    return wrapper
