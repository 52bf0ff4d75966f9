"""Shared by the export tests: examples/c/run_model.c built with the system compiler."""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "c" / "run_model.c"
HEADER_DIR = ROOT / "src" / "kiln" / "export"
ENV = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2"}  # nothing of Python's


@pytest.fixture(scope="module")
def run_model(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    exe = tmp_path_factory.mktemp("runner") / "run_model"
    subprocess.run([cc, "-O2", "-Wall", "-Werror", f"-I{HEADER_DIR}", "-o", str(exe),
                    str(EXAMPLE), "-ldl", "-lpthread"], check=True)
    return exe


def run_exe(exe, lib, args, cwd):
    """Run the run_model executable on library ``lib`` in a clean environment."""
    return subprocess.run([str(exe), lib, *args], capture_output=True, text=True, cwd=cwd,
                          env=ENV, timeout=120)
