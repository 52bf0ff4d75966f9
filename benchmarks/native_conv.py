"""Native conv2d / pooling kernels (runtime/kiln_conv.h) on ResNet-18 shapes, median ms.

Columns:
  kiln     kiln_conv2d_f32 etc. through ctypes (forward with the fused bias + relu epilogue)
  numpy    the NumPy reference kernel of the op registry (REGISTRY[op].eager)
  torch    torch.nn.functional.conv2d / max_pool2d (oneDNN), torch.set_num_threads(N), and
           torch.ops.aten.convolution_backward for the backward rows, if torch imports
Inference: batch 1, 3x224x224, the 20 convolutions of ResNet-18 (rows show each distinct shape
and how often it occurs; "total" sums all 20) and the 3x3/2 max pool. Training (--train):
conv2d_input_grad and conv2d_weight_grad at batch 8 on the same shapes.

Each row runs kiln and torch in many alternating rounds, so both see the same machine noise
(the machine is shared); library switches are followed by a short sleep, because idle OpenMP
and OpenBLAS workers of the previous library keep spinning on the cores for a while (two
OpenMP runtimes, kiln's and torch's, otherwise slow each other down by 2-10x).
--cpu-time times with the calling thread's CPU time instead of the wall clock: immune to
preemption by other processes, meaningful with --threads 1 only.
Every kiln result is checked against float64 before it is timed.

Run: python -m benchmarks.native_conv [--threads N] [--quick] [--train] [--no-inference]
     [--cpu-time] [--no-numpy] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

# (name, C, O, H, k, stride, pad, count in ResNet-18)
RESNET18 = [
    ("conv1 7x7/2 3->64 @224", 3, 64, 224, 7, 2, 3, 1),
    ("3x3 64->64 @56", 64, 64, 56, 3, 1, 1, 4),
    ("3x3/2 64->128 @56", 64, 128, 56, 3, 2, 1, 1),
    ("3x3 128->128 @28", 128, 128, 28, 3, 1, 1, 3),
    ("1x1/2 64->128 @56", 64, 128, 56, 1, 2, 0, 1),
    ("3x3/2 128->256 @28", 128, 256, 28, 3, 2, 1, 1),
    ("3x3 256->256 @14", 256, 256, 14, 3, 1, 1, 3),
    ("1x1/2 128->256 @28", 128, 256, 28, 1, 2, 0, 1),
    ("3x3/2 256->512 @14", 256, 512, 14, 3, 2, 1, 1),
    ("3x3 512->512 @7", 512, 512, 7, 3, 1, 1, 3),
    ("1x1/2 256->512 @14", 256, 512, 14, 1, 2, 0, 1),
]

# --smoke: small convolutions that still take each path (7x7/2, 3x3, 1x1/2), one round each.
SMOKE = [
    ("conv1 7x7/2 3->8 @16", 3, 8, 16, 7, 2, 3, 1),
    ("3x3 8->8 @8", 8, 8, 8, 3, 1, 1, 2),
    ("1x1/2 8->16 @8", 8, 16, 8, 1, 2, 0, 1),
]

CLOCK = time.perf_counter
ROUNDS = 12  # alternating rounds per row (race); --smoke: 1
PAUSE = 0.02  # seconds between library switches (race); --smoke: 0


def samples_ms(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = CLOCK()
        fn()
        out.append((CLOCK() - t) * 1e3)
    return out


def race(fns: dict, budget: float) -> dict:
    """Median ms of each callable, measured in ROUNDS alternating rounds."""
    for fn in fns.values():
        fn()
        fn()
    t = time.perf_counter()
    for fn in fns.values():
        fn()
    per = max(3, min(100, int(budget / ROUNDS / max(time.perf_counter() - t, 1e-5))))
    times: dict = {k: [] for k in fns}
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            time.sleep(PAUSE)
            fn()  # the first call after a switch wakes this library's threads
            times[name] += samples_ms(fn, per)
    return {k: float(np.median(v)) for k, v in times.items()}


def warm_allocator() -> None:
    """Keep freed blocks of any size in glibc's heap. torch eager allocates every output: served
    by mmap, a 3.2 MB output costs ~800 page faults per call (conv1: 2.4 instead of 0.9 ms),
    and which one a process gets depends on its malloc history. This gives torch its best case;
    kiln's kernels allocate nothing (the caller owns outputs and workspace)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))


def check(got: np.ndarray, ref: np.ndarray, what: str) -> None:
    err = rel_err(got, ref)
    if err > 2e-5:
        raise SystemExit(f"{what}: relative error {err:.2e} against float64")


def inference(kern, torch, budget: float, with_numpy: bool, shapes: list = RESNET18) -> None:
    from kiln.core.prims.registry import REGISTRY

    rng = np.random.default_rng(0)
    cols = ["kiln", "numpy", "torch"]
    print(f"{'inference, batch 1':26s}{'n':>3s}" + "".join(f"{c:>9s}" for c in cols)
          + f"{'torch/kiln':>11s}{'GFLOP/s':>9s}")
    total = dict.fromkeys(cols, 0.0)
    for name, c, o, h, k, s, p, count in shapes:
        x = rng.standard_normal((1, c, h, h), dtype=np.float32)
        w = (rng.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
        b = rng.standard_normal(o).astype(np.float32)
        at = {"stride": (s, s), "padding": (p, p), "dilation": (1, 1), "groups": 1}
        out = kern.conv2d(x, w, bias=b, act="relu", **at)
        ref = np.maximum(REGISTRY["conv2d"].eager(x.astype(np.float64), w.astype(np.float64),
                                                  **at) + b[:, None, None], 0)
        check(out, ref, name)
        fns = {"kiln": lambda x=x, w=w, b=b, at=at, out=out: kern.conv2d(
            x, w, bias=b, act="relu", out=out, **at)}
        if torch is not None:
            tx, tw, tb = (torch.from_numpy(v) for v in (x, w, b))
            fns["torch"] = lambda tx=tx, tw=tw, tb=tb, s=s, p=p: torch.relu_(
                torch.nn.functional.conv2d(tx, tw, tb, s, p))
        res = race(fns, budget)
        if with_numpy:
            time.sleep(PAUSE * 10)
            res["numpy"] = float(np.median(samples_ms(
                lambda x=x, w=w, at=at: REGISTRY["conv2d"].eager(x, w, **at), 3)))
            time.sleep(PAUSE * 10)
        for col in cols:
            total[col] += count * res.get(col, float("nan"))
        flops = 2 * o * c * k * k * out.shape[2] * out.shape[3]
        print_row(name, count, res, cols, flops)
    n = sum(row[-1] for row in shapes)
    print_row(f"total ({n} convs)", n, total, cols, None)

    side = 112 if shapes is RESNET18 else 16
    x = rng.standard_normal((1, 64, side, side), dtype=np.float32)
    at = {"kernel": (3, 3), "stride": (2, 2), "padding": (1, 1), "dilation": (1, 1),
          "ceil_mode": False}
    np.testing.assert_array_equal(kern.max_pool2d(x, **at), REGISTRY["max_pool2d"].eager(x, **at))
    fns = {"kiln": lambda: kern.max_pool2d(x, **at)}
    if torch is not None:
        tx = torch.from_numpy(x)
        fns["torch"] = lambda: torch.nn.functional.max_pool2d(tx, 3, 2, 1)
    res = race(fns, budget)
    if with_numpy:
        res["numpy"] = float(np.median(samples_ms(lambda: REGISTRY["max_pool2d"].eager(x, **at),
                                                  5)))
    print_row(f"maxpool 3x3/2 64 @{side}", 1, res, cols, None)


def print_row(name: str, count: int, res: dict, cols: list, flops: float | None) -> None:
    cells = "".join(f"{res.get(c, float('nan')):9.3f}" for c in cols)
    ratio = res.get("torch", float("nan")) / res["kiln"]
    gflops = f"{flops / res['kiln'] / 1e6:9.0f}" if flops else ""
    print(f"{name:26s}{count:3d}{cells}{ratio:11.2f}{gflops}", flush=True)


def training(kern, torch, budget: float, batch: int, shapes: list = RESNET18) -> None:
    rng = np.random.default_rng(1)
    cols = ["kiln", "torch"]
    print(f"\n{'train, batch ' + str(batch):26s}{'n':>3s}" + "".join(f"{c:>9s}" for c in cols)
          + f"{'torch/kiln':>11s}")
    totals = {"input_grad": dict.fromkeys(cols, 0.0), "weight_grad": dict.fromkeys(cols, 0.0)}
    for name, c, o, h, k, s, p, count in shapes:
        x = rng.standard_normal((batch, c, h, h), dtype=np.float32)
        w = (rng.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
        oh = (h + 2 * p - k) // s + 1
        g = rng.standard_normal((batch, o, oh, oh), dtype=np.float32)
        at = {"stride": (s, s), "padding": (p, p), "dilation": (1, 1), "groups": 1}
        dx = kern.conv2d_input_grad(g, w, input_hw=(h, h), **at)
        dw = kern.conv2d_weight_grad(x, g, kernel_hw=(k, k), **at)
        if torch is not None:
            tx, tw, tg = (torch.from_numpy(v) for v in (x, w, g))
            t64 = [v.double() for v in (tg, tx, tw)]
            ref = torch.ops.aten.convolution_backward(
                *t64, None, [s, s], [p, p], [1, 1], False, [0, 0], 1, [True, True, False])
            check(dx, ref[0].numpy(), name + " input_grad")
            check(dw, ref[1].numpy(), name + " weight_grad")
        for op, fn in (
            ("input_grad", lambda g=g, w=w, h=h, at=at: kern.conv2d_input_grad(
                g, w, input_hw=(h, h), **at)),
            ("weight_grad", lambda x=x, g=g, k=k, at=at: kern.conv2d_weight_grad(
                x, g, kernel_hw=(k, k), **at)),
        ):
            fns = {"kiln": fn}
            if torch is not None:
                mask = [op == "input_grad", op == "weight_grad", False]
                fns["torch"] = lambda tg=tg, tx=tx, tw=tw, s=s, p=p, mask=mask: (
                    torch.ops.aten.convolution_backward(tg, tx, tw, None, [s, s], [p, p], [1, 1],
                                                        False, [0, 0], 1, mask))
            res = race(fns, budget)
            for col in cols:
                totals[op][col] += count * res.get(col, float("nan"))
            print_row(f"{op[:6]} {name}", count, res, cols, None)
    n = sum(row[-1] for row in shapes)
    for op, total in totals.items():
        print_row(f"total {op} ({n})", n, total, cols, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="short time budget per row")
    parser.add_argument("--train", action="store_true", help="also time the backward kernels")
    parser.add_argument("--batch", type=int, default=8, help="batch of the training rows")
    parser.add_argument("--no-inference", action="store_true", help="only the training rows")
    parser.add_argument("--no-numpy", action="store_true", help="skip the (slow) NumPy column")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with thread CPU time (use with --threads 1)")
    parser.add_argument("--smoke", action="store_true", help="small shapes, one round, "
                        "inference and training: checks that the script runs")
    args = parser.parse_args(argv)
    global ROUNDS, PAUSE
    shapes = SMOKE if args.smoke else RESNET18
    if args.smoke:
        ROUNDS, PAUSE, args.train, args.batch = 1, 0.0, True, 2
    if args.cpu_time:
        global CLOCK
        CLOCK = time.thread_time
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before libgomp starts
    warm_allocator()

    from kiln.backends.c import toolchain
    from kiln.backends.c.conv_kernels import ConvKernels

    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    kern = ConvKernels()
    print(f"compiler: {toolchain.find_compiler().version}; gemm: {kern.gemm.backend}; "
          f"threads: {args.threads}; torch: {torch.__version__ if torch else 'not installed'}; "
          f"clock: {'thread CPU time' if args.cpu_time else 'wall'}\n")
    budget = 0.0 if args.smoke else 0.3 if args.quick else 1.5
    if not args.no_inference:
        inference(kern, torch, budget, not args.no_numpy, shapes)
    if args.train or args.no_inference:
        training(kern, torch, budget, args.batch, shapes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
