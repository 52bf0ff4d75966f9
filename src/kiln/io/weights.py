"""Weights on disk: checkpoint files, and the safetensors bytes Kiln's own artifacts embed.

Files go through the ``safetensors`` package: :func:`load_file` (memory-mapped; a PyTorch
``torch.save`` checkpoint is read too, by the restricted, pickle-free reader in
:mod:`kiln.io.torch_checkpoint`), :func:`load_metadata` and :func:`save_file`.

:func:`save_bytes` / :func:`load_bytes` write and read the format with NumPy alone, for the
safetensors payloads inside serialized graphs and compiled functions, which must be
deterministic and are validated here field by field (they arrive from caches and other
machines). The format:

Layout: an 8-byte little-endian header length ``N``, ``N`` bytes of JSON header (padded
with spaces to a multiple of 8), then the tensors' raw little-endian C-order bytes::

    {"__metadata__": {"k": "v"}, "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}

Writing matches the ``safetensors`` library byte for byte: ``__metadata__`` first, then
tensors by descending dtype rank in safetensors' ``Dtype`` enum (8-byte types first, so
every tensor stays aligned) and then by name; compact JSON, UTF-8 names unescaped. One
difference: safetensors writes several metadata entries in hash-map order, which varies
from run to run; Kiln sorts them, so the same input always gives the same bytes.

Reading checks everything the header claims against the bytes (lengths, overlaps, gaps,
dtypes, shapes, BOOL bytes) and raises :class:`~kiln.errors.SerializationError` saying
what is wrong. Loaded arrays are fresh, writable copies in native byte order: they never
alias the input buffer or the file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from kiln.errors import ArgumentError, DTypeError, SerializationError, describe

# safetensors code -> NumPy dtype, listed by rank in safetensors' Dtype enum (BF16 and the
# FP8/FP4 types sit between these, but NumPy cannot hold them). Writing orders tensors
# by descending rank.
_DTYPES: dict[str, np.dtype] = {
    code: np.dtype(t)
    for code, t in [
        ("BOOL", np.bool_), ("U8", np.uint8), ("I8", np.int8), ("I16", np.int16),
        ("U16", np.uint16), ("F16", np.float16), ("I32", np.int32), ("U32", np.uint32),
        ("F32", np.float32), ("F64", np.float64), ("I64", np.int64), ("U64", np.uint64),
    ]
}  # fmt: skip
_RANK = {code: rank for rank, code in enumerate(_DTYPES)}
_CODE = {(dt.kind, dt.itemsize): code for code, dt in _DTYPES.items()}
MAX_HEADER_BYTES = 100_000_000  # the limit safetensors readers enforce


class _Entry:
    """One tensor of a header (a plain class: a NamedTuple type costs import time)."""

    __slots__ = ("name", "code", "shape", "begin", "end")

    def __init__(self, name: str, code: str, shape: tuple[int, ...], begin: int,
                 end: int) -> None:
        self.name = name
        self.code = code
        self.shape = shape
        self.begin = begin
        self.end = end


def save_bytes(
    tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None
) -> bytes:
    """Serialize ``tensors`` (NumPy arrays or kiln Tensors, and optional string ``metadata``)
    to safetensors bytes.

    >>> data = save_bytes({"w": np.ones((2, 2), np.float32)}, {"format": "np"})
    >>> data[8:36]
    b'{"__metadata__":{"format":"n'
    >>> float(load_bytes(data)[0]["w"].sum())
    4.0
    """
    header, arrays = _prepare(tensors, metadata)
    return b"".join([len(header).to_bytes(8, "little"), header, *(a.tobytes() for a in arrays)])


def load_bytes(
    data: bytes | bytearray | memoryview,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Parse safetensors bytes into ``(tensors by name, metadata)``; arrays are copies.

    Tensors come back sorted by name; metadata is ``{}`` when the header has none.

    >>> tensors, meta = load_bytes(save_bytes({"b": np.arange(3), "a": np.float64(2.5)}))
    >>> list(tensors), tensors["a"].shape, meta
    (['a', 'b'], (), {})
    """
    try:
        view = memoryview(data).cast("B")
    except TypeError:
        raise ArgumentError(f"load_bytes: expected bytes, got {describe(data)}") from None
    entries, metadata, base = _parse_header(view)
    tensors: dict[str, np.ndarray] = {}
    for e in sorted(entries, key=lambda e: e.name):
        dtype = _DTYPES[e.code]
        count = math.prod(e.shape)
        if count == 0:
            tensors[e.name] = np.empty(e.shape, dtype)
            continue
        raw = np.frombuffer(view, dtype.newbyteorder("<"), count, base + e.begin)
        if e.code == "BOOL" and raw.view(np.uint8).max() > 1:
            raise SerializationError(f"tensor {e.name!r}: BOOL data holds bytes other than 0 and 1")
        # A copy in native order: never a view into the caller's buffer.
        tensors[e.name] = raw.reshape(e.shape).astype(dtype, copy=True)
    return tensors, metadata


def save_file(
    tensors: Mapping[str, np.ndarray],
    path: str | os.PathLike[str],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``tensors`` (NumPy arrays or kiln Tensors, e.g. a ``state_dict()``) to a
    safetensors file with the ``safetensors`` package, atomically: a temp file beside it,
    then ``os.replace``.

    A crash leaves either the old file or the new one, never a mix. A new file gets the
    umask's mode (0644 under umask 022); a replaced one keeps its mode.

    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / "w.safetensors"
    ...     save_file({"x": np.zeros(3, np.int8)}, p)
    ...     load_file(p)["x"].tolist()
    [0, 0, 0]
    """
    from safetensors.numpy import save

    items = _validated(tensors)  # validate before touching the disk
    meta = _validated_metadata(metadata)
    data = save({name: arr for name, _, arr in items}, meta)
    from kiln.base.atomic import write_atomic  # here: loading never writes

    write_atomic(path, data, durable=True)


def load_file(
    path: str | os.PathLike[str], *, keep_bfloat16: bool = False
) -> dict[str, np.ndarray]:
    """Read the tensors of a checkpoint file by name, as ``safetensors.numpy.load_file`` does.

    safetensors files are read with the ``safetensors`` package (memory-mapped); PyTorch
    checkpoints (``torch.save`` files: ``.pt``, ``.pth``, ``.bin``, zip or legacy) with
    :mod:`kiln.io.torch_checkpoint`, a restricted reader that never unpickles (nested dicts
    such as ``{"model": state_dict, "epoch": 3}`` give ``"model.weight"`` keys; non-tensor
    values are left out). bfloat16 tensors become float32 unless ``keep_bfloat16=True``
    (then ``ml_dtypes.bfloat16`` arrays); float16 stays float16. The metadata of a
    safetensors file comes from :func:`load_metadata`.

    Errors in the file are :class:`SerializationError` naming the path; a missing file
    is the usual ``FileNotFoundError``.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "m.safetensors")
    ...     save_file({"w": np.ones(2, np.float16)}, p, {"kiln": "1"})
    ...     load_file(p), load_metadata(p)
    ({'w': array([1., 1.], dtype=float16)}, {'kiln': '1'})
    """
    from kiln.io import torch_checkpoint

    if _is_torch(path):
        obj = torch_checkpoint.load(path, keep_bfloat16=keep_bfloat16)
        return dict(torch_checkpoint.iter_arrays(obj))
    with _safe_open(path) as f:
        out = {}
        for name in f.keys():
            arr = _read(f, name, path)
            if arr.dtype.name == "bfloat16" and not keep_bfloat16:
                arr = arr.astype(np.float32)
            out[name] = arr
        return out


def load_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file (``{}`` when it has none).

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "m.safetensors")
    ...     save_file({}, p, {"format": "np"})
    ...     load_metadata(p)
    {'format': 'np'}
    """
    with _safe_open(path) as f:
        return dict(f.metadata() or {})


def _is_torch(path: str | os.PathLike[str]) -> bool:
    # A safetensors file has its JSON header's "{" at byte 8; torch.save writes a zip
    # ("PK") or, in the legacy format, a pickle (protocol byte 0x80).
    with open(path, "rb") as f:
        head = f.read(9)
    return head[8:9] != b"{" and (head[:4] == b"PK\x03\x04" or head[:1] == b"\x80")


class _safe_open:
    """``safetensors.safe_open`` with its errors as SerializationError naming the path."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = path

    def __enter__(self) -> Any:
        from safetensors import SafetensorError, safe_open

        if not os.path.exists(self.path):
            raise FileNotFoundError(2, "No such file or directory", os.fspath(self.path))
        try:
            self._cm = safe_open(os.fspath(self.path), framework="np")
            return self._cm.__enter__()
        except (SafetensorError, OSError, ValueError) as e:
            raise SerializationError(f"{os.fspath(self.path)}: not a readable safetensors "
                                     f"file: {e}") from None

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)


def _read(f: Any, name: str, path: str | os.PathLike[str]) -> np.ndarray:
    if f.get_slice(name).get_dtype() == "BF16":
        # ml_dtypes registers bfloat16 with NumPy, which the reader needs; imported only
        # here, as its import takes a second or more.
        import ml_dtypes  # noqa: F401
    try:
        return f.get_tensor(name)
    except Exception as e:  # the package raises TypeError for dtypes NumPy cannot hold
        raise SerializationError(f"{os.fspath(path)}: tensor {name!r}: {e}") from None


def _validated(tensors: Mapping[str, np.ndarray]) -> list[tuple[str, str, np.ndarray]]:
    """(name, safetensors code, C-contiguous little-endian array), in file order."""
    from kiln.core.tensor import Tensor

    if not isinstance(tensors, Mapping):
        raise ArgumentError(f"tensors must be a dict of name -> array, got {describe(tensors)}")
    items = []
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise ArgumentError(f"tensor names must be str, got {describe(name)}")
        if name == "__metadata__":
            raise ArgumentError("'__metadata__' is reserved for the header; pass metadata=")
        if isinstance(value, Tensor):  # a module's state_dict() saves as it is
            value = value._concrete(f"saving tensor {name!r}")
        if not isinstance(value, (np.ndarray, np.generic)):
            raise ArgumentError(f"tensor {name!r}: expected a numpy array or kiln.Tensor, got "
                                f"{describe(value)}")
        arr = np.asarray(value)
        code = _CODE.get((arr.dtype.kind, arr.dtype.itemsize))
        if code is None:
            raise DTypeError(
                f"tensor {name!r}: dtype {arr.dtype} cannot be stored; supported: "
                + ", ".join(str(d) for d in _DTYPES.values())
            )
        # order="C" also flattens non-contiguous views; "<" byte-swaps big-endian input.
        arr = arr.astype(arr.dtype.newbyteorder("<"), order="C", copy=False)
        items.append((name, code, arr))
    items.sort(key=lambda item: (-_RANK[item[1]], item[0]))
    return items


def _validated_metadata(metadata: Mapping[str, str] | None) -> dict[str, str] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ArgumentError(f"metadata must be a dict of str -> str, got {describe(metadata)}")
    return dict(sorted(metadata.items()))


def _prepare(
    tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None
) -> tuple[bytes, list[np.ndarray]]:
    """The padded header and the arrays in file order (C-contiguous, little-endian)."""
    items = _validated(tensors)
    header: dict[str, Any] = {}
    meta = _validated_metadata(metadata)
    if meta is not None:
        header["__metadata__"] = meta
    offset = 0
    for name, code, arr in items:
        header[name] = {
            "dtype": code,
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + arr.nbytes],
        }
        offset += arr.nbytes
    try:
        # Compact and not ASCII-escaped, as serde_json writes it.
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        raise ArgumentError(f"tensor names and metadata must be valid Unicode: {e}") from None
    text += b" " * (-len(text) % 8)
    if len(text) > MAX_HEADER_BYTES:
        raise SerializationError(
            f"header of {len(text)} bytes is over the {MAX_HEADER_BYTES}-byte safetensors limit"
        )
    return text, [arr for _, _, arr in items]


def _parse_header(view: memoryview) -> tuple[list[_Entry], dict[str, str], int]:
    """Validate the header against the bytes: entries, metadata, offset of the data."""
    total = len(view)
    if total < 8:
        raise SerializationError(
            f"truncated: {total} bytes, fewer than the 8-byte header length that starts the file"
        )
    n = int.from_bytes(view[:8], "little")
    if n > total - 8:
        raise SerializationError(
            f"header length {n} is larger than the {total - 8} bytes after it "
            "(truncated, or not a safetensors file)"
        )
    if n > MAX_HEADER_BYTES:
        raise SerializationError(f"header length {n} is over the {MAX_HEADER_BYTES}-byte limit")
    try:
        header = json.loads(bytes(view[8 : 8 + n]).decode("utf-8"), object_pairs_hook=_unique)
    except SerializationError:
        raise
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError too
        raise SerializationError(f"header is not UTF-8 JSON: {e}") from None
    if not isinstance(header, dict):
        raise SerializationError(f"header must be a JSON object, got {type(header).__name__}")

    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise SerializationError(f"__metadata__ must map str to str, got {metadata!r:.80}")

    entries = sorted(
        (_entry(name, info) for name, info in header.items()),
        key=lambda e: (e.begin, e.end, e.name),
    )
    size = total - 8 - n
    expected, previous = 0, None
    for e in entries:
        where = f"tensor {e.name!r}: data_offsets [{e.begin}, {e.end}]"
        if e.end > size:
            raise SerializationError(f"{where} run past the {size}-byte data buffer")
        if e.begin < expected:
            raise SerializationError(f"{where} overlap tensor {previous!r}")
        if e.begin > expected:
            raise SerializationError(f"{where} leave bytes [{expected}, {e.begin}) unused")
        nbytes = math.prod(e.shape) * _DTYPES[e.code].itemsize
        if e.end - e.begin != nbytes:
            raise SerializationError(
                f"{where} hold {e.end - e.begin} bytes, but shape {list(e.shape)} of "
                f"{e.code} needs {nbytes}"
            )
        expected, previous = e.end, e.name
    if expected != size:
        raise SerializationError(f"{size - expected} bytes after the last tensor belong to none")
    return entries, metadata, 8 + n


def _entry(name: str, info: Any) -> _Entry:
    where = f"tensor {name!r}"
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
        raise SerializationError(
            f"{where}: expected dtype, shape and data_offsets, got {info!r:.80}"
        )
    code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if code not in _DTYPES:
        raise SerializationError(
            f"{where}: unsupported dtype {code!r}; NumPy reads " + ", ".join(_DTYPES)
        )

    def is_count(x: Any) -> bool:
        return type(x) is int and x >= 0

    if not (isinstance(shape, list) and all(map(is_count, shape))):
        raise SerializationError(f"{where}: shape must be a list of ints >= 0, got {shape!r:.80}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(is_count, offsets))):
        raise SerializationError(f"{where}: data_offsets must be [begin, end], got {offsets!r:.80}")
    if offsets[0] > offsets[1]:
        raise SerializationError(f"{where}: data_offsets {offsets} end before they begin")
    return _Entry(name, code, tuple(shape), offsets[0], offsets[1])


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        names = [k for k, _ in pairs]
        dup = next(k for k in names if names.count(k) > 1)
        raise SerializationError(f"header names {dup!r} more than once")
    return result
