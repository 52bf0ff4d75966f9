"""A compiler that times out is killed with its children (gcc's cc1), not only the driver."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from kiln.backends.c import toolchain


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")
def test_timeout_kills_the_compilers_children(monkeypatch, tmp_path):
    pidfile = tmp_path / "child.pid"
    # A "driver" that starts a long "cc1" child and waits for it, like gcc does.
    script = f"sleep 30 & echo $! > {pidfile}; wait"
    monkeypatch.setattr(toolchain, "_TIMEOUT_S", 0.5)
    with pytest.raises(subprocess.TimeoutExpired):
        toolchain._run(["sh", "-c", script])
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        try:
            with open(f"/proc/{child}/stat") as f:  # a zombie waiting for its reaper is gone
                if f.read().split()[2] == "Z":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.05)
    raise AssertionError(f"the compiler's child {child} still runs after the timeout")
