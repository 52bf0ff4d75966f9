"""Compile-cache keys: a hash over a named, ordered list of ingredients.

Each ingredient is hashed on its own (``sha256`` of its canonical JSON), and the key is the
hash of the list of ``(name, hash)`` pairs, so a miss can name the ingredient that changed.
The ingredients, in order:

==============  ===========================================================================
``graph``       canonical JSON of the traced program (graph, signature, glue; constant
                shapes and dtypes, not their values: weights are bound at load)
``inputs``      shape (symbolic dims by name), dtype and ``requires_grad`` of every input
``backend``     backend name, its options, the AOT partitioner and ``KILN_GEMM``
``kiln``        Kiln's version
``format``      the artifact format version
``toolchain``   the C compiler (kind, version, target) for native backends, else ``none``
``cpu``         OS, architecture and the CPU features of this machine (native backends)
==============  ===========================================================================

>>> parts = ingredients(graph={"nodes": []}, inputs=[], backend="interpret", options={})
>>> [name for name, _ in parts]
['graph', 'inputs', 'backend', 'kiln', 'format', 'toolchain', 'cpu']
>>> len(key_of(parts))
64
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from kiln.backends.container import FORMAT_VERSION, this_platform
from kiln.backends.serializable import DATA_ONLY_BACKENDS
from kiln.base import canonical

NAMES = ("graph", "inputs", "backend", "kiln", "format", "toolchain", "cpu")
Ingredients = list[tuple[str, str]]


def digest(value: Any) -> str:
    text = value if isinstance(value, str) else canonical.dumps(value)
    return hashlib.sha256(text.encode()).hexdigest()


def _toolchain(backend: str) -> Any:
    if backend in DATA_ONLY_BACKENDS:
        return "none"
    try:
        from kiln.backends.c.toolchain import find_compiler

        tc = find_compiler()
    except Exception as e:  # noqa: BLE001  (no compiler: still a key, one that misses)
        return f"unavailable: {type(e).__name__}"
    return {"kind": tc.kind, "version": tc.version, "machine": tc.machine}


def _cpu(backend: str) -> Any:
    if backend in DATA_ONLY_BACKENDS:
        return "any"
    from kiln.backends.c.cpu import cpu_flags

    flags = cpu_flags()
    return {"platform": this_platform(), "features": sorted(flags) if flags else None}


def ingredients(*, graph: Any, inputs: Any, backend: str, options: dict,
                partitioner: str | None = None) -> Ingredients:
    """The named ingredient hashes of one compiled signature."""
    from kiln import __version__

    values = {
        "graph": graph,
        "inputs": inputs,
        "backend": {"name": backend, "options": {str(k): repr(v) for k, v in options.items()},
                    "partitioner": partitioner, "gemm": os.environ.get("KILN_GEMM")},
        "kiln": __version__,
        "format": FORMAT_VERSION,
        "toolchain": _toolchain(backend),
        "cpu": _cpu(backend),
    }
    return [(name, digest(values[name])) for name in NAMES]


def key_of(parts: Ingredients) -> str:
    """The cache key of a list of ingredient hashes."""
    return digest([list(p) for p in parts])


def differences(parts: Ingredients, other: Any) -> list[str]:
    """Names of the ingredients where ``other`` (a stored list) differs from ``parts``."""
    theirs = {str(p[0]): p[1] for p in other if isinstance(p, (list, tuple)) and len(p) == 2} \
        if isinstance(other, list) else {}
    return [name for name, h in parts if theirs.get(name) != h]


def specs_of(placeholders: list[Any], requires_grad: list[bool] | None = None) -> list:
    """The ``inputs`` ingredient: each placeholder's shape, dtype (and requires_grad)."""
    out = []
    for i, p in enumerate(placeholders):
        shape = [d if isinstance(d, int) else str(d) for d in p.meta.shape]
        item = [p.name, shape, p.meta.dtype.name]
        if requires_grad is not None and i < len(requires_grad):
            item.append(bool(requires_grad[i]))
        out.append(item)
    return out
