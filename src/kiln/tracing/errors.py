"""The error for data-dependent Python control flow on a tracer, pointing at the user's line."""

from __future__ import annotations

import os
import traceback
from typing import Any

from kiln.errors import TraceError

_KILN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _user_frame() -> traceback.FrameSummary | None:
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
