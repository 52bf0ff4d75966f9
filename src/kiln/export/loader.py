"""``kiln.aot_load``: run a library written by ``kiln.aot_compile`` from Python.

Before anything of the library runs, :func:`kiln.export.library.verify` checks the file
(trailer hash, format version, architecture, CPU features, sha256 of code and weights).
Then the library is ``dlopen``-ed from its path (the kernel maps the file: the embedded
weights are not copied) and its model opened through the ``kiln_model.h`` API.

A call flattens ``(args, kwargs)`` by the exported input spec (keyword arguments in any
order), checks every tensor (type, dtype, rank, static sizes, dynamic sizes against their
ranges and each other, the trace's assumptions, C-contiguity) and raises a KilnError naming
the input before the native call; the C entry point checks the same again. Outputs are new
arrays, returned in the original output pytree.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import numpy as np

from kiln.base.pytree import _same_structure, tree_flatten
from kiln.core.dtypes import get_dtype
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, BackendError, GuardError
from kiln.export.library import verify
from kiln.graph.module import Signature, rebuild_outputs
from kiln.graph.serialize import decode_value
from kiln.graph.statics import same_static
from kiln.symbolic.guards import guards_from_json

_P = ctypes.c_void_p
_I64P = ctypes.POINTER(ctypes.c_int64)


def _setup(lib: ctypes.CDLL) -> None:
    lib.kiln_model_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(_P)]
    lib.kiln_model_open_memory.argtypes = [_P, ctypes.c_int64, ctypes.POINTER(_P)]
    lib.kiln_model_close.argtypes = [_P]
    lib.kiln_model_close.restype = None
    lib.kiln_model_run.argtypes = [_P, _P, _P, _P, _P, _P]
    lib.kiln_model_last_error.restype = ctypes.c_char_p
    lib.kiln_model_manifest.argtypes = [ctypes.POINTER(ctypes.c_size_t)]
    lib.kiln_model_manifest.restype = ctypes.c_char_p


class AOTModel:
    """The callable :func:`aot_load` returns; ``manifest`` is the library's manifest."""

    def __init__(self, path: str, manifest: dict, external: bytes | None) -> None:
        self.path = path
        self.manifest = manifest
        try:
            lib = ctypes.CDLL(os.path.realpath(path), mode=ctypes.RTLD_LOCAL)
        except OSError as e:
            raise BackendError(f"aot_load: cannot load {path}: {e}") from e
        _setup(lib)
        self._lib = lib
        handle = _P()
        self._weights = None
        if external is not None:
            # aligned copy of the verified bytes, alive as long as the model
            raw = np.empty(len(external) + 64, np.uint8)
            start = (-raw.ctypes.data) % 64
            buf = raw[start:start + len(external)]
            buf[:] = np.frombuffer(external, np.uint8)
            self._weights = raw
            rc = lib.kiln_model_open_memory(buf.ctypes.data, len(external), ctypes.byref(handle))
        else:
            rc = lib.kiln_model_open(None, ctypes.byref(handle))
        if rc:
            raise BackendError(f"aot_load: {path}: {lib.kiln_model_last_error().decode()}")
        self._handle = handle
        self._close = lib.kiln_model_close
        self._run = lib.kiln_model_run
        sig = manifest["signature"]
        self.signature = Signature.from_obj(sig)
        self.same_signature = bool(sig.get("same_signature", True))
        self.inputs = [(i["name"], get_dtype(i["dtype"]).np_dtype,
                        tuple(decode_value(d, {}) for d in i["shape"]))
                       for i in manifest["inputs"]]
        self.outputs = [(get_dtype(o["dtype"]).np_dtype,
                         tuple(decode_value(d, {}) for d in o["shape"]))
                        for o in manifest["outputs"]]
        self.ranges = {s["name"]: (s["min"], s["max"]) for s in manifest["symbols"]}
        self.guards = guards_from_json(manifest.get("guards", []))
        self.nonzero = [(decode_value(n["size"], {}), n["what"]) for n in
                        manifest.get("nonzero", [])]
        n_in, n_out = len(self.inputs), len(self.outputs)
        self._ptrs_in = _P * max(n_in, 1)
        self._ptrs_out = _P * max(n_out, 1)
        self._i64_in = ctypes.c_int64 * max(n_in, 1)
        self._i64_out = ctypes.c_int64 * max(n_out, 1)
        self._static = all(isinstance(d, int) for _, _, dims in self.inputs for d in dims)
        self._in_dims = np.zeros(max(sum(len(d) for _, _, d in self.inputs), 1), np.int64)
        self._in_dims_addr = self._in_dims.ctypes.data  # .ctypes costs a microsecond a call
        # per output (dtype, shape when static else None, dims)
        self._out_plan = [(dtype, dims if all(isinstance(d, int) for d in dims) else None, dims)
                          for dtype, dims in self.outputs]
        out_spec = self.signature.out_spec
        self._one_output = self.same_signature and out_spec is not None and \
            out_spec.kind == "leaf" and not self.signature.static_outputs
        kw = self.signature.in_spec.children[1] if self.signature.in_spec.kind == "tuple" \
            else None
        self._kw_order: list[str] = []
        if kw is not None and kw.kind == "dict":
            keys, order = kw.context
            self._kw_order = [keys[i] for i in order]
        self._n_args = self.signature.in_spec.children[0].num_leaves if kw is not None else 0
        self._n_pos = len(self.signature.in_spec.children[0].children) if kw is not None \
            else 0
        # f(tensor, ...) with no keywords: the flat inputs are the arguments (tree_flatten
        # costs tens of microseconds per call)
        self._plain = kw is not None and not self._kw_order and \
            not self.signature.static_inputs and \
            all(c.kind == "leaf" for c in self.signature.in_spec.children[0].children)

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and handle.value:
            self._close(handle)

    # ---------------------------------------------------------------------------------
    def _flatten(self, args: tuple, kwargs: dict) -> list[Any]:
        if not self.same_signature:
            if kwargs:
                raise ArgumentError("aot_load: this library was built with same_signature="
                                    "False: pass the flat tensor inputs positionally")
            return list(args)
        if self._plain and not kwargs and len(args) == self._n_pos and \
                all(type(a) is Tensor for a in args):
            return list(args)
        if len(args) != self._n_pos:
            raise ArgumentError(f"aot_load: expected {self._n_pos} positional arguments, got "
                                f"{len(args)}")
        missing = [k for k in self._kw_order if k not in kwargs]
        extra = [k for k in kwargs if k not in self._kw_order]
        if missing or extra:
            raise ArgumentError(f"aot_load: keyword arguments {self._kw_order} expected; "
                                f"missing {missing}, unexpected {extra}")
        kwargs = {k: kwargs[k] for k in self._kw_order}  # the spec's order
        leaves, spec = tree_flatten((args, kwargs))
        sig = self.signature
        # dicts may come in any insertion order: their leaves are in sorted key order
        if not _same_structure(spec, sig.in_spec):
            raise ArgumentError(f"aot_load: arguments have structure {spec}, the library was "
                                f"exported for {sig.in_spec}")
        for i, value in sig.static_inputs.items():
            if not same_static(leaves[i], value):
                raise GuardError(f"argument leaf {i} was specialized to {value!r} when "
                                 f"exporting, got {leaves[i]!r}")
        return [leaves[i] for i in sig.tensor_positions]

    def _check(self, flat: list[Any]) -> tuple[list[np.ndarray], dict[str, int]]:
        if len(flat) != len(self.inputs):
            raise ArgumentError(f"aot_load: expected {len(self.inputs)} tensor inputs, got "
                                f"{len(flat)}")
        env: dict[str, int] = {}
        arrays = []
        pos = 0
        dims_out = self._in_dims
        for value, (name, dtype, dims) in zip(flat, self.inputs, strict=True):
            if isinstance(value, Tensor):
                arr = value._data
                if arr is None:
                    raise GuardError(f"input {name}: a tracer cannot be passed to a library")
            elif isinstance(value, np.ndarray):
                arr = value
            else:
                raise GuardError(f"input {name}: expected a kiln.Tensor, got "
                                 f"{type(value).__name__}")
            if arr.dtype != dtype:
                raise GuardError(f"input {name}: expected dtype {get_dtype(dtype)}, got "
                                 f"{arr.dtype}")
            shape = arr.shape
            if len(shape) != len(dims):
                raise GuardError(f"input {name}: expected rank {len(dims)} (shape "
                                 f"{tuple(map(str, dims))}), got shape {shape}")
            for d, (want, got) in enumerate(zip(dims, shape, strict=True)):
                if isinstance(want, int):
                    if want != got:
                        raise GuardError(f"input {name}: expected shape "
                                         f"{tuple(map(str, dims))}, got {shape} (dim {d})")
                else:
                    sym = want.plain_symbol
                    lo, hi = self.ranges[sym]
                    if not lo <= got <= hi:
                        raise GuardError(f"input {name}: dim {d} ({sym}) must be in "
                                         f"[{lo}, {hi}], got {got}")
                    if env.setdefault(sym, got) != got:
                        raise GuardError(f"input {name}: dim {d} is {sym}={env[sym]} from an "
                                         f"earlier input, got {got}")
                dims_out[pos] = got
                pos += 1
            if not arr.flags.c_contiguous:
                raise GuardError(f"input {name}: expected a C-contiguous array, got strides "
                                 f"{arr.strides}; call .contiguous() first")
            arrays.append(arr)
        for g in self.guards:
            g.check(env)
        for size, what in self.nonzero:
            if (size if isinstance(size, int) else size.evaluate(env)) <= 0:
                raise GuardError(f"{what}: the reduced size is 0 for these inputs")
        return arrays, env

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        flat = self._flatten(args, kwargs)
        arrays, env = self._check(flat)
        outs = [np.empty(shape if shape is not None else
                         tuple(d if isinstance(d, int) else d.evaluate(env) for d in dims), dtype)
                for dtype, shape, dims in self._out_plan]
        ins = self._ptrs_in(*[a.ctypes.data for a in arrays])
        in_bytes = self._i64_in(*[a.nbytes for a in arrays])
        optrs = self._ptrs_out(*[o.ctypes.data for o in outs])
        out_bytes = self._i64_out(*[o.nbytes for o in outs])
        rc = self._run(self._handle, ins, self._in_dims_addr, in_bytes, optrs, out_bytes)
        if rc:
            msg = self._lib.kiln_model_last_error().decode()
            raise (GuardError if rc in (2, 3, 4) else BackendError)(f"{self.path}: {msg}")
        if self._one_output:
            return Tensor._wrap(outs[0])
        tensors = [Tensor._wrap(o) for o in outs]
        if not self.same_signature:
            return tensors
        return rebuild_outputs(self.signature.out_spec, self.signature.static_outputs,
                               tensors, env)

    def __repr__(self) -> str:
        return f"AOTModel({self.path!r})"


def aot_load(so_path: str | os.PathLike[str], device: str = "cpu") -> AOTModel:
    """Load a library :func:`kiln.aot_compile` wrote; returns a callable with the original
    arguments and outputs (see the module docstring).

    >>> import kiln
    >>> kiln.aot_load("model.so", device="cuda")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kiln.errors.ArgumentError: aot_load: device must be 'cpu' (...), got 'cuda'
    """
    if device != "cpu":
        raise ArgumentError(f"aot_load: device must be 'cpu' (Kiln libraries run on the CPU), "
                            f"got {device!r}")
    path = os.fspath(so_path)
    _, trailer, external = verify(path)
    return AOTModel(path, trailer["manifest"], external)



