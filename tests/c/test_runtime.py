"""Runtime behaviour: constants read at call time, output buffers, debugging output, flags,
serialization (also in a fresh process with no C compiler), kiln.compile front door."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from kiln.backends import deserialize
from kiln.errors import CompileError, SerializationError
from tests.c.conftest import compile_fn


def test_constants_are_read_at_call_time():
    w = kiln.randn(5)
    b = kiln.randn(5)
    _, fn = compile_fn(lambda x: F.gelu(x * w + b), kiln.randn(3, 5))
    x = kiln.randn(3, 5)
    first = fn(x)[0].numpy().copy()
    w._data *= 2.0  # in place, like an optimizer step
    second = fn(x)[0].numpy()
    np.testing.assert_allclose(second, F.gelu(x * w + b).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(first, second)
    b._data = np.zeros(5, np.float32)  # rebinding
    np.testing.assert_allclose(fn(x)[0].numpy(), F.gelu(x * w).numpy(), rtol=1e-5, atol=1e-6)


def test_outputs_are_tensors_and_pooled_buffers_never_alias_live_outputs():
    x = kiln.randn(256, 512)  # 512 KiB outputs: served by the pool
    _, fn = compile_fn(lambda x: (x * 2, x + 1), x)
    a, b = fn(x)
    assert isinstance(a, kiln.Tensor) and a.dtype == kiln.float32
    keep = a.numpy().copy()
    c, d = fn(x * 3)  # a and b are alive: their blocks must not be handed out again
    np.testing.assert_array_equal(a.numpy(), keep)
    assert not np.shares_memory(a.numpy(), c.numpy())
    view = c.numpy()[1:3]
    del c, d
    fn(x)  # c's block may come back only after its last view dies
    np.testing.assert_array_equal(view, (x * 6).numpy()[1:3])


def test_graph_outputs_that_are_inputs_or_constants():
    w = kiln.randn(3)
    _, fn = compile_fn(lambda x: (x, w, x * w), kiln.randn(3))
    x = kiln.randn(3)
    out = fn(x)
    assert out[0] is x and out[1] is w
    np.testing.assert_allclose(out[2].numpy(), (x * w).numpy())


def test_debug_levels_print_source_command_and_timings(tmp_path):
    code = textwrap.dedent("""
        import kiln
        from kiln.backends.c.backend import compile_c
        gm = kiln.trace(lambda x: (x * 3.5).cos(), kiln.ones(4))
        fn = compile_c(gm)
        fn(kiln.ones(4))
    """)
    env = dict(os.environ, KILN_DEBUG="3")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert "kiln_run" in res.stderr and "-march=native" in res.stderr  # C source, command
    assert "computes cos; fuses mul" in res.stderr  # kernel comment maps to graph nodes
    assert "per-kernel times" in res.stderr


def test_flags_recorded_and_portable_target():
    gm, fn = compile_fn(lambda x: x.exp(), kiln.ones(2))
    assert "-march=native" in fn.plan["flags"] and fn.plan["target"] == "native"
    from kiln.backends.c.backend import compile_c

    port = compile_c(gm, None, target="portable")
    assert "-march=native" not in port.plan["flags"] and port.plan["target"] == "portable"
    np.testing.assert_allclose(port(kiln.ones(2))[0].numpy(), np.exp(np.ones(2, np.float32)))


def test_compiler_error_shows_message_and_keeps_source():
    from kiln.backends.c.toolchain import compile_shared

    with pytest.raises(CompileError, match="sources kept in") as info:
        compile_shared({"bad.c": "int f(void) { return undefined_name; }"})
    assert "undefined_name" in str(info.value)


def test_serialize_roundtrip_in_process():
    w = kiln.randn(4, 3)
    gm, fn = compile_fn(lambda x: F.softmax(x @ w, -1), kiln.randn(5, 4),
                        dynamic={"x": {0: "B"}})
    data = fn.serialize()
    back = deserialize(data)
    x = kiln.randn(7, 4)
    np.testing.assert_array_equal(back(x)[0].numpy(), fn(x)[0].numpy())
    assert back.source == fn.source and back.plan["flags"] == fn.plan["flags"]
    with pytest.raises(SerializationError):
        deserialize(data[:-10])
    tampered = bytearray(data)
    tampered[len(data) // 2] ^= 0xFF
    with pytest.raises(SerializationError):
        deserialize(bytes(tampered))


def test_cfunction_deserialize_is_the_inverse_of_serialize():
    from kiln.backends import get_backend
    from kiln.backends.c import CFunction
    from kiln.backends.interpret import InterpretedFunction

    gm, fn = compile_fn(lambda x: x.exp() + 1.0, kiln.randn(3))
    back = CFunction.deserialize(fn.serialize())
    x = kiln.randn(3)
    np.testing.assert_array_equal(back(x)[0].numpy(), fn(x)[0].numpy())
    other = get_backend("interpret")(gm, None).serialize()
    with pytest.raises(SerializationError, match="'interpret' artifact"):
        CFunction.deserialize(other)
    with pytest.raises(SerializationError, match="'c' artifact"):
        InterpretedFunction.deserialize(fn.serialize())
    assert InterpretedFunction.deserialize(other)(x)[0].tolist() == (x.exp() + 1.0).tolist()


def test_deserialized_function_runs_in_fresh_process_without_compiler(tmp_path):
    w = kiln.randn(6, 4)
    gm, fn = compile_fn(lambda x: (F.gelu(x @ w).sum(1), x.argmax(1)), kiln.randn(3, 6),
                        dynamic={"x": {0: "B"}})
    path = tmp_path / "fn.kiln"
    path.write_bytes(fn.serialize())
    x = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    want = [t.numpy() for t in gm.forward(kiln.Tensor(x))]
    code = textwrap.dedent(f"""
        import numpy as np, kiln
        from kiln.backends import deserialize
        fn = deserialize(open({str(path)!r}, "rb").read())
        out = fn(kiln.Tensor(np.load({str(tmp_path / 'x.npy')!r})))
        np.save({str(tmp_path / 'a.npy')!r}, out[0].numpy())
        np.save({str(tmp_path / 'b.npy')!r}, out[1].numpy())
    """)
    env = dict(os.environ, CC="/nonexistent/cc", PATH="/nonexistent")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(np.load(tmp_path / "a.npy"), want[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), want[1])


def test_kiln_compile_front_door():
    f = kiln.compile(lambda x: F.layer_norm(x, (8,)) * 2, backend="c")
    x = kiln.randn(3, 8)
    np.testing.assert_allclose(f(x).numpy(), (F.layer_norm(x, (8,)) * 2).numpy(), rtol=1e-5,
                               atol=1e-5)
    # the front door copies a non-contiguous input (the raw compile_c function raises)
    t = kiln.Tensor(np.ascontiguousarray(x.numpy().T).T)
    assert not t.numpy().flags.c_contiguous
    np.testing.assert_allclose(f(t).numpy(), (F.layer_norm(x, (8,)) * 2).numpy(), rtol=1e-5,
                               atol=1e-5)
