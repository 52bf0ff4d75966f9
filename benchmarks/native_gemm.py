"""GEMM options for the C backend, timed on the workload shapes (float32, median ms).

Columns:
  numpy      np.matmul (NumPy's bundled OpenBLAS, its own threads)
  torch      torch.matmul, torch.set_num_threads(N), if torch imports
  ob-pthr    scipy_cblas_sgemm with OpenBLAS's own pthreads pool (N threads)
  openblas   kiln_sgemm / kiln_sgemm_batched on OpenBLAS (1 thread) split over OpenMP
  mkl        kiln_sgemm / kiln_sgemm_batched on MKL with GNU OpenMP (KILN_GEMM=mkl): the
             default on Intel CPUs
  builtin    kiln_sgemm on the hand-written packed AVX-512 kernel (KILN_GEMM=builtin)
Every cell is the median of several rounds, the options interleaved within each round, with a
~50 ms pause whenever torch's turn begins or ends: torch and Kiln share libgomp, and threads
still spinning after one side's parallel region would steal the other's cores.
The last rows time a 1M-element OpenMP pointwise loop followed by the GEMM, the pattern of a
fused network, to show what two thread pools do to each other.

Run: python -m benchmarks.native_gemm [--threads N] [--rounds R] [--quick] [--smoke]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import time

import numpy as np

from kiln.backends.c import blas, toolchain

SHAPES = [  # (label, batch, M, K, N, transA, transB): C[b] = op(A[b]) (M x K) @ op(B[b]) (K x N)
    ("mlp 128x784@(1024x784)^T", 1, 128, 784, 1024, 0, 1),
    ("mlp 128x1024@(1024x1024)^T", 1, 128, 1024, 1024, 0, 1),
    ("mlp 128x1024@(10x1024)^T", 1, 128, 1024, 10, 0, 1),
    ("mlp-bw 1024x128^T@128x1024", 1, 1024, 128, 1024, 1, 0),
    ("mlp-bw 1024x128^T@128x784", 1, 1024, 128, 784, 1, 0),
    ("mlp-bw 128x10@10x1024", 1, 128, 10, 1024, 0, 0),
    ("attn 1024x256@(768x256)^T", 1, 1024, 256, 768, 0, 1),
    ("attn 1024x256@(1024x256)^T", 1, 1024, 256, 1024, 0, 1),
    ("attn 1024x1024@(256x1024)^T", 1, 1024, 1024, 256, 0, 1),
    ("attn 32x(128x64@64x128)", 32, 128, 64, 128, 0, 0),
    ("attn 32x(128x128@128x64)", 32, 128, 128, 64, 0, 0),
    ("conv1 64x147@147x12544", 1, 64, 147, 12544, 0, 0),
    ("conv 128x1152@1152x784", 1, 128, 1152, 784, 0, 0),
    ("conv 512x4608@4608x49", 1, 512, 4608, 49, 0, 0),
]
# --smoke: small shapes that still take every path (plain, transposed, batched).
SMOKE_SHAPES = [
    ("mlp 16x32@(24x32)^T", 1, 16, 32, 24, 0, 1),
    ("attn 3x(8x4@4x8)", 3, 8, 4, 8, 0, 0),
    ("mlp-bw 32x16^T@16x24", 1, 32, 16, 24, 1, 0),
]
KILN_COLS = ("openblas", "mkl", "builtin")

KERNEL = r"""
void run_gemm(long batch, int tA, int tB, long M, long N, long K, const float *A, const float *B,
              float *C) {
    const long lda = tA ? M : K, ldb = tB ? K : N;
    kiln_sgemm_batched(batch, tA, tB, M, N, K, 1.0f, A, lda, M * K, B, ldb, K * N, 0.0f, C, N,
                       M * N);
}
void pointwise(long n, float *x) {
    #pragma omp parallel for simd
    for (long i = 0; i < n; ++i) x[i] = x[i] * 0.5f + 1.0f;
}
#ifdef KILN_GEMM_OPENBLAS
void scipy_openblas_set_num_threads(int);
void set_blas_threads(int n) { scipy_openblas_set_num_threads(n); }
/* OpenBLAS's own threading, for comparison: the pthreads pool sized by set_blas_threads. */
void run_pthreads(long batch, int tA, int tB, long M, long N, long K, const float *A,
                  const float *B, float *C) {
    const long lda = tA ? M : K, ldb = tB ? K : N;
    for (long b = 0; b < batch; ++b)
        scipy_cblas_sgemm(101, tA ? 112 : 111, tB ? 112 : 111, (int)M, (int)N, (int)K, 1.0f,
                          A + b * M * K, (int)lda, B + b * K * N, (int)ldb, 0.0f, C + b * M * N,
                          (int)N);
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


def build(backend: str) -> ctypes.CDLL | None:
    try:
        support = blas.gemm_support(backend)
    except Exception as exc:  # a wheel that is not installed: leave the column empty
        print(f"{backend}: unavailable ({exc})")
        return None
    lib = toolchain.compile_shared(
        {"bench.c": support.header + KERNEL},
        extra_flags=support.extra_flags,
        libraries=support.libraries,
    )
    support.prepare()
    cdll = lib.load(f"gemm-{backend}")
    P, L, I = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
    for name in ("run_gemm", "run_pthreads"):
        if hasattr(cdll, name):
            getattr(cdll, name).argtypes = [L, I, I, L, L, L, P, P, P]
    cdll.pointwise.argtypes = [L, P]
    return cdll


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per shape")
    parser.add_argument("--quick", action="store_true", help="short time budget per cell")
    parser.add_argument("--smoke", action="store_true",
                        help="small shapes, one round: checks that the script runs")
    args = parser.parse_args(argv)
    shapes = SMOKE_SHAPES if args.smoke else SHAPES
    if args.smoke:
        args.rounds = 1
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    budget = 0.0 if args.smoke else 0.1 if args.quick else 0.25
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None

    libs = {name: build(name) for name in KILN_COLS}
    if libs["openblas"] is not None:
        libs["openblas"].set_blas_threads(1)
    print(f"compiler: {toolchain.find_compiler().version}")
    print(f"flags:    {' '.join(toolchain.find_compiler().flags_for('native'))}")
    for name in KILN_COLS:
        if libs[name] is not None:
            print(f"{name + ':':9s} {blas.gemm_support(name).version}")
    print(f"threads:  {args.threads}, rounds: {args.rounds}, median ms\n")

    cols = ["numpy", "torch", "ob-pthr", *KILN_COLS]
    head = f"{'shape':30s}" + "".join(f"{c:>9s}" for c in cols)
    print(head + f"{'mkl/trch':>9s}{'GFLOP/s':>9s}")
    rng = np.random.default_rng(0)
    kept = []
    for label, b, m, k, n, ta, tb in shapes:
        res, ptrs, arrays = bench_shape(b, m, k, n, ta, tb, libs, torch, args, budget, rng)
        best = min(res.get(c, float("inf")) for c in KILN_COLS)
        gflops = 2 * b * m * n * k / best / 1e6
        row = f"{label:30s}" + "".join(f"{res.get(c, float('nan')):9.3f}" for c in cols)
        ratio = res.get("mkl", float("nan")) / res.get("torch", float("nan"))
        print(row + f"{ratio:9.2f}{gflops:9.0f}", flush=True)
        if label.startswith(("mlp 128x784", "attn 1024x256@(768")) or (
                args.smoke and not kept):
            kept.append((label, ptrs, arrays))  # the arrays keep the pointers valid

    ob = libs["openblas"]
    print("\nOpenMP pointwise loop (1M floats) then the GEMM, ms per pair:")
    x = np.ones(1 << 20, np.float32)
    for label, ptrs, _arrays in kept:
        options = []
        if ob is not None:
            options += [("OpenBLAS pthreads", ob, "run_pthreads", args.threads),
                        ("openblas split", ob, "run_gemm", 1)]
        if libs["mkl"] is not None:
            options.append(("mkl", libs["mkl"], "run_gemm", 0))
        pair = {}
        for name, lib, fn, threads in options:
            if threads:
                ob.set_blas_threads(threads)

            gemm = getattr(lib, fn)

            def step(lib=lib, gemm=gemm, ptrs=ptrs):
                lib.pointwise(x.size, x.ctypes.data)
                gemm(*ptrs)

            pair[name] = median_ms(step, budget)
            time.sleep(0.05)
        if ob is not None:
            ob.set_blas_threads(1)
        print(f"  {label:30s} " + "   ".join(f"{k} {v:7.3f}" for k, v in pair.items()))


def bench_shape(b, m, k, n, ta, tb, libs, torch, args, budget, rng):
    """Median over interleaved rounds of every option on one shape; each result is checked
    against a float64 product."""
    a_ = rng.standard_normal((b, k, m) if ta else (b, m, k), dtype=np.float32)
    b_ = rng.standard_normal((b, n, k) if tb else (b, k, n), dtype=np.float32)
    c_ = np.empty((b, m, n), np.float32)
    av = a_.swapaxes(1, 2) if ta else a_
    bv = b_.swapaxes(1, 2) if tb else b_
    ref = np.matmul(av.astype(np.float64), bv.astype(np.float64))
    ptrs = (b, ta, tb, m, n, k, a_.ctypes.data, b_.ctypes.data, c_.ctypes.data)
    runs: dict[str, list[float]] = {}
    ob = libs["openblas"]
    for _ in range(args.rounds):
        runs.setdefault("numpy", []).append(median_ms(lambda: np.matmul(av, bv, out=c_), budget))
        if torch is not None:
            tensors = tuple(torch.from_numpy(v) for v in (av, bv, c_))
            time.sleep(0.05)
            runs.setdefault("torch", []).append(median_ms(
                lambda t=tensors: torch.matmul(t[0], t[1], out=t[2]), budget))
            time.sleep(0.05)
        if ob is not None:
            ob.set_blas_threads(args.threads)
            runs.setdefault("ob-pthr", []).append(median_ms(lambda: ob.run_pthreads(*ptrs),
                                                            budget))
            ob.set_blas_threads(1)
            time.sleep(0.05)  # OpenBLAS's pthreads spin a while after their last GEMM
        for name in KILN_COLS:
            lib = libs[name]
            if lib is None:
                continue
            c_[:] = np.nan
            runs.setdefault(name, []).append(median_ms(lambda lib=lib: lib.run_gemm(*ptrs),
                                                       budget))
            err = np.abs(c_ - ref).max() / np.abs(ref).max()
            assert err < 1e-5, (name, err)
    res = {name: float(np.median(v)) for name, v in runs.items()}
    return res, ptrs, (a_, b_, c_)


if __name__ == "__main__":
    main()
