"""The progress bar of long C builds (kiln.backends.c.progress): a terminal only."""

from __future__ import annotations

import io
import threading

import pytest

from kiln.backends.c.progress import build_progress, wanted


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_only_a_terminal_and_a_build_of_several_units_gets_a_bar(monkeypatch):
    assert wanted(["a.c", "b.c"], _Terminal())
    assert not wanted(["a.c"], _Terminal())  # one unit: nothing to count
    assert not wanted(["a.c", "b.c"], io.StringIO())  # a pipe or a log
    monkeypatch.setenv("KILN_PROGRESS", "0")
    assert not wanted(["a.c", "b.c"], _Terminal())


def test_the_bar_counts_units_as_they_finish_on_any_thread():
    out = io.StringIO()
    with build_progress("a library", ["a.c", "b.c", "c.c"], stream=out, force=True) as done:
        workers = [threading.Thread(target=done, args=(u,)) for u in ("a.c", "b.c", "c.c")]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    text = out.getvalue()
    assert "[kiln] compiling a library" in text and "3/3" in text


@pytest.mark.parametrize("stream", [io.StringIO(), None])
def test_without_a_terminal_nothing_is_written(stream, capsys):
    with build_progress("a library", ["a.c", "b.c"], stream=stream) as done:
        done("a.c")
        done("b.c")
    assert (stream.getvalue() if stream is not None else capsys.readouterr().err) == ""
