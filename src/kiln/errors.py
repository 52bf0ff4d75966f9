"""The KilnError family.

Every error Kiln raises for bad input derives from :class:`KilnError`. Errors name the op or
argument at fault and say what was expected and what came, so a user can fix the call
without reading Kiln's source.
"""

from __future__ import annotations


class KilnError(Exception):
    """Base class of every error Kiln raises on purpose."""


class ShapeError(KilnError, ValueError):
    """Shapes that do not fit an op (rank, broadcasting, sizes)."""


class DTypeError(KilnError, TypeError):
    """A dtype an op does not accept, or an unknown dtype name."""


class ArgumentError(KilnError, TypeError):
    """An argument of the wrong kind (not a tensor, a bad option value, ...)."""


class ValueArgumentError(ArgumentError, ValueError):
    """An argument of the right kind with a bad value (a negative size, ``p`` outside [0, 1],
    an unknown mode name). Also a ``ValueError``, which is what PyTorch raises there."""


class IndexError_(KilnError, IndexError):
    """An index out of range or of an unsupported kind."""


class AutogradError(KilnError, RuntimeError):
    """Backward through a freed graph, in-place on a leaf that needs grad, and the like."""


class TraceError(KilnError, RuntimeError):
    """Something tracing cannot record, such as data-dependent Python control flow."""


class GraphError(KilnError, ValueError):
    """An ill-formed graph: failed lint, bad JSON, unknown op."""


class SerializationError(KilnError, ValueError):
    """Bytes that are not a valid Kiln artifact, or from an unsupported format version."""


class BackendError(KilnError, RuntimeError):
    """A backend that cannot compile or run a graph."""


class GuardError(KilnError, ValueError):
    """Inputs of a compiled function that do not match what it was compiled for."""


class ToolchainError(BackendError):
    """No usable C compiler, or the compiler rejected the generated code."""


class CompileError(ToolchainError):
    """The C compiler failed; the message carries its output and the kept source path."""


def describe(value: object) -> str:
    """A short description of ``value`` for error messages: its type, shape and dtype.

    >>> import kiln
    >>> describe(kiln.ones(2, 3)), describe(3.5)
    ('Tensor(shape=(2, 3), dtype=float32)', 'float 3.5')
    """
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{type(value).__name__}(shape={tuple(shape)}, dtype={dtype})"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


class ScriptError(TraceError):
    """Source that ``kiln.jit.script`` cannot compile; the message points at it with a caret
    (file, line, column, the source line) and says what is supported instead."""
