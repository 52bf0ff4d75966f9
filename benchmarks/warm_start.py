"""Warm starts: a fresh process with the compile cache populated, and cache hit rates.

``python -m benchmarks.warm_start [--runs 5] [--no-torch] [--smoke]``

1. The W3 train step (MLP 784-1024-1024-10, batch 128, cross-entropy, fwd+bwd), each
   column in fresh processes (median of ``--runs``) after one process populated the caches:
   - ``kiln cache``: ``kiln.compile(loss, backend="c")`` through the implicit compile cache
     (the warm path: no tracing, no C compiler);
   - ``kiln precompiled``: ``kiln.load_compiled(path, module=model)`` of an
     ``aot_compile``\\ d file;
   - ``torch.compile``: the same step, Inductor's caches populated (``TORCHINDUCTOR_CACHE_DIR``).
   Times: ``import`` (the library), ``setup`` (model and data), ``load`` (``kiln.compile``
   or ``load_compiled`` returning), ``first step`` (the first compiled fwd+bwd, the cache
   lookup or file load included), ``after import`` (setup +
   first step) and the whole process (interpreter start to exit).
2. Hit rate: the W1-W5 workloads of ``benchmarks.run`` compiled in one process and again in
   a second: the second must hit for every signature (misses are listed with the key
   ingredient that differs from the nearest stored entry).

``--smoke`` shrinks the model and workloads and compiles torch's column with the ``eager``
backend: a check that the script runs; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

_KILN = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    import kiln
    t1 = time.perf_counter()
    import numpy as np
    import kiln.nn.functional as F
    from kiln.models import MLP
    sizes, batch, mode, path = json.loads(sys.argv[1])
    rng = np.random.default_rng(0)
    x = kiln.from_numpy(rng.standard_normal((batch, sizes[0]), dtype=np.float32))
    y = kiln.from_numpy(rng.integers(0, sizes[-1], batch))
    kiln.manual_seed(0)
    model = MLP(sizes=tuple(sizes))
    loss_of = lambda x, y: F.cross_entropy(model(x), y)
    t2 = time.perf_counter()
    if mode == "save":
        kiln.compile(loss_of, backend="c").aot_compile(((x, y), {})).save_compiled_function(path)
        print(json.dumps({}))
        sys.exit(0)
    step = kiln.load_compiled(path, module=model) if mode == "precompiled" else \\
        kiln.compile(loss_of, backend="c")
    t_load = time.perf_counter()
    loss = step(x, y)
    loss.backward()
    value = loss.item()
    t3 = time.perf_counter()
    from kiln.artifacts.cache import STATS
    print(json.dumps({"import": t1 - t0, "setup": t2 - t1, "first": t3 - t2, "loss": value,
                      "load": t_load - t2,
                      "traces": step.cache_info()["traces"] if mode == "implicit" else 0,
                      "warm": STATS["warm"]}))
""")

_TORCH = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    import torch
    t1 = time.perf_counter()
    sizes, batch, backend = json.loads(sys.argv[1])
    torch.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    x = torch.randn(batch, sizes[0])
    y = torch.randint(0, sizes[-1], (batch,))
    step = torch.compile(lambda x, y: torch.nn.functional.cross_entropy(model(x), y),
                         backend=backend)
    t2 = time.perf_counter()
    loss = step(x, y)
    loss.backward()
    value = loss.item()
    t3 = time.perf_counter()
    print(json.dumps({"import": t1 - t0, "setup": t2 - t1, "first": t3 - t2, "loss": value}))
""")

_HITS = textwrap.dedent("""
    import json, sys
    import kiln
    from benchmarks import run
    from kiln.artifacts.cache import STATS, active_store
    from kiln.artifacts.explain import stored_ingredients
    from kiln.artifacts import keys
    smoke = json.loads(sys.argv[1])
    before = stored_ingredients(active_store())
    # Building a workload compiles (and runs once) its kiln-c column.
    workloads = (run.elementwise(False, {"W1", "W2"}, smoke) + run.mlp_workloads(False, smoke)
                 + run.transformer_workloads(False, smoke) + run.resnet_workloads(False, smoke))
    reasons = []
    for name, parts in STATS["missed"]:
        diffs = [keys.differences(parts, stored) for _, _, stored in before]
        best = min(diffs, key=len) if diffs else None
        reasons.append(f"{name}: " + ("empty cache" if best is None else
                                      "differs in " + ", ".join(best)))
    print(json.dumps({"warm": STATS["warm"], "hit": STATS["hit"], "miss": STATS["miss"],
                      "reasons": reasons}))
""")


def _child(code: str, args: list, env: dict) -> tuple[dict, float]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, json.dumps(args)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=1800)
    took = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1]), took


def _median_runs(code: str, args: list, env: dict, runs: int) -> dict:
    results = []
    for _ in range(runs):
        r, took = _child(code, args, env)
        r["process"] = took
        results.append(r)
    out = {k: statistics.median(r.get(k, 0.0) for r in results)
           for k in ("import", "setup", "load", "first", "process")}
    out["loss"] = results[0]["loss"]
    out["traces"] = max(r.get("traces", 0) for r in results)
    return out


def _row(name: str, r: dict) -> str:
    ms = {k: r[k] * 1e3 for k in ("import", "setup", "load", "first", "process")}
    return (f"{name:<18}{ms['import']:>9.0f}{ms['setup']:>9.0f}{ms['load']:>8.0f}"
            f"{ms['first']:>12.0f}{ms['setup'] + ms['first']:>14.0f}{ms['process']:>10.0f}"
            f"   loss {r['loss']:.6f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.warm_start",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, torch eager backend")
    args = parser.parse_args(argv)
    sizes, batch = ([16, 32, 32, 10], 4) if args.smoke else ([784, 1024, 1024, 10], 128)
    runs = 1 if args.smoke else args.runs
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="kiln-warm-"))
    env = dict(os.environ, KILN_CACHE_DIR=str(tmp / "kiln"), KILN_COMPILE_CACHE="1",
               TORCHINDUCTOR_CACHE_DIR=str(tmp / "inductor"),
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT),
                                           os.environ.get("PYTHONPATH", "")]))
    # as an installed Kiln runs: with bytecode caches (the cold run below writes them)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"W3 train step, MLP {'-'.join(map(str, sizes))} batch {batch}: fresh processes, "
          f"caches populated, median of {runs}; ms")
    print(f"{'':<18}{'import':>9}{'setup':>9}{'load':>8}{'first step':>12}"
          f"{'after import':>14}{'process':>10}")
    cold, _ = _child(_KILN, [sizes, batch, "implicit", ""], env)  # populates the cache
    implicit = _median_runs(_KILN, [sizes, batch, "implicit", ""], env, runs)
    print(_row("kiln cache", implicit) + f"   (traces {implicit['traces']})")
    path = str(tmp / "w3.kiln")
    _child(_KILN, [sizes, batch, "save", path], env)
    print(_row("kiln precompiled", _median_runs(_KILN, [sizes, batch, "precompiled", path],
                                                 env, runs)))
    try:
        import torch  # noqa: F401
        have_torch = not args.no_torch
    except ImportError:
        have_torch = False
    if have_torch:
        backend = "eager" if args.smoke else "inductor"
        _child(_TORCH, [sizes, batch, backend], env)  # populates Inductor's caches
        print(_row("torch.compile", _median_runs(_TORCH, [sizes, batch, backend], env, runs)))
    print(f"(the cold kiln process, compiling: first step {cold['first'] * 1e3:.0f} ms)")

    print("\nCompile-cache hits over W1-W5 (benchmarks.run workloads), two processes:")
    for i in (1, 2):
        r, _ = _child(_HITS, [args.smoke], env)
        total = r["warm"] + r["hit"] + r["miss"]
        rate = (r["warm"] + r["hit"]) / total if total else 0.0
        print(f"run {i}: {total} lookups, {r['warm']} warm hits (no tracing), {r['hit']} hits "
              f"after tracing, {r['miss']} misses: hit rate {rate:.0%}")
        for reason in sorted(set(r["reasons"]))[:8]:
            print(f"    miss: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
