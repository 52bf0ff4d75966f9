"""Shared by the artifact tests: which backends this machine can compile for."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def has_compiler() -> bool:
    from kiln.backends.c.toolchain import find_compiler

    try:
        find_compiler()
    except Exception:  # noqa: BLE001  (no compiler, or a CC that does not run)
        return False
    return True


NEEDS_CC = pytest.mark.skipif(not has_compiler(), reason="no C compiler")
BACKENDS = ["interpret", pytest.param("c", marks=NEEDS_CC)]


_PRELUDE = '''
import sys
import numpy as np
import kiln, kiln.tracing.trace as tr, kiln.aot.joint as joint
import kiln.nn.functional as F
from kiln.models import MLP

def refuse(*a, **k):
    raise AssertionError("traced in the loading process")
tr.trace = joint.trace_program = refuse
x = kiln.from_numpy(np.load(sys.argv[1]))
y = kiln.from_numpy(np.load(sys.argv[2]))
'''
_EPILOGUE = '''
loss = g(x, y)
loss.backward()
print(repr(loss.item()))
for p in model.parameters():
    print(repr(float(p.grad.numpy().sum())))
'''


def run_without_compiler(tmp_path: pathlib.Path, load: str, x: Any, y: Any) -> list[float]:
    """Run ``load`` (which defines ``model`` and the loaded step ``g``) in a fresh process
    with ``CC=/bin/false``, an empty PATH and tracing forbidden; then ``g(x, y).backward()``.
    Returns the loss and the sum of each parameter's gradient."""
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "y.npy", y.numpy())
    script = tmp_path / "fresh.py"
    script.write_text(_PRELUDE + textwrap.dedent(load) + _EPILOGUE)
    env = dict(os.environ, CC="/bin/false", PATH=str(tmp_path / "no-bin"),
               PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "x.npy"),
                          str(tmp_path / "y.npy")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return [float(v) for v in out.stdout.split()]


def loss_and_grads(model: Any, loss: Any) -> list[float]:
    """What :func:`run_without_compiler` prints, for ``loss`` (backward is run here)."""
    loss.backward()
    return [loss.item()] + [float(p.grad.numpy().sum()) for p in model.parameters()]
