"""Every benchmark script runs, in its ``--smoke`` mode (tiny sizes, one call per cell).

A benchmark is run by hand, rarely; without this test a change elsewhere breaks it silently
(a renamed attribute, a torch twin whose state dict no longer matches). The PyTorch columns
run when torch is installed; without it each script runs with its torch columns off, so the
Kiln columns are still checked. Nothing here looks at a timing.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py")
                 if p.stem not in ("__init__", "torch_models"))
# Scripts whose torch columns are switched off by a flag (the others skip torch when it does
# not import).
NO_TORCH_FLAG = {"aot_saved_bytes", "cnn", "export", "fuzz_checkpoints", "minilm", "optim_step",
                 "overhead", "run", "threads", "warm_start"}
HAVE_TORCH = importlib.util.find_spec("torch") is not None
# A cell per script whose text shows that the torch column ran, when torch is installed.
TORCH_COLUMN = {
    "aot_saved_bytes": "torch eager",
    "cnn": "torch: 2.",
    "control_flow": "torch eager",
    "export": "aoti (torch)",
    "layers": "torch/kiln",
    "fuzz_loaders": "non_kiln",  # no torch column: the outcome counts
    "fuzz_artifacts": "mutated artifacts",  # no torch column: a loader fuzz
    "fuzz_checkpoints": "torch.load(weights_only=True) agrees",
    "minilm": "torch: 2.",
    "native_conv": "torch/kiln",
    "native_gemm": "mkl/trch",
    "optim_step": "t.fused",
    "overhead": "kiln/torch",
    "run": "torch: 2.",
    "threads": "torch-eager",
    "warm_start": "torch.compile",
}


def test_every_script_is_covered():
    assert set(SCRIPTS) == set(TORCH_COLUMN), "a new benchmark script needs a smoke entry"


# AOTInductor compiles even a tiny MLP for minutes on the 2-core machine: its column runs
# by hand only.
SLOW_TORCH = {"export"}


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs(script):
    args = [sys.executable, "-m", f"benchmarks.{script}", "--smoke"]
    torch_column = HAVE_TORCH and script not in SLOW_TORCH
    if not torch_column and script in NO_TORCH_FLAG:
        args.append("--no-torch")
    if script == "run":
        args.append("--warm-kiln-cache")  # the suite's build cache; a cold run is slower
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT),
                                         env.get("PYTHONPATH", "")])
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "unavailable" not in proc.stderr, proc.stderr  # a column that failed to build
    if torch_column:
        assert TORCH_COLUMN[script] in proc.stdout, proc.stdout
        assert "n/a" not in proc.stdout, proc.stdout  # every column has a number
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) >= 3, proc.stdout
