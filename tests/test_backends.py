"""The backend front door: the registry, kiln.compile's cache per input signature, and the
byte envelope every CompiledFunction serializes into (refused cleanly when damaged)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import kiln
from kiln.backends import deserialize, get_backend, register_backend
from kiln.backends.envelope import MAGIC, read_envelope, write_envelope
from kiln.base import canonical
from kiln.errors import ArgumentError, BackendError, SerializationError


def _interpreted():
    gm = kiln.trace(lambda x, w: (x @ w).tanh().sum(1), kiln.ones(3, 4), kiln.ones(4, 2))
    return get_backend("interpret")(gm, None)


def test_interpret_function_round_trips_through_bytes():
    fn = _interpreted()
    rng = np.random.default_rng(0)
    x, w = (kiln.tensor(rng.normal(size=s), dtype=kiln.float32) for s in ((3, 4), (4, 2)))
    data = fn.serialize()
    assert data.startswith(MAGIC) and fn.serialize() == data  # deterministic bytes
    again = deserialize(data)
    np.testing.assert_array_equal(again(x, w)[0].numpy(), fn(x, w)[0].numpy())
    np.testing.assert_allclose(fn(x, w)[0].numpy(),
                               np.tanh(x.numpy() @ w.numpy()).sum(1), rtol=1e-6)


def test_damaged_bytes_are_refused_before_any_backend_sees_them():
    data = _interpreted().serialize()
    for cut in range(0, len(data), max(1, len(data) // 40)):
        with pytest.raises(SerializationError):
            deserialize(data[:cut])
    flipped = bytearray(data)
    flipped[-1] ^= 0xFF
    with pytest.raises(SerializationError, match="sha256"):
        deserialize(bytes(flipped))
    with pytest.raises(SerializationError, match="bad magic"):
        deserialize(b"PICKLE01" + data[8:])
    with pytest.raises(SerializationError, match="expected bytes"):
        deserialize("not bytes")
    with pytest.raises(SerializationError, match="no deserializer for backend 'nope'"):
        deserialize(write_envelope("nope", b"payload"))
    # A header that is valid JSON but not an object naming a backend.
    for header in ([1, 2], {"size": 0}):
        text = canonical.dumps(header).encode()
        with pytest.raises(SerializationError, match="corrupt compiled-function header"):
            read_envelope(MAGIC + struct.pack("<I", len(text)) + text)


def test_registry_errors_name_the_backend():
    with pytest.raises(BackendError, match=r"unknown backend 'cuda'; available: \[.*'interpret'"):
        kiln.compile(lambda x: x, backend="cuda")
    with pytest.raises(ArgumentError, match="compile_fn for 'broken' is not callable"):
        register_backend("broken", 42)
    with pytest.raises(ArgumentError, match="backend 'returns_int' returned int"):
        register_backend("returns_int", lambda gm, specs, **o: 42)
        kiln.compile(lambda x: x * 2.0, backend="returns_int")(kiln.ones(2))


def test_compile_traces_once_per_input_signature():
    seen = []

    def counting(gm, specs, **options):
        seen.append([(s.shape, s.dtype) for s in specs])
        return get_backend("interpret")(gm, specs)

    f = kiln.compile(lambda x, scale: x * scale, backend=counting)
    f(kiln.ones(2), 2.0)
    f(kiln.zeros(2), 2.0)  # same signature: cached
    assert f.cache_info() == {"signatures": 1, "traces": 1}
    f(kiln.ones(3), 2.0)  # shape
    f(kiln.ones(2, dtype=kiln.float64), 2.0)  # dtype
    f(kiln.ones(2), 3.0)  # a specialized Python value
    assert f(kiln.ones(2), 3.0).tolist() == [3.0, 3.0]
    assert f.cache_info() == {"signatures": 4, "traces": 4}
    x = kiln.ones(2, requires_grad=True)  # requires_grad: forward and backward graphs
    f(x, 2.0).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]
    assert f.cache_info() == {"signatures": 5, "traces": 5}
    assert seen[:4] == [[((2,), kiln.float32)], [((3,), kiln.float32)],
                        [((2,), kiln.float64)], [((2,), kiln.float32)]]


@pytest.mark.parametrize("backend", ["interpret", "c"])
def test_compiled_functions_take_inputs_by_placeholder_name(backend):
    if backend == "c":
        pytest.importorskip("kiln.backends.c.toolchain").find_compiler()
    gm = kiln.trace(lambda x, w: x @ w - w.sum(0), kiln.ones(3, 4), kiln.ones(4, 2))
    fn = get_backend(backend)(gm, None)
    rng = np.random.default_rng(0)
    x, w = (kiln.tensor(rng.normal(size=s), dtype=kiln.float32) for s in ((3, 4), (4, 2)))
    want = fn(x, w)[0].numpy()
    for args, named in (((), {"x": x, "w": w}), ((), {"w": w, "x": x}), ((x,), {"w": w})):
        np.testing.assert_array_equal(fn(*args, **named)[0].numpy(), want)
        np.testing.assert_array_equal(deserialize(fn.serialize())(*args, **named)[0].numpy(),
                                      want)
    with pytest.raises(ArgumentError, match=r"no input named 'y'; the inputs are \(x, w\)"):
        fn(x, y=w)
    with pytest.raises(ArgumentError, match=r"input 'x' given twice"):
        fn(x, x=x)
    with pytest.raises(ArgumentError, match=r"missing input\(s\) w"):
        fn(x=x)
    with pytest.raises(ArgumentError, match=r"takes 2 inputs \(x, w\), got 3 positional"):
        fn(x, w, x, w=w)


def test_a_graph_module_without_signature_binds_keywords_to_placeholders():
    from kiln.graph.module import GraphModule

    gm = kiln.trace(lambda x, y: x - y, kiln.ones(2), kiln.ones(2))
    bare = GraphModule(gm.graph, gm.constants, None)
    assert bare(y=kiln.ones(2), x=kiln.zeros(2))[0].tolist() == [-1.0, -1.0]
    with pytest.raises(ArgumentError, match="GraphModule: no input named 'z'"):
        bare(kiln.ones(2), z=kiln.ones(2))  # was silently dropped
