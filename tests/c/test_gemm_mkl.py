"""MKL in a process: one OpenMP runtime, nothing of MKL in the global symbol scope (a PyTorch
imported later keeps its own MKL), and MKL single-threaded inside parallel regions.

Each check runs in a fresh Python process, since what is loaded, and in which order, is the
subject."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap

import pytest

from kiln.backends.c import blas
from kiln.errors import BackendError

try:
    blas.gemm_support("mkl")
except BackendError as exc:
    pytest.skip(f"MKL unavailable: {exc}", allow_module_level=True)

# Compiles and runs a matmul graph with KILN_GEMM=mkl, then reports the process's state.
KILN_PART = """
import kiln
w = kiln.randn(64, 32)
f = kiln.compile(lambda x: (x @ w).relu(), backend="c")
x = kiln.randn(48, 64)
import numpy as np
assert np.allclose(f(x).numpy(), (x @ w).relu().numpy(), rtol=1e-4, atol=1e-4)
"""
REPORT = """
from kiln.backends.c import mkl
gomp = sorted({line.split()[-1] for line in open("/proc/self/maps") if "libgomp" in line})
libs = sorted({line.split()[-1].rsplit("/", 1)[-1] for line in open("/proc/self/maps")
               if "libmkl_" in line})
report = {"gomp": gomp, "mkl_libs": libs, "global_mkl": mkl._global_mkl()}
"""
TORCH_PART = """
import numpy as np, torch
torch.set_num_threads(2)
a, b = torch.randn(200, 300, dtype=torch.float64), torch.randn(300, 100, dtype=torch.float64)
assert np.allclose((a @ b).numpy(), a.numpy() @ b.numpy())
torch_mkl = [l for l in torch.__config__.show().splitlines() if "Math Kernel" in l]
"""


def _run(code: str, **env: str) -> dict:
    full = {**os.environ, "KILN_GEMM": "mkl", "OMP_NUM_THREADS": "2", **env}
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, env=full, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@functools.cache
def _own_torch_mkl() -> list[str]:
    """torch's MKL banner in a process where Kiln loaded nothing."""
    return _run(TORCH_PART + "import json; print(json.dumps(torch_mkl))")


def test_torch_first_then_kiln_shares_one_libgomp():
    pytest.importorskip("torch")
    report = _run(TORCH_PART + KILN_PART + TORCH_PART + REPORT +
                  "report['torch_mkl'] = torch_mkl; import json; print(json.dumps(report))")
    assert len(report["gomp"]) == 1, report["gomp"]
    assert "libmkl_core.so" in " ".join(report["mkl_libs"])
    assert report["global_mkl"] == ""
    assert report["torch_mkl"] == _own_torch_mkl()


def test_kiln_first_keeps_mkl_out_of_torchs_way():
    # libmkl_rt would make MKL's layers global, and a torch imported afterwards would bind its
    # statically linked MKL to ours (its version banner would then name ours)
    pytest.importorskip("torch")
    report = _run(KILN_PART + REPORT + "before = report['global_mkl']\n" + TORCH_PART + REPORT +
                  "report['before'] = before; report['torch_mkl'] = torch_mkl\n"
                  "import json; print(json.dumps(report))")
    assert report["before"] == "" and report["global_mkl"] == ""
    assert len(report["gomp"]) == 1, report["gomp"]
    assert report["torch_mkl"] == _own_torch_mkl()


def test_mkl_threads_follow_openmp_and_stay_serial_in_parallel_regions():
    # MKL_VERBOSE prints one line per call with the threads it used (NThr)
    code = """
    import ctypes, json, os, sys
    from kiln.backends.c import blas, toolchain
    s = blas.gemm_support()
    assert s.backend == "mkl", s.backend
    src = s.header + r'''
    #include <stdio.h>
    #include <stdlib.h>
    void run(void) {
        long n = 256;
        float *a = calloc(32 * 128 * 128, sizeof(float));
        float *c = calloc(32 * 128 * 128, sizeof(float));
        printf("MARK whole\\n"); fflush(stdout);
        kiln_sgemm(0, 0, n, n, n, 1, a, n, a, n, 0, c, n);
        printf("MARK region\\n"); fflush(stdout);
        #pragma omp parallel num_threads(2)
        kiln_sgemm(0, 0, n, n, n, 1, a, n, a, n, 0, c + omp_get_thread_num() * n * n, n);
        printf("MARK batched\\n"); fflush(stdout);
        kiln_sgemm_batched(32, 0, 1, 128, 128, 64, 1, a, 64, 128 * 64, a, 64, 128 * 64, 0, c,
                           128, 128 * 128);
        printf("MARK end\\n"); fflush(stdout);
        free(a); free(c);
    }
    '''
    lib = toolchain.compile_shared({"v.c": src}, extra_flags=s.extra_flags,
                                   libraries=s.libraries)
    s.prepare()
    sys.stdout.flush()
    lib.load("verbose").run()
    """
    env = dict(os.environ, KILN_GEMM="mkl", OMP_NUM_THREADS="2", MKL_VERBOSE="1")
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    calls: dict[str, list[str]] = {}
    part = None
    for line in res.stdout.splitlines():
        if line.startswith("MARK "):
            part = line.split()[1]
        elif line.startswith("MKL_VERBOSE") and "NThr:" in line and part:
            calls.setdefault(part, []).append(line.split("(")[0].split()[-1] + " " +
                                             line.rsplit("NThr:", 1)[1].strip())
    assert calls["whole"] == ["SGEMM 2"], res.stdout
    assert calls["region"] == ["SGEMM 1", "SGEMM 1"], res.stdout
    assert calls["batched"] == ["SGEMM_BATCH_STRIDED 2"], res.stdout


def test_another_global_mkl_makes_auto_fall_back():
    # e.g. a NumPy built on libmkl_rt: its layers are global and would take over our calls
    code = """
    import ctypes, json
    from kiln.backends.c import blas, mkl
    wheel = mkl.find()
    rt = [p.replace("libmkl_core", "libmkl_rt") for p in wheel.libraries if "core" in p][0]
    ctypes.CDLL(rt, mode=ctypes.RTLD_GLOBAL).MKL_Get_Version_String
    auto = blas.gemm_support().backend
    try:
        blas.gemm_support("mkl")
        forced = "loaded"
    except Exception as exc:
        forced = f"{type(exc).__name__}: {exc}"
    print(json.dumps({"auto": auto, "forced": forced}))
    """
    report = _run(code, KILN_GEMM="")
    assert report["auto"] in ("openblas", "builtin")
    assert report["forced"].startswith("BackendError") and "KILN_GEMM=openblas" in report["forced"]
