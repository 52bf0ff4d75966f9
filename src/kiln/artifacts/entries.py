"""Compiled entries to container bytes and back: what ``kiln.compile`` keeps per signature.

Two kinds, both in the container of :mod:`kiln.backends.container`:

- ``"aot_autograd"``: what AOT autograd compiled for one signature. Sections ``fw`` and
  ``bw`` (training) or ``fn`` (inference) hold the backends' functions; section
  ``program`` is JSON: the joint (or inference) graph, the forward and backward graphs
  (each as ``{"graph_of": "fw"}`` when the compiled function in that section carries the
  same graph, as the C backend's does, so that it is validated once), and the glue between
  them and eager autograd (outputs and their pytree, which outputs get a tangent, which
  inputs get a gradient, mutated inputs, the call's structure and specialized values, and
  the paths of the tensors that are bound at load time).
- ``"graph"``: a traced GraphModule (no autograd) and its compiled function.

Graphs are validated on load (``graph_from_obj`` lints them against the op registry);
native functions load only from a signed container. Weights are never taken from an
artifact when the live tensor is at hand: every constant and closed-over tensor with a
path (:mod:`kiln.artifacts.bindings`) is bound from the live objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kiln.aot.entry import CallInfo, InferenceEntry, TrainingEntry, _autograd_function, arity
from kiln.aot.program import TracedProgram
from kiln.artifacts import bindings
from kiln.backends import container
from kiln.backends.serializable import pack_function, unpack_function
from kiln.base import canonical
from kiln.base.pytree import TreeSpec
from kiln.core.autograd.function import Function
from kiln.core.tensor import Tensor
from kiln.errors import KilnError, SerializationError
from kiln.graph.graph import Graph
from kiln.graph.module import GraphModule, Signature, _static_from_json, _static_to_json
from kiln.graph.serialize import graph_from_obj, graph_to_obj, interface_from_obj

AOT_KIND = "aot_autograd"
# A program's forward or backward graph given as "the graph of the compiled function in this
# section" (``{"graph_of": "fw"}``) instead of its JSON.
GRAPH_OF = "graph_of"
GRAPH_KIND = "graph"
ENTRY_KINDS = (AOT_KIND, GRAPH_KIND)


def _pack(funcs: dict[str, Any], program: dict, kind: str, meta: dict) -> bytes:
    sections: dict[str, bytes] = {"program": canonical.dumps(program).encode()}
    native, features = False, set()
    for name, fn in funcs.items():
        body, nat, feats = pack_function(fn)
        sections[name] = body
        native |= nat
        features.update(feats)
    return container.write(kind, sections, meta=meta, cpu_features=sorted(features),
                           sign=native)


def _paths(fn: Any, module: Any, consts: dict[str, Tensor]) -> dict[str, list[str]]:
    out = {}
    for key, t in consts.items():
        p = bindings.find_path(fn, module, t)
        if p is not None:
            out[key] = p
    return out


def _call_to_obj(call: CallInfo) -> dict:
    return {"spec": call.spec.to_json(), "statics": _static_to_json(call.statics),
            "state_names": list(call.state_names)}


def _call_from_obj(obj: dict) -> CallInfo:
    return CallInfo(TreeSpec.from_json(obj["spec"]), _static_from_json(obj["statics"]),
                    tuple(str(n) for n in obj["state_names"]))


# AOT entries ------------------------------------------------------------------------------
def aot_entry_bytes(entry: InferenceEntry | TrainingEntry, call: CallInfo, *, fn: Any = None,
                    module: Any = None, meta: dict | None = None) -> bytes:
    """The container of an AOT entry; ``fn``/``module`` are what the program reads tensors
    from (for the paths that bind them at load)."""
    prog = entry.program
    training = isinstance(entry, TrainingEntry)
    funcs = {"fw": entry.fw, "bw": entry.bw} if training else {"fn": entry.compiled}
    targets: list[Any] = []
    for t in prog.mutation_targets:
        if isinstance(t, int):
            targets.append(t)
            continue
        p = bindings.find_path(fn, module, t)
        if p is None:
            raise SerializationError("cannot serialize: the program writes in place to a tensor "
                                     "it closes over that is neither a closure variable nor a "
                                     "module's parameter or buffer")
        targets.append(p)
    closures = []
    for k, t in enumerate(prog.closure_inputs):
        p = bindings.find_path(fn, module, t)
        if p is None:
            raise SerializationError(f"cannot serialize: closed-over input {k} (a tensor that "
                                     "requires grad) is not found in the function's closure "
                                     "or globals, so it could not be bound at load time")
        closures.append(p)
    consts: dict[str, Tensor] = {}
    for f in funcs.values():
        consts.update(bindings.constants_of(f))
    program = {
        "training": training,
        "joint": graph_to_obj(prog.gm.graph),
        "num_user_outputs": prog.num_user_outputs,
        "out_spec": prog.out_spec.to_json(),
        "static_outputs": _static_to_json(prog.static_outputs),
        "input_names": list(prog.input_names),
        "mutation_targets": targets,
        "diff_outputs": list(prog.diff_outputs),
        "grad_inputs": list(prog.grad_inputs),
        "symbol_hints": dict(prog.symbol_hints),
        "closure_inputs": closures,
        "constants": _paths(fn, module, consts),
        "call": _call_to_obj(call),
    }
    if training:
        program["fw"] = _graph_or_reference(entry.fw_gm.graph, funcs["fw"], "fw")
        program["bw"] = _graph_or_reference(entry.bw_gm.graph, funcs["bw"], "bw")
    return _pack(funcs, program, AOT_KIND, dict(meta or {}))


def _graph_or_reference(graph: Graph, compiled: Any, section: str) -> dict:
    """The graph's JSON, or ``{"graph_of": section}`` when the compiled function in that
    section carries the same graph (the C backend's does): a loader then validates the
    graph once, not twice."""
    obj = graph_to_obj(graph)
    own = getattr(compiled, "graph", None)
    if isinstance(own, Graph) and (own is graph or canonical.dumps(graph_to_obj(own)) ==
                                   canonical.dumps(obj)):
        return {GRAPH_OF: section}
    return obj


def _module_from_program(obj: Any, funcs: dict[str, Any], section: str,
                         what: str) -> GraphModule:
    """A forward or backward graph of a program: its JSON (validated), or the graph that the
    compiled function of ``section`` carries (validated by that function: when it loaded, or
    when first asked for if it defers it)."""
    if isinstance(obj, dict) and GRAPH_OF in obj:
        if obj != {GRAPH_OF: section}:
            raise container.ArtifactError(f"{what}: the {section} graph refers to "
                                          f"{obj!r:.60}, expected section {section!r}")
        compiled = funcs.get(section)
        if not callable(getattr(compiled, "defer_graph", None)) and \
                not isinstance(getattr(compiled, "graph", None), Graph):
            raise container.ArtifactError(f"{what}: the {section} graph refers to its compiled "
                                          "function, which carries no graph")
        return GraphModule.deferred(lambda: _own_graph(compiled, section, what))
    return GraphModule(graph_from_obj(obj))


def _own_graph(compiled: Any, section: str, what: str) -> Graph:
    graph = compiled.graph
    if not isinstance(graph, Graph):
        raise container.ArtifactError(f"{what}: the {section} graph refers to its compiled "
                                      "function, which carries no graph")
    return graph


def read_entry(data: bytes, what: str) -> tuple[container.Artifact, dict, dict[str, Any]]:
    """Check a container of either kind; (artifact, program JSON, compiled functions)."""
    art = container.read(data, kinds=ENTRY_KINDS, what=what)
    if art.signed:
        container.check_native(art.header, what)
    try:
        program = canonical.loads(art.sections["program"])
    except KeyError:
        raise container.ArtifactError(f"{what}: no 'program' section") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise container.ArtifactError(f"{what}: program does not parse: {e}") from e
    if not isinstance(program, dict):
        raise container.ArtifactError(f"{what}: program is not a JSON object")
    funcs = {name: unpack_function(body, art.signed, what)
             for name, body in art.sections.items() if name != "program"}
    return art, program, funcs


def aot_entry_from(art: container.Artifact, program: dict, funcs: dict[str, Any], what: str, *,
                   fn: Any = None, module: Any = None, strict: bool = True,
                   live: TracedProgram | None = None
                   ) -> tuple[InferenceEntry | TrainingEntry, CallInfo] | None:
    """Rebuild an AOT entry, binding tensors from ``fn``/``module`` (or, when this process
    traced the same program, from the ``live`` one); None (strict=False) when one does not
    resolve."""
    try:
        training = bool(program["training"])
        joint_obj = program["joint"]
        interface = None
        if art.signed and live is None:
            # the signature covers the program: decode the joint graph when first used (a
            # call checks its inputs against the placeholders, decoded now)
            interface = interface_from_obj(joint_obj)
            joint = GraphModule.deferred(lambda: graph_from_obj(joint_obj))
        else:
            joint = GraphModule(graph_from_obj(joint_obj))
        if live is not None:
            closures: list[Any] = list(live.closure_inputs)
            targets: list[Any] = list(live.mutation_targets)
        else:
            closures = bindings.resolve_all(program["closure_inputs"], what, fn=fn,
                                            module=module, strict=strict)
            targets = []
            for t in program["mutation_targets"]:
                targets.append(t if isinstance(t, int) and not isinstance(t, bool) else
                               bindings.resolve_all([t], what, fn=fn, module=module,
                                                    strict=strict)[0])
        if len(closures) != len(program["closure_inputs"]) or \
                len(targets) != len(program["mutation_targets"]):
            raise container.ArtifactError(f"{what}: closed-over inputs or mutations do not "
                                          "match the traced program")
        if not strict and (any(c is None for c in closures) or any(t is None for t in targets)):
            return None
        prog = TracedProgram(
            gm=joint, joint=training, num_user_outputs=int(program["num_user_outputs"]),
            out_spec=TreeSpec.from_json(program["out_spec"]),
            static_outputs=_static_from_json(program["static_outputs"]),
            input_names=tuple(str(n) for n in program["input_names"]),
            mutation_targets=tuple(targets),
            diff_outputs=tuple(int(i) for i in program["diff_outputs"]),
            grad_inputs=tuple(int(i) for i in program["grad_inputs"]),
            symbol_hints={str(k): int(v) for k, v in program["symbol_hints"].items()},
            closure_inputs=tuple(closures),  # type: ignore[arg-type]
            interface=interface,
        )
        call = _call_from_obj(program["call"])
        if live is not None:
            for f in funcs.values():
                consts = bindings.constants_of(f)
                for key in list(consts):
                    if key in live.gm.constants:
                        consts[key] = live.gm.constants[key]
        elif not bind_constants(funcs.values(), program["constants"], what, fn, module,
                                strict):
            return None
        if training:
            fw_gm = _module_from_program(program["fw"], funcs, "fw", what)
            bw_gm = _module_from_program(program["bw"], funcs, "bw", what)
            entry: Any = TrainingEntry(prog, fw_gm, bw_gm, funcs["fw"], funcs["bw"], Function)
            _check_training(entry, what)
            entry.function = _autograd_function(entry)
        else:
            entry = InferenceEntry(prog, funcs["fn"])
    except KilnError as e:
        if isinstance(e, container.ArtifactError) or "not found in what was given" in str(e):
            raise
        raise container.ArtifactError(f"{what}: malformed program: {e}") from e
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise container.ArtifactError(f"{what}: malformed program: {type(e).__name__}: "
                                      f"{e}") from e
    entry.call_info = call
    return entry, call


def _check_training(entry: TrainingEntry, what: str) -> None:
    """The glue numbers must agree with the graphs, or the first backward would index out of
    range: refuse them here instead."""
    prog = entry.program
    n_in = len(prog.interface.placeholders) - len(prog.diff_outputs)
    fw_in, _ = arity(entry.fw, entry.fw_gm)
    bw_in, bw_out = arity(entry.bw, entry.bw_gm)
    ok = (fw_in == n_in and entry.num_saved >= 0
          and bw_in == entry.num_saved + len(prog.diff_outputs)
          and bw_out == len(prog.grad_inputs)
          and all(0 <= j < prog.num_fwd_outputs for j in prog.diff_outputs)
          and all(0 <= i < n_in for i in prog.grad_inputs))
    if not ok:
        raise container.ArtifactError(f"{what}: forward/backward graphs do not match the "
                                      "program's outputs, tangents and gradients")


def bind_constants(funcs: Any, paths: Any, what: str, fn: Any, module: Any,
                   strict: bool) -> bool:
    """Point the compiled functions' constants at the live tensors their paths name (the
    stored values stay only for constants without a path: tensors made inside the
    function). A live tensor of another shape or dtype is an error (strict) or False."""
    if not isinstance(paths, dict):
        raise container.ArtifactError(f"{what}: constants should map keys to paths")
    for f in funcs:
        consts = bindings.constants_of(f)
        for key in list(consts):
            if key not in paths:
                continue
            (live,) = bindings.resolve_all([paths[key]], what, fn=fn, module=module,
                                           strict=strict)
            if live is None:
                return False
            old = consts[key]
            if tuple(live.shape) != tuple(old.shape) or live.dtype != old.dtype:
                if not strict:
                    return False
                raise SerializationError(f"{what}: constant {key!r} was compiled for "
                                         f"{old.dtype}{list(old.shape)}, the bound tensor is "
                                         f"{live.dtype}{list(live.shape)}")
            consts[key] = live
    return True


# Plain graph entries (kiln.compile without autograd) -------------------------------------
def graph_entry_bytes(gm: GraphModule, compiled: Callable, *, fn: Any = None,
                      module: Any = None, meta: dict | None = None) -> bytes:
    consts = dict(gm.constants)
    consts.update(bindings.constants_of(compiled))
    program = {
        "graph": graph_to_obj(gm.graph),
        "signature": gm.signature.to_obj() if gm.signature is not None else None,
        "constants": _paths(fn, module, consts),
        "constant_keys": sorted(gm.constants),
    }
    return _pack({"fn": compiled}, program, GRAPH_KIND, dict(meta or {}))


def graph_entry_from(program: dict, funcs: dict[str, Any], what: str, *, fn: Any = None,
                     module: Any = None, strict: bool = True,
                     live: dict[str, Tensor] | None = None
                     ) -> tuple[GraphModule, Callable] | None:
    """(GraphModule, compiled function); constants bound from ``live`` (a traced gm's) or
    from paths, else the stored values the compiled function holds."""
    try:
        graph = graph_from_obj(program["graph"])
        sig = Signature.from_obj(program["signature"]) if program["signature"] else None
        compiled = funcs["fn"]
        stored = bindings.constants_of(compiled)
        if live is not None:
            for key in list(stored):
                if key in live:
                    stored[key] = live[key]
        elif not bind_constants([compiled], program["constants"], what, fn, module, strict):
            return None
        consts: dict[str, Tensor] = {}
        for key in program["constant_keys"]:
            t = (live or {}).get(key)
            if t is None:
                t = stored.get(key)
            if t is None:
                t = bindings.resolve(program["constants"].get(key), fn=fn, module=module)
            if t is None:
                if strict:
                    raise container.ArtifactError(f"{what}: constant {key!r} has no value")
                return None
            consts[key] = t
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise container.ArtifactError(f"{what}: malformed program: {type(e).__name__}: "
                                      f"{e}") from e
    return GraphModule(graph, consts, sig), compiled
