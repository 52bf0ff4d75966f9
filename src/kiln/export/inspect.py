"""``python -m kiln.export.inspect FILE``: what an exported library or program holds.

For a library from ``kiln.aot_compile`` (read from the file, never loaded): format and Kiln
versions, architecture, ISA and CPU features, OpenMP, the signature (inputs and outputs with
dtypes and shapes, pytree specs), dynamic dims with their ranges, the trace's assumptions,
sizes of code and weights, their sha256, and whether the file passes every check
``aot_load`` makes before loading. For an exported program from ``kiln.export.save``: the
graph signature, ranges, state and its size. ``--json`` prints the record as JSON.

(``kiln inspect FILE`` runs this for export files, and reads artifact containers too:
:mod:`kiln.cli.inspect`.)

>>> import kiln, os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "f.so")
>>> _ = kiln.aot_compile(lambda x: x + 1, (kiln.ones(2),), options={"output_path": path})
>>> print(describe_file(path))  # doctest: +ELLIPSIS
kiln library ...f.so
  format: kiln.aot_library version 1, written by Kiln ...
  ...
  checks before loading: OK
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from kiln.errors import KilnError, SerializationError
from kiln.export.library import MAGIC, read_trailer, verify


def _shape(shape: list) -> str:
    from kiln.graph.serialize import decode_value

    return "(" + ", ".join(str(decode_value(d, {})) for d in shape) + ")"


def library_record(path: str) -> dict[str, Any]:
    """Everything about a library file, as a JSON-able dict."""
    with open(path, "rb") as f:
        data = f.read()
    elf, trailer = read_trailer(data, path)
    m = trailer["manifest"]
    try:
        verify(path)
        status = "OK"
    except KilnError as e:
        status = f"REFUSED: {e}"
    return {"kind": "library", "path": path, "manifest": m, "file_bytes": len(data),
            "library_bytes": len(elf), "weights_bytes": trailer.get("weights_size", 0),
            "code_sha256": trailer.get("code_sha256"), "checks": status}


def program_record(path: str) -> dict[str, Any]:
    """Everything about an exported program file."""
    from kiln.export.serialize import load

    ep = load(path)
    sig = ep.graph_signature
    state = ep.state_dict
    return {"kind": "exported_program", "path": path,
            "user_inputs": [f"{p.target}: {p.meta}" for p in ep.graph.placeholders],
            "parameters": list(sig.parameters), "buffers": list(sig.buffers),
            "user_outputs": sig.user_outputs, "in_spec": str(sig.in_spec),
            "out_spec": str(sig.out_spec),
            "range_constraints": {k: list(v) for k, v in ep.range_constraints.items()},
            "guards": [str(g) for g in ep.graph.guards],
            "state_bytes": sum(t.numel() * t.dtype.itemsize for t in state.values()),
            "nodes": len(ep.graph.nodes)}


def record(path: str) -> dict[str, Any]:
    """The record of ``path``, whichever kind of Kiln file it is."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(size - len(MAGIC), 0))
        tail = f.read()
    if tail == MAGIC:
        return library_record(path)
    try:
        return program_record(path)
    except KilnError as e:
        raise SerializationError(f"{path}: neither a library from kiln.aot_compile nor an "
                                 f"exported program ({e})") from e


def render(rec: dict[str, Any]) -> str:
    """The human-readable form of a record."""
    if rec["kind"] == "exported_program":
        ranges = ", ".join(f"{k} in [{lo}, {hi}]" for k, (lo, hi) in
                           rec["range_constraints"].items()) or "-"
        return "\n".join([
            f"kiln exported program {rec['path']}",
            f"  inputs: {'; '.join(rec['user_inputs']) or '-'}",
            f"  in spec: {rec['in_spec']}", f"  out spec: {rec['out_spec']}",
            f"  user outputs: {rec['user_outputs']}",
            f"  dynamic dims: {ranges}",
            f"  assumes: {', '.join(rec['guards']) or '-'}",
            f"  parameters: {len(rec['parameters'])}, buffers: {len(rec['buffers'])}, "
            f"state {rec['state_bytes']} bytes, {rec['nodes']} graph nodes",
        ])
    m = rec["manifest"]
    w = m.get("weights", {})
    sig = m.get("signature", {})
    lines = [
        f"kiln library {rec['path']}",
        f"  format: {m.get('format')} version {m.get('format_version')}, written by Kiln "
        f"{m.get('kiln_version')} ({m.get('compiler', '?')})",
        f"  target: {m.get('arch')}, isa {m.get('isa')}, "
        f"OpenMP {'on' if m.get('openmp') else 'off'}",
        f"  CPU features: {', '.join(m.get('cpu_features', [])) or '-'}",
        "  inputs:",
        *(f"    {i['name']}: {i['dtype']}{_shape(i['shape'])}" for i in m.get("inputs", [])),
        "  outputs:",
        *(f"    output_{j}: {o['dtype']}{_shape(o['shape'])}"
          for j, o in enumerate(m.get("outputs", []))),
        "  dynamic dims: " + (", ".join(f"{s['name']} in [{s['min']}, {s['max']}]"
                                         for s in m.get("symbols", [])) or "-"),
        f"  parameters: {len(sig.get('parameters', []))}, buffers: "
        f"{len(sig.get('buffers', []))}",
        f"  sizes: file {rec['file_bytes']} bytes, "
        f"code {rec['library_bytes'] - rec['weights_bytes']}, "
        f"weights {w.get('bytes')} ({w.get('mode')}"
        + (f": {w.get('file')}" if w.get("file") else "") + ")",
        f"  code sha256: {rec['code_sha256']}",
        f"  weights sha256: {w.get('sha256')}",
        f"  checks before loading: {rec['checks']}",
    ]
    return "\n".join(lines)


def describe_file(path: str) -> str:
    """:func:`render` of :func:`record`."""
    return render(record(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiln.export.inspect",
                                     description="Show what a Kiln library or exported "
                                                 "program holds.")
    parser.add_argument("file")
    parser.add_argument("--json", action="store_true", help="print the record as JSON")
    args = parser.parse_args(argv)
    try:
        rec = record(args.file)
    except (KilnError, OSError) as e:
        print(f"kiln inspect: {e}", file=sys.stderr)
        return 1
    print(json.dumps(rec, indent=2, sort_keys=True) if args.json else render(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
