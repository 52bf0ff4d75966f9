"""Fuzz Kiln's loaders with mutated artifacts: GraphModules and C-backend artifacts.

Run from the repository root: ``python -m benchmarks.fuzz_loaders [--cases N] [--batch B]
[--seed S] [--smoke]`` (default: 10,000 cases per loader; ``--smoke``: 40).

Every case takes a valid artifact from a small corpus (an MLP with parameters, a graph with
a dynamic batch dim, a reduction with attributes, a matmul chain, and a loop with a branch
in its body: control-flow nodes and subgraphs, lowered to C loops), mutates it (JSON fields
replaced, deleted, duplicated or swapped, with the integrity digests recomputed half of the
time so that the mutation reaches the validators; bytes flipped or cut; the library, the
signature or a constant replaced), loads it, and when it loads, calls it and checks the
result. Each outcome is one of:

- ``refused``: a KilnError at load or at the call (what we want for a broken artifact);
- ``ok``: loaded and gave the right result — the interpreter's on the loaded graph for a C
  artifact, and for a GraphModule outputs with the recorded metas and ``exec(gm.code)``
  giving the same numbers;
- ``non_kiln``: another exception (a bug); ``wrong``: loaded, ran, wrong numbers (a bug);
- ``crash``: the process died (SIGSEGV, SIGABRT, ...; a bug).

Batches run in subprocesses, so a crash is counted, and the next batch goes on after it.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from typing import Any

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTCOMES = ("ok", "refused", "non_kiln", "wrong", "crash")
LOADERS = ("graph_module", "c_artifact")

_POOL = [None, True, False, 0, 1, -1, 2, 3, 7, 2**31, 2**63, -2**63, 1.5, float("nan"), "",
         "x", "relu", "sigmoid", "float32", "int64", "B", "__import__", "os.system('id')",
         "a b", [], [1], [0, 1], [[1]], {}, {"node": "x"}, {"node": "nope"}, {"tuple": []},
         {"dtype": "float64"}, {"dtype": "bogus"}, {"sym": [[1, ["B"]]]}, {"sym": [[1, ["Q"]]]},
         {"sym": "x"}, {"__float__": "inf"}]


# --------------------------------------------------------------------------------------
# the corpus


def corpus() -> list[tuple[Any, tuple]]:
    """(GraphModule, example inputs) pairs the mutations start from."""
    import kiln

    kiln.manual_seed(0)
    mlp = kiln.nn.Sequential(kiln.nn.Linear(4, 8), kiln.nn.ReLU(), kiln.nn.Linear(8, 3))
    x = kiln.randn(2, 4)
    out = [(kiln.trace(mlp, x), (x,))]
    y = kiln.randn(5, 3)
    out.append((kiln.trace(lambda t: (t * 2.0).exp().sum(dim=1, keepdim=True) - t,
                           y, dynamic={"t": {0: "B"}}), (y,)))
    z = kiln.randn(3, 4)
    out.append((kiln.trace(lambda t: t.softmax(dim=-1).max(dim=0)[0], z), (z,)))
    a, b = kiln.randn(3, 4), kiln.randn(4, 2)
    out.append((kiln.trace(lambda p, q: (p @ q).relu() + 1.0, a, b), (a, b)))
    out.append(_control_seed())
    return out


def _control_seed() -> tuple[Any, tuple]:
    """A graph with control flow: a fori_loop whose body branches (a cond in a subgraph).

    The loop saves its iterations (``save=True``, as when a gradient flows through it), so
    its trip count is pinned by the recorded metas: a mutated bound is refused by lint
    instead of running 2**63 iterations. No while_loop: a mutated loop condition describes
    a program that never ends, which is what the file says, not a loader bug."""
    import kiln
    from kiln.graph.control import fori_meta

    w = kiln.randn(3)

    def f(x):
        def body(i, c):
            return kiln.cond(i % 2 == 0, lambda c: (c + w).tanh(), lambda c: c * 2.0, (c,))
        return kiln.fori_loop(1, 4, body, x)

    x = kiln.randn(3)
    gm = kiln.trace(f, x)
    loop = next(n for n in gm.graph.nodes if n.op == "control")
    loop.kwargs["save"] = True
    loop.meta = fori_meta(loop.args[0], loop.args[1], list(loop.meta), True)
    gm.graph.lint()
    return gm, (x,)


def seeds_for(seeds: list[dict], loader: str) -> list[dict]:
    """The seeds a loader starts from (every seed has both artifacts: the C backend lowers
    the control-flow seed's loop and branch into one library)."""
    key = "gm" if loader == "graph_module" else "c"
    return [s for s in seeds if s[key] is not None]


def _save_corpus(path: str) -> None:
    """Serialized seeds (GraphModule bytes, C artifact bytes, inputs) for the batches."""
    import numpy as np

    from kiln.backends import get_backend
    from kiln.backends.c.control import has_control_flow

    seeds = []
    for gm, inputs in corpus():
        c = get_backend("c")(gm, None).serialize()
        seeds.append({"gm": gm.serialize().hex(), "c": c.hex(),
                      "control": has_control_flow(gm.graph),
                      "inputs": [[t.numpy().tolist(), str(t.dtype)] for t in inputs]})
    with open(path, "w") as f:
        json.dump(seeds, f)
    _ = np


# --------------------------------------------------------------------------------------
# mutations


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


def _get(obj: Any, path: tuple) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def mutate_json(obj: Any, rng: random.Random) -> Any:
    """One structural mutation somewhere in a JSON value."""
    obj = copy.deepcopy(obj)
    paths = [p for p in _paths(obj) if p]
    if not paths:
        return rng.choice(_POOL)
    path = rng.choice(paths)
    parent = _get(obj, path[:-1])
    key = path[-1]
    kind = rng.randrange(6)
    value = parent[key]
    if kind == 0:
        parent[key] = copy.deepcopy(rng.choice(_POOL))
    elif kind == 1:
        del parent[key]
    elif kind == 2 and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(value))
    elif kind == 3 and isinstance(parent, list) and len(parent) > 1:
        j = rng.randrange(len(parent))
        parent[key], parent[j] = parent[j], parent[key]
    elif kind == 4 and isinstance(value, (int, float)) and not isinstance(value, bool):
        parent[key] = rng.choice([value + 1, value - 1, -value, value * 2, 0])
    elif kind == 4 and isinstance(value, str):
        names = [str(v) for v in _get_strings(obj)]
        parent[key] = rng.choice(names) if names else value + "_"
    else:
        parent[key] = copy.deepcopy(_get(obj, rng.choice(paths)))  # a value from elsewhere
    return obj


def _get_strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _get_strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _get_strings(v)]
    return []


def _rehash_module(obj: Any) -> None:
    from kiln.base import canonical

    if isinstance(obj, dict):
        obj["sha256"] = canonical.digest({k: v for k, v in obj.items() if k != "sha256"})


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(3)
    if kind == 0 and b:
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 1:
        b = b[: rng.randrange(len(b) + 1)]
    else:
        i = rng.randrange(len(b) + 1)
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(b)


def mutate_module(data: bytes, rng: random.Random) -> bytes:
    from kiln.base import canonical
    from kiln.io import weights

    if rng.random() < 0.15:
        return mutate_bytes(data, rng)
    arrays, meta = weights.load_bytes(data)
    if rng.random() < 0.1 and arrays:
        key = rng.choice(sorted(arrays))
        arrays[key] = arrays[key] * 2 if rng.random() < 0.5 else arrays[key][:1]
    else:
        obj = mutate_json(json.loads(meta["kiln.graph_module"]), rng)
        if rng.random() < 0.5:
            _rehash_module(obj)
        try:
            meta["kiln.graph_module"] = canonical.dumps(obj)
        except Exception:  # noqa: BLE001  (a value JSON cannot hold: mutate again)
            meta["kiln.graph_module"] = json.dumps(obj)
    return weights.save_bytes(arrays, metadata=meta)


def mutate_c(data: bytes, rng: random.Random) -> bytes:
    import numpy as np

    from kiln.backends.envelope import read_envelope, write_envelope
    from kiln.base import canonical
    from kiln.io import weights

    r = rng.random()
    if r < 0.1:
        return mutate_bytes(data, rng)  # the envelope's sha256 catches these
    _, payload = read_envelope(data)
    if r < 0.2:
        return write_envelope("c", mutate_bytes(payload, rng))  # sha256 recomputed
    arrays, meta = weights.load_bytes(payload)
    r = rng.random()
    if r < 0.45:
        meta["kiln.c"] = canonical.dumps(mutate_json(json.loads(meta["kiln.c"]), rng))
    elif r < 0.85:
        obj = mutate_json(json.loads(meta["kiln.graph_module"]), rng)
        if rng.random() < 0.7:
            _rehash_module(obj)
        try:
            meta["kiln.graph_module"] = canonical.dumps(obj)
        except Exception:  # noqa: BLE001
            meta["kiln.graph_module"] = json.dumps(obj)
    elif r < 0.9:
        lib = bytearray(arrays["__library__"].tobytes())
        lib[rng.randrange(len(lib))] ^= 1 << rng.randrange(8)
        arrays["__library__"] = np.frombuffer(bytes(lib), np.uint8)
    elif r < 0.95:
        sig = meta.get("kiln.signature", "")
        meta["kiln.signature"] = rng.choice(["", "00" * 32, sig[:-2] + "ff", "zz"])
    else:
        consts = [k for k in arrays if k.startswith("const:")]
        if consts:
            k = rng.choice(consts)
            arrays[k] = arrays[k] + 1
    return write_envelope("c", weights.save_bytes(arrays, metadata=meta))


# --------------------------------------------------------------------------------------
# running one case


def _inputs(seed: dict) -> tuple:
    import numpy as np

    import kiln

    return tuple(kiln.tensor(np.array(v, dtype=d)) for v, d in seed["inputs"])


def _close(a: Any, b: Any) -> bool:
    import numpy as np

    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return bool(np.allclose(a, b, rtol=1e-4, atol=1e-5, equal_nan=True))


def run_case(loader: str, seed: dict, rng: random.Random) -> str:
    """One mutated artifact: its outcome (see the module docstring)."""
    from kiln.errors import KilnError

    try:
        if loader == "graph_module":
            data = mutate_module(bytes.fromhex(seed["gm"]), rng)
        else:
            data = mutate_c(bytes.fromhex(seed["c"]), rng)
    except Exception:  # noqa: BLE001  (the mutator itself failed: count the case as refused)
        return "refused"
    try:
        loaded = _load(loader, data)
    except KilnError:
        return "refused"
    except Exception as exc:  # noqa: BLE001
        _report(loader, "load", exc)
        return "non_kiln"
    try:
        return _check(loader, loaded, _inputs(seed))
    except KilnError:
        return "refused"
    except Exception as exc:  # noqa: BLE001
        _report(loader, "call", exc)
        return "non_kiln"


def _load(loader: str, data: bytes) -> Any:
    if loader == "graph_module":
        from kiln.graph.module import GraphModule

        return GraphModule.deserialize(data)
    from kiln.backends import deserialize

    return deserialize(data)


def _check(loader: str, loaded: Any, inputs: tuple) -> str:
    from kiln.graph.interpreter import run

    if loader == "graph_module":
        gm = loaded
        outs = gm.forward(*inputs)
        for got, node in zip(outs, gm.graph.outputs, strict=True):
            shape = tuple(got.shape)
            want = node.meta.shape
            if len(shape) != len(want) or got.dtype != node.meta.dtype or any(
                    isinstance(w, int) and w != s for w, s in zip(want, shape, strict=True)):
                return "wrong"
        namespace: dict = {}
        exec(compile(gm.code, "<gm.code>", "exec"), namespace)  # noqa: S102  (validated)
        again = namespace["forward"](gm, *inputs)
        ok = all(_close(a.numpy(), b.numpy()) for a, b in zip(outs, again, strict=True))
        return "ok" if ok else "wrong"
    fn = loaded
    outs = fn(*inputs)
    ref = run(fn.graph, fn.constants, list(inputs))
    ok = len(outs) == len(ref) and all(_close(a.numpy(), b.numpy())
                                       for a, b in zip(outs, ref, strict=True))
    return "ok" if ok else "wrong"


def _report(loader: str, where: str, exc: BaseException) -> None:
    print(f"# {loader} {where}: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
    if os.environ.get("KILN_FUZZ_TRACE"):
        import traceback

        print("# " + "".join(traceback.format_exception(exc)).replace("\n", "\n# "),
              file=sys.stderr)


# --------------------------------------------------------------------------------------
# batches


def batch_main(corpus_path: str, loader: str, seed: int, start: int, stop: int) -> None:
    """Run cases [start, stop) and print one outcome per line (flushed: a crash loses none)."""
    import warnings

    warnings.simplefilter("ignore")  # a refused cache or key warns; not what is measured
    with open(corpus_path) as f:
        seeds = seeds_for(json.load(f), loader)
    for i in range(start, stop):
        rng = random.Random(f"{seed}-{loader}-{i}")
        outcome = run_case(loader, seeds[i % len(seeds)], rng)
        print(f"{i} {outcome}", flush=True)


def run_loader(corpus_path: str, loader: str, cases: int, batch: int, seed: int) -> dict:
    counts = dict.fromkeys(OUTCOMES, 0)
    i = 0
    while i < cases:
        stop = min(cases, i + batch)
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.fuzz_loaders", "--batch-run", corpus_path,
             loader, str(seed), str(i), str(stop)],
            capture_output=True, text=True, env=os.environ.copy(), cwd=_ROOT)
        done = [ln.split() for ln in proc.stdout.splitlines() if ln and ln[0].isdigit()]
        for _, outcome in done:
            counts[outcome] += 1
        for line in proc.stderr.splitlines():
            if line.startswith("#"):
                print(line, file=sys.stderr)
        last = int(done[-1][0]) if done else i - 1
        if proc.returncode != 0:  # died at case last + 1: count it, go on after it
            counts["crash"] += 1
            print(f"# {loader}: case {last + 1} ended the process (exit {proc.returncode}): "
                  f"{proc.stderr[-300:]}", file=sys.stderr)
            i = last + 2
        else:
            i = stop
    return counts


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--batch-run":
        corpus_path, loader, seed, start, stop = sys.argv[2:7]
        batch_main(corpus_path, loader, int(seed), int(start), int(stop))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000, help="cases per loader")
    ap.add_argument("--batch", type=int, default=250, help="cases per subprocess")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="40 cases per loader")
    args = ap.parse_args()
    # the corpus is signed in this process and loaded in the batches: one key for all
    os.environ.setdefault("KILN_CACHE_SECRET", f"kiln-fuzz-{os.getpid()}")
    cases = 40 if args.smoke else args.cases
    batch = min(args.batch, 20) if args.smoke else args.batch
    with tempfile.TemporaryDirectory(prefix="kiln-fuzz-") as tmp:
        path = os.path.join(tmp, "corpus.json")
        _save_corpus(path)
        print(f"{'loader':14s} {'cases':>7s} " + " ".join(f"{o:>9s}" for o in OUTCOMES)
              + "   seconds")
        bad = 0
        for loader in LOADERS:
            t0 = time.perf_counter()
            counts = run_loader(path, loader, cases, batch, args.seed)
            bad += counts["non_kiln"] + counts["wrong"] + counts["crash"]
            print(f"{loader:14s} {cases:7d} " + " ".join(f"{counts[o]:9d}" for o in OUTCOMES)
                  + f"   {time.perf_counter() - t0:7.1f}", flush=True)
    print(f"crashes, non-Kiln exceptions and wrong results: {bad}")
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
