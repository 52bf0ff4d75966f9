"""GEMM options for the C backend, timed on the workload shapes (float32, median ms).

Columns:
  numpy      np.matmul (NumPy's bundled OpenBLAS, its own threads)
  torch      torch.matmul, torch.set_num_threads(N), if torch imports
  ob-pthr    scipy_cblas_sgemm with OpenBLAS's own pthreads pool (N threads)
  kiln       kiln_sgemm / kiln_sgemm_batched on OpenBLAS (1 thread) split over OpenMP: the choice
  builtin    kiln_sgemm on the hand-written packed AVX-512 kernel (KILN_GEMM=builtin)
The last rows time a 1M-element OpenMP pointwise loop followed by the GEMM, the pattern of a
fused network, to show what two thread pools do to each other.

Run: python benchmarks/native_gemm.py [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import time

import numpy as np

from kiln.backends.c import blas, toolchain

SHAPES = [  # (batch, M, K, N), C[b] = A[b] (M x K) @ B[b] (K x N)
    ("mlp 128x784@784x1024", 1, 128, 784, 1024),
    ("mlp 128x1024@1024x1024", 1, 128, 1024, 1024),
    ("mlp 128x1024@1024x10", 1, 128, 1024, 10),
    ("attn 1024x256@256x768", 1, 1024, 256, 768),
    ("attn 32x(128x64@64x128)", 32, 128, 64, 128),
    ("conv1 64x147@147x12544", 1, 64, 147, 12544),
    ("conv 128x1152@1152x784", 1, 128, 1152, 784),
    ("conv 512x4608@4608x49", 1, 512, 4608, 49),
]

KERNEL = r"""
void run_gemm(long batch, long M, long N, long K, const float *A, const float *B, float *C) {
    kiln_sgemm_batched(batch, 0, 0, M, N, K, 1.0f, A, K, M * K, B, N, K * N, 0.0f, C, N, M * N);
}
void pointwise(long n, float *x) {
    #pragma omp parallel for simd
    for (long i = 0; i < n; ++i) x[i] = x[i] * 0.5f + 1.0f;
}
#ifdef KILN_GEMM_OPENBLAS
void scipy_openblas_set_num_threads(int);
void set_blas_threads(int n) { scipy_openblas_set_num_threads(n); }
/* OpenBLAS's own threading, for comparison: the pthreads pool sized by set_blas_threads. */
void run_pthreads(long batch, long M, long N, long K, const float *A, const float *B, float *C) {
    for (long b = 0; b < batch; ++b)
        scipy_cblas_sgemm(101, 111, 111, (int)M, (int)N, (int)K, 1.0f, A + b * M * K, (int)K,
                          B + b * K * N, (int)N, 0.0f, C + b * M * N, (int)N);
}
#endif
"""


def median_ms(fn, budget_s: float) -> float:
    fn()
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < 9 or (time.perf_counter() - start < budget_s and len(times) < 500):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3


def build(backend: str) -> ctypes.CDLL:
    support = blas.gemm_support(backend)
    lib = toolchain.compile_shared(
        {"bench.c": support.header + KERNEL},
        extra_flags=support.extra_flags,
        libraries=support.libraries,
    )
    support.prepare()
    cdll = lib.load(f"gemm-{backend}")
    P, L = ctypes.c_void_p, ctypes.c_long
    for name in ("run_gemm", "run_pthreads"):
        if hasattr(cdll, name):
            getattr(cdll, name).argtypes = [L, L, L, L, P, P, P]
    cdll.pointwise.argtypes = [L, P]
    return cdll


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="short time budget per cell")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    budget = 0.15 if args.quick else 0.5
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None

    kiln = build("openblas")
    builtin = build("builtin")
    kiln.set_blas_threads(1)
    print(f"compiler: {toolchain.find_compiler().version}")
    print(f"flags:    {' '.join(toolchain.flags_for('native'))}")
    print(f"openblas: {blas.gemm_support('openblas').version}, threads={args.threads}\n")

    cols = ["numpy", "torch", "ob-pthr", "kiln", "builtin"]
    head = f"{'shape':26s}" + "".join(f"{c:>9s}" for c in cols)
    print(head + f"{'kiln/np':>9s}{'GFLOP/s':>9s}")
    rng = np.random.default_rng(0)
    interleaved = []
    for label, b, m, k, n in SHAPES:
        res, ptrs, arrays = bench_shape(b, m, k, n, kiln, builtin, torch, args.threads, budget, rng)
        gflops = 2 * b * m * n * k / res["kiln"] / 1e6
        row = f"{label:26s}" + "".join(f"{res.get(c, float('nan')):9.3f}" for c in cols)
        print(row + f"{res['kiln'] / res['numpy']:9.2f}{gflops:9.0f}", flush=True)
        if label.startswith(("mlp 128x784", "attn 1024")):
            interleaved.append((label, ptrs, arrays))  # the arrays keep the pointers valid

    print("\nOpenMP pointwise loop (1M floats) then the GEMM, ms per pair:")
    x = np.ones(1 << 20, np.float32)
    for label, ptrs, _arrays in interleaved:
        pair = {}
        for name, threads, gemm in (
            ("pthreads", args.threads, kiln.run_pthreads),
            ("kiln", 1, kiln.run_gemm),
        ):
            kiln.set_blas_threads(threads)

            def step(gemm=gemm, ptrs=ptrs):
                kiln.pointwise(x.size, x.ctypes.data)
                gemm(*ptrs)

            pair[name] = median_ms(step, budget)
        kiln.set_blas_threads(1)
        print(
            f"  {label:26s} OpenBLAS pthreads + OpenMP {pair['pthreads']:7.3f}"
            f"   kiln (one OpenMP pool) {pair['kiln']:7.3f}"
        )


def bench_shape(b, m, k, n, kiln, builtin, torch, threads, budget, rng):
    """Median ms of every option on one shape; checks each result against float64."""
    a_ = rng.standard_normal((b, m, k), dtype=np.float32)
    b_ = rng.standard_normal((b, k, n), dtype=np.float32)
    c_ = np.empty((b, m, n), np.float32)
    ref = np.matmul(a_.astype(np.float64), b_.astype(np.float64))
    ptrs = (b, m, n, k, a_.ctypes.data, b_.ctypes.data, c_.ctypes.data)
    res = {"numpy": median_ms(lambda: np.matmul(a_, b_, out=c_), budget)}
    if torch is not None:
        ta, tb, tc = (torch.from_numpy(v) for v in (a_, b_, c_))
        res["torch"] = median_ms(lambda: torch.matmul(ta, tb, out=tc), budget)
    kiln.set_blas_threads(threads)
    res["ob-pthr"] = median_ms(lambda: kiln.run_pthreads(*ptrs), budget)
    kiln.set_blas_threads(1)
    for name, lib in (("kiln", kiln), ("builtin", builtin)):
        c_[:] = np.nan
        res[name] = median_ms(lambda lib=lib: lib.run_gemm(*ptrs), budget)
        err = np.abs(c_ - ref).max() / np.abs(ref).max()
        assert err < 1e-5, (name, err)
    return res, ptrs, (a_, b_, c_)


if __name__ == "__main__":
    main()
