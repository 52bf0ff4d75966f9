"""kiln.aot_compile / kiln.aot_load: one library per model, dynamic dims, refusals."""

from __future__ import annotations

import hashlib
import json
import platform

import numpy as np
import pytest

import kiln
from kiln.errors import ArgumentError, BackendError, GuardError, SerializationError
from kiln.export.library import MAGIC, read_trailer, trailer_bytes

pytestmark = pytest.mark.usefixtures("c_compiler")


@pytest.fixture(scope="module")
def c_compiler():
    from kiln.backends.c.toolchain import find_compiler

    try:
        find_compiler()
    except kiln.KilnError:
        pytest.skip("no C compiler")


def _eager(net, *args, **kwargs):
    with kiln.no_grad():
        return net(*args, **kwargs)


@pytest.fixture(scope="module")
def mlp_lib(tmp_path_factory):
    kiln.manual_seed(0)
    net = kiln.models.MLP((784, 1024, 1024, 10)).eval()
    batch = kiln.Dim("batch", min=1, max=1024)
    path = str(tmp_path_factory.mktemp("mlp") / "mlp.so")
    out = kiln.aot_compile(net, (kiln.randn(8, 784),), dynamic_shapes={"input": {0: batch}},
                           options={"output_path": path})
    assert out == path
    return net, path


def test_w3_mlp_one_library_every_batch(mlp_lib):
    net, path = mlp_lib
    run = kiln.aot_load(path)
    for n in (1, 7, 64, 1024):
        x = kiln.randn(n, 784)
        np.testing.assert_allclose(run(x).numpy(), _eager(net, x).numpy(), rtol=1e-5,
                                   atol=1e-5)
    for n in (0, 1025):
        with pytest.raises(GuardError, match=r"\(batch\) must be in \[1, 1024\], got " + str(n)):
            run(kiln.randn(n, 784))


def test_library_is_weights_plus_little_and_needs_only_libc(mlp_lib):
    net, path = mlp_lib
    import os

    weights = sum(p.numel() * 4 for p in net.parameters())
    assert os.path.getsize(path) <= weights + 300_000
    with open(path, "rb") as f:
        elf, trailer = read_trailer(f.read())
    needed = _needed(elf)
    assert set(needed) <= {"libc.so.6", "libm.so.6", "libgomp.so.1", "ld-linux-x86-64.so.2",
                           "ld-linux-aarch64.so.1"}, needed
    m = trailer["manifest"]
    assert m["symbols"] == [{"name": "batch", "min": 1, "max": 1024}]
    assert m["weights"]["mode"] == "embed" and trailer["weights_offset"] % 64 == 0


def _needed(elf: bytes) -> list[str]:
    import shutil
    import subprocess
    import tempfile

    if shutil.which("readelf") is None:
        pytest.skip("no readelf")
    with tempfile.NamedTemporaryFile(suffix=".so") as f:
        f.write(elf)
        f.flush()
        out = subprocess.run(["readelf", "-d", f.name], capture_output=True, text=True).stdout
    return [line.split("[")[1].rstrip("]") for line in out.splitlines() if "NEEDED" in line]


def test_bad_inputs_are_refused_before_native_code(mlp_lib):
    _, path = mlp_lib
    run = kiln.aot_load(path)
    with pytest.raises(GuardError, match="dtype"):
        run(kiln.randn(3, 784).double())
    with pytest.raises(GuardError, match="rank"):
        run(kiln.randn(784))
    with pytest.raises(GuardError, match="dim 1"):
        run(kiln.randn(3, 783))
    with pytest.raises(GuardError, match="C-contiguous"):
        run(kiln.randn(784, 3).t())
    with pytest.raises(ArgumentError, match="positional"):
        run(kiln.randn(3, 784), kiln.randn(3, 784))
    with pytest.raises(ArgumentError, match="unexpected"):
        run(kiln.randn(3, 784), extra=1)


def test_device_and_options_errors(tmp_path):
    with pytest.raises(ArgumentError, match="device must be 'cpu'"):
        kiln.aot_load(str(tmp_path / "x.so"), device="cuda")
    with pytest.raises(ArgumentError, match=r"unknown option 'speed'(.|\n)*output_path"):
        kiln.aot_compile(lambda x: x, (kiln.ones(2),), options={"speed": 3})
    with pytest.raises(ArgumentError, match="isa must be one of"):
        kiln.aot_compile(lambda x: x, (kiln.ones(2),), options={"isa": "pentium"})


def _dict_model(inputs, scale=1.0):
    a, b = inputs["a"], inputs["b"]
    return ({"sum": a + b}, {"prod": a * b * scale, "neg": -a})


@pytest.mark.parametrize("weights", ["embed", "external"])
def test_dict_inputs_tuple_of_dict_outputs(tmp_path, weights):
    n = kiln.Dim("n", min=1, max=64)
    w = kiln.randn(3)

    def f(inputs, scale=1.0):
        out = _dict_model(inputs, scale)
        out[0]["sum"] = out[0]["sum"] + w  # a weight, embedded or external
        return out

    inputs = {"a": kiln.randn(4, 3), "b": kiln.randn(4, 3)}
    path = kiln.aot_compile(f, (inputs,), {"scale": 2.0},
                            dynamic_shapes={"inputs": {"a": {0: n}, "b": (n, None)}},
                            options={"output_path": str(tmp_path / "d.so"), "weights": weights})
    if weights == "external":
        assert (tmp_path / "d.safetensors").exists()
    run = kiln.aot_load(path)
    x = {"b": kiln.randn(9, 3), "a": kiln.randn(9, 3)}
    got = run(x, scale=2.0)
    want = f(x, 2.0)
    assert isinstance(got, tuple) and list(got[1]) == list(want[1])
    for g, wd in zip(got, want):
        for k in wd:
            np.testing.assert_allclose(g[k].numpy(), wd[k].numpy(), rtol=1e-6)
    with pytest.raises(GuardError, match="specialized"):
        run(x, scale=3.0)
    with pytest.raises(GuardError, match="earlier input"):
        run({"a": kiln.randn(5, 3), "b": kiln.randn(6, 3)}, scale=2.0)


def test_transformer_block_dynamic_seq(tmp_path):
    kiln.manual_seed(0)
    block = kiln.models.TransformerBlock(d_model=64, nhead=4, dim_feedforward=128).eval()
    seq = kiln.Dim("seq", min=1, max=256)
    path = kiln.aot_compile(block, (kiln.randn(2, 16, 64),),
                            dynamic_shapes={"input": {1: seq}},
                            options={"output_path": str(tmp_path / "t.so")})
    run = kiln.aot_load(path)
    for s in (1, 5, 16, 256):
        x = kiln.randn(2, s, 64)
        np.testing.assert_allclose(run(x).numpy(), _eager(block, x).numpy(), rtol=1e-4,
                                   atol=1e-5)
    with pytest.raises(GuardError, match=r"\(seq\) must be in \[1, 256\]"):
        run(kiln.randn(2, 257, 64))


def test_resnet18_dynamic_batch(tmp_path):
    kiln.manual_seed(0)
    net = kiln.models.resnet18(num_classes=10).eval()
    batch = kiln.Dim("batch", min=1, max=16)
    path = kiln.aot_compile(net, (kiln.randn(2, 3, 32, 32),),
                            dynamic_shapes={"input": {0: batch}},
                            options={"output_path": str(tmp_path / "r.so")})
    run = kiln.aot_load(path)
    for b in (1, 3):
        x = kiln.randn(b, 3, 32, 32)
        np.testing.assert_allclose(run(x).numpy(), _eager(net, x).numpy(), rtol=1e-4,
                                   atol=1e-4)
    with pytest.raises(GuardError, match="batch"):
        run(kiln.randn(17, 3, 32, 32))


# ---- refused files -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_lib(tmp_path_factory):
    w = kiln.randn(256)
    path = tmp_path_factory.mktemp("small") / "s.so"
    kiln.aot_compile(lambda x: x * w, (kiln.ones(256),), options={"output_path": str(path)})
    return path.read_bytes()


def _rewrite(data: bytes, change) -> bytes:
    elf, trailer = read_trailer(data)
    change(trailer)
    return bytes(elf) + trailer_bytes(trailer)


@pytest.mark.parametrize("case, error, match", [
    ("truncated", SerializationError, "no Kiln trailer"),
    ("code", SerializationError, "code was modified"),
    ("weights", SerializationError, "embedded weights were modified"),
    ("trailer", SerializationError, "trailer was modified"),
    ("version", SerializationError, "format version 99"),
    ("arch", BackendError, "compiled for sparc64"),
    ("features", BackendError, "lacks: no_such_feature"),
    ("foreign", SerializationError, "no Kiln trailer"),
])
def test_refused_before_dlopen(tmp_path, small_lib, case, error, match):
    data = small_lib
    elf, trailer = read_trailer(data)
    if case == "truncated":
        data = data[:len(data) // 2]
    elif case == "code":
        b = bytearray(data)
        b[64] ^= 1  # in the ELF program headers: never reached by dlopen
        data = bytes(b)
    elif case == "weights":
        b = bytearray(data)
        b[trailer["weights_offset"] + 5] ^= 1
        data = bytes(b)
    elif case == "trailer":
        b = bytearray(data)
        b[len(elf) + 10] ^= 1
        data = bytes(b)
    elif case == "version":
        data = _rewrite(data, lambda t: t["manifest"].update(format_version=99))
    elif case == "arch":
        data = _rewrite(data, lambda t: t["manifest"].update(arch="sparc64"))
    elif case == "features":
        from kiln.backends.c.cpu import cpu_flags

        if cpu_flags() is None:
            pytest.skip("no /proc/cpuinfo")
        data = _rewrite(data, lambda t: t["manifest"].update(cpu_features=["no_such_feature"]))
    elif case == "foreign":
        data = b"\x7fELF" + bytes(100)
    path = tmp_path / "bad.so"
    path.write_bytes(data)
    with pytest.raises(error, match=match):
        kiln.aot_load(str(path))


def test_external_weights_checked(tmp_path):
    w = kiln.randn(16)
    path = tmp_path / "e.so"
    kiln.aot_compile(lambda x: x + w, (kiln.ones(16),),
                     options={"output_path": str(path), "weights": "external"})
    wfile = tmp_path / "e.safetensors"
    b = bytearray(wfile.read_bytes())
    b[-1] ^= 1
    wfile.write_bytes(bytes(b))
    with pytest.raises(SerializationError, match="weights file"):
        kiln.aot_load(str(path))
    wfile.unlink()
    with pytest.raises(SerializationError, match="cannot be read"):
        kiln.aot_load(str(path))


def test_manifest_symbol_matches_trailer(small_lib, tmp_path):
    import ctypes

    path = tmp_path / "s.so"
    path.write_bytes(small_lib)
    run = kiln.aot_load(str(path))
    lib = run._lib
    inside = json.loads(lib.kiln_model_manifest(None).decode())
    assert inside == run.manifest
    assert inside["kiln_version"] == kiln.__version__ and inside["arch"] == \
        __import__("kiln.backends.c.cpu", fromlist=["x"]).normalize_arch(platform.machine())
    assert hashlib.sha256(small_lib).hexdigest()  # the file itself is stable bytes
    assert small_lib.endswith(MAGIC)
    _ = ctypes


def test_same_signature_false_takes_flat_tensors(tmp_path):
    path = kiln.aot_compile(lambda d: {"y": d["x"] * 2}, ({"x": kiln.ones(2)},),
                            options={"output_path": str(tmp_path / "f.so"),
                                     "same_signature": False})
    out = kiln.aot_load(path)(kiln.ones(2))
    assert isinstance(out, list) and out[0].tolist() == [2.0, 2.0]


def test_portable_isa_records_baseline_features(tmp_path):
    from kiln.backends.c.cpu import normalize_arch

    arch = normalize_arch(platform.machine())
    isa = {"x86_64": "x86-64-v2", "aarch64": "armv8-a"}.get(arch)
    if isa is None:
        pytest.skip(f"no portable isa named for {arch}")
    path = kiln.aot_compile(lambda x: x.exp(), (kiln.ones(4),),
                            options={"output_path": str(tmp_path / "p.so"), "isa": isa,
                                     "openmp": False})
    run = kiln.aot_load(path)
    assert "avx512f" not in run.manifest["cpu_features"] and not run.manifest["openmp"]
    np.testing.assert_allclose(run(kiln.ones(4)).numpy(), np.exp(np.ones(4, np.float32)))
    assert "libgomp.so.1" not in _needed(read_trailer((tmp_path / "p.so").read_bytes())[0])


def test_inspect_library_and_program(tmp_path, small_lib, capsys):
    from kiln.export.inspect import main

    lib = tmp_path / "s.so"
    lib.write_bytes(small_lib)
    assert main([str(lib)]) == 0
    text = capsys.readouterr().out
    assert "format: kiln.aot_library version 1" in text and "checks before loading: OK" in text
    assert "weights 1024 (embed)" in text
    bad = bytearray(small_lib)
    bad[64] ^= 1
    lib.write_bytes(bytes(bad))
    assert main([str(lib), "--json"]) == 0
    assert "code was modified" in json.loads(capsys.readouterr().out)["checks"]
    ep = kiln.export(lambda x: x * 2, (kiln.ones(3, 2),),
                     dynamic_shapes={"x": {0: kiln.Dim("rows", max=9)}})
    kiln.export.save(ep, tmp_path / "p.kep")
    assert main([str(tmp_path / "p.kep")]) == 0
    assert "rows in [1, 9]" in capsys.readouterr().out
    (tmp_path / "junk").write_bytes(b"hello")
    assert main([str(tmp_path / "junk")]) == 1
    assert "neither a library" in capsys.readouterr().err


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_skinny_matmul_of_transposed_weights(tmp_path, dtype):
    """Batch 1-4 linear layers take the built-in GEMM's dot-product path (no packing)."""
    rng = np.random.default_rng(0)
    w = kiln.from_numpy(rng.standard_normal((5, 37)).astype(dtype))
    m = kiln.Dim("m", min=1, max=8)
    path = kiln.aot_compile(lambda x: (x @ w.t(), x @ w.t()[:, :3].t().t()),
                            (kiln.from_numpy(rng.standard_normal((2, 37)).astype(dtype)),),
                            dynamic_shapes=({0: m},),
                            options={"output_path": str(tmp_path / f"s{dtype}.so")})
    run = kiln.aot_load(path)
    tol = 1e-5 if dtype == "float32" else 1e-12
    for rows in (1, 3, 4, 5, 8):
        x = rng.standard_normal((rows, 37)).astype(dtype)
        got = run(kiln.from_numpy(x))
        np.testing.assert_allclose(got[0].numpy(), x @ w.numpy().T, rtol=tol, atol=tol)
        np.testing.assert_allclose(got[1].numpy(), x @ w.numpy().T[:, :3], rtol=tol, atol=tol)
