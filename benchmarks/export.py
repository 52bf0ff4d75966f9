"""Export and AOT compile of the W3 MLP (784-1024-1024-10, dynamic batch 1..1024), beside
AOTInductor where torch is installed.

Run from the repository root: ``python -m benchmarks.export [--no-torch] [--smoke]``
(``--smoke``: a tiny MLP, few calls: checks that the script runs, not the numbers).

Rows:

- export + compile: seconds from the module to the library on disk (``kiln.aot_compile``;
  ``torch.export`` + ``aoti_compile_and_package``), in this process, Kiln's conv/GEMM build
  cache warm as in any process after the first;
- library size next to the weights' bytes;
- load in a fresh process: ``aot_load`` after ``import kiln`` (``aoti_load_package`` after
  ``import torch``), and the wall time of a fresh process that imports, loads and runs once;
- per call at batch 1 from Python (median wall time of ``run(x)``), and the call overhead:
  Python's and C's (``examples/c/run_model.c -r``) call of a 4-element ``x + 1`` library,
  whose kernel time is nanoseconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIZES = (784, 1024, 1024, 10)


def _median_us(fn, n: int) -> float:
    for _ in range(min(n, 10)):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e6


def _fresh(code: str) -> tuple[float, str]:
    """Wall seconds and output of ``code`` in a new interpreter, as an installed Kiln runs:
    with bytecode caches (a first run writes them when PYTHONDONTWRITEBYTECODE was set)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for _ in range(2):  # the first run writes the caches
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, check=True, timeout=600).stdout
        wall = time.perf_counter() - t
    return wall, out.strip()


def kiln_rows(sizes: tuple[int, ...], tmp: str, calls: int) -> dict[str, str]:
    import kiln

    kiln.manual_seed(0)
    net = kiln.models.MLP(sizes).eval()
    batch = kiln.Dim("batch", min=1, max=1024)
    path = os.path.join(tmp, "mlp.so")
    t = time.perf_counter()
    kiln.aot_compile(net, (kiln.randn(8, sizes[0]),), dynamic_shapes={"input": {0: batch}},
                     options={"output_path": path})
    compile_s = time.perf_counter() - t
    weights = sum(p.numel() * 4 for p in net.parameters())
    size = os.path.getsize(path)
    load = _fresh(f"import kiln, time\nt = time.perf_counter()\nkiln.aot_load({path!r})\n"
                  "print(time.perf_counter() - t)")[1]
    once, _ = _fresh(f"import kiln\nm = kiln.aot_load({path!r})\n"
                     f"m(kiln.ones(1, {sizes[0]}))")
    run = kiln.aot_load(path)
    x = kiln.randn(1, sizes[0])
    per_call = _median_us(lambda: run(x), calls)
    tiny = os.path.join(tmp, "tiny.so")
    kiln.aot_compile(lambda x: x + 1, (kiln.ones(4),), options={"output_path": tiny})
    trun = kiln.aot_load(tiny)
    y = kiln.ones(4)
    py_overhead = _median_us(lambda: trun(y), calls * 10)
    c_overhead = _c_overhead(tiny, tmp, calls * 1000)
    return {
        "export + compile, s": f"{compile_s:.2f}",
        "library bytes": f"{size:,}",
        "weights bytes": f"{weights:,}",
        "library - weights, KB": f"{(size - weights) / 1e3:.1f}",
        "load in a fresh process, ms": f"{float(load) * 1e3:.1f}",
        "fresh process: import, load, run once, s": f"{once:.2f}",
        "per call b1 from Python, us": f"{per_call:.1f}",
        "call overhead from Python, us": f"{py_overhead:.2f}",
        "call overhead from C, us": c_overhead,
    }


def _c_overhead(lib: str, tmp: str, repeat: int) -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return "no cc"
    exe = os.path.join(tmp, "run_model")
    subprocess.run([cc, "-O2", f"-I{ROOT / 'src' / 'kiln' / 'export'}", "-o", exe,
                    str(ROOT / "examples" / "c" / "run_model.c"), "-ldl", "-lpthread"],
                   check=True)
    np.ones(4, np.float32).tofile(os.path.join(tmp, "x.bin"))
    res = subprocess.run([exe, lib, "-r", str(repeat), "4:x.bin", "--", "y.bin"], cwd=tmp,
                         capture_output=True, text=True, check=True)
    return res.stderr.split(":")[1].split("us")[0].strip()


def torch_rows(sizes: tuple[int, ...], tmp: str, calls: int) -> dict[str, str]:
    import torch

    from benchmarks.torch_models import mlp

    torch.manual_seed(0)
    net = mlp(sizes).eval()
    path = os.path.join(tmp, "mlp.pt2")
    batch = torch.export.Dim("batch", min=1, max=1024)
    t = time.perf_counter()
    with torch.no_grad():
        ep = torch.export.export(net, (torch.randn(8, sizes[0]),),
                                 dynamic_shapes={"x": {0: batch}})
        torch._inductor.aoti_compile_and_package(ep, package_path=path)
    compile_s = time.perf_counter() - t
    weights = sum(p.numel() * 4 for p in net.parameters())
    size = os.path.getsize(path)
    load = _fresh("import torch, time\nt = time.perf_counter()\n"
                  f"torch._inductor.aoti_load_package({path!r})\n"
                  "print(time.perf_counter() - t)")[1]
    once, _ = _fresh(f"import torch\nm = torch._inductor.aoti_load_package({path!r})\n"
                     f"m(torch.ones(1, {sizes[0]}))")
    run = torch._inductor.aoti_load_package(path)
    x = torch.randn(1, sizes[0])
    per_call = _median_us(lambda: run(x), calls)
    return {
        "export + compile, s": f"{compile_s:.2f}",
        "library bytes": f"{size:,}",
        "weights bytes": f"{weights:,}",
        "library - weights, KB": f"{(size - weights) / 1e3:.1f}",
        "load in a fresh process, ms": f"{float(load) * 1e3:.1f}",
        "fresh process: import, load, run once, s": f"{once:.2f}",
        "per call b1 from Python, us": f"{per_call:.1f}",
        "call overhead from Python, us": "-",
        "call overhead from C, us": "-",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.export", description=__doc__)
    parser.add_argument("--no-torch", action="store_true", help="skip the AOTInductor column")
    parser.add_argument("--smoke", action="store_true", help="tiny model, few calls")
    args = parser.parse_args(argv)
    sizes = (8, 16, 4) if args.smoke else SIZES
    calls = 5 if args.smoke else 200
    with tempfile.TemporaryDirectory(prefix="kiln-bench-export-") as tmp:
        kiln_col = kiln_rows(sizes, tmp, calls)
        torch_col = None
        if not args.no_torch:
            try:
                import torch  # noqa: F401
            except ImportError:
                print("torch is not installed: AOTInductor column skipped", file=sys.stderr)
            else:
                torch_col = torch_rows(sizes, tmp, calls)
    print(f"W3 MLP {'-'.join(map(str, sizes))}, dynamic batch 1..1024")
    head = f"{'':42} {'kiln':>14}" + (f" {'aoti (torch)':>14}" if torch_col else "")
    print(head)
    for key, value in kiln_col.items():
        line = f"{key:42} {value:>14}"
        if torch_col:
            line += f" {torch_col[key]:>14}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
