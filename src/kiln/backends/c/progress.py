"""A progress bar for long C builds, on a terminal only.

A big program compiles as several translation units, and the conv runtime as several
objects, each seconds of compiler time: :func:`build_progress` shows one bar per build that
advances as each unit finishes, on stderr when stderr is a terminal (``rich``, a dependency
of the ``kiln`` CLI). It stays silent in pipes, logs and tests, for builds of one unit, and
with ``KILN_PROGRESS=0``; the bar is cleared when the build ends.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TextIO


def wanted(units: Sequence[str], stream: TextIO | None = None) -> bool:
    """Whether a build of ``units`` shows a bar on ``stream`` (stderr by default).

    >>> import io
    >>> wanted(["a.c", "b.c"], io.StringIO())  # not a terminal
    False
    """
    stream = sys.stderr if stream is None else stream
    if len(units) < 2 or os.environ.get("KILN_PROGRESS", "1") == "0":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # a closed or detached stream
        return False


@contextlib.contextmanager
def build_progress(what: str, units: Sequence[str], stream: TextIO | None = None,
                   force: bool = False) -> Iterator[Callable[[str], None]]:
    """A context whose value, called with a unit's name as it finishes, advances the bar.
    Thread-safe (units finish on a pool's threads). ``force`` draws even when ``stream`` is
    not a terminal (tests).

    >>> with build_progress("library", ["a.c", "b.c"]) as done:
    ...     done("a.c"); done("b.c")
    """
    if not (force or wanted(units, stream)):
        yield lambda unit: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(file=stream if stream is not None else sys.stderr,
                      force_terminal=True if force else None)
    lock = threading.Lock()
    with Progress(TextColumn("\\[kiln] compiling {task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[last]}"),
                  console=console, transient=True) as bar:
        task = bar.add_task(what, total=len(units), last="")

        def done(unit: str) -> None:
            with lock:
                bar.update(task, advance=1, last=unit)

        yield done
