"""``kiln.save`` and ``kiln.load``: tensors, state dicts and nested containers of them in a
safetensors file, never pickle.

The tensors go in as safetensors tensors; the container around them (dicts, lists, tuples,
numbers, strings, None) goes in the header's metadata as JSON (key ``kiln.tree``). A flat
``{name: tensor}`` dict (a state dict) keeps its names as the tensor names, so the file is
an ordinary safetensors file that other tools (``safetensors.torch.load_file``) read, and
``kiln.load`` reads any safetensors file (as a ``{name: tensor}`` dict). Loading validates
the header and the tree and evaluates nothing: a file from anyone is safe to load.

>>> import io, kiln
>>> buf = io.BytesIO()
>>> kiln.save({"w": kiln.ones(2), "step": 3, "hist": [kiln.zeros(1), None]}, buf)
>>> obj = kiln.load(io.BytesIO(buf.getvalue()))
>>> obj["w"].tolist(), obj["step"], obj["hist"][1]
([1.0, 1.0], 3, None)
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, SerializationError

_TREE_KEY = "kiln.tree"
_FORMAT = "kiln.save/1"
_SCALARS = (bool, int, float, str, type(None))


class _Encoder:
    """Walks the object: tensors to named arrays, everything else to a JSON tree."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.by_id: dict[int, str] = {}  # a tensor stored twice is stored once

    def tensor(self, t: Tensor, path: str) -> dict:
        if id(t) not in self.by_id:
            name = path or "tensor"
            while name in self.arrays:
                name += "_"
            if t._node is not None:
                raise ArgumentError(f"kiln.save: {path or 'the object'} is a tracer tensor "
                                    "(inside kiln.trace); save concrete tensors")
            # (np.ascontiguousarray would turn a 0-d tensor into shape (1,))
            self.arrays[name] = np.asarray(t.detach().numpy(), order="C")
            self.by_id[id(t)] = name
        out: dict[str, Any] = {"t": self.by_id[id(t)]}
        if t.requires_grad:
            out["g"] = True
        return out

    def encode(self, obj: Any, path: str) -> Any:
        if isinstance(obj, Tensor):
            return self.tensor(obj, path)
        if isinstance(obj, _SCALARS):
            if isinstance(obj, float) and not np.isfinite(obj):
                return {"f": repr(obj)}  # JSON has no inf/nan
            return {"v": obj}
        if isinstance(obj, np.generic):
            return self.encode(obj.item(), path)
        if isinstance(obj, dict):
            items = []
            for k, v in obj.items():
                if not isinstance(k, (str, int)) or isinstance(k, bool):
                    raise ArgumentError(f"kiln.save: dict keys must be str or int, got "
                                        f"{type(k).__name__} {k!r} at {path or 'the top'}")
                sub = f"{path}.{k}" if path else str(k)
                items.append([k, self.encode(v, sub)])
            return {"d": items}
        if isinstance(obj, (list, tuple)):
            tag = "l" if isinstance(obj, list) else "u"
            return {tag: [self.encode(v, f"{path}.{i}" if path else str(i))
                          for i, v in enumerate(obj)]}
        if hasattr(obj, "state_dict") and hasattr(obj, "parameters"):
            raise ArgumentError(f"kiln.save: cannot save the module {type(obj).__name__} "
                                "itself (that would need pickle); save model.state_dict() and "
                                "load it with model.load_state_dict(kiln.load(path))")
        raise ArgumentError(f"kiln.save: cannot save a {type(obj).__name__} at "
                            f"{path or 'the top'}; expected tensors, dicts, lists, tuples, "
                            "numbers, strings or None (Kiln never pickles)")


def _to_bytes(obj: Any) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    enc = _Encoder()
    tree = enc.encode(obj, "")
    return enc.arrays, {"format": _FORMAT, _TREE_KEY: json.dumps(tree, separators=(",", ":"))}


def save(obj: Any, f: Any) -> None:
    """Save ``obj`` (a tensor, a state dict, or nested dicts/lists/tuples of tensors and plain
    values) to ``f``, a path or a binary file object, as safetensors.

    >>> import kiln, os, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = os.path.join(d, "model.safetensors")
    ...     kiln.save(kiln.nn.Linear(2, 3).state_dict(), path)
    ...     sorted(kiln.load(path))
    ['bias', 'weight']
    """
    from kiln.io.weights import save_bytes, save_file

    arrays, meta = _to_bytes(obj)
    if isinstance(f, (str, os.PathLike)):
        save_file(arrays, f, meta)  # atomic: never a half-written file
    elif hasattr(f, "write"):
        f.write(save_bytes(arrays, meta))
    else:
        raise ArgumentError(f"kiln.save: f must be a path or a binary file object, got "
                            f"{type(f).__name__}")


def _decode(node: Any, tensors: dict[str, Any], where: str) -> Any:
    if not isinstance(node, dict) or len(node) not in (1, 2):
        raise SerializationError(f"kiln.load: bad tree node at {where}: {node!r:.80}")
    if "t" in node:
        name = node["t"]
        if not isinstance(name, str) or name not in tensors:
            raise SerializationError(f"kiln.load: the tree names tensor {name!r:.80}, which "
                                     "the file does not hold")
        t = tensors[name]
        if not isinstance(t, Tensor):  # first use; a tensor saved twice comes back shared
            t = tensors[name] = Tensor(t)
            if node.get("g") is True and t.dtype.is_floating:
                t.requires_grad_(True)
        return t
    if len(node) != 1:
        raise SerializationError(f"kiln.load: bad tree node at {where}: {node!r:.80}")
    ((tag, value),) = node.items()
    if tag == "v" and isinstance(value, _SCALARS):
        return value
    if tag == "f" and value in ("inf", "-inf", "nan"):
        return float(value)
    if tag in ("l", "u") and isinstance(value, list):
        items = [_decode(v, tensors, f"{where}.{i}") for i, v in enumerate(value)]
        return items if tag == "l" else tuple(items)
    if tag == "d" and isinstance(value, list):
        out = {}
        for item in value:
            if not (isinstance(item, list) and len(item) == 2 and
                    isinstance(item[0], (str, int)) and not isinstance(item[0], bool)):
                raise SerializationError(f"kiln.load: bad dict item at {where}: {item!r:.80}")
            out[item[0]] = _decode(item[1], tensors, f"{where}.{item[0]}")
        return out
    raise SerializationError(f"kiln.load: bad tree node at {where}: {node!r:.80}")


def _from_bytes(data: bytes, source: str) -> Any:
    from kiln.io.weights import load_bytes

    head = bytes(data[:4])
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise SerializationError(
            f"kiln.load: {source} looks like a torch.save (pickle) file; Kiln never unpickles. "
            "Convert it once with torch: safetensors.torch.save_file(torch.load(path), "
            "'model.safetensors'), or pass torch's state dict to load_state_dict directly")
    try:
        tensors, meta = load_bytes(data)
    except SerializationError as e:
        raise SerializationError(f"kiln.load: {source}: {e}") from e
    if _TREE_KEY not in meta:
        return {name: Tensor(a) for name, a in tensors.items()}  # a plain safetensors file
    try:
        tree = json.loads(meta[_TREE_KEY])
    except ValueError as e:
        raise SerializationError(f"kiln.load: {source}: the {_TREE_KEY} metadata is not JSON "
                                 f"({e})") from None
    return _decode(tree, dict(tensors), "the top")


def load(f: Any, map_location: Any = None, weights_only: Any = None, mmap: Any = None,
         **kwargs: Any) -> Any:
    """Load what :func:`save` wrote (or any safetensors file, as ``{name: tensor}``) from a
    path or a binary file object. ``map_location`` may name the CPU; ``weights_only`` is
    accepted (loading is always data-only here).

    >>> import io, kiln
    >>> buf = io.BytesIO(); kiln.save((kiln.arange(3), "x"), buf)
    >>> kiln.load(io.BytesIO(buf.getvalue()), map_location="cpu")
    (tensor([0, 1, 2]), 'x')
    """
    from kiln.core.devices import check_device

    if map_location is not None and not callable(map_location) and \
            not isinstance(map_location, dict):
        check_device("kiln.load", map_location)
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as fh:
            return _from_bytes(fh.read(), os.fspath(f))
    if hasattr(f, "read"):
        return _from_bytes(f.read(), "the file object")
    raise ArgumentError(f"kiln.load: f must be a path or a binary file object, got "
                        f"{type(f).__name__}")
