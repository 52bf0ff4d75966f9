"""Fuzz every compiled-artifact loader with mutated artifacts.

``python -m benchmarks.fuzz_artifacts [--cases 10000] [--seed 0] [--smoke]``

Base artifacts (small programs, interpret and C backends): a backend function, a bundled
AOT training entry, a precompiled file, a cache entry and a whole-cache bundle. Each case
mutates one of them and hands it to its loader:

- *integrity* mutations (bit flips, truncations, appended bytes, header fields edited in
  place: lengths, names like ``../../x``, huge and negative numbers, kinds, platforms, CPU
  features, format versions) must be refused with a ``KilnError``: zero silent acceptances;
- *forged* mutations (a header field, a JSON program or a safetensors header inside a
  section edited *and* every hash recomputed, as an attacker without the signing key
  would): a signed artifact must be refused; a data-only one may load only into something
  that runs or raises a ``KilnError``.

Anything else (another exception type, a crash) is a failure. The suite runs a fixed-seed
sample (tests/artifacts/test_fuzz.py); this script runs the full count.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import struct
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_BAD_VALUES = [-1, 0, 1, 2**31, 2**63, -(2**63), 10**30, 1e308, "../../x", "/etc/passwd", "",
               None, [], {}, "float64", "int8", "avx9000", True]


@dataclass
class Base:
    """One artifact and how to load (and then use) it."""

    name: str
    data: bytes
    signed: bool
    load: Callable[[bytes], Any]
    use: Callable[[Any], Any]


def build_bases(with_c: bool) -> list[Base]:
    """The artifacts every case mutates (built once)."""
    import kiln
    import kiln.nn.functional as F
    from kiln.artifacts import (
        AOTCompiledFunction,
        BundledAOTAutogradSerializableCallable,
        PrecompileContext,
        entries,
        load_cache_artifacts,
        save_cache_artifacts,
    )
    from kiln.backends import get_backend
    from kiln.models import MLP

    kiln.manual_seed(0)
    model = MLP((4, 5, 3))
    x, y = kiln.randn(2, 4), kiln.randint(0, 3, (2,))
    bases: list[Base] = []
    for backend in ["interpret"] + (["c"] if with_c else []):
        signed = backend == "c"
        fn = get_backend(backend)(kiln.trace(lambda a: (a * 2.0).exp(), kiln.ones(3)), None)
        cls = type(fn)
        bases.append(Base(f"{backend}:function", cls.serialize_compile_artifacts(fn), signed,
                          cls.deserialize_compile_artifacts, lambda f: f(kiln.ones(3))))
        f = lambda a, b: F.cross_entropy(model(a), b)  # noqa: E731
        step = kiln.compile(f, backend=backend)
        step(x, y).backward()
        (entry,) = step._aot.entries()
        bundled = BundledAOTAutogradSerializableCallable

        def load_bundled(d: bytes, f: Any = f) -> Any:
            return BundledAOTAutogradSerializableCallable.deserialize_compile_artifacts(d, fn=f)

        bases.append(Base(f"{backend}:bundled",
                          bundled.serialize_compile_artifacts(bundled(entry, fn=f)), signed,
                          load_bundled, lambda g: g(x, y).backward()))
        aot = kiln.compile(f, backend=backend).aot_compile(((x, y), {}))
        bases.append(Base(f"{backend}:precompiled", aot.serialize(), signed,
                          lambda d: AOTCompiledFunction.deserialize(d, module=model),
                          lambda g: g(x, y)))

        def load_entry(d: bytes, f: Any = f) -> Any:
            art, program, funcs = entries.read_entry(d, "fuzzed entry")
            return entries.aot_entry_from(art, program, funcs, "fuzzed entry", fn=f)

        bases.append(Base(f"{backend}:cache-entry",
                          entries.aot_entry_bytes(entry, entry.call_info, fn=f), signed,
                          load_entry, lambda got: None))
    PrecompileContext.clear()
    os.environ["KILN_COMPILE_CACHE"] = "1"
    os.environ["KILN_CACHE_DIR"] = tempfile.mkdtemp(prefix="kiln-fuzz-")
    kiln.compile(lambda a: a.sin() + 1.0, backend="c" if with_c else "interpret")(kiln.ones(2))
    data, _ = save_cache_artifacts()

    def load_bundle(d: bytes) -> Any:
        info = load_cache_artifacts(d)
        if info is None:  # every entry refused (with a warning): a refusal
            from kiln.errors import KilnError

            raise KilnError("bundle refused")
        return info

    bases.append(Base("bundle", data, with_c, load_bundle, lambda info: None))
    return bases


# mutations -------------------------------------------------------------------------------
def _split(data: bytes) -> tuple[dict, int]:
    from kiln.base import canonical

    (n,) = struct.unpack_from("<I", data, 12)
    return canonical.loads(data[16:16 + n]), 16 + n


def _join(header: dict, body: bytes, fix_checksum: bool) -> bytes:
    from kiln.backends.container import _checksum
    from kiln.base import canonical

    if fix_checksum:
        header["checksum"] = _checksum(header)
    text = canonical.dumps(header).encode()
    return b"KILNART\x00" + struct.pack("<II", 1, len(text)) + text + body


def _bad(rng: random.Random) -> Any:
    return rng.choice(_BAD_VALUES)


def _mutate_json(obj: Any, rng: random.Random) -> Any:
    """``obj`` with one random leaf (or container) replaced by a bad value."""
    if isinstance(obj, dict) and obj and rng.random() < 0.85:
        k = rng.choice(sorted(obj))
        return {**obj, k: _mutate_json(obj[k], rng)}
    if isinstance(obj, list) and obj and rng.random() < 0.85:
        i = rng.randrange(len(obj))
        return obj[:i] + [_mutate_json(obj[i], rng)] + obj[i + 1:]
    return _bad(rng)


def _forge_section(body: bytes, rng: random.Random) -> bytes:
    """A section edited inside (its JSON, or the safetensors header in a backend envelope),
    with the inner hashes recomputed."""
    from kiln.base import canonical

    if body[:8] == b"KILNCF01":  # a backend envelope: forge the safetensors header inside
        (n,) = struct.unpack_from("<I", body, 8)
        env = json.loads(body[12:12 + n])
        payload = body[12 + n:]
        (m,) = struct.unpack_from("<Q", payload, 0)
        st = json.loads(payload[8:8 + m])
        st = _mutate_json(st, rng)
        text = json.dumps(st).encode()
        payload = struct.pack("<Q", len(text)) + text + payload[8 + m:]
        env.update(sha256=hashlib.sha256(payload).hexdigest(), size=len(payload))
        head = canonical.dumps(env).encode()
        return body[:8] + struct.pack("<I", len(head)) + head + payload
    try:
        obj = canonical.loads(body)
    except (ValueError, UnicodeDecodeError):
        return bytes(b ^ 0xFF for b in body[:4]) + body[4:]
    return canonical.dumps(_mutate_json(obj, rng)).encode()


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """(kind of mutation, mutated bytes); kinds starting with ``forged`` recompute hashes."""
    choice = rng.randrange(9)
    if choice == 0:
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        return "bitflip", bytes(out)
    if choice == 1:
        return "truncate", data[:rng.randrange(len(data))]
    if choice == 2:
        return "append", data + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    if choice == 3:
        field = rng.choice(["version", "length"])
        value = rng.choice([0, 2, 3, 2**32 - 1, 7])
        offset = 8 if field == "version" else 12
        return f"prelude-{field}", data[:offset] + struct.pack("<I", value) + data[offset + 4:]
    header, start = _split(data)
    body = data[start:]
    if choice in (4, 5):  # a header field edited, checksum stale (integrity) or fixed (forged)
        key = rng.choice(["kind", "kiln_version", "platform", "cpu_features", "sections", "meta",
                          "signature"])
        header[key] = _mutate_json(header[key], rng) if rng.random() < 0.7 else _bad(rng)
        return ("forged-header" if choice == 5 else "header"), _join(header, body,
                                                                     choice == 5)
    if choice == 6:  # a section entry's length / name / sha edited, checksum fixed
        s = rng.choice(header["sections"])
        field = rng.choice(["length", "name", "sha256"])
        s[field] = rng.choice([_bad(rng), "../../x", -5, 2**62, s.get("length", 0) + 1])
        return "forged-section-entry", _join(header, body, True)
    # choice 7, 8: a section's content forged, its length, hash and the checksum recomputed
    i = rng.randrange(len(header["sections"]))
    offsets = [0]
    for s in header["sections"]:
        offsets.append(offsets[-1] + s["length"])
    old = body[offsets[i]:offsets[i + 1]]
    new = _forge_section(old, rng)
    header["sections"][i].update(length=len(new), sha256=hashlib.sha256(new).hexdigest())
    body = body[:offsets[i]] + new + body[offsets[i + 1]:]
    return "forged-content", _join(header, body, True)


def run_case(base: Base, rng: random.Random) -> tuple[str, str]:
    """(mutation kind, outcome): outcome is "refused", "ok" (a forged data-only artifact
    that loads and runs or raises a KilnError), "same" (no change), or "FAIL: ..."."""
    from kiln.errors import KilnError

    kind, data = mutate(base.data, rng)
    if data == base.data:
        return kind, "same"
    with warnings.catch_warnings():  # refused cache entries warn; the outcome is what counts
        warnings.simplefilter("ignore")
        try:
            got = base.load(data)
        except KilnError:
            return kind, "refused"
        except Exception as e:  # noqa: BLE001
            return kind, f"FAIL: {base.name} {kind}: crash {type(e).__name__}: {e}"[:400]
        if not kind.startswith("forged") or base.signed:
            return kind, f"FAIL: {base.name} {kind}: silently accepted"
        try:
            base.use(got)
        except KilnError:
            pass
        except Exception as e:  # noqa: BLE001
            return kind, f"FAIL: {base.name} {kind}: loaded, then {type(e).__name__}: {e}"[:400]
    return kind, "ok"


def fuzz(cases: int, seed: int, with_c: bool, bases: list[Base] | None = None
         ) -> tuple[dict[str, int], list[str]]:
    bases = bases or build_bases(with_c)
    rng = random.Random(seed)
    counts: dict[str, int] = {}
    failures: list[str] = []
    for _ in range(cases):
        base = rng.choice(bases)
        kind, outcome = run_case(base, rng)
        key = outcome if not outcome.startswith("FAIL") else "FAIL"
        counts[key] = counts.get(key, 0) + 1
        counts[f"{base.name} {key}"] = counts.get(f"{base.name} {key}", 0) + 1
        if outcome.startswith("FAIL"):
            failures.append(outcome)
    return counts, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="200 cases")
    args = parser.parse_args(argv)
    from kiln.backends.c.toolchain import find_compiler

    try:
        find_compiler()
        with_c = True
    except Exception:  # noqa: BLE001
        with_c = False
    start = time.perf_counter()
    counts, failures = fuzz(200 if args.smoke else args.cases, args.seed, with_c)
    took = time.perf_counter() - start
    total = {k: v for k, v in counts.items() if " " not in k}
    print(f"{sum(total.values())} mutated artifacts in {took:.1f} s "
          f"(C backend: {'yes' if with_c else 'no'}): {total}")
    print(f"{'artifact':<22}{'refused':>9}{'ok':>6}{'same':>6}{'FAIL':>6}")
    names = sorted({k.split(" ")[0] for k in counts if " " in k})
    for name in names:
        row = [counts.get(f"{name} {o}", 0) for o in ("refused", "ok", "same", "FAIL")]
        print(f"{name:<22}{row[0]:>9}{row[1]:>6}{row[2]:>6}{row[3]:>6}")
    for f in failures[:20]:
        print(" ", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
