"""kiln.export: dynamic_shapes forms, constraint violations, ExportedProgram, save/load."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln.errors import ArgumentError, GuardError, SerializationError
from kiln.export import ConstraintViolationError, ExportedProgram


def test_mlp_dynamic_batch_matches_eager():
    kiln.manual_seed(0)
    net = kiln.models.MLP((16, 32, 4)).eval()
    batch = kiln.Dim("batch", min=1, max=1024)
    ep = kiln.export(net, (kiln.randn(8, 16),), dynamic_shapes={"input": {0: batch}})
    assert isinstance(ep, ExportedProgram)
    assert ep.range_constraints == {"batch": (1, 1024)}
    assert set(ep.state_dict) == {k for k, _ in net.named_parameters()}
    run = ep.module()
    for n in (1, 7, 64):
        x = kiln.randn(n, 16)
        np.testing.assert_allclose(run(x).detach().numpy(), net(x).detach().numpy(),
                                   rtol=1e-5, atol=1e-6)
    for n in (0, 1025):
        with pytest.raises(GuardError, match=r"batch\) must be in \[1, 1024\]"):
            run(kiln.randn(n, 16))
    with pytest.raises(GuardError, match="dtype"):
        run(kiln.randn(3, 16).double())


def test_printing_names_signature_and_ranges():
    ep = kiln.export(kiln.nn.Linear(3, 2), (kiln.ones(4, 3),),
                     dynamic_shapes=((kiln.Dim("n", max=99), None),))
    text = str(ep)
    assert "def forward" in text and "parameters: weight, bias" in text
    assert "n: [1, 99]" in text


def test_guard_on_dynamic_dim_names_line_and_fix():
    def f(x):
        if x.shape[0] == 4:  # specializes batch
            return x * 2
        return x

    with pytest.raises(ConstraintViolationError) as info:
        kiln.export(f, (kiln.ones(4, 3),), dynamic_shapes={"x": {0: kiln.Dim("batch")}})
    msg = str(info.value)
    assert "dim batch" in msg and "batch == 4" in msg
    assert "test_program.py" in msg and "if x.shape[0] == 4" in msg
    assert "make that dim static" in msg


def test_independent_dims_turning_out_equal():
    with pytest.raises(ConstraintViolationError, match="one Dim"):
        kiln.export(lambda x, y: x + y, (kiln.ones(3), kiln.ones(3)),
                    dynamic_shapes={"x": {0: kiln.Dim("a")}, "y": {0: kiln.Dim("b")}})
    # one Dim on both: fine, and a call with different sizes is refused
    n = kiln.Dim("n")
    ep = kiln.export(lambda x, y: x + y, (kiln.ones(3), kiln.ones(3)),
                     dynamic_shapes={"x": {0: n}, "y": {0: n}})
    assert ep.module()(kiln.ones(5), kiln.ones(5)).shape == (5,)
    with pytest.raises(GuardError, match="earlier input"):
        ep.module()(kiln.ones(5), kiln.ones(6))


def test_range_narrowing_guard_suggests_range():
    with pytest.raises(ConstraintViolationError, match=r"Dim\('s', min=2"):
        kiln.export(lambda x: x.squeeze(0) if x.shape[0] == 1 else x * 1, (kiln.ones(3, 2),),
                    dynamic_shapes={"x": {0: kiln.Dim("s", min=1, max=50)}})


def _dict_model(inputs, scale=1.0):
    a, b = inputs["a"], inputs["b"]
    return ({"sum": a + b}, {"prod": a * b * scale, "neg": -a})


def test_dict_inputs_tuple_of_dict_outputs_and_save_load(tmp_path):
    n = kiln.Dim("n", min=1, max=32)
    inputs = {"a": kiln.randn(4, 2), "b": kiln.randn(4, 2)}
    ep = kiln.export(_dict_model, (inputs,), {"scale": 2.0},
                     dynamic_shapes={"inputs": {"a": {0: n}, "b": (n, None)}})
    path = tmp_path / "m.kep"
    kiln.export.save(ep, path)
    back = kiln.export.load(path)
    assert back.range_constraints == {"n": (1, 32)}
    x = {"a": kiln.randn(9, 2), "b": kiln.randn(9, 2)}
    want = _dict_model(x, 2.0)
    got = back.module()(x, scale=2.0)
    assert isinstance(got, tuple) and set(got[0]) == {"sum"} and set(got[1]) == {"prod", "neg"}
    for w, g in zip(want, got):
        for k in w:
            np.testing.assert_allclose(g[k].numpy(), w[k].numpy(), rtol=1e-6)
    with pytest.raises(GuardError, match="specialized"):
        back.module()(x, scale=3.0)


def test_load_refuses_tampered_and_foreign(tmp_path):
    ep = kiln.export(kiln.nn.Linear(3, 2), (kiln.ones(4, 3),))
    path = tmp_path / "m.kep"
    kiln.export.save(ep, path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # a byte of the weights
    path.write_bytes(bytes(data))
    with pytest.raises(SerializationError, match="digest"):
        kiln.export.load(path)
    path.write_bytes(kiln.weights.save_bytes({"w": np.ones(2, np.float32)}))
    with pytest.raises(SerializationError, match="not a Kiln exported program"):
        kiln.export.load(path)


@pytest.mark.parametrize("spec, match", [
    ({"y": {0: kiln.Dim("n")}}, "no argument named 'y'"),
    ({"x": {2: kiln.Dim("n")}}, "out of range"),
    ({"x": (kiln.Dim("n"),)}, "one entry per dim"),
    ({"x": {0: 3}}, "expected a kiln.Dim"),
    ({"x": {0: kiln.Dim("n", min=5)}}, "outside the range"),
    ([None, None], "expected 1 specs"),
])
def test_bad_dynamic_shapes(spec, match):
    with pytest.raises(ArgumentError, match=match):
        kiln.export(lambda x: x + 1, (kiln.ones(2, 3),), dynamic_shapes=spec)


def test_args_must_be_a_tuple():
    with pytest.raises(ArgumentError, match="tuple"):
        kiln.export(lambda x: x, kiln.ones(2))


def test_dim_accepts_none_like_torch():
    assert kiln.Dim("b", min=None, max=None) == kiln.Dim("b")
    with pytest.raises(ArgumentError, match="int or None"):
        kiln.Dim("b", min=1.5)


def test_buffers_and_transformer_seq_len():
    kiln.manual_seed(0)
    block = kiln.models.TransformerBlock(d_model=32, nhead=4, dim_feedforward=64).eval()
    seq = kiln.Dim("seq", min=1, max=128)
    ep = kiln.export(block, (kiln.randn(2, 8, 32),), dynamic_shapes={"input": {1: seq}})
    x = kiln.randn(2, 13, 32)
    np.testing.assert_allclose(ep.module()(x).detach().numpy(), block(x).detach().numpy(),
                               rtol=1e-4, atol=1e-5)
