"""The KilnError family.

Every error Kiln raises for bad input derives from :class:`KilnError`. Errors name the op or
argument at fault and say what was expected and what came, so a user can fix the call
without reading Kiln's source.
"""

from __future__ import annotations

from collections.abc import Iterable


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


class AttributeError_(KilnError, AttributeError):
    """A name that ``kiln``, ``kiln.nn``, ``kiln.nn.functional`` or a Tensor does not have;
    the message suggests the closest names (see :func:`missing_attribute`)."""


class DeviceError(KilnError, RuntimeError):
    """A device other than the CPU (Kiln runs on the CPU only)."""


class GraphError(KilnError, ValueError):
    """An ill-formed graph: failed lint, bad JSON, unknown op."""


class SerializationError(KilnError, ValueError):
    """Bytes that are not a valid Kiln artifact, or from an unsupported format version."""


class UntrustedArtifactError(SerializationError):
    """Native code (a C artifact, a cache entry) whose signature is missing or does not verify
    under this user's key: it is refused before a single byte of it reaches the loader."""


class LinAlgError(KilnError, RuntimeError):
    """A linear-algebra op on an input it cannot handle: a singular matrix to invert or
    solve with, a matrix that is not positive definite for a Cholesky factor."""


class BackendError(KilnError, RuntimeError):
    """A backend that cannot compile or run a graph."""


class GuardError(KilnError, ValueError):
    """Inputs of a compiled function that do not match what it was compiled for."""


class ToolchainError(BackendError):
    """No usable C compiler, or the compiler rejected the generated code."""


class CompileError(ToolchainError):
    """The C compiler failed; the message carries its output and the kept source path."""


def missing_attribute(owner: str, name: str, candidates: Iterable[str]) -> AttributeError_:
    """The error for ``owner.name`` when ``owner`` has no such attribute: it names the closest
    of ``candidates`` (difflib), as ``did you mean``.

    >>> missing_attribute("module 'kiln'", "zeroes", ["zeros", "randn"]).args[0]
    "module 'kiln' has no attribute 'zeroes'; did you mean 'zeros'?"
    """
    import difflib

    names = [c for c in candidates if isinstance(c, str) and not c.startswith("_")]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in names}
        close = [lowered[c] for c in difflib.get_close_matches(name.lower(), lowered, n=3)]
    hint = ""
    if close:
        hint = "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    return AttributeError_(f"{owner} has no attribute {name!r}{hint}")


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
