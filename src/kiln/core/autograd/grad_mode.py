"""Grad mode: whether ops record themselves on the autograd tape."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class _State(threading.local):
    # A class-level default: reading it costs an attribute lookup, where getattr(local,
    # "enabled", True) on a thread that never set it raises and catches AttributeError.
    enabled = True


_state = _State()


def is_grad_enabled() -> bool:
    """True when ops on tensors that require grad record their backward.

    >>> import kiln
    >>> with kiln.no_grad():
    ...     kiln.is_grad_enabled()
    False
    """
    return _state.enabled


def _set_enabled(mode: bool) -> None:
    _state.enabled = bool(mode)


@contextlib.contextmanager
def _grad_mode(mode: bool) -> Iterator[None]:
    previous = is_grad_enabled()
    _set_enabled(mode)
    try:
        yield
    finally:
        _set_enabled(previous)


class _GradModeContext(contextlib.ContextDecorator):
    """Sets grad mode to ``_mode`` inside the block and restores the previous mode after it.

    Previous modes are kept on a stack, so one instance may be entered again before it
    exits (a decorated recursive function)."""

    _mode = False

    def __init__(self) -> None:
        self._previous: list[bool] = []

    def __enter__(self) -> None:
        self._previous.append(is_grad_enabled())
        _set_enabled(self._mode)

    def __exit__(self, *exc: object) -> None:
        _set_enabled(self._previous.pop())


class no_grad(_GradModeContext):
    """Context manager and decorator that turns recording off (like ``torch.no_grad``).

    >>> import kiln
    >>> x = kiln.ones(2, requires_grad=True)
    >>> with kiln.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    _mode = False


class enable_grad(_GradModeContext):
    """Context manager and decorator that turns recording back on inside ``no_grad``.

    >>> import kiln
    >>> with kiln.no_grad(), kiln.enable_grad():
    ...     kiln.is_grad_enabled()
    True
    """

    _mode = True


class set_grad_enabled:
    """Turn recording on or off, like ``torch.set_grad_enabled``: called, it switches the mode
    at once (until switched back); as a context manager, the previous mode comes back on exit.

    >>> import kiln
    >>> x = kiln.ones(2, requires_grad=True)
    >>> with kiln.set_grad_enabled(False):
    ...     (x * 2).requires_grad
    False
    >>> kiln.is_grad_enabled()
    True
    >>> _ = kiln.set_grad_enabled(False); kiln.is_grad_enabled()
    False
    >>> _ = kiln.set_grad_enabled(True)
    """

    def __init__(self, mode: bool) -> None:
        self._previous = is_grad_enabled()
        _set_enabled(mode)  # the call alone switches the mode, as in torch

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        _set_enabled(self._previous)
