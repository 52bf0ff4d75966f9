"""``kiln.export.save`` / ``kiln.export.load``: an ExportedProgram as one safetensors file.

The file holds the state (parameters, buffers, other constants) as tensors, and two JSON
documents in the safetensors metadata: the GraphModule's canonical JSON (graph, pytree
signature, constant digests; see :mod:`kiln.graph.module`) and the export's own record
(format and version, Kiln version, parameter and buffer names, range constraints). Loading
parses and validates both, re-derives every shape from the op registry (graph lint), and
checks each tensor against its recorded digest: no pickle, nothing evaluated or imported.

>>> import kiln, tempfile, pathlib
>>> ep = kiln.export(lambda x: x * 2, (kiln.ones(3),))
>>> with tempfile.TemporaryDirectory() as d:
...     kiln.export.save(ep, pathlib.Path(d) / "double.kep")
...     back = kiln.export.load(pathlib.Path(d) / "double.kep")
>>> back.module()(kiln.ones(3)).tolist()
[2.0, 2.0, 2.0]
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from kiln.base import canonical
from kiln.base.atomic import write_atomic
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, SerializationError
from kiln.export.program import ExportedProgram, ExportGraphSignature
from kiln.graph.module import GraphModule
from kiln.io import weights

EP_FORMAT = "kiln.exported_program"
EP_VERSION = 1


def _record(ep: ExportedProgram) -> str:
    from kiln import __version__

    sig = ep.graph_signature
    return canonical.dumps({
        "format": EP_FORMAT, "version": EP_VERSION, "kiln_version": __version__,
        "parameters": list(sig.parameters), "buffers": list(sig.buffers),
        "range_constraints": {k: [lo, hi] for k, (lo, hi) in ep.range_constraints.items()},
    })


def to_bytes(ep: ExportedProgram) -> bytes:
    """The bytes :func:`save` writes."""
    gm = ep.graph_module
    arrays = {k: np.ascontiguousarray(t._concrete("serialization"))
              for k, t in gm.constants.items()}
    return weights.save_bytes(arrays, metadata={"kiln.graph_module": gm.to_json(),
                                                EP_FORMAT: _record(ep)})


def save(ep: ExportedProgram, path: str | os.PathLike[str]) -> None:
    """Write ``ep`` to ``path`` atomically (see the module docstring)."""
    if not isinstance(ep, ExportedProgram):
        raise ArgumentError(f"kiln.export.save: expected an ExportedProgram, got "
                            f"{type(ep).__name__}")
    write_atomic(path, to_bytes(ep), durable=True)


def _strings(obj: Any, what: str) -> tuple[str, ...]:
    if not isinstance(obj, list) or not all(isinstance(s, str) for s in obj):
        raise SerializationError(f"exported program: {what} must be a list of names")
    return tuple(obj)


def from_bytes(data: bytes, types: Any = None) -> ExportedProgram:
    """The program :func:`to_bytes` wrote (``types``: namedtuple/dataclass types of the
    pytree specs by qualified name, as for ``TreeSpec.from_json``)."""
    try:
        arrays, meta = weights.load_bytes(data)
    except SerializationError as e:
        raise SerializationError(f"not an exported program: {e}") from e
    if EP_FORMAT not in meta or "kiln.graph_module" not in meta:
        raise SerializationError("a safetensors file, but not a Kiln exported program (no "
                                 f"{EP_FORMAT!r} metadata)")
    try:
        rec = canonical.loads(meta[EP_FORMAT])
    except (ValueError, TypeError) as e:
        raise SerializationError(f"exported program record does not parse: {e}") from e
    if not isinstance(rec, dict) or rec.get("format") != EP_FORMAT:
        raise SerializationError("exported program record: format mismatch")
    if rec.get("version") != EP_VERSION:
        raise SerializationError(f"exported program format version {rec.get('version')!r} is "
                                 f"not supported (this Kiln reads version {EP_VERSION})")
    gm = GraphModule.from_json(meta["kiln.graph_module"],
                               {k: Tensor._wrap(v) for k, v in arrays.items()}, types)
    if gm.signature is None:
        raise SerializationError("exported program: the graph has no call signature")
    parameters = _strings(rec.get("parameters"), "parameters")
    buffers = _strings(rec.get("buffers"), "buffers")
    for key in parameters + buffers:
        if key not in gm.constants:
            raise SerializationError(f"exported program: state {key!r} has no tensor")
    ranges_obj = rec.get("range_constraints")
    if not isinstance(ranges_obj, dict):
        raise SerializationError("exported program: range_constraints must be a dict")
    ranges = {}
    for name, pair in ranges_obj.items():
        dim = gm.graph.symbols.get(name)
        if dim is None or pair != [dim.min, dim.max]:
            raise SerializationError(f"exported program: range of {name!r} does not match "
                                     "the graph's symbols")
        ranges[name] = (dim.min, dim.max)
    sig = gm.signature
    n_out = len(gm.graph.outputs) - len(sig.mutations)
    signature = ExportGraphSignature(
        user_inputs=tuple(p.target for p in gm.graph.placeholders), parameters=parameters,
        buffers=buffers, user_outputs=n_out, mutated_buffers=tuple(sig.mutations),
        in_spec=sig.in_spec, out_spec=sig.out_spec)
    return ExportedProgram(gm, signature, ranges)


def load(path: str | os.PathLike[str], types: Any = None) -> ExportedProgram:
    """Read a program :func:`save` wrote (see the module docstring)."""
    with open(path, "rb") as f:
        return from_bytes(f.read(), types)
