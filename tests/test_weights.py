"""Tests for kiln.io.weights: safetensors bytes, files, validation, and the real library."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kiln.errors import ArgumentError, DTypeError, SerializationError
from kiln.io import weights
from kiln.io.weights import load_bytes, load_file, save_bytes, save_file

DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8,
          np.uint64, np.uint32, np.uint16, np.uint8, np.bool_]  # fmt: skip


def raw(header, data: bytes = b"", n: int | None = None) -> bytes:
    """A safetensors file by hand: header (dict or bytes), then data."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if n is None else n) + text + data


def assert_same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), k  # exact, NaN payloads included


def test_golden_bytes_from_the_safetensors_spec():
    # The byte strings of safetensors' own serialization tests (tensor.rs).
    data = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    out = save_bytes({"attn.0": data})
    header = b'{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}'
    assert out == struct.pack("<Q", 64) + header + data.tobytes()
    assert save_bytes({}) == bytes([8, 0, 0, 0, 0, 0, 0, 0]) + b"{}      "
    assert save_bytes({}, {"framework": "pt"}) == (
        struct.pack("<Q", 40) + b'{"__metadata__":{"framework":"pt"}}     '
    )
    out = save_bytes({"attn0": data.reshape(1, 1, 2, 3)})
    assert out[:8] == struct.pack("<Q", 72) and out[8:80].endswith(b"}}" + b" " * 7)


def test_layout_order_and_alignment():
    tensors = {
        "b8": np.zeros(1, np.uint8),
        "a32": np.zeros(1, np.float32),
        "z64": np.zeros(1, np.int64),
        "a64": np.zeros(1, np.float64),
        "flag": np.zeros(3, np.bool_),
    }
    out = save_bytes(tensors)
    n = struct.unpack("<Q", out[:8])[0]
    assert n % 8 == 0
    header = json.loads(out[8 : 8 + n])
    # Descending safetensors dtype rank (I64 > F64 > F32 > U8 > BOOL), then name.
    assert list(header) == ["z64", "a64", "a32", "b8", "flag"]
    for info in header.values():
        begin = info["data_offsets"][0]
        assert begin % np.dtype(weights._DTYPES[info["dtype"]]).itemsize == 0


def test_round_trip_every_dtype_and_odd_layouts():
    rng = np.random.default_rng(0)
    tensors = {f"t_{np.dtype(d).name}": (rng.random((2, 3)) * 100).astype(d) for d in DTYPES}
    tensors["scalar"] = np.array(3.5)
    tensors["empty"] = np.zeros((0, 4), np.float32)
    tensors["nan"] = np.array([np.nan, -np.inf, -0.0], np.float32)
    base = np.arange(24, dtype=np.int32).reshape(4, 6)
    odd = {"strided": base[::2, 1::2], "fortran": np.asfortranarray(base), "T": base.T,
           "big_endian": base.astype(">i4"), "npscalar": np.float16(1.5)}  # fmt: skip
    loaded, meta = load_bytes(save_bytes({**tensors, **odd}, {"note": "ünï"}))
    assert meta == {"note": "ünï"}
    assert_same({k: loaded[k] for k in sorted(tensors)}, {k: tensors[k] for k in sorted(tensors)})
    for k, v in odd.items():
        np.testing.assert_array_equal(loaded[k], v)
        assert loaded[k].dtype == np.asarray(v).dtype.newbyteorder("=")
        assert loaded[k].flags.c_contiguous
    assert list(loaded) == sorted(loaded)


def test_loaded_arrays_are_writable_copies():
    buf = bytearray(save_bytes({"x": np.arange(4, dtype=np.int32)}))
    before = bytes(buf)
    x = load_bytes(buf)[0]["x"]
    assert x.flags.writeable and x.flags.owndata
    x[:] = 7
    assert bytes(buf) == before
    assert load_bytes(memoryview(before))[0]["x"].tolist() == [0, 1, 2, 3]


def test_metadata_none_and_empty():
    assert load_bytes(save_bytes({}))[1] == {}
    assert b"__metadata__" in save_bytes({}, {})  # {} is written, as safetensors does
    two = save_bytes({}, {"b": "2", "a": "1"})
    assert two == save_bytes({}, {"a": "1", "b": "2"})  # sorted: deterministic bytes
    assert load_bytes(two)[1] == {"a": "1", "b": "2"}


@pytest.mark.parametrize(
    "tensors, metadata, error, match",
    [
        ({1: np.zeros(1)}, None, ArgumentError, "names must be str"),
        ({"__metadata__": np.zeros(1)}, None, ArgumentError, "reserved"),
        ({"x": [1, 2]}, None, ArgumentError,
         "tensor 'x': expected a numpy array or kiln.Tensor, got list"),
        ({"c": np.zeros(1, np.complex64)}, None, DTypeError, "tensor 'c': dtype complex64"),
        ({"s": np.array(["a"])}, None, DTypeError, "tensor 's'"),
        ({"o": np.array([None])}, None, DTypeError, "tensor 'o'"),
        ({"\ud800": np.zeros(1)}, None, ArgumentError, "valid Unicode"),
        ({}, {"k": 1}, ArgumentError, "metadata must be a dict of str -> str"),
        ([("x", np.zeros(1))], None, ArgumentError, "must be a dict"),
    ],
)
def test_save_errors(tensors, metadata, error, match):
    with pytest.raises(error, match=match):
        save_bytes(tensors, metadata)


F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(
    "data, match",
    [
        (b"\x08\x00\x00", "truncated: 3 bytes"),
        (raw({"x": F32_2}, b"\0" * 8, n=500), "header length 500 is larger than the"),
        (raw(b"{not json"), "header is not UTF-8 JSON"),
        (raw(b'{"x": \xff}'), "header is not UTF-8 JSON"),
        (raw(b"[1, 2]"), "header must be a JSON object, got list"),
        (raw(b'{"x": 1, "x": 2}'), "header names 'x' more than once"),
        (raw({"x": F32_2}, b"\0" * 4), r"tensor 'x': data_offsets \[0, 8\] run past the 4-byte"),
        (raw({"x": F32_2, "y": {**F32_2, "data_offsets": [4, 12]}}, b"\0" * 12),
         "tensor 'y': data_offsets \\[4, 12\\] overlap tensor 'x'"),
        (raw({"x": {**F32_2, "data_offsets": [4, 12]}}, b"\0" * 12), r"leave bytes \[0, 4\)"),
        (raw({"x": F32_2}, b"\0" * 12), "4 bytes after the last tensor"),
        (raw({"x": {**F32_2, "shape": [3]}}, b"\0" * 8),
         r"hold 8 bytes, but shape \[3\] of F32 needs 12"),
        (raw({"x": {**F32_2, "dtype": "BF16"}}, b"\0" * 8), "unsupported dtype 'BF16'"),
        (raw({"x": {**F32_2, "dtype": 7}}, b"\0" * 8), "unsupported dtype 7"),
        (raw({"x": {**F32_2, "shape": [-2]}}, b"\0" * 8), "shape must be a list of ints >= 0"),
        (raw({"x": {**F32_2, "shape": [2.0]}}, b"\0" * 8), "shape must be a list of ints"),
        (raw({"x": {**F32_2, "data_offsets": [8, 0]}}, b"\0" * 8), "end before they begin"),
        (raw({"x": {**F32_2, "data_offsets": [0]}}, b"\0" * 8), "must be \\[begin, end\\]"),
        (raw({"x": {"dtype": "F32"}}), "expected dtype, shape and data_offsets"),
        (raw({"__metadata__": {"a": 1}}), "__metadata__ must map str to str"),
        (raw({"b": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x02"),
         "BOOL data holds bytes other than 0 and 1"),
    ],
)  # fmt: skip
def test_load_errors(data, match):
    with pytest.raises(SerializationError, match=match):
        load_bytes(data)


def test_load_rejects_non_bytes():
    with pytest.raises(ArgumentError, match="expected bytes"):
        load_bytes("a string")


def test_every_truncation_is_refused():
    data = save_bytes({"a": np.arange(3, dtype=np.int16), "b": np.ones((2, 2))}, {"m": "x"})
    for cut in range(len(data)):
        with pytest.raises(SerializationError):
            load_bytes(data[:cut])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_corrupted_bytes_never_crash(data):
    good = save_bytes({"a": np.arange(3, dtype=np.int16), "b": np.ones((2, 2))}, {"m": "x"})
    pos = data.draw(st.integers(0, len(good) - 1))
    value = data.draw(st.integers(0, 255))
    bad = good[:pos] + bytes([value]) + good[pos + 1 :]
    try:
        load_bytes(bad)
    except SerializationError:
        pass


def test_zero_size_tensors_share_an_offset():
    tensors = {"e1": np.zeros((0,), np.float32), "e2": np.zeros((3, 0), np.float32),
               "x": np.ones(2, np.float32)}  # fmt: skip
    loaded, _ = load_bytes(save_bytes(tensors))
    assert_same(loaded, tensors)


arrays = hnp.arrays(
    dtype=st.sampled_from(DTYPES),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
)
tensor_dicts = st.dictionaries(st.text(min_size=1, max_size=4), arrays, max_size=4).filter(
    lambda d: "__metadata__" not in d and all("\ud800" > c or c > "\udfff" for k in d for c in k)
)


@settings(max_examples=40, deadline=None)
@given(tensor_dicts, st.none() | st.dictionaries(st.text(max_size=3), st.text(max_size=3)))
def test_random_round_trip(tensors, metadata):
    metadata = (
        {k: v for k, v in metadata.items() if not any("\ud800" <= c <= "\udfff" for c in k + v)}
        if metadata is not None
        else None
    )
    loaded, meta = load_bytes(save_bytes(tensors, metadata))
    assert_same(loaded, {k: tensors[k] for k in sorted(tensors)})
    assert meta == (metadata or {})


def test_save_file_and_load_file(tmp_path):
    path = tmp_path / "w.safetensors"
    tensors = {"w": np.eye(3, dtype=np.float32)}
    save_file(tensors, path, {"k": "v"})
    assert path.read_bytes() == save_bytes(tensors, {"k": "v"})
    assert_same(load_file(str(path)), tensors)
    assert weights.load_metadata(path) == {"k": "v"}
    assert os.listdir(tmp_path) == ["w.safetensors"]  # no temp file left behind
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_save_file_replaces_atomically_and_keeps_mode(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    save_file({"old": np.zeros(2)}, path)
    path.chmod(0o600)
    old_bytes = path.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        save_file({"new": np.ones(2)}, path)
    assert path.read_bytes() == old_bytes  # the old file is untouched
    assert os.listdir(tmp_path) == ["w.safetensors"]  # and the temp file is gone
    monkeypatch.undo()

    save_file({"new": np.ones(2)}, path)
    assert list(load_file(path)) == ["new"]
    assert path.stat().st_mode & 0o777 == 0o600


def test_save_file_validates_before_touching_disk(tmp_path):
    with pytest.raises(ArgumentError):
        save_file({"x": "not an array"}, tmp_path / "w.safetensors")
    assert os.listdir(tmp_path) == []


def test_load_file_errors_name_the_path(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x01\x02")
    with pytest.raises(SerializationError, match=r"bad\.safetensors: not a readable"):
        load_file(path)
    with pytest.raises(SerializationError, match=r"bad\.safetensors"):
        weights.load_metadata(path)
    with pytest.raises(FileNotFoundError):
        load_file(tmp_path / "missing.safetensors")


def _real_library():
    return pytest.importorskip("safetensors.numpy")


def test_byte_identical_to_safetensors(tmp_path):
    stn = _real_library()
    rng = np.random.default_rng(1)
    tensors = {f"{np.dtype(d).name}_{i}": (rng.random((i + 1, 2)) * 9).astype(d)
               for i, d in enumerate(DTYPES)}  # fmt: skip
    tensors.update(
        {"0d": np.array(2.0, np.float32), "empty": np.zeros((2, 0), np.int8), "é\n\"x": np.ones(1)}
    )
    for metadata in (None, {}, {"format": "np"}):
        assert save_bytes(tensors, metadata) == stn.save(tensors, metadata)
    stn.save_file(tensors, tmp_path / "ref.safetensors")
    save_file(tensors, tmp_path / "kiln.safetensors")
    ref = (tmp_path / "ref.safetensors").read_bytes()
    assert (tmp_path / "kiln.safetensors").read_bytes() == ref
    # Each side reads the other's output.
    assert_same(load_bytes(ref)[0], {k: tensors[k] for k in sorted(tensors)})
    theirs = stn.load(save_bytes(tensors, {"a": "1", "b": "2"}))
    assert_same({k: theirs[k] for k in sorted(theirs)}, {k: tensors[k] for k in sorted(tensors)})


@settings(max_examples=30, deadline=None)
@given(tensor_dicts)
def test_random_byte_identical_to_safetensors(tensors):
    stn = _real_library()
    assert save_bytes(tensors) == stn.save(tensors)


def test_load_file_returns_a_dict_that_load_state_dict_takes(tmp_path):
    from kiln import nn

    model = nn.Linear(3, 2)
    save_file(model.state_dict(), tmp_path / "m.safetensors")
    fresh = nn.Linear(3, 2)
    fresh.load_state_dict(load_file(tmp_path / "m.safetensors"))
    np.testing.assert_array_equal(fresh.weight.detach().numpy(), model.weight.detach().numpy())


def test_half_and_bfloat16_files_load(tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    stn = _real_library()
    values = np.array([1.5, -2.25, 3e-3], np.float32)
    path = tmp_path / "h.safetensors"
    stn.save_file({"h": values.astype(np.float16), "b": values.astype(ml_dtypes.bfloat16)}, path)
    loaded = load_file(path)
    assert loaded["h"].dtype == np.float16 and loaded["b"].dtype == np.float32
    np.testing.assert_allclose(loaded["b"], values, rtol=1e-2)
    assert load_file(path, keep_bfloat16=True)["b"].dtype == ml_dtypes.bfloat16
