"""kiln.set_num_threads / get_num_threads: the setting, its errors, that it reaches compiled
code (OpenMP from any calling thread; OpenBLAS without OpenMP), that results do not depend
on it, and that idle OpenMP threads do not spin for long (docs/c_backend.md, "Threads")."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from kiln.backends.c import threads as c_threads
from kiln.backends.c import toolchain
from kiln.base import threads
from kiln.errors import ArgumentError, KilnError, ValueArgumentError

from .conftest import assert_same, compile_fn

SRC = str(Path(__file__).resolve().parents[2] / "src")
needs_openmp = pytest.mark.skipif(
    not (toolchain.openmp_enabled() and toolchain.find_compiler().supports_openmp
         and toolchain.find_compiler().kind == "gcc"),
    reason="needs gcc's OpenMP (libgomp)")


@pytest.fixture
def restore_threads():
    before = kiln.get_num_threads()
    yield
    kiln.set_num_threads(before)


def test_round_trip(restore_threads):
    for n in (1, 3, 2):
        kiln.set_num_threads(n)
        assert kiln.get_num_threads() == n
    assert "set_num_threads" in kiln.__all__ and "get_num_threads" in kiln.__all__


@pytest.mark.parametrize("bad,error", [(0, ValueArgumentError), (-2, ValueArgumentError),
                                       (10**6, ValueArgumentError), (2.0, ArgumentError),
                                       ("2", ArgumentError), (True, ArgumentError),
                                       (None, ArgumentError)])
def test_bad_counts_name_the_argument(restore_threads, bad, error):
    before = kiln.get_num_threads()
    with pytest.raises(error, match="set_num_threads: n must be") as info:
        kiln.set_num_threads(bad)
    assert isinstance(info.value, KilnError)
    assert kiln.get_num_threads() == before  # unchanged


def test_numpy_integers_are_counts(restore_threads):
    kiln.set_num_threads(np.int64(1))
    assert kiln.get_num_threads() == 1 and type(kiln.get_num_threads()) is int


@pytest.mark.parametrize("env,want", [
    ({"KILN_NUM_THREADS": "3", "OMP_NUM_THREADS": "5"}, 3),
    ({"OMP_NUM_THREADS": "5,2"}, 5),  # nested levels: the outer one
    ({"OMP_NUM_THREADS": "lots"}, None),  # ignored, as OpenMP ignores it
    ({"KILN_NUM_THREADS": "0"}, None),
    ({}, None),
])
def test_default_honours_the_environment(monkeypatch, env, want):
    for var in ("KILN_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3})
    assert threads.default_num_threads() == (want if want is not None else 2)


def _omp_max_threads() -> int:
    return ctypes.CDLL(c_threads.LIBGOMP).omp_get_max_threads()


@needs_openmp
def test_count_reaches_compiled_code_from_any_thread(restore_threads):
    w = kiln.randn(32, 32)
    _, fn = compile_fn(lambda x: (x @ w).relu(), kiln.randn(8, 32))
    x = kiln.randn(8, 32)
    seen = {}

    def call_in_thread(n: int) -> None:
        fn(x)
        seen[n] = _omp_max_threads()  # this thread's OpenMP setting, as kiln_run left it

    for n in (1, 3):
        kiln.set_num_threads(n)  # after the library was loaded
        fn(x)
        assert _omp_max_threads() == n
        t = threading.Thread(target=call_in_thread, args=(n,))
        t.start()
        t.join()
        assert seen[n] == n


def test_results_do_not_depend_on_the_count(restore_threads):
    # Big enough that the GEMMs are split and the pointwise and row kernels run in parallel.
    kiln.manual_seed(0)
    model = kiln.models.MLP(sizes=(96, 256, 256, 10))
    x = kiln.randn(64, 96)
    labels = kiln.randint(0, 10, (64,))

    params = list(model.parameters())

    def loss_and_grads(loss_of) -> list[np.ndarray]:
        for p in params:
            p.grad = None
        loss = loss_of(x, labels)
        loss.backward()
        return [loss.detach().numpy()] + [p.grad.numpy().copy() for p in params]

    gm, fn = compile_fn(lambda x: F.softmax(model(x), dim=1).sum(0), x)
    c_loss = kiln.compile(lambda x, y: F.cross_entropy(model(x), y), backend="c")
    ref = loss_and_grads(lambda x, y: F.cross_entropy(model(x), y))
    for n in (1, 2):
        kiln.set_num_threads(n)
        assert_same(fn(x)[0], gm.forward(x)[0], rtol=1e-5, atol=1e-6, what=f"{n} threads")
        for g, r in zip(loss_and_grads(c_loss), ref, strict=True):
            np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6, err_msg=f"{n} threads")


def _run(code: str, **env: str) -> str:
    full = dict(os.environ, PYTHONPATH=SRC, **env)
    for var in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        if var not in env:
            full.pop(var, None)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full,
                          capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@needs_openmp
def test_openmp_idle_spin_is_decided_before_libgomp_loads():
    code = """
        import os, kiln
        from kiln.backends.c import threads
        f = kiln.compile(lambda x: x * 2.0, backend="c")
        f(kiln.ones(4))
        print(threads.spin_setting(), "|", os.environ.get("GOMP_SPINCOUNT"))
    """
    assert _run(code).strip() == f"GOMP_SPINCOUNT={c_threads.SPIN_COUNT} (Kiln's) | None"
    mine = _run(code, OMP_WAIT_POLICY="passive").strip()
    assert mine == "from the environment: OMP_WAIT_POLICY=passive | None"


def test_openblas_without_openmp_follows_the_count():
    from kiln.backends.c.blas import _find_openblas

    if _find_openblas() is None:
        pytest.skip("scipy-openblas32 not installed")
    out = _run("""
        import ctypes, kiln
        from kiln.backends.c.blas import _find_openblas, gemm_support
        assert gemm_support().backend == "openblas", gemm_support()
        w = kiln.randn(64, 64)
        f = kiln.compile(lambda x: x @ w, backend="c")
        f(kiln.randn(64, 64))
        lib = ctypes.CDLL(_find_openblas()[0])
        kiln.set_num_threads(1)
        one = lib.scipy_openblas_get_num_threads()
        kiln.set_num_threads(2)
        print(one, lib.scipy_openblas_get_num_threads())
    """, KILN_OPENMP="0", KILN_GEMM="openblas", KILN_CACHE_DIR="off")
    assert out.split() == ["1", "2"]


def test_loading_a_compiled_function_does_not_import_the_blas_package(tmp_path):
    from kiln.backends.c.blas import _find_openblas

    if _find_openblas() is None:
        pytest.skip("scipy-openblas32 not installed")
    w = kiln.randn(16, 16)
    gm, fn = compile_fn(lambda x: x @ w, kiln.randn(4, 16))
    if fn.plan["gemm"]["backend"] != "openblas":
        pytest.skip("the GEMM backend here is not OpenBLAS")
    path = tmp_path / "fn.bin"
    path.write_bytes(fn.serialize())
    out = _run(f"""
        import sys, kiln
        from kiln.backends import deserialize
        fn = deserialize(open({str(path)!r}, "rb").read())
        fn(kiln.ones(4, 16))
        print("scipy_openblas32" in sys.modules)
    """)
    assert out.strip() == "False"


# NumPy's OpenBLAS on Kiln's OpenMP team (docs/c_backend.md, "Threads")

_REGISTERED = """
    import ctypes, os, numpy as np, kiln
    from pathlib import Path
    from kiln.backends.c import threads
    f = kiln.compile(lambda x: (x @ x).relu(), backend="c")
    f(kiln.randn(64, 64))
    ob = sorted((Path(np.__file__).parent.parent / "numpy.libs").glob("lib*openblas*.so*"))
    registered = ctypes.c_void_p.in_dll(ctypes.CDLL(str(ob[0]), mode=os.RTLD_NOLOAD),
                                        "openblas_threads_callback_").value
    print(threads.blas_sharing().split(" ")[0].rstrip(":"), registered is not None)
"""


def _numpy_takes_a_callback() -> bool:
    return c_threads._numpy_openblas_register() is not None


@needs_openmp
def test_numpy_blas_runs_on_kilns_openmp_team():
    if not _numpy_takes_a_callback():
        pytest.skip("this NumPy's BLAS is not an OpenBLAS that takes a thread callback")
    assert _run(_REGISTERED).split() == ["yes", "True"]
    assert _run(_REGISTERED, KILN_SHARE_BLAS="0").split() == ["off", "False"]


@needs_openmp
def test_numpy_results_are_unchanged_on_kilns_team():
    if not _numpy_takes_a_callback():
        pytest.skip("this NumPy's BLAS is not an OpenBLAS that takes a thread callback")
    out = _run("""
        import numpy as np, kiln
        from kiln.backends.c import threads
        rng = np.random.default_rng(0)
        a, b = rng.standard_normal((700, 600)), rng.standard_normal((600, 500))
        ref = (a @ b, a.astype(np.float32) @ b.astype(np.float32))
        kiln.compile(lambda x: x * 2.0, backend="c")(kiln.ones(8))
        assert threads.blas_sharing().startswith("yes"), threads.blas_sharing()
        for _ in range(20):  # threaded GEMMs, whose jobs wait on each other
            assert np.array_equal(a @ b, ref[0])
            assert np.array_equal(a.astype(np.float32) @ b.astype(np.float32), ref[1])
        print("ok")
    """)
    assert out.strip() == "ok"


@needs_openmp
def test_forked_child_runs_numpy_and_kiln_without_hanging():
    # libgomp's team does not survive fork: without the child handler both calls hang
    out = _run("""
        import os, numpy as np, kiln
        a = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
        f = kiln.compile(lambda x: (x @ x).relu().sum(), backend="c")
        x = kiln.randn(256, 256)
        want = f(x).item()
        a @ a
        pid = os.fork()
        if pid == 0:
            ok = np.allclose(a @ a, a.astype(np.float64) @ a, atol=1e-2) and \\
                abs(f(x).item() - want) <= 1e-3 * abs(want)
            os._exit(0 if ok and kiln.get_num_threads() == 1 else 3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), kiln.get_num_threads() >= 1)
    """)
    assert out.split() == ["0", "True"]


_JOBS_C = r"""
#include <stdio.h>
#include <stdatomic.h>
#include "kiln_blas_share.h"

static atomic_int arrived;
static int seen[16];

/* Like OpenBLAS's level-3 jobs: none finishes before every job has started. */
static void job(int thread_num, void *data, int numjobs)
{
    atomic_fetch_add(&arrived, 1);
    while (atomic_load(&arrived) < numjobs) {}
    seen[thread_num] += *(int *)data;
}

static int run(int numjobs)
{
    int data[16];
    for (int i = 0; i < 16; ++i) data[i] = 1, seen[i] = 0;
    atomic_store(&arrived, 0);
    kiln_blas_threads(1, job, numjobs, sizeof(int), data, numjobs);
    for (int i = 0; i < numjobs; ++i)
        if (seen[i] != 1) return 1;
    return 0;
}

int main(void)
{
    int bad = run(1) + run(2) + run(6);
#pragma omp parallel num_threads(2)
    {
#pragma omp single
        bad += run(3); /* nested: the team inside would be one thread */
    }
    printf("%d\n", bad);
    return 0;
}
"""


@needs_openmp
@pytest.mark.parametrize("limit", ["1", "2", "64"])
def test_blas_callback_runs_every_job_at_once(tmp_path, limit):
    from kiln.backends.c.blas import RUNTIME_DIR

    src = tmp_path / "jobs.c"
    src.write_text(_JOBS_C)
    exe = tmp_path / "jobs"
    tc = toolchain.find_compiler()
    subprocess.run([tc.path, "-O1", "-fopenmp", f"-I{RUNTIME_DIR}", str(src), "-o", str(exe)],
                   check=True, capture_output=True, timeout=120)
    env = dict(os.environ, OMP_THREAD_LIMIT=limit)
    proc = subprocess.run([str(exe)], env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert (proc.returncode, proc.stdout.strip()) == (0, "0"), proc.stderr
