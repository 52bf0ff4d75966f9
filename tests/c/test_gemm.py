"""kiln_gemm.h on every GEMM backend (MKL, OpenBLAS, built-in): correctness against a float64
NumPy product on transposes, strides, alpha/beta, broadcast batches, empty and unit sizes,
and the paths that split, batch or fall back; then the backend choice and what a serialized
function records about its GEMM."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kiln
from kiln.backends import deserialize
from kiln.backends.c import blas, mkl, toolchain
from kiln.errors import BackendError

HARNESS = r"""
#define HARNESS(T, X)                                                                             \
void t_##X##gemm(int tA, int tB, long M, long N, long K, double alpha, const T *A, long lda,     \
                 const T *B, long ldb, double beta, T *C, long ldc) {                            \
    kiln_##X##gemm(tA, tB, M, N, K, (T)alpha, A, lda, B, ldb, (T)beta, C, ldc);                  \
}                                                                                                 \
void t_##X##gemm_batched(long batch, int tA, int tB, long M, long N, long K, double alpha,        \
                         const T *A, long lda, long sA, const T *B, long ldb, long sB,            \
                         double beta, T *C, long ldc, long sC) {                                  \
    kiln_##X##gemm_batched(batch, tA, tB, M, N, K, (T)alpha, A, lda, sA, B, ldb, sB, (T)beta, C, \
                           ldc, sC);                                                              \
}                                                                                                 \
/* each thread of a parallel region computes batch entry omp_get_thread_num() */                \
void t_##X##gemm_in_parallel(long batch, int tA, int tB, long M, long N, long K,                 \
                             const T *A, long lda, long sA, const T *B, long ldb, long sB,       \
                             T *C, long ldc, long sC) {                                           \
    _Pragma("omp parallel num_threads(batch)")                                                    \
    {                                                                                             \
        long b = omp_get_thread_num();                                                            \
        kiln_##X##gemm(tA, tB, M, N, K, 1, A + b * sA, lda, B + b * sB, ldb, 0, C + b * sC, ldc); \
    }                                                                                             \
}
#include <stdio.h>
#ifndef _OPENMP
static int omp_get_thread_num(void) { return 0; }
#endif
void t_flush(void) { fflush(NULL); }
HARNESS(float, s)
HARNESS(double, d)
"""


def _available() -> list[str]:
    out = []
    for name in blas.BACKENDS:
        try:
            blas.gemm_support(name)
        except BackendError:
            continue
        out.append(name)
    return out


BACKENDS = _available()
_libs: dict[str, ctypes.CDLL] = {}


def harness(backend: str) -> ctypes.CDLL:
    if backend not in _libs:
        support = blas.gemm_support(backend)
        lib = toolchain.compile_shared({"t.c": support.header + HARNESS},
                                       extra_flags=support.extra_flags,
                                       libraries=support.libraries)
        support.prepare()
        cdll = lib.load(f"gemm-test-{backend}")
        P, L, I, D = ctypes.c_void_p, ctypes.c_long, ctypes.c_int, ctypes.c_double
        for x in "sd":
            getattr(cdll, f"t_{x}gemm").argtypes = [I, I, L, L, L, D, P, L, P, L, D, P, L]
            getattr(cdll, f"t_{x}gemm_batched").argtypes = [L, I, I, L, L, L, D, P, L, L, P, L,
                                                            L, D, P, L, L]
            getattr(cdll, f"t_{x}gemm_in_parallel").argtypes = [L, I, I, L, L, L, P, L, L, P, L,
                                                                L, P, L, L]
        _libs[backend] = cdll
    return _libs[backend]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def _view(buf: np.ndarray, off: int, rows: int, cols: int, ld: int, batch: int,
          stride: int) -> np.ndarray:
    """The (batch, rows, cols) matrices stored in flat ``buf`` from ``off``."""
    it = buf.itemsize
    return np.lib.stride_tricks.as_strided(buf[off:], (batch, rows, cols),
                                           (stride * it, ld * it, it), writeable=False)


def _extent(rows: int, cols: int, ld: int, batch: int, stride: int) -> int:
    if rows == 0 or cols == 0 or batch == 0:
        return 1
    return (batch - 1) * stride + (rows - 1) * ld + cols


def run_case(backend: str, dtype: type, batch: int, tA: int, tB: int, M: int, N: int, K: int,
             alpha: float = 1.0, beta: float = 0.0, pad_a: int = 0, pad_b: int = 0,
             pad_c: int = 0, stride_a: int | None = None, stride_b: int | None = None,
             lda: int | None = None, ldb: int | None = None, ldc: int | None = None,
             stride_c: int | None = None, seed: int = 0, batched: bool | None = None) -> None:
    """Run one GEMM through the harness and compare with float64 NumPy (NaN-aware for beta=0:
    C starts as NaN, which must not leak into the result)."""
    rng = np.random.default_rng(seed)
    ra, ca = (K, M) if tA else (M, K)
    rb, cb = (N, K) if tB else (K, N)
    lda = ca + pad_a if lda is None else lda
    ldb = cb + pad_b if ldb is None else ldb
    ldc = N + pad_c if ldc is None else ldc
    sa = ra * lda if stride_a is None else stride_a
    sb = rb * ldb if stride_b is None else stride_b
    sc = M * ldc if stride_c is None else stride_c
    a = rng.standard_normal(_extent(ra, ca, lda, batch, sa)).astype(dtype)
    b = rng.standard_normal(_extent(rb, cb, ldb, batch, sb)).astype(dtype)
    c0 = rng.standard_normal(_extent(M, N, ldc, batch, sc)).astype(dtype)
    if beta == 0:
        c0[:] = np.nan
    c = c0.copy()
    av = _view(a, 0, ra, ca, lda, batch, sa).astype(np.float64)
    bv = _view(b, 0, rb, cb, ldb, batch, sb).astype(np.float64)
    av = av.transpose(0, 2, 1) if tA else av
    bv = bv.transpose(0, 2, 1) if tB else bv
    want_c = c0.astype(np.float64)
    region = _view(want_c, 0, M, N, ldc, batch, sc)
    prod = alpha * (np.ascontiguousarray(av) @ np.ascontiguousarray(bv))  # BLAS, not a loop
    if beta != 0:
        prod = prod + beta * region
    lib = harness(backend)
    x = "s" if dtype == np.float32 else "d"
    if batched is None:
        batched = batch != 1
    if batched:
        getattr(lib, f"t_{x}gemm_batched")(batch, tA, tB, M, N, K, alpha, a.ctypes.data, lda, sa,
                                           b.ctypes.data, ldb, sb, beta, c.ctypes.data, ldc, sc)
    else:
        getattr(lib, f"t_{x}gemm")(tA, tB, M, N, K, alpha, a.ctypes.data, lda, b.ctypes.data, ldb,
                                   beta, c.ctypes.data, ldc)
    got = _view(c, 0, M, N, ldc, batch, sc)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    scale = max(1.0, float(np.abs(prod).max())) if prod.size else 1.0
    if M and N:
        np.testing.assert_allclose(got, prod, rtol=tol, atol=tol * scale * max(K, 1) ** 0.5)
    # Nothing outside the C blocks was written
    mask = np.ones(c.size, bool)
    if M and N:
        starts = (np.arange(batch)[:, None] * sc + np.arange(M)[None, :] * ldc).ravel()
        mask[(starts[:, None] + np.arange(N)).ravel()] = False
    np.testing.assert_array_equal(c[mask], c0[mask])


@pytest.mark.parametrize("tA,tB", [(0, 0), (0, 1), (1, 0), (1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transposes_and_padded_strides(backend, tA, tB, dtype):
    run_case(backend, dtype, 1, tA, tB, 37, 29, 41)
    run_case(backend, dtype, 1, tA, tB, 37, 29, 41, pad_a=3, pad_b=5, pad_c=2, seed=1)
    # big enough for the threaded paths (MKL's own, OpenBLAS's split, the built-in's)
    run_case(backend, dtype, 1, tA, tB, 150, 130, 96, pad_a=1, seed=2)


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (0.5, 0.0), (1.0, 1.0), (-2.0, 0.25)])
def test_alpha_and_beta(backend, alpha, beta):
    run_case(backend, np.float32, 1, 0, 1, 33, 20, 17, alpha=alpha, beta=beta)
    run_case(backend, np.float64, 3, 1, 0, 9, 12, 7, alpha=alpha, beta=beta)


@pytest.mark.parametrize("M,N,K", [(0, 5, 3), (5, 0, 3), (5, 3, 0), (0, 0, 0), (1, 1, 1),
                                   (1, 7, 5), (7, 1, 5), (7, 5, 1), (1, 1, 300)])
@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_empty_and_unit_sizes(backend, M, N, K, beta):
    for tA, tB in ((0, 0), (1, 1)):
        run_case(backend, np.float32, 1, tA, tB, M, N, K, beta=beta)
        run_case(backend, np.float64, 2, tA, tB, M, N, K, beta=beta)


def test_broadcast_batches(backend):
    # strideA = 0: one A against a batch of B (x @ W for a batch of W), and the other way
    run_case(backend, np.float32, 6, 0, 0, 16, 24, 8, stride_a=0)
    run_case(backend, np.float32, 6, 0, 1, 16, 24, 8, stride_b=0)
    # a shared B with A's and C's batches stacked row after row is one GEMM of 5 * 7 rows
    run_case(backend, np.float32, 5, 0, 0, 7, 9, 11, pad_a=2, pad_c=3, stride_b=0, beta=0.5)
    run_case(backend, np.float64, 3, 0, 1, 40, 33, 20, stride_b=0, seed=3)
    run_case(backend, np.float64, 4, 1, 1, 5, 6, 7, stride_a=0, stride_b=0, beta=1.0)


def test_attention_batches(backend):
    # the transformer's batched shapes: whole small GEMMs per thread, or MKL's batch call
    run_case(backend, np.float32, 32, 0, 1, 128, 128, 64)
    run_case(backend, np.float32, 32, 0, 0, 128, 64, 128, seed=1)
    # per-batch work above the whole-GEMM-per-thread limit: each GEMM threads itself
    run_case(backend, np.float32, 2, 0, 0, 200, 200, 120, seed=2)


def test_odd_batch_layouts(backend, capfd):
    # C blocks interleaved (strideC < ldc * M): legal here, refused by MKL's batch call
    run_case(backend, np.float32, 3, 0, 0, 4, 5, 6, ldc=15, stride_c=5)
    # overlapping A blocks (a sliding window), and a leading dim below the row length with a
    # single row (BLAS insists on ld >= cols even there)
    run_case(backend, np.float32, 4, 0, 0, 3, 5, 6, stride_a=1)
    run_case(backend, np.float32, 1, 0, 0, 1, 9, 6, lda=2, batched=False)
    # ld 0: every row of A is the same row (broadcast), which BLAS rejects: built-in fallback
    run_case(backend, np.float32, 1, 0, 0, 8, 9, 6, lda=0)
    run_case(backend, np.float64, 2, 0, 0, 8, 9, 6, lda=0, stride_a=0)
    harness(backend).t_flush()
    out, err = capfd.readouterr()
    assert "ERROR" not in out + err  # what MKL prints (then returns) on a rejected argument


def test_skinny_shapes(backend):
    # the MLP's 10 logits and their gradients: MKL would run these on one thread; we split
    run_case(backend, np.float32, 1, 0, 1, 128, 10, 1024)
    run_case(backend, np.float32, 1, 1, 0, 1024, 10, 128, seed=1)
    run_case(backend, np.float32, 1, 0, 0, 10, 300, 64, seed=2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_called_inside_a_parallel_region(backend, dtype):
    lib = harness(backend)
    rng = np.random.default_rng(0)
    batch, M, N, K = 2, 96, 80, 64
    a = rng.standard_normal((batch, M, K)).astype(dtype)
    b = rng.standard_normal((batch, K, N)).astype(dtype)
    c = np.full((batch, M, N), np.nan, dtype)
    x = "s" if dtype == np.float32 else "d"
    getattr(lib, f"t_{x}gemm_in_parallel")(batch, 0, 0, M, N, K, a.ctypes.data, K, M * K,
                                           b.ctypes.data, N, K * N, c.ctypes.data, N, M * N)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-4 if x == "s" else 1e-12,
                               atol=1e-3 if x == "s" else 1e-11)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.data())
def test_random_layouts(data):
    backend = data.draw(st.sampled_from(BACKENDS))
    dims = st.integers(0, 40)
    M, N, K = data.draw(dims), data.draw(dims), data.draw(dims)
    batch = data.draw(st.integers(1, 4))
    run_case(backend, data.draw(st.sampled_from([np.float32, np.float64])), batch,
             data.draw(st.integers(0, 1)), data.draw(st.integers(0, 1)), M, N, K,
             alpha=data.draw(st.sampled_from([1.0, -0.5])),
             beta=data.draw(st.sampled_from([0.0, 1.0, 0.5])),
             pad_a=data.draw(st.integers(0, 3)), pad_b=data.draw(st.integers(0, 3)),
             pad_c=data.draw(st.integers(0, 3)),
             stride_a=data.draw(st.sampled_from([None, 0])) if batch > 1 else None,
             stride_b=data.draw(st.sampled_from([None, 0])) if batch > 1 else None,
             seed=data.draw(st.integers(0, 2**16)))


# --------------------------------------------------------------------------------------------
# choosing the backend


@pytest.fixture
def fresh_choice(monkeypatch: pytest.MonkeyPatch):
    """gemm_support() recomputed under mocks, and the real cached answer restored after."""
    blas._gemm_support.cache_clear()
    monkeypatch.delenv("KILN_GEMM", raising=False)
    yield monkeypatch
    monkeypatch.undo()
    blas._gemm_support.cache_clear()


FAKE_MKL = mkl.MklWheel("2099.1.0", ("/x/libmkl_intel_lp64.so.9", "/x/libmkl_gnu_thread.so.9",
                                     "/x/libmkl_core.so.9"))


def _mock(mp: pytest.MonkeyPatch, vendor: str, have_mkl: bool, have_openblas: bool,
          compiler: str = "gcc") -> None:
    mp.setattr(blas, "cpu_vendor", lambda: vendor)
    mp.setattr(mkl, "find", lambda: FAKE_MKL if have_mkl else None)
    mp.setattr(mkl, "load", lambda wheel: None)
    real = blas._find_openblas
    mp.setattr(blas, "_find_openblas", real if have_openblas else (lambda: None))
    tc = toolchain.find_compiler()
    mp.setattr(toolchain, "find_compiler",
               lambda: type(tc)(argv=tc.argv, kind=compiler, version=tc.version,
                                machine=tc.machine))


@pytest.mark.parametrize("vendor,have_mkl,have_openblas,compiler,want", [
    ("GenuineIntel", True, True, "gcc", "mkl"),
    ("GenuineIntel", True, False, "gcc", "mkl"),
    ("AuthenticAMD", True, True, "gcc", "openblas"),  # MKL is slow on other vendors' CPUs
    ("", True, True, "gcc", "openblas"),
    ("GenuineIntel", False, True, "gcc", "openblas"),
    ("GenuineIntel", False, False, "gcc", "builtin"),
    ("AuthenticAMD", True, False, "gcc", "builtin"),
    ("GenuineIntel", True, True, "clang", "openblas"),  # libomp, not MKL's libgomp
])
def test_auto_choice(fresh_choice, vendor, have_mkl, have_openblas, compiler, want):
    if have_openblas and blas._find_openblas() is None:
        pytest.skip("scipy-openblas32 not installed")
    _mock(fresh_choice, vendor, have_mkl, have_openblas, compiler)
    support = blas.gemm_support()
    assert support.backend == want
    if want == "mkl":
        assert support.version == "mkl-2099.1.0"
        assert support.sonames == ("libmkl_intel_lp64.so.9", "libmkl_gnu_thread.so.9",
                                   "libmkl_core.so.9")
        assert "-DKILN_GEMM_MKL" in support.extra_flags
        assert support.record()["libraries"] == list(support.sonames)


def test_forced_choice(fresh_choice):
    _mock(fresh_choice, "AuthenticAMD", True, False)
    assert blas.gemm_support("mkl").backend == "mkl"  # forcing wins over the vendor
    fresh_choice.setenv("KILN_GEMM", "builtin")
    assert blas.gemm_support().backend == "builtin"
    with pytest.raises(BackendError, match="scipy-openblas32"):
        blas.gemm_support("openblas")
    fresh_choice.setenv("KILN_GEMM", "atlas")
    with pytest.raises(BackendError, match="KILN_GEMM='atlas'"):
        blas.gemm_support()


def test_forced_mkl_missing_or_unusable(fresh_choice):
    _mock(fresh_choice, "GenuineIntel", False, True)
    with pytest.raises(BackendError, match="pip install mkl"):
        blas.gemm_support("mkl")
    _mock(fresh_choice, "GenuineIntel", True, True, compiler="clang")
    with pytest.raises(BackendError, match="libgomp"):
        blas.gemm_support("mkl")


def test_fingerprint_names_backend_and_version():
    prints = {name: blas.gemm_support(name).fingerprint() for name in BACKENDS}
    assert len(set(prints.values())) == len(prints)
    if "mkl" in prints:
        assert prints["mkl"].startswith(f"mkl:mkl-{mkl.find().version}:")


def test_cpu_vendor_is_read_once():
    assert blas.cpu_vendor() == blas.cpu_vendor()
    assert blas.cpu_vendor.cache_info().hits >= 1


# --------------------------------------------------------------------------------------------
# serialized functions and the GEMM they link


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "builtin"])
def test_deserialize_without_the_blas_is_a_clear_error(backend, monkeypatch):
    from kiln.backends.c.backend import compile_c

    monkeypatch.setenv("KILN_GEMM", backend)
    w = kiln.randn(16, 8)
    x = kiln.randn(4, 16)
    fn = compile_c(kiln.trace(lambda x: x @ w, x), None)
    record = fn.plan["gemm"]
    assert record["backend"] == backend and record["version"] and record["libraries"]
    data = fn.serialize()
    np.testing.assert_allclose(deserialize(data)(x)[0].numpy(), (x @ w).numpy(), rtol=1e-5,
                               atol=1e-5)  # sums of 16 products: cancellation near 0
    if backend == "mkl":
        monkeypatch.setattr(mkl, "find", lambda: None)
        match = "pip install mkl"
    else:
        monkeypatch.setattr(blas, "_find_openblas", lambda: None)
        match = "scipy-openblas32"
    with pytest.raises(BackendError, match=match):
        deserialize(data)
    if backend == "mkl":  # a different MKL major version: other sonames
        monkeypatch.setattr(mkl, "find", lambda: FAKE_MKL)
        with pytest.raises(BackendError, match="matching version"):
            deserialize(data)


def test_prepare_recorded_rejects_unknown_backends():
    with pytest.raises(BackendError, match="'atlas'"):
        blas.prepare_recorded({"backend": "atlas"})
    blas.prepare_recorded({"backend": "openblas", "threads": 1} if "openblas" in BACKENDS
                          else None)  # artifacts from before the record had sonames
