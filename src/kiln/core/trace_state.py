"""Which trace is running, as the tensor core sees it.

The tracer (:mod:`kiln.tracing.context`) pushes its ``TraceContext`` here; the core (dispatch,
in-place ops, views, ``bool(tracer)``) only asks whether one is active and raises the errors
that belong to a running trace. Keeping this state below the tracer lets the core stay a layer
under ``kiln.tracing`` (the import-linter contract in pyproject.toml).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from kiln.errors import TraceError

if TYPE_CHECKING:
    import traceback

    from kiln.tracing.context import TraceContext

_STACK: list[TraceContext] = []


def current() -> TraceContext | None:
    return _STACK[-1] if _STACK else None


def stale_tracer_error(op: str) -> TraceError:
    return TraceError(
        f"{op}: a tracer tensor was used after its trace ended (it was probably stored in a "
        "global or an attribute during tracing); keep tensors from a traced function local"
    )

# Frames under src/kiln are Kiln's own; the first frame outside is the user's line.
_KILN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _user_frame() -> traceback.FrameSummary | None:
    import traceback  # only when a trace fails: `import kiln` does not pay for it

    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(_KILN_DIR):
            return frame
    return None


def data_dependent_error(tracer: Any, what: str) -> TraceError:
    frame = _user_frame()
    where = ""
    if frame is not None:
        code = f": `{frame.line.strip()}`" if frame.line else ""
        where = f" at {frame.filename}:{frame.lineno}{code}"
    return TraceError(
        f"data-dependent control flow{where}: {what} needs the value of tracer "
        f"{tracer._node.name} ({tracer._tmeta}), which is unknown while tracing. "
        "Select values with kiln.where(cond, a, b) instead of a Python `if`, or compute "
        "the decision outside the traced function and pass it in as a Python value."
    )
