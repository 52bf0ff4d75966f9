"""Read PyTorch checkpoints (``torch.save`` files: ``.pt``, ``.pth``, ``.bin``) without torch
and without unpickling.

A checkpoint is a pickle program plus raw storage bytes. Running the program with
:mod:`pickle` would let the file call any importable function, so Kiln never does: the
opcode stream is walked with :func:`pickletools.genops` (which only decodes) and interpreted
here by a small stack machine that knows a fixed set of opcodes and a fixed set of globals:
the tensor-rebuild functions, the storage types of known dtypes, ``OrderedDict`` and the
handful of helpers that ``torch.load(weights_only=True)`` also accepts. Any other global is
refused with a :class:`~kiln.errors.SerializationError` that names it; nothing named in the
file is ever imported or called.

Two layouts are read:

- the zip format (torch >= 1.6): ``<prefix>/data.pkl`` and one ``<prefix>/data/<key>``
  entry per storage, stored uncompressed, which are memory-mapped rather than copied;
- the legacy format (older ``torch.save``, ``_use_new_zipfile_serialization=False``): magic
  number, protocol and system-info pickles, the main pickle, the list of storage keys, then
  each storage as an 8-byte element count followed by its bytes.

Tensors come back as NumPy arrays (fresh, C-contiguous); bfloat16 becomes float32 unless
``keep_bfloat16=True`` (then an ``ml_dtypes.bfloat16`` array).
"""

from __future__ import annotations

import io
import math
import mmap
import os
import pickletools
import struct
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from kiln.errors import SerializationError

# torch storage class -> NumPy dtype name ("bfloat16" comes from ml_dtypes).
_STORAGES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool",
}  # fmt: skip
# torch dtype objects pickled by name (torch.float32 -> GLOBAL 'torch float32').
_TORCH_DTYPES = {
    "float32", "float", "float64", "double", "float16", "half", "bfloat16", "int64", "long",
    "int32", "int", "int16", "short", "int8", "uint8", "bool",
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
# A loaded object is walked (bfloat16 upcast, dotted names): these bound a hostile one, whose
# memo can share one list many times over (a "billion laughs") or nest it in itself.
MAX_DEPTH = 100
MAX_VISITS = 1_000_000


class _Global:
    """A global the pickle named and the allowlist accepted; called by REDUCE."""

    __slots__ = ("name", "call")

    def __init__(self, name: str, call: Callable[..., Any] | None):
        self.name, self.call = name, call

    def __repr__(self) -> str:
        return self.name


class _Storage:
    """A storage reference: dtype, element count, and a loader for its bytes."""

    __slots__ = ("dtype", "numel", "key", "_array")

    def __init__(self, dtype: np.dtype, numel: int, key: str):
        self.dtype, self.numel, self.key = dtype, numel, key
        self._array: np.ndarray | None = None


def _bf16() -> np.dtype:
    try:
        import ml_dtypes
    except ImportError:  # pragma: no cover - ml_dtypes is a dependency
        raise SerializationError(
            "reading bfloat16 tensors needs the ml_dtypes package: pip install ml_dtypes"
        ) from None
    return np.dtype(ml_dtypes.bfloat16)


def _dtype(name: str) -> np.dtype:
    return _bf16() if name == "bfloat16" else np.dtype(name)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> np.ndarray:
    """torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks,
    [metadata]) and the older _rebuild_tensor(storage, offset, size, stride)."""
    if not isinstance(storage, _Storage):
        raise SerializationError(
            f"tensor rebuild: expected a storage, got {type(storage).__name__}"
        )
    shaped = isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
    if not (_is_count(offset) and shaped and all(map(_is_count, size + stride))):
        raise SerializationError(
            f"tensor rebuild: bad offset/size/stride {offset!r:.40}, {size!r:.80}, {stride!r:.80}"
        )
    if len(size) > 64:
        raise SerializationError(f"tensor rebuild: {len(size)} dims is more than 64")
    if math.prod(size) == 0:
        return np.empty(size, storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if last >= storage.numel:
        raise SerializationError(
            f"tensor rebuild: shape {list(size)}, stride {list(stride)} at offset {offset} "
            f"reads element {last} of storage {storage.key!r} with {storage.numel} elements"
        )
    base = storage._array
    if base is None:  # legacy format: the bytes come after the pickle
        return _Pending((storage, offset, size, stride))  # type: ignore[return-value]
    item = base.itemsize
    view = np.lib.stride_tricks.as_strided(
        base[offset:], shape=size, strides=tuple(s * item for s in stride), writeable=False
    )
    return np.array(view, order="C")  # a copy: never a view into the file


def _rebuild_parameter(data: Any, *rest: Any) -> Any:
    """torch._utils._rebuild_parameter(data, requires_grad, hooks[, state])."""
    if not isinstance(data, (np.ndarray, _Pending)):
        raise SerializationError(f"parameter rebuild: expected a tensor, got {type(data).__name__}")
    return data


def _ordered_dict(*args: Any) -> OrderedDict:
    if args:
        raise SerializationError("OrderedDict: expected no arguments (items come by SETITEMS)")
    return OrderedDict()


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    # Protocol 2 pickles a bytes object as _codecs.encode(str, 'latin1').
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8"):
        raise SerializationError("_codecs.encode: expected (str, 'latin1')")
    return text.encode(encoding)


def _torch_size(*args: Any) -> tuple:
    if len(args) != 1 or not isinstance(args[0], tuple) or not all(map(_is_count, args[0])):
        raise SerializationError("torch.Size: expected a tuple of sizes")
    return args[0]


def _torch_device(*args: Any) -> str:
    if not all(isinstance(a, (str, int)) for a in args):
        raise SerializationError("torch.device: expected a name and an index")
    return ":".join(map(str, args))


def _allowed(module: str, name: str) -> _Global | None:
    """The allowlist: what a global may be, or None when it is refused."""
    full = f"{module}.{name}"
    if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
        return _Global(full, _rebuild_tensor)
    if module == "torch._utils" and name in ("_rebuild_parameter",
                                             "_rebuild_parameter_with_state"):
        return _Global(full, _rebuild_parameter)
    if module == "torch" and name in _STORAGES:
        return _Global(full, None)  # only ever a storage type inside a persistent id
    if module == "torch" and name in _TORCH_DTYPES:
        return _Global(full, None)
    if module == "collections" and name == "OrderedDict":
        return _Global(full, _ordered_dict)
    if module == "torch" and name == "Size":
        return _Global(full, _torch_size)
    if module == "torch" and name == "device":
        return _Global(full, _torch_device)
    if module == "_codecs" and name == "encode":
        return _Global(full, _codecs_encode)
    return None


def _is_count(x: Any) -> bool:
    return type(x) is int and x >= 0


class _Mark:
    __slots__ = ()


_MARK = _Mark()


def run_pickle(data: bytes | memoryview,
               persistent_load: Callable[[Any], Any]) -> Any:
    """Interpret a pickle program restricted to plain containers, scalars and the allowlisted
    globals; ``persistent_load`` resolves persistent ids (storages). Nothing is imported.

    >>> import pickle
    >>> run_pickle(pickle.dumps({"a": [1, 2.5, None, (True, "x")]}, protocol=2), None)
    {'a': [1, 2.5, None, (True, 'x')]}
    >>> try:
    ...     run_pickle(pickle.dumps(print), None)
    ... except SerializationError as e:
    ...     print(str(e)[:45])
    pickle names global 'builtins.print', which a
    """
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    try:
        # genops decodes protocol-0 strings, which warns on bad escapes: an error here.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for op, arg, _ in pickletools.genops(io.BytesIO(bytes(data))):
                result = _step(op.name, arg, stack, memo, persistent_load)
                if result is not _CONTINUE:
                    return result
    except SerializationError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, struct.error, OverflowError,
            UnicodeDecodeError, EOFError, MemoryError, Warning) as e:
        raise SerializationError(f"malformed pickle: {type(e).__name__}: {e}"[:300]) from None
    raise SerializationError("malformed pickle: no STOP opcode")


_CONTINUE = object()
_PUSH_ARG = {
    "BININT", "BININT1", "BININT2", "INT", "LONG", "LONG1", "LONG4", "BINFLOAT", "FLOAT",
    "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
    "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
}
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}


def _pop_mark(stack: list[Any]) -> list[Any]:
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is _MARK:
            items = stack[i + 1 :]
            del stack[i:]
            return items
    raise SerializationError("malformed pickle: no MARK before a MARK-using opcode")


def _pop(stack: list[Any]) -> Any:
    if not stack or stack[-1] is _MARK:
        raise SerializationError("malformed pickle: stack underflow")
    return stack.pop()


def _step(name: str, arg: Any, stack: list[Any], memo: dict[int, Any],
          persistent_load: Callable[[Any], Any] | None) -> Any:
    """One opcode. Returns the result at STOP, else _CONTINUE."""
    if name in _PUSH_ARG:
        stack.append(arg)
    elif name in _CONSTANTS:
        stack.append(_CONSTANTS[name])
    elif name in ("PROTO", "FRAME"):
        pass
    elif name == "STOP":
        value = _pop(stack)
        if isinstance(value, (_Global, _Storage)):
            raise SerializationError(f"pickle returns {value!r} instead of data")
        return value
    elif name == "MARK":
        stack.append(_MARK)
    elif name == "POP":
        _pop(stack)
    elif name == "POP_MARK":
        _pop_mark(stack)
    elif name == "DUP":
        stack.append(stack[-1] if stack else _pop(stack))
    elif name == "EMPTY_DICT":
        stack.append({})
    elif name == "EMPTY_LIST":
        stack.append([])
    elif name == "EMPTY_TUPLE":
        stack.append(())
    elif name == "EMPTY_SET":
        stack.append(set())
    elif name == "TUPLE":
        stack.append(tuple(_pop_mark(stack)))
    elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
        n = int(name[-1])
        items = [_pop(stack) for _ in range(n)][::-1]
        stack.append(tuple(items))
    elif name == "LIST":
        stack.append(_pop_mark(stack))
    elif name == "DICT":
        stack.append(_pairs({}, _pop_mark(stack)))
    elif name == "FROZENSET":
        stack.append(frozenset(_hashable(x) for x in _pop_mark(stack)))
    elif name == "APPEND":
        value = _pop(stack)
        _target(stack, list).append(value)
    elif name == "APPENDS":
        items = _pop_mark(stack)
        _target(stack, list).extend(items)
    elif name == "ADDITEMS":
        items = _pop_mark(stack)
        _target(stack, set).update(_hashable(x) for x in items)
    elif name == "SETITEM":
        value, key = _pop(stack), _pop(stack)
        _pairs(_target(stack, dict), [key, value])
    elif name == "SETITEMS":
        items = _pop_mark(stack)
        _pairs(_target(stack, dict), items)
    elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
        if not stack:
            raise SerializationError("malformed pickle: PUT on an empty stack")
        memo[int(arg)] = stack[-1]
    elif name == "MEMOIZE":
        if not stack:
            raise SerializationError("malformed pickle: MEMOIZE on an empty stack")
        memo[len(memo)] = stack[-1]
    elif name in ("BINGET", "LONG_BINGET", "GET"):
        if int(arg) not in memo:
            raise SerializationError(f"malformed pickle: memo entry {arg} read before written")
        stack.append(memo[int(arg)])
    elif name in ("GLOBAL", "STACK_GLOBAL"):
        if name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
        else:
            attr, module = _pop(stack), _pop(stack)
            if not (isinstance(module, str) and isinstance(attr, str)):
                raise SerializationError("malformed pickle: STACK_GLOBAL needs two strings")
        found = _allowed(module, attr)
        if found is None:
            raise SerializationError(
                f"pickle names global '{module}.{attr}', which a weights file may not use "
                "(only tensors, storages, OrderedDict and plain containers are read)"
            )
        stack.append(found)
    elif name == "REDUCE":
        args, fn = _pop(stack), _pop(stack)
        if not isinstance(fn, _Global) or fn.call is None or not isinstance(args, tuple):
            raise SerializationError(f"pickle calls {fn!r:.60}, which is not callable here")
        stack.append(fn.call(*args))
    elif name == "BUILD":
        state = _pop(stack)
        target = stack[-1] if stack else _pop(stack)
        # torch pickles a state dict's `_metadata` (module versions) as OrderedDict state;
        # the values are dropped, and no other object may take state.
        if not isinstance(target, OrderedDict) or not isinstance(state, dict):
            raise SerializationError(
                f"pickle sets the state of {type(target).__name__}, which only OrderedDict may take"
            )
    elif name in ("BINPERSID", "PERSID"):
        pid = _pop(stack) if name == "BINPERSID" else arg
        if persistent_load is None:
            raise SerializationError("pickle refers to external storage, which this file has not")
        stack.append(persistent_load(pid))
    else:
        raise SerializationError(f"pickle opcode {name} is not accepted in a weights file")
    return _CONTINUE


def _target(stack: list[Any], kind: type) -> Any:
    if not stack or not isinstance(stack[-1], kind):
        got = type(stack[-1]).__name__ if stack else "an empty stack"
        raise SerializationError(f"malformed pickle: expected a {kind.__name__}, got {got}")
    return stack[-1]


def _hashable(key: Any) -> Any:
    if not isinstance(key, (str, int, float, bool, bytes, type(None), tuple)):
        raise SerializationError(f"malformed pickle: a {type(key).__name__} used as a key")
    if isinstance(key, tuple):
        for k in key:
            _hashable(k)
    return key


def _pairs(target: dict, items: list[Any]) -> dict:
    if len(items) % 2:
        raise SerializationError("malformed pickle: odd number of items for a dict")
    for k, v in zip(items[::2], items[1::2], strict=True):
        target[_hashable(k)] = v
    return target


# files ---------------------------------------------------------------------------------------


def is_torch_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` starts like a ``torch.save`` file (a zip, or a legacy pickle)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head[:4] == b"PK\x03\x04" or head[:1] == b"\x80"


def load(path: str | os.PathLike[str], *, keep_bfloat16: bool = False) -> Any:
    """Read a ``torch.save`` file without torch: its object with tensors as NumPy arrays.

    A :class:`~kiln.errors.SerializationError` names the path and what is wrong, including
    any global the file names that a weights file may not use.
    """
    where = os.fspath(path)
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise SerializationError("empty file")
            # Not closed explicitly: arrays and error tracebacks may still view it; the map
            # goes when the last view does.
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            if mm[:4] == b"PK\x03\x04":
                obj = _load_zip(f, mm)
            else:
                obj = _load_legacy(memoryview(mm))
    except SerializationError as e:
        raise SerializationError(f"{where}: {e}") from None
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, OSError,
            EOFError, struct.error, KeyError, IndexError, OverflowError) as e:
        # zipfile's ways of saying a directory is broken or of a kind it does not read
        raise SerializationError(f"{where}: not a readable torch checkpoint: {e}") from None
    try:
        check_tree(obj)
    except SerializationError as e:
        raise SerializationError(f"{where}: {e}") from None
    return obj if keep_bfloat16 else _upcast(obj)


def check_tree(obj: Any) -> None:
    """Refuse an object that nests deeper than MAX_DEPTH, contains itself, or takes more than
    MAX_VISITS steps to walk (shared parts count each time they are reached).

    >>> shared = [1]
    >>> check_tree({"a": shared, "b": (shared, shared)})
    >>> loop = []
    >>> loop.append(loop)
    >>> check_tree(loop)
    Traceback (most recent call last):
    ...
    kiln.errors.SerializationError: the checkpoint's object contains itself
    """
    visits = 0
    on_path: set[int] = set()
    stack: list[tuple[Any, int, bool]] = [(obj, 0, False)]
    while stack:
        item, depth, leaving = stack.pop()
        if leaving:
            on_path.discard(id(item))
            continue
        visits += 1
        if visits > MAX_VISITS:
            raise SerializationError(f"the checkpoint's object takes more than {MAX_VISITS} "
                                     "steps to walk (a structure shared many times over)")
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, (list, tuple)):
            children = list(item)
        else:
            continue
        if id(item) in on_path:
            raise SerializationError("the checkpoint's object contains itself")
        if depth >= MAX_DEPTH:
            raise SerializationError(f"the checkpoint's object nests deeper than {MAX_DEPTH}")
        on_path.add(id(item))
        stack.append((item, depth, True))
        stack.extend((child, depth + 1, False) for child in children)


def _upcast(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.astype(np.float32) if obj.dtype.name == "bfloat16" else obj
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _upcast(v)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_upcast(v) for v in obj)
    return obj


def _load_zip(f: io.BufferedReader, mm: mmap.mmap) -> Any:
    with zipfile.ZipFile(f) as zf:  # reads the directory only; entries come from the map
        infos = {i.filename: i for i in zf.infolist()}
        pkls = [n for n in infos if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise SerializationError(
                f"expected one '<name>/data.pkl' entry in the zip, found {len(pkls)}"
            )
        prefix = pkls[0][: -len("data.pkl")]
        order = infos.get(prefix + "byteorder")
        if order is not None and _entry(mm, order).tobytes() not in (b"little", b"little\n"):
            raise SerializationError("big-endian checkpoints are not supported")
        pickle_bytes = _entry(mm, infos[pkls[0]])
        storages: dict[str, _Storage] = {}

        def persistent_load(pid: Any) -> _Storage:
            storage = _storage_ref(pid, storages)
            if storage._array is None:
                info = infos.get(f"{prefix}data/{storage.key}")
                if info is None:
                    raise SerializationError(f"storage {storage.key!r} has no data entry")
                storage._array = _as_elements(_entry(mm, info), storage)
            return storage

        return run_pickle(pickle_bytes, persistent_load)


def _entry(mm: mmap.mmap, info: zipfile.ZipInfo) -> memoryview:
    """The bytes of a stored (uncompressed) zip entry, as a view into the mapped file."""
    if info.compress_type != zipfile.ZIP_STORED:
        raise SerializationError(
            f"zip entry {info.filename!r} is compressed; torch.save stores entries uncompressed"
        )
    start = info.header_offset
    head = mm[start : start + 30]
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        raise SerializationError(f"zip entry {info.filename!r}: bad local header")
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    begin = start + 30 + name_len + extra_len
    end = begin + info.file_size
    if end > len(mm):
        raise SerializationError(f"zip entry {info.filename!r} runs past the end of the file")
    return memoryview(mm)[begin:end]


def _storage_ref(pid: Any, storages: dict[str, _Storage]) -> _Storage:
    """('storage', storage type, key, location, numel) -> the (shared) storage record."""
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
        raise SerializationError(f"persistent id must be ('storage', type, key, location, numel), "
                                 f"got {pid!r:.80}")
    _, kind, key, _location, numel = pid
    if not (isinstance(kind, _Global) and kind.name.removeprefix("torch.") in _STORAGES):
        raise SerializationError(f"storage type {kind!r:.60} is not one of torch's typed storages")
    if not (isinstance(key, str) and _is_count(numel)):
        raise SerializationError(f"storage id {pid!r:.80}: key must be str and numel an int >= 0")
    dtype = _dtype(_STORAGES[kind.name.removeprefix("torch.")])
    known = storages.get(key)
    if known is not None:
        if known.dtype != dtype or known.numel != numel:
            raise SerializationError(f"storage {key!r} is described two different ways")
        return known
    storages[key] = _Storage(dtype, numel, key)
    return storages[key]


def _as_elements(raw: memoryview, storage: _Storage) -> np.ndarray:
    need = storage.numel * storage.dtype.itemsize
    if len(raw) < need:
        raise SerializationError(
            f"storage {storage.key!r}: {storage.numel} x {storage.dtype} needs {need} bytes, "
            f"the file has {len(raw)}"
        )
    return np.frombuffer(raw, storage.dtype.newbyteorder("<"), storage.numel)


def _load_legacy(view: memoryview) -> Any:
    """The pre-zip format: several pickles in a row, then the storages' bytes."""
    pos = 0

    def next_pickle() -> tuple[memoryview, int]:
        # genops stops at STOP: its last position tells where the next pickle starts.
        stream = io.BytesIO(view[pos:])
        end = None
        for op, _, at in pickletools.genops(stream):
            if op.name == "STOP":
                end = at + 1
                break
        if end is None:
            raise SerializationError("legacy checkpoint: a pickle has no STOP")
        return view[pos : pos + end], pos + end

    def plain() -> Any:
        nonlocal pos
        chunk, pos = next_pickle()
        return run_pickle(chunk, None)

    try:
        if plain() != _LEGACY_MAGIC:
            raise SerializationError("not a torch checkpoint (no zip header, no legacy magic)")
        if plain() != 1001:
            raise SerializationError("legacy checkpoint: unsupported protocol version")
        info = plain()
        if not isinstance(info, dict) or not info.get("little_endian", False):
            raise SerializationError("legacy checkpoint: big-endian or missing system info")
        storages: dict[str, _Storage] = {}
        chunk, pos = next_pickle()
        obj = run_pickle(chunk, lambda pid: _storage_ref(_legacy_pid(pid), storages))
        keys = plain()
    except ValueError as e:
        raise SerializationError(f"legacy checkpoint: malformed pickle: {e}") from None
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise SerializationError("legacy checkpoint: storage key list is malformed")
    for key in keys:
        storage = storages.get(key)
        if storage is None:
            raise SerializationError(f"legacy checkpoint: storage {key!r} is never used")
        head = view[pos : pos + 8]
        if len(head) != 8 or int.from_bytes(head, "little") != storage.numel:
            raise SerializationError(f"legacy checkpoint: storage {key!r} has a bad size record")
        nbytes = storage.numel * storage.dtype.itemsize
        storage._array = _as_elements(view[pos + 8 : pos + 8 + nbytes], storage)
        pos += 8 + nbytes
    missing = [k for k, s in storages.items() if s._array is None]
    if missing:
        raise SerializationError(f"legacy checkpoint: storages {missing[:5]} have no data")
    # Rebuilt tensors were views waiting for their storage; resolve them now.
    check_tree(obj)
    return _resolve(obj)


def _legacy_pid(pid: Any) -> Any:
    # ('storage', type, key, location, numel, view_metadata) in the legacy format.
    if isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage":
        if pid[5] is not None:
            raise SerializationError("legacy checkpoint: storage views are not supported")
        return pid[:5]
    return pid


class _Pending:
    """A tensor rebuilt before its storage's bytes were read (legacy format)."""

    __slots__ = ("args",)

    def __init__(self, args: tuple):
        self.args = args


def _resolve(obj: Any) -> Any:
    if isinstance(obj, _Pending):
        return _rebuild_tensor(*obj.args)
    if isinstance(obj, dict):
        for k, v in obj.items():
            obj[k] = _resolve(v)
        return obj
    if isinstance(obj, list):
        obj[:] = [_resolve(v) for v in obj]
        return obj
    if isinstance(obj, tuple):
        return tuple(_resolve(v) for v in obj)
    return obj


def iter_arrays(obj: Any, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
    """The arrays of a loaded checkpoint with dotted names (nested dicts joined by '.')."""
    if isinstance(obj, np.ndarray):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from iter_arrays(v, f"{prefix}.{k}" if prefix else str(k))
