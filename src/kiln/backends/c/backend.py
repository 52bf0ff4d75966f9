"""The ``"c"`` backend: ``compile_c(gm, example_specs, **options) -> CFunction``.

Pipeline: lower the graph to index functions (:mod:`.lower`), group realized values into
fused kernels (:mod:`.schedule`), emit one C translation unit (:mod:`.codegen`), compile
it with the system compiler (:mod:`.toolchain`, cached in-process by source hash and
flags), and wrap the library in a :class:`~kiln.backends.c.runtime.CFunction`.

Options: ``target="native"`` (``-march=native``, the default) or ``"portable"``;
``contiguous="raise"`` (the default of :func:`compile_c`: a non-contiguous input is a
GuardError) or ``"copy"`` (the default of the registered backend, :func:`compile_front`,
which ``kiln.compile(..., backend="c")`` uses).

>>> import kiln
>>> from kiln.backends.c.backend import compile_c
>>> gm = kiln.trace(lambda x: (x * 2.0).exp(), kiln.ones(3))
>>> fn = compile_c(gm, None)
>>> [round(v, 3) for v in fn(kiln.ones(3))[0].tolist()]
[7.389, 7.389, 7.389]
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from kiln.backends import register_backend
from kiln.backends.c.plan import HASH_SYMBOL, build_plan, record_cpu
from kiln.backends.c.runtime import CFunction
from kiln.base.debug import debug_level
from kiln.errors import ArgumentError
from kiln.graph.module import GraphModule

EXTRA_FLAGS = ("-fwrapv",)  # int64 arithmetic wraps like NumPy's
_OPTIONS = ("target", "contiguous")

_lock = threading.Lock()
_libraries: dict[tuple, Any] = {}  # (plan hash, flags...) -> (CompiledLibrary, CDLL)


def compile_c(gm: GraphModule, example_specs: Any = None, **options: Any) -> CFunction:
    """Compile ``gm`` to native code (see the module docstring for the options)."""
    for key in options:
        if key not in _OPTIONS:
            raise ArgumentError(f"c backend: unknown option {key!r}; expected one of {_OPTIONS}")
    target = options.get("target", "native")
    contiguous = options.get("contiguous", "raise")
    if target not in ("native", "portable"):
        raise ArgumentError(f"c backend: target must be 'native' or 'portable', got {target!r}")
    if contiguous not in ("raise", "copy"):
        raise ArgumentError(f"c backend: contiguous must be 'raise' or 'copy', got "
                            f"{contiguous!r}")
    from kiln.backends.c.control import HostControlFunction, has_control_flow

    if has_control_flow(gm.graph):
        from kiln.backends.c.control_lower import unsupported

        # What the generated C cannot run (unsupported() says why) keeps the control on
        # the host: segments and bodies in C, loops and branches in Python between them.
        if unsupported(gm) is not None:
            return HostControlFunction(gm, dict(options))  # type: ignore[return-value]
    plan, source = build_plan(gm)
    plan["contiguous"] = contiguous
    lib, handle = _library(source, target, plan)
    if debug_level() >= 1:
        lines = [f"[kiln] c backend: {len(plan['calls'])} kernels"]
        for k in plan["kernels"]:
            if k["emitted"]:
                extra = f" [{k['loops']} loops, {k['passes']} passes]" if k["kind"] == "rows" \
                    else ""
                lines.append(f"[kiln]   {k['comment']}{extra}")
        print("\n".join(lines), file=sys.stderr)
    plan["flags"] = list(lib.flags)
    plan["commands"] = [list(c) for c in lib.commands]
    plan["target"] = target
    plan["fingerprint"] = lib.fingerprint
    record_cpu(plan, lib.flags)
    fn = CFunction(plan, lib.data, dict(gm.constants), handle)
    fn.graph = gm.graph  # serialized with the function: a loader rebuilds the plan from it
    return fn


def build_flags(target: str, uses_gemm: bool) -> tuple[Any, list[str], list[str], Any]:
    """(toolchain, extra compiler flags, libraries, GEMM support or None) a graph library is
    built with; the conv runtime's objects (:mod:`.convrt`) are compiled with the same."""
    from kiln.backends.c.toolchain import find_compiler

    extra = list(EXTRA_FLAGS)
    libraries: list[str] = ["m"]
    gs = None
    if uses_gemm:
        from kiln.backends.c.blas import gemm_support

        gs = gemm_support()
        extra += list(gs.extra_flags)
        libraries += list(gs.libraries)
    tc = find_compiler()
    if target == "native" and tc.machine.startswith(("x86_64", "amd64")) and tc.kind != "zig":
        # gcc defaults to 256-bit vectors even where AVX-512 exists; compute-bound fused
        # loops (exp, tanh, cos) run ~30% faster 512 bits wide (no effect without AVX-512)
        extra.append("-mprefer-vector-width=512")
    return tc, extra, libraries, gs


def _library(source: str, target: str, plan: dict) -> tuple[Any, Any]:
    from kiln.backends.c.dynlib import load_library
    from kiln.backends.c.toolchain import compile_shared

    tc, extra, libraries, gs = build_flags(target, plan["gemm"] is not None)
    if plan.get("rt_funcs"):
        from kiln.backends.c.convrt import objects

        libraries = objects([tuple(f) for f in plan["rt_funcs"]], tc.argv,
                            [*tc.flags_for(target), *extra], tc.fingerprint(target)) + libraries
    key = (plan["hash"], tc.fingerprint(target), tuple(extra),
           tuple(libraries), gs.fingerprint() if gs is not None else None)
    with _lock:
        hit = _libraries.get(key)
    if hit is not None:
        if debug_level() >= 2:
            print(f"[kiln] c backend: library cache hit ({key[0][:12]})\n{source}",
                  file=sys.stderr)
        return hit
    sources = dict(plan["sources"])
    # The library says which plan it was built from (read as data, before any call).
    sources["kiln_graph.c"] += f'const char {HASH_SYMBOL}[] = "{plan["hash"]}";\n'
    lib = compile_shared(sources, target=target, extra_flags=extra, libraries=libraries)
    if gs is not None:
        gs.prepare()
    handle = load_library(lib.data, "kiln_graph")
    with _lock:
        _libraries[key] = (lib, handle)
    return lib, handle


def clear_cache() -> None:
    """Forget the in-process cache of compiled libraries."""
    with _lock:
        _libraries.clear()


def compile_front(gm: GraphModule, example_specs: Any = None, **options: Any) -> CFunction:
    """The registered ``"c"`` backend, what ``kiln.compile`` and AOT autograd call: like
    :func:`compile_c`, except that non-contiguous inputs are copied (``contiguous="copy"``)
    unless the options say otherwise. :func:`compile_c` itself raises GuardError on them."""
    return compile_c(gm, example_specs, **{"contiguous": "copy", **options})


def _deserialize(payload: bytes, trust: str = "signed", authenticated: bool = False
                 ) -> CFunction:
    from kiln.backends.c.serialize import deserialize

    return deserialize(payload, trust=trust, authenticated=authenticated)  # type: ignore


_deserialize.takes_trust = True  # type: ignore[attr-defined]  (it loads native code)
_deserialize.takes_authenticated = True  # type: ignore[attr-defined]


register_backend("c", compile_front, _deserialize)
