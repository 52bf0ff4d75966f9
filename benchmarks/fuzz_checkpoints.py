"""Fuzz Kiln's torch checkpoint reader (kiln.io.torch_checkpoint) with mutated checkpoints.

Run from the repository root: ``python -m benchmarks.fuzz_checkpoints [-n N] [--seed S]
[--smoke]``.

Each case mutates a checked-in checkpoint (tests/io/fixtures: zip and legacy formats):
random byte flips, deletions, insertions and truncations, either of the whole file or of
the pickle inside a rebuilt zip. The reader must read the file or refuse it with a
``SerializationError``; any other exception is a bug and stops the run with the seed and
case that found it. When torch is installed each file also goes to
``torch.load(weights_only=True)``, and the table counts where the two agree. The suite runs
a fixed-seed sample of the same cases (tests/io/test_torch_checkpoint.py).
"""

from __future__ import annotations

import argparse
import io
import pathlib
import random
import tempfile
import time
import warnings
import zipfile

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "tests" / "io" / "fixtures"
SOURCES = ["state_dict.pt", "state_dict_legacy.pt", "checkpoint.pth"]


def zip_checkpoint(pkl: bytes, storages: dict[str, bytes], prefix: str = "archive") -> bytes:
    """A torch-style zip by hand: stored entries, data.pkl first."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{prefix}/data.pkl", pkl)
        zf.writestr(f"{prefix}/byteorder", b"little")
        for key, data in storages.items():
            zf.writestr(f"{prefix}/data/{key}", data)
    return buf.getvalue()


def fixture_parts(name: str = "state_dict.pt") -> tuple[bytes, dict[str, bytes]]:
    """The pickle and the storages of a zip fixture."""
    with zipfile.ZipFile(FIXTURES / name) as zf:
        pkl = next(zf.read(n) for n in zf.namelist() if n.endswith("/data.pkl"))
        data = {n.rsplit("/", 1)[1]: zf.read(n) for n in zf.namelist() if "/data/" in n}
    return pkl, data


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to four random edits: flip a byte, delete or insert a few, or truncate."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        at = rng.randrange(len(out) or 1)
        if kind < 0.5 and out:
            out[at] = rng.randrange(256)
        elif kind < 0.7:
            del out[at : at + rng.randint(1, 8)]
        elif kind < 0.9:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            out = out[:at]
    return bytes(out)


def case(rng: random.Random) -> bytes:
    """A mutated checkpoint: its pickle inside a rebuilt zip, or the whole file."""
    if rng.random() < 0.5:
        pkl, data = fixture_parts(rng.choice(["state_dict.pt", "checkpoint.pth"]))
        return zip_checkpoint(mutate(pkl, rng), data)
    return mutate((FIXTURES / rng.choice(SOURCES)).read_bytes(), rng)


def kiln_reads(path: pathlib.Path) -> bool:
    """True when Kiln reads the file, False when it refuses it; anything else raises."""
    from kiln.errors import SerializationError
    from kiln.io import torch_checkpoint

    try:
        torch_checkpoint.load(path)
    except SerializationError:
        return False
    return True


def torch_reads(torch, path: pathlib.Path) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Detected pickle protocol 150 ..." on mutants
            torch.load(path, weights_only=True)
    except Exception:  # torch refuses in many ways; any of them is a refusal
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=5000, help="cases to run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="50 cases: check the script runs")
    parser.add_argument("--no-torch", action="store_true", help="skip torch.load")
    args = parser.parse_args()
    n = 50 if args.smoke else args.n
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            pass
    rng = random.Random(args.seed)
    counts = {(k, t): 0 for k in (True, False) for t in (True, False, None)}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "case.pt"
        for i in range(n):
            path.write_bytes(case(rng))
            try:
                mine = kiln_reads(path)
            except Exception as e:
                raise SystemExit(f"case {i} (seed {args.seed}): {type(e).__name__}: {e}") from e
            theirs = torch_reads(torch, path) if torch is not None else None
            counts[mine, theirs] += 1
    seconds = time.perf_counter() - start
    print(f"{n} mutated checkpoints, seed {args.seed}, {seconds:.1f} s; "
          "every one read or refused with a SerializationError")
    print(f"{'kiln':>8} {'torch':>8} {'cases':>7}")
    for (mine, theirs), count in counts.items():
        if (theirs is None) == (torch is None):
            label = "-" if theirs is None else ("reads" if theirs else "refuses")
            print(f"{'reads' if mine else 'refuses':>8} {label:>8} {count:>7}")
    if torch is not None:
        agree = counts[True, True] + counts[False, False]
        print(f"torch.load(weights_only=True) agrees on {agree} of {n}")


if __name__ == "__main__":
    main()
