"""``kiln.aot_compile``: export, compile with the C backend, write one shared library.

The library holds the C backend's kernels (the plan's sources, GEMM built in: no BLAS
dependency), the ``kiln_model.h`` entry points generated for this model (:mod:`.cgen`), the
weights, and the manifest, twice: as the symbol behind ``kiln_model_manifest()`` and as a
trailer after the ELF image (see :mod:`.library`), which ``aot_load`` and ``kiln inspect``
read without loading the library.

Weights (``options["weights"]``): ``"embed"`` (the default) puts them in a read-only,
64-byte aligned section of the library, each tensor 64-byte aligned, so the loader maps
them and nothing copies them; ``"external"`` writes ``<library>.safetensors`` beside it
(read at open, checked against its size and checksum).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from kiln.errors import ArgumentError
from kiln.export import cgen
from kiln.export.library import FORMAT, FORMAT_VERSION, write_library
from kiln.export.program import ExportedProgram, export
from kiln.graph.serialize import encode_value
from kiln.io import weights as wio

OPTIONS = {
    "output_path": "where to write the library (default: a new temporary directory)",
    "isa": "'native' (default), 'x86-64-v2', 'x86-64-v3', 'x86-64-v4' or 'armv8-a'",
    "weights": "'embed' (default) or 'external' (a .safetensors file beside the library)",
    "openmp": "bool: build with OpenMP (default: when the compiler has it)",
    "same_signature": "bool: aot_load's callable takes and returns the original pytrees "
                      "(default True); False: flat tensors in, a list of tensors out",
}
ISAS = {"native": None, "x86-64-v2": "x86_64", "x86-64-v3": "x86_64", "x86-64-v4": "x86_64",
        "armv8-a": "aarch64"}
EXTRA_FLAGS = ("-fwrapv",)  # as the C backend: int64 arithmetic wraps like NumPy's


def check_options(options: dict | None) -> dict:
    """The options with their defaults; an unknown key or bad value is an ArgumentError."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ArgumentError(f"aot_compile: options must be a dict, got {type(options).__name__}")
    for key in options:
        if key not in OPTIONS:
            known = "\n".join(f"  {k}: {v}" for k, v in OPTIONS.items())
            raise ArgumentError(f"aot_compile: unknown option {key!r}; the options are:\n{known}")
    out = {"output_path": None, "isa": "native", "weights": "embed", "openmp": True,
           "same_signature": True, **options}
    if out["isa"] not in ISAS:
        raise ArgumentError(f"aot_compile: isa must be one of {list(ISAS)}, got {out['isa']!r}")
    if out["weights"] not in ("embed", "external"):
        raise ArgumentError(f"aot_compile: weights must be 'embed' or 'external', got "
                            f"{out['weights']!r}")
    for key in ("openmp", "same_signature"):
        if not isinstance(out[key], bool):
            raise ArgumentError(f"aot_compile: {key} must be a bool, got {out[key]!r}")
    if out["output_path"] is not None:
        out["output_path"] = os.fspath(out["output_path"])
        if not out["output_path"].endswith(".so"):
            raise ArgumentError(f"aot_compile: output_path must end in .so, got "
                                f"{out['output_path']!r}")
    return out


def _isa_flags(tc: Any, isa: str) -> list[str]:
    from kiln.backends.c.cpu import normalize_arch

    arch = normalize_arch(tc.machine)
    want = ISAS[isa]
    if want is not None and want != arch:
        raise ArgumentError(f"aot_compile: isa {isa!r} is for {want}, but the C compiler "
                            f"targets {arch}")
    if isa == "native":
        extra = ["-march=native"]
        if arch == "x86_64" and tc.kind != "zig":
            extra.append("-mprefer-vector-width=512")  # as the C backend's native builds
        return extra
    return [f"-march={isa}"]


def _layout(constants: dict[str, Any]) -> tuple[bytes, dict[str, int], dict[str, dict]]:
    """The embedded weight blob: every tensor 64-byte aligned."""
    chunks: list[bytes] = []
    offsets: dict[str, int] = {}
    info: dict[str, dict] = {}
    pos = 0
    for key in sorted(constants):
        arr = np.ascontiguousarray(constants[key]._concrete("aot_compile"))
        pad = (-pos) % 64
        chunks.append(b"\0" * pad)
        pos += pad
        offsets[key] = pos
        info[key] = {"offset": pos, "shape": list(arr.shape), "dtype": arr.dtype.name}
        data = arr.tobytes()
        chunks.append(data)
        pos += len(data)
    return b"".join(chunks), offsets, info


def _external(constants: dict[str, Any]) -> tuple[bytes, dict[str, int], dict[str, dict], int]:
    """The .safetensors bytes of the weights, and the offsets inside its data section."""
    import json

    arrays = {k: np.ascontiguousarray(t._concrete("aot_compile")) for k, t in constants.items()}
    data = wio.save_bytes(arrays, metadata={"kiln.aot": "weights"})
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    offsets = {k: int(header[k]["data_offsets"][0]) for k in arrays}
    info = {k: {"offset": offsets[k], "shape": list(arrays[k].shape),
                "dtype": arrays[k].dtype.name} for k in arrays}
    return data, offsets, info, n


def checksum64(data: bytes) -> int:
    """The weights checksum the library's C recomputes at open (external weights): the sum
    of the little-endian 64-bit words times their 1-based position, mod 2**64 (a quick
    check against a wrong or damaged file; ``aot_load`` also checks the sha256).

    >>> checksum64(b"\\x01" + bytes(7) + b"\\x02")
    5
    """
    pad = (-len(data)) % 8
    words = np.frombuffer(data + b"\0" * pad, "<u8")
    return int((words * np.arange(1, len(words) + 1, dtype=np.uint64)).sum(dtype=np.uint64))


def aot_compile(f: Callable | ExportedProgram, args: tuple = (), kwargs: dict | None = None, *,
                dynamic_shapes: Any = None, options: dict | None = None) -> str:
    """Export ``f(*args, **kwargs)`` and build one shared library; returns its path.

    ``f`` may also be an :class:`ExportedProgram` (then ``args`` and ``dynamic_shapes`` are
    not used). See docs/export.md for the options and the library's layout.

    >>> import kiln, tempfile, os
    >>> path = kiln.aot_compile(lambda x: x * 2 + 1, (kiln.ones(3),),
    ...     options={"output_path": os.path.join(tempfile.mkdtemp(), "f.so")})
    >>> kiln.aot_load(path)(kiln.ones(3)).tolist()
    [3.0, 3.0, 3.0]
    """
    from kiln import __version__
    from kiln.backends.c.blas import runtime_headers
    from kiln.backends.c.cpu import normalize_arch, required_features
    from kiln.backends.c.plan import build_plan
    from kiln.backends.c.toolchain import compile_shared, find_compiler

    opts = check_options(options)
    ep = f if isinstance(f, ExportedProgram) else export(f, args, kwargs,
                                                         dynamic_shapes=dynamic_shapes)
    sig = ep.graph_signature
    if sig.mutated_buffers:
        raise ArgumentError(f"aot_compile: the program updates its buffers "
                            f"{list(sig.mutated_buffers)} (a module in training mode?); "
                            "call .eval() before exporting")
    gm = ep.graph_module
    tc = find_compiler()
    plan, _ = build_plan(gm)
    outputs = []
    for j, node in enumerate(gm.graph.outputs):
        kind, key = plan["outputs"][j]
        outputs.append({"dtype": node.meta.dtype.name, "shape": list(node.meta.shape),
                        "source": (kind, key)})
    constants = dict(gm.constants)
    if opts["weights"] == "embed":
        blob, offsets, winfo = _layout(constants)
        wdesc = {"mode": "embed", "offsets": offsets}
        wdata = blob
    else:
        wdata, offsets, winfo, header = _external(constants)
        blob = wdata[8 + header:]
        wdesc = {"mode": "external", "offsets": offsets, "header_bytes": header,
                 "data_bytes": len(blob), "checksum": checksum64(blob)}
    isa_flags = _isa_flags(tc, opts["isa"])
    openmp = opts["openmp"] and "-fopenmp" in tc.flags_for("portable")
    flags = [*tc.flags_for("portable"), *EXTRA_FLAGS, *isa_flags]
    if not openmp:
        flags = [x for x in flags if x != "-fopenmp"]
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "kiln_version": __version__,
        "abi": 1, "arch": normalize_arch(tc.machine), "isa": opts["isa"],
        "cpu_features": required_features(tc, flags, native=opts["isa"] == "native"),
        "openmp": openmp, "compiler": tc.version,
        "signature": {**gm.signature.to_obj(), "user_inputs": list(sig.user_inputs),
                      "parameters": list(sig.parameters), "buffers": list(sig.buffers),
                      "same_signature": opts["same_signature"]},
        "inputs": plan["inputs"],
        "outputs": [{"dtype": o["dtype"], "shape": [encode_value(d) for d in o["shape"]]}
                    for o in outputs],
        "symbols": plan["symbols"], "guards": plan["guards"], "nonzero": plan["nonzero"],
        "weights": {"mode": opts["weights"], "bytes": len(blob),
                    "sha256": hashlib.sha256(wdata).hexdigest(), "tensors": winfo},
    }
    with tempfile.TemporaryDirectory(prefix="kiln-aot-") as tmp:
        wdesc["blob"] = os.path.join(tmp, "weights.bin")
        with open(wdesc["blob"], "wb") as fh:
            fh.write(blob)
        sources = dict(plan["sources"])
        sources["kiln_model.c"] = cgen.model_source(plan, outputs, wdesc,
                                                    cgen.manifest_text(manifest))
        sources["kiln_model.h"] = header_text()
        sources["kiln_model_impl.h"] = header_text("kiln_model_impl.h")
        libraries: list[str] = []
        if plan.get("rt_funcs"):
            from kiln.backends.c.convrt import objects

            libraries += objects([tuple(x) for x in plan["rt_funcs"]], tc.argv, flags,
                                 tc.fingerprint("portable") + "|" + " ".join(flags))
        libraries += ["m", "-Wl,-Bsymbolic"]
        _ = runtime_headers  # the kernels' headers come from the runtime include path
        lib = compile_shared(sources, target="portable", extra_flags=[*EXTRA_FLAGS, *isa_flags],
                             libraries=libraries, openmp=openmp)
    out = opts["output_path"]
    if out is None:
        out = os.path.join(tempfile.mkdtemp(prefix="kiln-aot-"), "model.so")
    external = None
    if opts["weights"] == "external":
        external = (out[:-3] + ".safetensors", wdata)
        manifest["weights"]["file"] = os.path.basename(external[0])
    write_library(out, lib.data, manifest, blob if opts["weights"] == "embed" else None,
                  external)
    return out


def header_text(name: str = "kiln_model.h") -> str:
    """``kiln_model.h``, the C API every exported library implements (or another file of
    this package: ``kiln_model_impl.h``, its model-independent half).

    >>> "kiln_model_run" in header_text()
    True
    """
    from pathlib import Path

    return (Path(__file__).parent / name).read_text()
