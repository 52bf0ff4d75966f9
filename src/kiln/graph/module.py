"""GraphModule: a graph, its constants and its call signature, callable like the function.

>>> import kiln
>>> gm = kiln.trace(lambda x, y: {"s": x + y}, kiln.ones(2), kiln.ones(2))
>>> gm(kiln.ones(2), kiln.ones(2))["s"].tolist()
[2.0, 2.0]
>>> print(gm.code)
import kiln
from kiln import ops
<BLANKLINE>
<BLANKLINE>
def forward(self, x, y):
    add = ops.add(x, y);  x = y = None  # f32[2]
    return [add]
<BLANKLINE>
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np

from kiln.base import canonical
from kiln.base.pytree import TreeSpec, tree_flatten, tree_unflatten
from kiln.core.tensor import Tensor
from kiln.errors import GuardError, KilnError, SerializationError
from kiln.graph.graph import Graph
from kiln.graph.statics import same_static
from kiln.graph.validate import check_module, check_module_obj
from kiln.symbolic.guards import symbol_values
from kiln.symbolic.sizes import SymInt, contains_symbolic

MODULE_FORMAT = "kiln.graph_module"
MODULE_VERSION = 2  # 2: a sha256 over the whole JSON
READABLE_VERSIONS = (1, 2)


def _static_to_json(values: dict[int, Any]) -> list:
    out = []
    for k, v in sorted(values.items()):
        if isinstance(v, SymInt):
            v = v.to_json()  # an output size that depends on a symbolic dim
        elif v is not None and not isinstance(v, (bool, int, float, str)):
            raise SerializationError(f"specialized value {v!r} (leaf {k}) is not a JSON "
                                     "scalar and cannot be serialized")
        out.append([k, v])
    return out


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _static_from_json(items: list) -> dict[int, Any]:
    return {int(k): SymInt.from_json(v) if isinstance(v, dict) else v for k, v in items}


class Signature:
    """How user arguments map to graph inputs, and graph outputs back to the result pytree.

    A value (compared by its fields); a plain class rather than a dataclass, because
    building a dataclass costs half a millisecond of every process that loads a graph."""

    __slots__ = ("in_spec", "tensor_positions", "static_inputs", "out_spec", "static_outputs",
                 "mutations", "input_mutations")

    def __init__(self, in_spec: TreeSpec, tensor_positions: tuple[int, ...],
                 static_inputs: dict[int, Any] | None = None, out_spec: TreeSpec | None = None,
                 static_outputs: dict[int, Any] | None = None, mutations: tuple[str, ...] = (),
                 input_mutations: tuple[int, ...] = ()) -> None:
        self.in_spec = in_spec
        self.tensor_positions = tensor_positions
        self.static_inputs = {} if static_inputs is None else static_inputs
        self.out_spec = out_spec
        self.static_outputs = {} if static_outputs is None else static_outputs
        # Keys of constants written in place; their new values are the last graph outputs.
        self.mutations = mutations
        # Tensor inputs (positions among the flat tensor inputs) written in place; their
        # new values are the graph outputs before the constants'.
        self.input_mutations = input_mutations

    def _fields(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Signature):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  (it holds dicts)

    def __repr__(self) -> str:
        return "Signature(" + ", ".join(f"{name}={getattr(self, name)!r}"
                                        for name in self.__slots__) + ")"

    def flatten_inputs(self, args: tuple, kwargs: dict) -> list[Tensor]:
        leaves, spec = tree_flatten((args, kwargs))
        if spec != self.in_spec:
            raise GuardError(f"arguments have structure {spec}, but the graph was traced for "
                             f"{self.in_spec}; trace again for the new structure")
        for i, value in self.static_inputs.items():
            got = leaves[i]
            if not same_static(got, value):
                raise GuardError(f"argument leaf {i} was specialized to {value!r} when "
                                 f"tracing, got {got!r}; trace again for the new value")
        return [leaves[i] for i in self.tensor_positions]

    @property
    def symbolic_outputs(self) -> bool:
        """Whether some non-tensor output is a size that depends on symbolic dims (returning
        ``x.shape[0]``): its value comes from each call's inputs."""
        return contains_symbolic(self.static_outputs)

    def unflatten_outputs(self, values: list[Any], env: dict[str, int] | None = None) -> Any:
        """The result pytree from the flat tensor outputs; symbolic sizes among the other
        outputs are evaluated under ``env`` (symbol -> size of this call)."""
        return rebuild_outputs(self.out_spec, self.static_outputs, values, env)

    def to_obj(self) -> dict:
        obj = {
            "in_spec": self.in_spec.to_json(),
            "tensor_positions": list(self.tensor_positions),
            "static_inputs": _static_to_json(self.static_inputs),
            "out_spec": self.out_spec.to_json() if self.out_spec is not None else None,
            "static_outputs": _static_to_json(self.static_outputs),
            "mutations": list(self.mutations),
        }
        if self.input_mutations:  # absent otherwise: earlier JSON (and its hashes) unchanged
            obj["input_mutations"] = list(self.input_mutations)
        return obj

    @staticmethod
    def from_obj(obj: dict, types: Any = None) -> Signature:
        return Signature(
            in_spec=TreeSpec.from_json(obj["in_spec"], types=types),
            tensor_positions=tuple(int(i) for i in obj["tensor_positions"]),
            static_inputs=_static_from_json(obj["static_inputs"]),
            out_spec=(TreeSpec.from_json(obj["out_spec"], types=types)
                      if obj["out_spec"] is not None else None),
            static_outputs=_static_from_json(obj["static_outputs"]),
            mutations=tuple(obj["mutations"]),
            input_mutations=tuple(int(k) for k in obj.get("input_mutations", ())),
        )


class GraphModule:
    """A traced program: ``graph`` + ``constants`` (name -> Tensor) + ``signature``."""

    def __init__(self, graph: Graph, constants: dict[str, Tensor] | None = None,
                 signature: Signature | None = None) -> None:
        self._graph = graph
        self._load_graph: Callable[[], Graph] | None = None
        self.constants: dict[str, Tensor] = dict(constants or {})
        self.signature = signature
        # from_json: canonical digest of the graph as it was read (what a C plan records)
        self.loaded_graph_digest: str | None = None

    @classmethod
    def deferred(cls, load_graph: Callable[[], Graph], constants: dict[str, Tensor] | None = None,
                 signature: Signature | None = None) -> GraphModule:
        """A GraphModule whose graph is ``load_graph()``, called when first used: a loaded
        compiled function runs without its graph, which is then decoded only if asked for.

        >>> import kiln
        >>> gm = kiln.trace(lambda x: x * 2.0, kiln.ones(2))
        >>> GraphModule.deferred(lambda: gm.graph)(kiln.ones(2))[0].tolist()
        [2.0, 2.0]
        """
        gm = cls(None, constants, signature)  # type: ignore[arg-type]
        gm._load_graph = load_graph
        return gm

    @property
    def graph(self) -> Graph:
        if self._load_graph is not None:
            self._graph = self._load_graph()  # a failure raises again at the next use
            self._load_graph = None
        return self._graph

    @graph.setter
    def graph(self, graph: Graph) -> None:
        self._graph = graph
        self._load_graph = None

    # running -------------------------------------------------------------------------
    def forward(self, *inputs: Tensor) -> list[Tensor]:
        """Run on flat tensor inputs (one per placeholder); returns the flat outputs."""
        from kiln.graph.interpreter import run

        return run(self.graph, self.constants, list(inputs))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.signature is None:
            if kwargs:  # no call signature: keywords name placeholders, as for backends
                from kiln.graph.binding import bind_inputs

                args = bind_inputs([p.target for p in self.graph.placeholders], args, kwargs,
                                   "GraphModule")
            return tuple(self.forward(*args))
        flat = self.signature.flatten_inputs(args, kwargs)
        outs = self.forward(*flat)
        return self.finish(outs, flat)

    def finish(self, outs: list[Any], inputs: list[Any] | None = None) -> Any:
        """Write back mutated constants and inputs (``inputs``: the flat tensor inputs of the
        call) and rebuild the output pytree from flat outputs (non-tensor outputs that are
        symbolic sizes are evaluated from ``inputs``)."""
        sig = self.signature
        if sig is None:
            return tuple(outs)
        n_mut = len(sig.mutations)
        if n_mut:
            from kiln.core.autograd.grad_mode import no_grad

            with no_grad():
                for key, value in zip(sig.mutations, outs[len(outs) - n_mut:]):
                    self.constants[key].copy_(value.detach())
            outs = outs[: len(outs) - n_mut]
        n_in = len(sig.input_mutations)
        if n_in:
            if inputs is None:
                raise GuardError("this graph writes to its inputs in place: pass the call's "
                                 "flat tensor inputs to finish()")
            # As the eager in-place op would: a leaf that requires grad is refused, an input
            # with history takes the new value's.
            for k, value in zip(sig.input_mutations, outs[len(outs) - n_in:]):
                inputs[k].copy_(value)
            outs = outs[: len(outs) - n_in]
        env = None
        if sig.symbolic_outputs:
            if inputs is None:
                raise GuardError("this graph returns sizes that depend on its inputs: pass "
                                 "the flat inputs to finish()")
            env = symbol_values(self.graph.placeholders, inputs)
        return sig.unflatten_outputs(outs, env)

    # views ---------------------------------------------------------------------------
    @property
    def code(self) -> str:
        """The graph as Python source (``def forward(self, ...)``) that runs."""
        from kiln.graph.codegen import python_code

        return python_code(self.graph)

    def print_readable(self) -> None:
        print(self.code)

    def __repr__(self) -> str:
        return f"GraphModule(\n{self.graph}\n)"

    # serialization -------------------------------------------------------------------
    def to_json(self) -> str:
        """Canonical JSON of graph, signature and constant digests (not the values)."""
        from kiln.graph.serialize import graph_to_obj

        consts = {}
        for k, t in self.constants.items():
            arr = _contiguous(t._concrete("serialization"))
            consts[k] = {"shape": list(arr.shape), "dtype": str(t.dtype),
                         "sha256": _sha256(arr)}
        obj = {
            "format": MODULE_FORMAT, "version": MODULE_VERSION,
            "graph": graph_to_obj(self.graph),
            "signature": self.signature.to_obj() if self.signature is not None else None,
            "constants": consts,
        }
        # An integrity check over everything (not an authentication: data-only files are
        # safe because loading validates them, see docs/security.md).
        obj["sha256"] = canonical.digest(obj)
        return canonical.dumps(obj)

    @staticmethod
    def from_json(text: str, constants: dict[str, Any] | None = None,
                  types: Any = None) -> GraphModule:
        """Rebuild from :meth:`to_json`; ``constants`` supplies the values (checked)."""
        from kiln.graph.serialize import graph_from_obj

        try:
            obj = canonical.loads(text)
        except (ValueError, TypeError) as e:
            raise SerializationError(f"GraphModule JSON does not parse: {e}") from e
        if not isinstance(obj, dict) or obj.get("format") != MODULE_FORMAT:
            raise SerializationError("not a Kiln GraphModule (format mismatch)")
        version = obj.get("version")
        if version not in READABLE_VERSIONS:
            raise SerializationError(f"GraphModule format version {version!r} is not supported "
                                     f"(this Kiln reads versions {list(READABLE_VERSIONS)})")
        if version == 1:
            # Version 1 hashed only the constants; every other check below still applies, and
            # they, not the digest (anyone can recompute one), are what make loading safe.
            obj = {**obj, "sha256": canonical.digest(obj)}
        check_module_obj(obj)
        # the graph's text is hashed twice (alone, for the plan's check, and in the whole):
        # encode it once
        graph_text = canonical.loaded_text(obj["graph"])
        members = {k: graph_text if k == "graph" else canonical.loaded_text(v)
                   for k, v in obj.items() if k != "sha256"}
        if obj.get("sha256") != _sha256_text(canonical.object_text(members)):
            raise SerializationError("GraphModule JSON fails its sha256 check (the digest "
                                     "covers the whole JSON: graph, signature, constants)")
        graph = graph_from_obj(obj["graph"])
        try:
            sig = Signature.from_obj(obj["signature"], types) if obj["signature"] else None
        except SerializationError:
            raise
        except (KeyError, TypeError, ValueError, KilnError, RecursionError) as e:
            raise SerializationError(f"GraphModule signature is malformed: "
                                     f"{type(e).__name__}: {e}") from e
        check_module(graph, sig, obj["constants"])
        values = dict(constants or {})
        tensors: dict[str, Tensor] = {}
        for key, info in obj["constants"].items():
            if key not in values:
                raise SerializationError(f"constant {key!r} has no value; pass it in constants=")
            v = values[key]
            t = v if isinstance(v, Tensor) else Tensor._wrap(np.asarray(v))
            arr = _contiguous(t._data)
            if list(arr.shape) != info["shape"] or str(t.dtype) != info["dtype"] or \
                    _sha256(arr) != info["sha256"]:
                raise SerializationError(f"constant {key!r} does not match the digest recorded "
                                         "in the JSON")
            tensors[key] = t
        gm = GraphModule(graph, tensors, sig)
        gm.loaded_graph_digest = _sha256_text(graph_text)
        return gm

    def serialize(self) -> bytes:
        """Self-contained bytes: the JSON plus the constants in safetensors format."""
        arrays = {k: _contiguous(t._concrete("serialization"))
                  for k, t in self.constants.items()}
        from kiln.io import weights  # here: aot_load needs Signature, not the weights file I/O

        return weights.save_bytes(arrays, metadata={"kiln.graph_module": self.to_json()})

    @staticmethod
    def deserialize(data: bytes, types: Any = None) -> GraphModule:
        from kiln.io import weights

        arrays, meta = weights.load_bytes(data)
        if "kiln.graph_module" not in meta:
            raise SerializationError("bytes are a safetensors file but not a Kiln GraphModule")
        return GraphModule.from_json(meta["kiln.graph_module"],
                                     {k: Tensor._wrap(v) for k, v in arrays.items()}, types)


def rebuild_outputs(spec: TreeSpec | None, static: dict[int, Any], values: list[Any],
                    env: dict[str, int] | None = None) -> Any:
    """The result pytree: tensor ``values`` in order, with the non-tensor leaves ``static``
    (leaf index -> value) in between; symbolic sizes among them evaluated under ``env``."""
    if spec is None:
        return tuple(values)
    it = iter(values)
    leaves = []
    for j in range(spec.num_leaves):
        if j not in static:
            leaves.append(next(it))
            continue
        v = static[j]
        if isinstance(v, SymInt):
            if env is None:
                raise GuardError(f"output leaf {j} is the symbolic size {v}, and no input "
                                 "sizes were given to evaluate it")
            v = v.evaluate(env)
        leaves.append(v)
    return tree_unflatten(spec, leaves)


def _contiguous(arr: np.ndarray) -> np.ndarray:
    # np.ascontiguousarray makes a 0-d array 1-d; a 0-d constant must stay 0-d.
    return np.ascontiguousarray(arr).reshape(np.shape(arr))


def _sha256(arr: np.ndarray) -> str:
    return hashlib.sha256(arr.tobytes()).hexdigest()
