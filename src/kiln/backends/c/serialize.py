"""Bytes of a compiled C function, and back (no pickle, no compiler needed to load).

Payload (inside the envelope of :mod:`kiln.backends.envelope`, backend ``"c"``): one
safetensors file holding

- ``__library__``: the shared library's bytes (U8);
- ``const:<key>``: every graph constant's current value;
- metadata ``kiln.graph_module``: the graph the library was compiled from (GraphModule
  JSON, validated on load like any graph);
- metadata ``kiln.c``: the plan as canonical JSON (format and version, the C source, the
  compile flags and target and toolchain fingerprint, guards, buffers, kernels, ...);
- metadata ``kiln.signature``: the HMAC-SHA256 of the library bytes under the user's key
  (:mod:`kiln.base.trust`).

A loaded plan is never trusted (see docs/security.md). Loading:

1. checks the library's signature on its bytes (``trust="signed"``, the default) before
   they reach the loader: a missing or wrong one is an
   :class:`~kiln.errors.UntrustedArtifactError`;
2. validates the graph (schema, meta inference, lint, constants) and rebuilds the plan
   from it (buffers, shapes, kinds, guards, kernel order, C source; no compiler needed);
   from the stored plan only what compiling added is kept, each field checked: target,
   flags, CPU features (this CPU must have them), GEMM (its wheel must be installed);
3. loads the library and compares the plan hash it exports with the rebuilt plan's,
   before calling anything in it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.backends.c.plan import PLAN_FORMAT, PLAN_VERSION
from kiln.backends.envelope import write_envelope
from kiln.base import canonical
from kiln.core.tensor import Tensor
from kiln.errors import KilnError, SerializationError
from kiln.io import weights

LIB_KEY = "__library__"
CONST_PREFIX = "const:"
GRAPH_KEY = "kiln.graph_module"
SIGNATURE_KEY = "kiln.signature"


def serialize(fn: object) -> bytes:
    from kiln.backends.c.runtime import CFunction
    from kiln.base import trust
    from kiln.graph.module import GraphModule

    assert isinstance(fn, CFunction)
    if fn.graph is None:
        raise SerializationError("this compiled function does not know its graph (it was "
                                 "built without one) and cannot be serialized")
    arrays = {LIB_KEY: np.frombuffer(fn.library, np.uint8)}
    for key, t in fn.constants.items():
        # not ascontiguousarray: it makes a 0-d constant 1-d
        arrays[CONST_PREFIX + key] = np.asarray(t._concrete("serialization"), order="C")
    # "source" is "sources" joined: a loader joins them again rather than parse both
    meta = {"kiln.c": canonical.dumps({k: v for k, v in fn.plan.items() if k != "source"}),
            GRAPH_KEY: GraphModule(fn.graph, fn.constants).to_json(),
            SIGNATURE_KEY: trust.sign(fn.library).hex()}
    payload = weights.save_bytes(arrays, metadata=meta)
    return write_envelope("c", payload)


def deserialize(payload: bytes, trust: str = "signed", *, authenticated: bool = False
                ) -> object:
    """The CFunction of a payload (see the module docstring for what is checked).

    ``authenticated``: the caller verified a signature over every byte of ``payload`` under
    this user's key (a signed container). The graph, which the function does not need to
    run, is then decoded and checked when first asked for (``fn.graph``) instead of here."""
    from kiln.backends.c.plan_check import check_against_graph, check_constants, stored_plan
    from kiln.backends.c.runtime import CFunction, _check_plan_hash
    from kiln.base import trust as trust_mod

    must_sign = trust_mod.check_trust(trust, "C-backend artifact")
    arrays, meta = weights.load_bytes(payload)
    if "kiln.c" not in meta or LIB_KEY not in arrays or GRAPH_KEY not in meta:
        raise SerializationError("not a Kiln C-backend artifact (no plan, graph or library); "
                                 "artifacts written before Kiln carried the graph must be "
                                 "compiled again")
    lib = arrays[LIB_KEY]
    if lib.dtype != np.uint8 or lib.ndim != 1:
        raise SerializationError("C-backend artifact: the library is not a byte array")
    library = lib.tobytes()
    if must_sign:
        signature = _signature(meta.get(SIGNATURE_KEY))
        trust_mod.require_signed(library, signature, "C-backend artifact")
    stored = _stored_plan(meta["kiln.c"])
    constants = {k[len(CONST_PREFIX):]: Tensor._wrap(v) for k, v in arrays.items()
                 if k.startswith(CONST_PREFIX)}
    graph_json = meta[GRAPH_KEY]
    if must_sign:
        # the signed library vouches for the stored plan through the hash it exports
        plan = _compiled_additions(stored_plan(stored), stored)
        handle = _load(plan, library)
        _check_plan_hash(handle, plan)
        check_constants(plan, constants)
        fn = CFunction(plan, library, constants, lib_handle=handle)
        stored_constants = dict(constants)  # binding may replace the function's own

        def checked_graph() -> Any:
            gm = _graph(graph_json, stored_constants)
            check_against_graph(plan, gm)
            return gm.graph

        if authenticated:
            fn.defer_graph(checked_graph)
        else:
            fn.graph = checked_graph()
        return fn
    # nothing vouches for the plan: rebuild it from the validated graph
    gm = _graph(graph_json, constants)
    plan = _compiled_additions(_rebuilt_plan(gm), stored)
    handle = _load(plan, library)
    fn = CFunction(plan, library, constants, lib_handle=handle)
    fn.graph = gm.graph
    return fn


def _load(plan: dict, library: bytes) -> Any:
    """dlopen the library, after the checks that keep it from dying at its first call."""
    from kiln.backends.c.blas import prepare_recorded
    from kiln.backends.c.cpu import check_features
    from kiln.backends.c.dynlib import load_library

    # a library built for another CPU would die of SIGILL at its first call
    check_features(plan)
    # a missing BLAS wheel is a clear error, not a loader failure
    prepare_recorded(plan.get("gemm"))
    return load_library(library, "kiln_graph")


def _signature(text: Any) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def _stored_plan(text: str) -> dict:
    try:
        plan = canonical.loads(text)
    except (ValueError, TypeError, RecursionError) as e:
        raise SerializationError(f"C-backend plan does not parse: {e}") from e
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise SerializationError("C-backend artifact has no plan of format 'kiln.c.plan'")
    if plan.get("version") != PLAN_VERSION:
        raise SerializationError(f"C-backend plan version {plan.get('version')!r} is not "
                                 f"supported (this Kiln reads version {PLAN_VERSION})")
    return plan


def _str_list(plan: dict, key: str, default: Any) -> Any:
    value = plan.get(key, default)
    if value is None:
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SerializationError(f"C-backend plan field {key!r}: expected a list of strings, "
                                 f"got {value!r:.80}")
    return value


def _graph(graph_json: Any, constants: dict[str, Tensor]) -> Any:
    from kiln.graph.module import GraphModule

    if not isinstance(graph_json, str):
        raise SerializationError("C-backend artifact: the graph is not JSON text")
    gm = GraphModule.from_json(graph_json, constants)
    if set(gm.constants) != set(constants):
        extra = sorted(set(constants) - set(gm.constants))
        raise SerializationError(f"C-backend artifact: constants {extra} are not in its graph")
    return gm


def _rebuilt_plan(gm: Any) -> dict:
    from kiln.backends.c.plan import build_plan

    try:
        plan, _ = build_plan(gm, record_gemm=False)
    except KilnError as e:
        raise SerializationError(f"C-backend artifact: its graph does not compile to a plan "
                                 f"here: {e}") from e
    return plan


def _compiled_additions(plan: dict, stored: dict) -> dict:
    """``plan`` with what compiling added to the stored one (each field checked)."""
    target = stored.get("target")
    if target not in ("native", "portable"):
        raise SerializationError(f"C-backend plan: target must be 'native' or 'portable', "
                                 f"got {target!r:.40}")
    contiguous = stored.get("contiguous", "raise")
    if contiguous not in ("raise", "copy"):
        raise SerializationError(f"C-backend plan: contiguous must be 'raise' or 'copy', got "
                                 f"{contiguous!r:.40}")
    arch = stored.get("arch")
    if arch is not None and not isinstance(arch, str):
        raise SerializationError(f"C-backend plan: arch must be a string, got {arch!r:.40}")
    gemm = stored.get("gemm")
    if plan["uses_gemm"]:
        if not isinstance(gemm, dict) or not isinstance(gemm.get("backend"), str) or \
                not _is_int(gemm.get("threads")) or not 0 <= gemm["threads"] <= 4096:
            raise SerializationError(f"C-backend plan: gemm must record the BLAS the library "
                                     f"links, got {gemm!r:.80}")
        libs = gemm.get("libraries", [])
        if not isinstance(libs, list) or not all(isinstance(v, str) for v in libs):
            raise SerializationError(f"C-backend plan: gemm libraries must be names, got "
                                     f"{libs!r:.80}")
    else:
        gemm = None
    fingerprint = stored.get("fingerprint", "")
    if not isinstance(fingerprint, str):
        raise SerializationError("C-backend plan: fingerprint must be a string")
    commands = stored.get("commands", [])
    if not isinstance(commands, list) or not all(
            isinstance(c, list) and all(isinstance(w, str) for w in c) for c in commands):
        raise SerializationError("C-backend plan: commands must be lists of strings")
    guards = stored.get("guards")
    if isinstance(guards, list) and len(guards) == len(plan["guards"]):
        # the source lines tracing saw, for messages: kept when the guards are the same
        for mine, theirs in zip(plan["guards"], guards, strict=True):
            if isinstance(theirs, dict) and isinstance(theirs.get("where"), str) and \
                    {k: v for k, v in theirs.items() if k != "where"} == mine:
                mine["where"] = theirs["where"][:500]
    plan.update(target=target, contiguous=contiguous, arch=arch, gemm=gemm,
                fingerprint=fingerprint, commands=commands,
                flags=_str_list(stored, "flags", []),
                cpu_features=_str_list(stored, "cpu_features", []))
    return plan


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
