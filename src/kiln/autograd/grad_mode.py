"""Grad mode: whether ops record themselves on the autograd tape."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_state = threading.local()


def is_grad_enabled() -> bool:
    """True when ops on tensors that require grad record their backward.

    >>> import kiln
    >>> with kiln.no_grad():
    ...     kiln.is_grad_enabled()
    False
    """
    return getattr(_state, "enabled", True)


def set_grad_enabled(mode: bool) -> None:
    _state.enabled = bool(mode)


@contextlib.contextmanager
def _grad_mode(mode: bool) -> Iterator[None]:
    previous = is_grad_enabled()
    set_grad_enabled(mode)
    try:
        yield
    finally:
        set_grad_enabled(previous)


class no_grad(contextlib.ContextDecorator):
    """Context manager and decorator that turns recording off (like ``torch.no_grad``).

    >>> import kiln
    >>> x = kiln.ones(2, requires_grad=True)
    >>> with kiln.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    def __enter__(self) -> None:
        self._cm = _grad_mode(False)
        self._cm.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)


class enable_grad(contextlib.ContextDecorator):
    """Context manager and decorator that turns recording back on inside ``no_grad``.

    >>> import kiln
    >>> with kiln.no_grad(), kiln.enable_grad():
    ...     kiln.is_grad_enabled()
    True
    """

    def __enter__(self) -> None:
        self._cm = _grad_mode(True)
        self._cm.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)
