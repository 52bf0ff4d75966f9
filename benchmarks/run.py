"""Kiln-C against NumPy, PyTorch eager and torch.compile on the workloads of the C-backend issue
(W1-W5, the default), the MiniLM sentence encoder (W6: ``--only W6``, or
``python -m benchmarks.minilm``) and a small CNN's training step (W7: ``--only W7``, or
``python -m benchmarks.cnn``).

Run from the repository root:
``python -m benchmarks.run [--quick] [--only W1,W3] [--no-torch] [--warm-kiln-cache] [--smoke]``.

Every implementation of a workload runs on the same inputs (and, for models, the same
weights: the torch twin loads the Kiln model's state dict) and is checked against the others
before timing. Timing is interleaved: each implementation runs in turn for ~0.2 s, over 20
rounds (``--rounds``), so a burst of load on this shared machine, whose memory bandwidth
drifts by tens of percent over seconds, hits all columns alike; each turn starts after a
0.15 s pause, so no implementation's idle thread pool is still spinning on the cores the next
one runs on. The table shows medians.

Columns: ms per call for ``kiln-c`` (``kiln.compile(..., backend="c")``), ``numpy`` (plain
NumPy for W1/W2, Kiln eager — NumPy kernels with Kiln's autograd — for the models), ``torch``
(eager) and ``t.compile`` (torch.compile steady state); then speed-ups of Kiln-C over each
(> 1 means Kiln-C is faster), and the cold compile seconds of Kiln-C and torch.compile
(first call: tracing, code generation and the C compiler, with an empty Kiln build cache
unless ``--warm-kiln-cache``: the conv runtime objects and the fused optimizer library are
built inside the timed first call; torch: Dynamo + Inductor, with an empty Inductor cache
unless ``--warm-inductor-cache``).

``--smoke`` shrinks every workload to a few elements, times one call per column and compiles
torch.compile's column with the ``eager`` backend (no Inductor): a check that the script
runs, used by the test suite; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import atexit
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

THREADS = 2
# What torch.compile compiles with; --smoke uses "eager" (Dynamo only: seconds, not minutes).
TORCH_BACKEND = "inductor"


@dataclass
class Workload:
    key: str
    label: str
    impls: dict[str, Callable[[], Any]] = field(default_factory=dict)
    cold: dict[str, float] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], None] | None = None


def _first_call(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _to_np(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach()
    if hasattr(value, "numpy"):
        return np.asarray(value.numpy())
    return np.asarray(value)


def _close(results: dict[str, Any], rtol: float = 1e-3, atol: float = 1e-4) -> None:
    ref_name = "numpy"
    ref = _to_np(results[ref_name])
    for name, value in results.items():
        got = _to_np(value)
        if not np.allclose(got, ref, rtol=rtol, atol=atol, equal_nan=True):
            err = float(np.max(np.abs(got.astype(np.float64) - ref)))
            raise AssertionError(f"{name} differs from {ref_name}: max abs error {err:.3g}")


# --------------------------------------------------------------------------------------------
# workloads


def _compile_kiln(fn: Any, *args: Any) -> tuple[Callable[[], Any], float]:
    import kiln

    compiled = kiln.compile(fn, backend="c")
    _, cold = _first_call(lambda: compiled(*args))
    return (lambda: compiled(*args)), cold


def _compile_torch(fn: Any, *args: Any) -> tuple[Callable[[], Any], float]:
    import torch

    compiled = _tcompile(torch, fn)
    _, cold = _first_call(lambda: compiled(*args))
    return (lambda: compiled(*args)), cold


def _add_impls(w: Workload, kiln_fn: Any, kiln_args: tuple, numpy_call: Callable[[], Any],
               torch_fn: Any, torch_args: tuple, use_torch: bool) -> None:
    w.impls["numpy"] = numpy_call
    try:
        w.impls["kiln-c"], w.cold["kiln-c"] = _compile_kiln(kiln_fn, *kiln_args)
    except Exception as e:  # noqa: BLE001  (a missing lowering shows as n/a, not a crash)
        print(f"  [{w.key}] kiln-c unavailable: {type(e).__name__}: {e}"[:300], file=sys.stderr)
    if use_torch:
        w.impls["torch"] = lambda: torch_fn(*torch_args)
        w.impls["t.compile"], w.cold["t.compile"] = _compile_torch(torch_fn, *torch_args)


def elementwise(use_torch: bool, which: set[str], smoke: bool = False) -> list[Workload]:
    import kiln
    import kiln.nn.functional as F

    rng = np.random.default_rng(0)
    n1, (rows, d) = (1024, (8, 32)) if smoke else (16 * 1024 * 1024, (4096, 1024))
    x1 = rng.standard_normal(n1, dtype=np.float32)
    x2 = rng.standard_normal((rows, d), dtype=np.float32)
    w = rng.standard_normal(d, dtype=np.float32)
    b = rng.standard_normal(d, dtype=np.float32)
    k1, k2, kw, kb = (kiln.from_numpy(a) for a in (x1, x2, w, b))
    c = 0.7978845608028654  # sqrt(2 / pi)

    def np_gelu() -> np.ndarray:
        y = x2 * w + b
        return 0.5 * y * (1.0 + np.tanh(c * (y + 0.044715 * y * y * y)))

    def np_softmax() -> np.ndarray:
        e = np.exp(x2 - x2.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    def np_layer_norm() -> np.ndarray:
        mu = x2.mean(-1, keepdims=True)
        var = ((x2 - mu) ** 2).mean(-1, keepdims=True)
        return (x2 - mu) / np.sqrt(var + 1e-5) * w + b

    n1_text = f"{n1 // (1024 * 1024)}M" if n1 >= 1024 * 1024 else str(n1)
    shape = f"{rows}x{d}"
    specs = [
        ("W1", f"x.cos().cos()  {n1_text} f32", lambda x: x.cos().cos(), (k1,),
         lambda: np.cos(np.cos(x1)), "cos", (x1,)),
        ("W1", f"gelu_tanh(x*w+b)  {shape}",
         lambda x, w, b: F.gelu(x * w + b, approximate="tanh"), (k2, kw, kb), np_gelu,
         "gelu", (x2, w, b)),
        ("W2", f"softmax(dim=-1)  {shape}", lambda x: F.softmax(x, -1), (k2,), np_softmax,
         "softmax", (x2,)),
        ("W2", f"layer_norm  {shape}", lambda x, w, b: F.layer_norm(x, (d,), w, b),
         (k2, kw, kb), np_layer_norm, "layer_norm", (x2, w, b)),
    ]
    out = []
    for key, label, kfn, kargs, npfn, tname, targs in specs:
        if key not in which:
            continue
        w_ = Workload(key, label, check=_close)
        torch_fn, torch_args = None, ()
        if use_torch:
            import torch
            import torch.nn.functional as TF

            torch_fn = {
                "cos": lambda x: x.cos().cos(),
                "gelu": lambda x, w, b: TF.gelu(x * w + b, approximate="tanh"),
                "softmax": lambda x: torch.softmax(x, -1),
                "layer_norm": lambda x, w, b: TF.layer_norm(x, (d,), w, b),
            }[tname]
            torch_args = tuple(torch.from_numpy(a) for a in targs)
        _add_impls(w_, kfn, kargs, npfn, torch_fn, torch_args, use_torch)
        out.append(w_)
    return out


def _train_step(opt: Any, loss_of: Callable[[Any], Any], x: Any) -> Callable[[], Any]:
    """One optimizer step: ``loss_of(x)`` computes the loss, eagerly or compiled."""
    def step() -> Any:
        opt.zero_grad()
        loss = loss_of(x)
        loss.backward()
        opt.step()
        return loss

    return step


def _try_kiln(w: Workload, name: str, build: Callable[[], tuple[Callable[[], Any], float]]
              ) -> None:
    try:
        w.impls[name], w.cold[name] = build()
    except Exception as e:  # noqa: BLE001  (a missing lowering shows as n/a, not a crash)
        print(f"  [{w.key}] {name} unavailable: {type(e).__name__}: {e}"[:300], file=sys.stderr)


def _timed_first(fn: Callable[[], Any]) -> tuple[Callable[[], Any], float]:
    _, cold = _first_call(fn)
    return fn, cold


def _torch_no_grad(torch: Any, module: Any, x: Any) -> Callable[[], Any]:
    def run() -> Any:
        with torch.no_grad():
            return module(x)

    return run


def mlp_workloads(use_torch: bool, smoke: bool = False) -> list[Workload]:
    import kiln
    import kiln.nn.functional as F
    from kiln import models as km

    sizes, batch = ((16, 32, 32, 10), 4) if smoke else ((784, 1024, 1024, 10), 128)
    rng = np.random.default_rng(0)
    x = kiln.from_numpy(rng.standard_normal((batch, sizes[0]), dtype=np.float32))
    labels = kiln.from_numpy(rng.integers(0, sizes[-1], batch))
    kiln.manual_seed(0)
    model = km.MLP(sizes=sizes)

    infer = Workload("W3", f"MLP {'-'.join(map(str, sizes))} b{batch} inference", check=_close)
    infer.impls["numpy"] = lambda: model(x)
    with kiln.no_grad():
        _try_kiln(infer, "kiln-c", lambda: _compile_kiln(model, x))

    # A training step compiles the model and its loss together (the backward graph then starts
    # from the scalar loss); the optimizer runs eagerly in every column, as in PyTorch.
    train = Workload("W3", "MLP train step (fwd+bwd+SGD)")
    eager, compiled = km.MLP(sizes=sizes), km.MLP(sizes=sizes)
    eager.load_state_dict(model.state_dict())
    compiled.load_state_dict(model.state_dict())
    train.impls["numpy"] = _train_step(kiln.optim.SGD(eager.parameters(), lr=1e-3),
                                       lambda x: F.cross_entropy(eager(x), labels), x)
    c_loss = kiln.compile(lambda x, y: F.cross_entropy(compiled(x), y), backend="c")
    _try_kiln(train, "kiln-c", lambda: _timed_first(_train_step(
        kiln.optim.SGD(compiled.parameters(), lr=1e-3), lambda x: c_loss(x, labels), x)))
    if use_torch:
        import torch

        from benchmarks import torch_models as tm

        tx, tl = torch.from_numpy(x.numpy()), torch.from_numpy(labels.numpy())
        tmodel = tm.load_from_kiln(tm.mlp(sizes), model)
        infer.impls["torch"] = _torch_no_grad(torch, tmodel, tx)
        infer.impls["t.compile"], infer.cold["t.compile"] = _timed_first(
            _torch_no_grad(torch, _tcompile(torch, tmodel), tx))
        loss = torch.nn.CrossEntropyLoss()
        for name, wrap in (("torch", lambda f: f), ("t.compile", lambda f: _tcompile(torch, f))):
            tm_ = tm.load_from_kiln(tm.mlp(sizes), model)
            loss_of = wrap(lambda x, m=tm_: loss(m(x), tl))
            step = _train_step(torch.optim.SGD(tm_.parameters(), lr=1e-3), loss_of, tx)
            train.impls[name], cold = _timed_first(step)
            if name == "t.compile":
                train.cold[name] = cold
    return [_no_grad_impls(infer), train]


def transformer_workloads(use_torch: bool, smoke: bool = False) -> list[Workload]:
    import kiln
    from kiln import models as km

    (b, seq, d), heads, ff = ((2, 4, 16), 2, 32) if smoke else ((8, 128, 256), 4, 1024)
    rng = np.random.default_rng(0)
    x = kiln.from_numpy(rng.standard_normal((b, seq, d), dtype=np.float32))
    kiln.manual_seed(0)
    block = km.TransformerBlock(d_model=d, nhead=heads, dim_feedforward=ff)

    fwd = Workload("W4", f"transformer block b{b} s{seq} d{d} fwd", check=_close)
    fwd.impls["numpy"] = lambda: block(x)
    with kiln.no_grad():
        _try_kiln(fwd, "kiln-c", lambda: _compile_kiln(block, x))

    # fwd+bwd: the loss (mean square of the output) is compiled with the block; grads are
    # cleared every call, as a training loop would.
    bwd = Workload("W4", "transformer block fwd+bwd")

    def fwd_bwd(loss_of: Callable[[Any], Any], module: Any, x: Any) -> Callable[[], Any]:
        def run() -> Any:
            module.zero_grad()
            loss = loss_of(x)
            loss.backward()
            return loss
        return run

    bwd.impls["numpy"] = fwd_bwd(lambda x: block(x).square().mean(), block, x)
    c_loss = kiln.compile(lambda x: block(x).square().mean(), backend="c")
    _try_kiln(bwd, "kiln-c", lambda: _timed_first(fwd_bwd(c_loss, block, x)))
    if use_torch:
        import torch

        from benchmarks import torch_models as tm

        tx = torch.from_numpy(x.numpy())
        tblock = tm.load_from_kiln(tm.transformer_block(d, heads, ff), block)
        fwd.impls["torch"] = _torch_no_grad(torch, tblock, tx)
        tcomp = _tcompile(torch, tblock)
        fwd.impls["t.compile"], fwd.cold["t.compile"] = _timed_first(
            _torch_no_grad(torch, tcomp, tx))
        bwd.impls["torch"] = fwd_bwd(lambda x: tblock(x).square().mean(), tblock, tx)
        bwd.impls["t.compile"], bwd.cold["t.compile"] = _timed_first(fwd_bwd(
            _tcompile(torch, lambda x: tblock(x).square().mean()), tblock, tx))
    return [_no_grad_impls(fwd), bwd]


def resnet_workloads(use_torch: bool, smoke: bool = False) -> list[Workload]:
    import kiln
    from kiln import models as km

    side = 32 if smoke else 224
    rng = np.random.default_rng(0)
    x = kiln.from_numpy(rng.standard_normal((1, 3, side, side), dtype=np.float32))
    kiln.manual_seed(0)
    net = km.resnet18().eval()
    w = Workload("W5", f"ResNet-18 inference b1 3x{side}x{side}", check=_close)
    w.impls["numpy"] = lambda: net(x)
    with kiln.no_grad():
        _try_kiln(w, "kiln-c", lambda: _compile_kiln(net, x))
    if use_torch:
        import torch

        from benchmarks import torch_models as tm

        tx = torch.from_numpy(x.numpy())
        tnet = tm.load_from_kiln(tm.resnet18(), net).eval()
        w.impls["torch"] = _torch_no_grad(torch, tnet, tx)
        w.impls["t.compile"], w.cold["t.compile"] = _timed_first(
            _torch_no_grad(torch, _tcompile(torch, tnet), tx))
    return [_no_grad_impls(w)]


def _tcompile(torch: Any, fn: Any) -> Any:
    return torch.compile(fn, backend=TORCH_BACKEND)


def _no_grad_impls(w: Workload) -> Workload:
    """Kiln inference callables run under kiln.no_grad() (torch ones handle it themselves)."""
    import kiln

    for name in ("numpy", "kiln-c"):
        fn = w.impls.get(name)
        if fn is not None:
            w.impls[name] = (lambda f=fn: _call_no_grad(kiln, f))
    return w


def _call_no_grad(kiln: Any, fn: Callable[[], Any]) -> Any:
    with kiln.no_grad():
        return fn()


# --------------------------------------------------------------------------------------------
# timing and the table


# Idle thread pools keep spinning after their last parallel region: NumPy's OpenBLAS for
# ~2^28 cycles (~0.1 s), libgomp (Kiln's, torch's) far shorter. Whichever implementation ran
# next lost a core to them (the transformer block after Kiln eager's NumPy matmuls: 15-20%
# slower), so each implementation starts its round after this pause.
COOLDOWN_S = 0.15


def measure(w: Workload, rounds: int, budget_s: float, min_calls: int = 2,
            cooldown_s: float = COOLDOWN_S) -> dict[str, float]:
    """Median ms per implementation, interleaving ``rounds`` rounds of ~budget_s/rounds each."""
    times: dict[str, list[float]] = {name: [] for name in w.impls}
    for fn in w.impls.values():
        fn()  # warm: caches, page faults, lazy initialisation
    per_round = budget_s / max(rounds, 1)
    for _ in range(rounds):
        for name, fn in w.impls.items():
            time.sleep(cooldown_s)
            start = time.perf_counter()
            n = 0
            while n < min_calls or (time.perf_counter() - start < per_round and n < 200):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
                n += 1
    return {name: float(np.median(v)) * 1e3 for name, v in times.items()}


def _fmt(v: float | None, width: int = 9, digits: int = 2) -> str:
    return f"{'n/a':>{width}}" if v is None else f"{v:{width}.{digits}f}"


def print_table(rows: list[tuple[Workload, dict[str, float]]]) -> None:
    cols = ["kiln-c", "numpy", "torch", "t.compile"]
    head = f"{'':3} {'workload':38}" + "".join(f"{c:>10}" for c in cols)
    head += f"{'np/kc':>8}{'tc/kc':>8}{'tcmp/kc':>9}{'kc cold s':>10}{'tcmp cold s':>12}"
    print(head)
    print("-" * len(head))
    for w, ms in rows:
        kc = ms.get("kiln-c")

        def ratio(name: str, ms: dict = ms, kc: float | None = kc) -> str:
            other = ms.get(name)
            return _fmt(other / kc if (kc and other) else None, 8)

        line = f"{w.key:3} {w.label:38}" + "".join(_fmt(ms.get(c), 10, 3) for c in cols)
        line += ratio("numpy") + ratio("torch") + " " + ratio("t.compile")
        line += _fmt(w.cold.get("kiln-c"), 10) + _fmt(w.cold.get("t.compile"), 12)
        print(line, flush=True)


def torch_threads(threads: int) -> bool:
    """Give torch ``threads`` threads, like Kiln's OpenMP; False if torch is not installed."""
    try:
        import torch
    except ImportError:
        return False
    torch.set_num_threads(threads)
    return True


def torch_version() -> str:
    import torch

    return torch.__version__


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short timing budget")
    parser.add_argument("--only", default="W1,W2,W3,W4,W5", help="comma-separated workloads")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch columns")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warm-inductor-cache", action="store_true",
                        help="let torch.compile use its on-disk cache from earlier runs")
    parser.add_argument("--warm-kiln-cache", action="store_true",
                        help="let Kiln use its on-disk build cache (kiln.base.cachedir: conv "
                             "runtime objects, fused optimizer library) from earlier runs")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny workloads, one call per column, torch.compile with the eager "
                             "backend: checks that the script runs")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    # The cold column measures compiling: Kiln's compile cache of whole programs stays off
    # (benchmarks/warm_start.py measures that cache).
    os.environ.setdefault("KILN_COMPILE_CACHE", "0")
    # Cold columns compile from nothing: Kiln's on-disk build cache and Inductor's (which
    # keeps compiled graphs, so that a second run would only load them) start empty, in
    # fresh directories, before either library reads them.
    for warm, var, what in ((args.warm_kiln_cache, "KILN_CACHE_DIR", "kiln"),
                            (args.warm_inductor_cache, "TORCHINDUCTOR_CACHE_DIR", "inductor")):
        if not warm:
            cache = tempfile.mkdtemp(prefix=f"kiln-bench-{what}-")
            atexit.register(shutil.rmtree, cache, True)
            os.environ[var] = cache
    global TORCH_BACKEND
    if args.smoke:
        TORCH_BACKEND = "eager"
    which = {s.strip() for s in args.only.split(",") if s.strip()}
    use_torch = torch_threads(THREADS) if not args.no_torch else False
    budget, rounds = (0.0, 1) if args.smoke else (1.0 if args.quick else 4.0, args.rounds)
    print(f"machine: {machine()}; threads: {THREADS}; torch: "
          f"{torch_version() if use_torch else 'not installed'}; kiln build cache: "
          f"{'warm' if args.warm_kiln_cache else 'empty'}")
    workloads: list[Workload] = []
    if which & {"W1", "W2"}:
        workloads += elementwise(use_torch, which, args.smoke)
    from benchmarks.cnn import cnn_workloads
    from benchmarks.minilm import minilm_workloads

    for key, build in (("W3", mlp_workloads), ("W4", transformer_workloads),
                       ("W5", resnet_workloads), ("W6", minilm_workloads),
                       ("W7", cnn_workloads)):
        if key in which:
            workloads += build(use_torch, args.smoke)
    rows = []
    for w in workloads:
        if w.check is not None:
            w.check({name: fn() for name, fn in w.impls.items()})
        rows.append((w, measure(w, rounds, budget, 1 if args.smoke else 2,
                                0.0 if args.smoke else COOLDOWN_S)))
    print()
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
