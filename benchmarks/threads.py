"""Kiln next to NumPy: the compiled W3 MLP with and without a NumPy matmul before each call.

Run from the repository root: ``python -m benchmarks.threads [--no-torch] [--quick] [--smoke]``.

Every Kiln user also uses NumPy. Before ``kiln.set_num_threads`` (issue 13, point 5) the W3
MLP inference took 3.5-4.2 ms alone and 5.8-6.2 ms when a NumPy matmul ran just before each
call: NumPy's OpenBLAS pool, Kiln's own BLAS and Kiln's OpenMP pool spun on the same cores.

Workloads: the W3 MLP (784-1024-1024-10, batch 128) compiled with ``backend="c"``, its
inference (under ``kiln.no_grad``) and its train step (compiled loss, backward, eager SGD
step). Two loops, timing only the Kiln call (``time.perf_counter`` around it):

- ``alone``: the Kiln call, again and again;
- ``numpy``: ``x @ w`` (float32, 128x1024 @ 1024x1024, NumPy's own BLAS and threads) run
  just before each Kiln call, outside the timed span.

Columns: median ms per call of each loop and the ratio ``numpy / alone`` (the target is
<= 1.10). Since NumPy's OpenBLAS runs its threads on Kiln's OpenMP team (docs/c_backend.md,
"Threads"; ``KILN_SHARE_BLAS=0`` turns that off), a last line times NumPy's ``x @ w`` alone
on each pool, alternating: what the sharing costs or saves NumPy itself.

The loops alternate round after round (a burst of load on a shared machine hits
both alike), with a 0.1 s pause between rounds. With torch installed (and no ``--no-torch``),
the same two loops on torch eager with the same weights give torch's ratio beside Kiln's.

``--smoke`` shrinks the model to a few units and times a handful of calls: a check that the
script runs (used by the test suite); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

SIZES, BATCH = (784, 1024, 1024, 10), 128
SMOKE_SIZES, SMOKE_BATCH = (16, 32, 32, 10), 4
TARGET = 1.10


def _numpy_matmul(smoke: bool) -> Callable[[], Any]:
    """The NumPy work run before each call in the ``numpy`` loop: a matmul of about the size
    of the MLP's first layer, on NumPy's own BLAS (its own threads)."""
    n = 32 if smoke else 1024
    rng = np.random.default_rng(1)
    x = rng.standard_normal((SMOKE_BATCH if smoke else BATCH, n), dtype=np.float32)
    w = rng.standard_normal((n, n), dtype=np.float32)
    return lambda: x @ w


def _kiln_calls(smoke: bool) -> tuple[dict[str, Callable[[], Any]], Any]:
    import kiln
    import kiln.nn.functional as F
    from kiln import models as km

    sizes, batch = (SMOKE_SIZES, SMOKE_BATCH) if smoke else (SIZES, BATCH)
    rng = np.random.default_rng(0)
    x = kiln.from_numpy(rng.standard_normal((batch, sizes[0]), dtype=np.float32))
    labels = kiln.from_numpy(rng.integers(0, sizes[-1], batch))
    kiln.manual_seed(0)
    model = km.MLP(sizes=sizes)
    infer_fn = kiln.compile(model, backend="c")

    def infer() -> Any:
        with kiln.no_grad():
            return infer_fn(x)

    trained = km.MLP(sizes=sizes)
    trained.load_state_dict(model.state_dict())
    loss_fn = kiln.compile(lambda x, y: F.cross_entropy(trained(x), y), backend="c")
    opt = kiln.optim.SGD(trained.parameters(), lr=1e-3)

    def train() -> Any:
        opt.zero_grad()
        loss = loss_fn(x, labels)
        loss.backward()
        opt.step()
        return loss

    return {"inference": infer, "train step": train}, model


def _torch_calls(model: Any, smoke: bool) -> dict[str, Callable[[], Any]]:
    import torch

    from benchmarks import torch_models as tm

    sizes, batch = (SMOKE_SIZES, SMOKE_BATCH) if smoke else (SIZES, BATCH)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((batch, sizes[0]), dtype=np.float32))
    labels = torch.from_numpy(rng.integers(0, sizes[-1], batch))
    infer_model = tm.load_from_kiln(tm.mlp(sizes), model)
    train_model = tm.load_from_kiln(tm.mlp(sizes), model)
    opt = torch.optim.SGD(train_model.parameters(), lr=1e-3)
    loss_of = torch.nn.CrossEntropyLoss()

    def infer() -> Any:
        with torch.no_grad():
            return infer_model(x)

    def train() -> Any:
        opt.zero_grad()
        loss = loss_of(train_model(x), labels)
        loss.backward()
        opt.step()
        return loss

    return {"inference": infer, "train step": train}


def _loop(call: Callable[[], Any], before: Callable[[], Any] | None, n: int) -> list[float]:
    times = []
    for _ in range(n):
        if before is not None:
            before()
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return times


def measure(call: Callable[[], Any], before: Callable[[], Any], rounds: int, per_round: int,
            pause: float) -> tuple[float, float]:
    """Median seconds per call (alone, with ``before`` run before each call)."""
    call()
    before()
    alone: list[float] = []
    mixed: list[float] = []
    for _ in range(rounds):
        for times, prefix in ((alone, None), (mixed, before)):
            time.sleep(pause)
            _loop(call, prefix, 3)  # warm up this loop's rhythm
            times += _loop(call, prefix, per_round)
    return statistics.median(alone), statistics.median(mixed)


def numpy_on_each_pool(matmul: Callable[[], Any], rounds: int, per_round: int,
                       pause: float) -> tuple[float, float] | None:
    """Median seconds of NumPy's ``x @ w`` alone on OpenBLAS's own pool and on Kiln's OpenMP
    team (what sharing costs or saves NumPy), alternating round after round; None when
    NumPy's BLAS is not shared (``KILN_SHARE_BLAS=0``, another BLAS)."""
    from kiln.backends.c import threads

    register = threads._numpy_blas
    if register is None:
        return None
    callback = ctypes.cast(getattr(threads._keep[-1], threads.CALLBACK), ctypes.c_void_p)
    own: list[float] = []
    team: list[float] = []
    try:
        for _ in range(rounds):
            for times, setting in ((own, None), (team, callback)):
                register(setting)
                time.sleep(pause)
                _loop(matmul, None, 3)
                times += _loop(matmul, None, per_round)
    finally:
        register(callback)
    return statistics.median(own), statistics.median(team)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny model, a few calls (checks that the script runs)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per loop pair")
    args = parser.parse_args()
    import kiln

    rounds = args.rounds or (1 if args.smoke else 5 if args.quick else 15)
    per_round, pause = (2, 0.0) if args.smoke else (40, 0.1)
    before = _numpy_matmul(args.smoke)
    calls, model = _kiln_calls(args.smoke)
    columns: dict[str, dict[str, Callable[[], Any]]] = {"kiln-c": calls}
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            torch = None
        if torch is not None:
            torch.set_num_threads(kiln.get_num_threads())
            columns["torch-eager"] = _torch_calls(model, args.smoke)
    load = os.getloadavg()
    print(f"kiln.get_num_threads() = {kiln.get_num_threads()}, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {rounds} rounds x {per_round} calls")
    print(f"{'workload':<12} {'column':<11} {'alone ms':>9} {'numpy ms':>9} {'ratio':>7}")
    for workload in ("inference", "train step"):
        for column, impls in columns.items():
            alone, mixed = measure(impls[workload], before, rounds, per_round, pause)
            ratio = mixed / alone
            mark = "" if column != "kiln-c" else ("  ok" if ratio <= TARGET else
                                                 f"  > {TARGET:.2f}")
            print(f"{workload:<12} {column:<11} {alone * 1e3:9.3f} {mixed * 1e3:9.3f} "
                  f"{ratio:7.2f}{mark}")
    from kiln.backends.c import threads

    print(f"NumPy's BLAS: {threads.blas_sharing()}")
    pools = numpy_on_each_pool(before, rounds, per_round, pause)
    if pools is not None:
        own, team = pools
        print(f"NumPy x @ w alone: {own * 1e3:.3f} ms on OpenBLAS's own pool, "
              f"{team * 1e3:.3f} ms on Kiln's OpenMP team ({team / own:.2f}x)")


if __name__ == "__main__":
    main()
