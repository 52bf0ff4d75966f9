"""The saved script file: round trips, a fresh process without the model's class, refusal
of tampered / truncated / future-version files, and a fuzz test of mutated files."""

from __future__ import annotations

import io
import json
import os
import pathlib
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import kiln
from kiln.errors import KilnError, SerializationError
from kiln.jit import archive

ROOT = pathlib.Path(__file__).resolve().parents[2]


class Gated(kiln.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = kiln.nn.Linear(3, 3)

    def forward(self, x):
        h = self.fc(x)
        if h.sum() > 0:
            h = h.relu() * 2
        else:
            h = -h
        return h


def _saved(extra=None) -> tuple[bytes, kiln.jit.ScriptModule]:
    kiln.manual_seed(0)
    m = kiln.jit.script(Gated())
    m(kiln.ones(2, 3))
    return m.save_to_buffer(_extra_files=extra or {}), m


def test_save_load_same_outputs_and_extra_files(tmp_path):
    data, m = _saved({"meta.json": '{"a": 1}', "blob.bin": b"\x00\x01"})
    path = tmp_path / "model.kjit"
    m.save(path, _extra_files={"meta.json": '{"a": 1}', "blob.bin": b"\x00\x01"})
    assert path.read_bytes() == data  # deterministic
    extra: dict = {}
    loaded = kiln.jit.load(path, _extra_files=extra)
    assert extra == {"meta.json": b'{"a": 1}', "blob.bin": b"\x00\x01"}
    for x in (kiln.ones(2, 3), -kiln.ones(2, 3) * 4):
        np.testing.assert_allclose(loaded(x).numpy(), m(x).detach().numpy(), rtol=1e-6)
    assert kiln.jit.load(io.BytesIO(data)).save_to_buffer(
        {"meta.json": '{"a": 1}', "blob.bin": b"\x00\x01"}) == data
    want = {"meta.json": None}
    kiln.jit.load(data, _extra_files=want)
    assert want == {"meta.json": b'{"a": 1}'}
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert names == ["version", "program.json", "tensors.safetensors", "code/forward.py",
                     "extra/blob.bin", "extra/meta.json", "manifest.json"]
    assert "if bool(" in loaded.code
    compiled = kiln.compile(loaded)
    np.testing.assert_allclose(compiled(-kiln.ones(2, 3)).numpy(),
                               loaded(-kiln.ones(2, 3)).numpy(), rtol=1e-6)


def test_load_in_a_fresh_process_without_the_class(tmp_path):
    data, m = _saved()
    (tmp_path / "m.kjit").write_bytes(data)
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    np.save(tmp_path / "want.npy", m(kiln.tensor(x)).detach().numpy())
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np, kiln\n"
        "m = kiln.jit.load(sys.argv[1] + '/m.kjit')\n"
        "got = m(kiln.tensor(np.load(sys.argv[1] + '/x.npy'))).numpy()\n"
        "assert 'test_archive' not in sys.modules and not hasattr(sys.modules['__main__'],"
        " 'Gated')\n"
        "print(float(abs(got - np.load(sys.argv[1] + '/want.npy')).max()))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip()) < 1e-6


def _rezip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, d in members.items():
            zf.writestr(zipfile.ZipInfo(n, date_time=(1980, 1, 1, 0, 0, 0)), d)
    return buf.getvalue()


def _members(data: bytes) -> dict[str, bytes]:
    zf = zipfile.ZipFile(io.BytesIO(data))
    return {n: zf.read(n) for n in zf.namelist()}


def test_tampered_truncated_and_future_files_are_refused():
    data, _ = _saved()
    members = _members(data)
    # tampered: a weight changed (the manifest no longer matches)
    bad = dict(members)
    t = bytearray(bad["tensors.safetensors"])
    t[-1] ^= 0xFF
    bad["tensors.safetensors"] = bytes(t)
    with pytest.raises(SerializationError, match="SHA-256"):
        kiln.jit.load(_rezip(bad))
    # truncated
    with pytest.raises(SerializationError):
        kiln.jit.load(data[: len(data) // 2])
    # a future version, with a manifest that matches it
    fut = dict(members)
    fut["version"] = json.dumps({"format": "kiln.jit", "version": archive.VERSION + 1}).encode()
    man = json.loads(fut["manifest.json"])
    man["sha256"]["version"] = archive._sha(fut["version"])
    fut["manifest.json"] = json.dumps(man).encode()
    with pytest.raises(SerializationError, match="newer Kiln"):
        kiln.jit.load(_rezip(fut))
    # the code member is for people: changing it (manifest updated) is still refused
    code = dict(members)
    code["code/forward.py"] = b"import os\n"
    man = json.loads(code["manifest.json"])
    man["sha256"]["code/forward.py"] = archive._sha(code["code/forward.py"])
    code["manifest.json"] = json.dumps(man).encode()
    with pytest.raises(SerializationError):
        kiln.jit.load(_rezip(code))


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    kind = rng.integers(6)
    if kind == 0:  # flip a few bits
        for _ in range(rng.integers(1, 4)):
            i = rng.integers(len(b))
            b[i] ^= 1 << int(rng.integers(8))
    elif kind == 1:  # truncate
        b = b[: rng.integers(len(b))]
    elif kind == 2:  # insert bytes
        i = rng.integers(len(b) + 1)
        b[i:i] = rng.integers(0, 256, rng.integers(1, 9), dtype=np.uint8).tobytes()
    elif kind == 3:  # delete a run
        i = rng.integers(len(b))
        del b[i:i + int(rng.integers(1, 17))]
    elif kind == 4:  # overwrite a run with random bytes
        i = rng.integers(len(b))
        n = int(rng.integers(1, 33))
        b[i:i + n] = rng.integers(0, 256, min(n, len(b) - i), dtype=np.uint8).tobytes()
    else:  # set a byte to a boundary value (lengths, counts, offsets)
        i = rng.integers(len(b))
        b[i] = int(rng.choice([0, 1, 0x7F, 0x80, 0xFF]))
    return bytes(b)


def test_fuzz_mutated_files_never_crash_nor_load():
    data, _ = _saved({"note.txt": "x"})
    rng = np.random.default_rng(11)
    refused = 0
    for _ in range(2000):
        mutated = _mutate(data, rng)
        if mutated == data:
            continue
        try:
            kiln.jit.load(mutated)
        except KilnError:
            refused += 1
            continue
        raise AssertionError("a mutated file loaded")  # a silent acceptance
    assert refused >= 1990


# several input signatures in one file (format version 2)

def _saved_many() -> tuple[bytes, kiln.jit.ScriptModule, list]:
    kiln.manual_seed(0)
    m = kiln.jit.script(Gated())
    xs = [kiln.randn(2, 3), kiln.randn(5, 3), kiln.randn(4, 7, 3), kiln.randn(2, 3)]
    for x in xs:
        m(x)
    return m.save_to_buffer(_extra_files={"note.txt": "x"}), m, xs


def test_a_file_holds_every_signature_called():
    data, m, xs = _saved_many()
    members = _members(data)
    assert json.loads(members["version"])["version"] == 2
    assert [n for n in members if n.startswith(("programs/", "code/"))] == [
        "programs/1.json", "programs/2.json", "code/forward.py", "code/forward.1.py",
        "code/forward.2.py"]
    loaded = kiln.jit.load(data)
    assert len(loaded.graph_modules) == 3  # the repeated (2, 3) call is one signature
    for x in xs + [-xs[1].abs()]:
        np.testing.assert_allclose(loaded(x).numpy(), m(x).detach().numpy(), rtol=1e-6)
    with pytest.raises(kiln.errors.GuardError, match="signature 2: input x: expected rank 3"):
        loaded(kiln.randn(3, 4))
    # the parameters are stored once and shared by the loaded programs
    from kiln.io import weights
    arrays, _ = weights.load_bytes(members["tensors.safetensors"])
    assert sorted(arrays) == ["fc.bias", "fc.weight"]
    a, b, _ = loaded.graph_modules
    assert a.constants["fc.weight"] is b.constants["fc.weight"]
    # load_state_dict reaches every signature
    loaded.load_state_dict({k: kiln.zeros(*t.shape) for k, t in loaded.state_dict().items()})
    assert loaded(xs[1]).abs().sum().item() == 0
    assert kiln.jit.load(data).save_to_buffer({"note.txt": "x"}) == data  # deterministic


def test_one_signature_still_writes_version_1_and_old_files_load():
    data, _ = _saved()
    assert json.loads(_members(data)["version"])["version"] == 1
    fixtures = pathlib.Path(__file__).parent / "fixtures"
    extra: dict = {}
    old = kiln.jit.load(fixtures / "gated_v1.kjit", _extra_files=extra)  # written by Kiln 0.x
    x = kiln.tensor(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(old(x).numpy(), np.load(fixtures / "gated_v1_out.npy"))
    assert extra == {"note.txt": b"version 1"}


def _resigned(members: dict) -> bytes:
    man = {"sha256": {n: archive._sha(d) for n, d in members.items() if n != "manifest.json"}}
    return _rezip({**members, "manifest.json": json.dumps(man).encode()})


@pytest.mark.parametrize("edit", ["orphan program", "missing code", "gap", "v1 with many",
                                  "constant map names nothing", "constant map bad shape",
                                  "unread tensor", "too many"])
def test_malformed_multi_signature_files_are_refused(edit):
    data, _, _ = _saved_many()
    m = _members(data)
    if edit == "orphan program":
        m["programs/3.json"] = m["programs/1.json"]
    elif edit == "missing code":
        del m["code/forward.2.py"]
    elif edit == "gap":
        m["programs/4.json"] = m.pop("programs/2.json")
    elif edit == "v1 with many":
        m["version"] = json.dumps({"format": "kiln.jit", "version": 1}).encode()
    elif edit == "constant map names nothing":
        cm = json.loads(m["constants.json"])
        cm["1"]["fc.weight"] = "9/fc.weight"
        m["constants.json"] = json.dumps(cm).encode()
    elif edit == "constant map bad shape":
        m["constants.json"] = json.dumps({"1": {"fc.weight": 3}}).encode()
    elif edit == "unread tensor":
        from kiln.io import weights
        arrays, _ = weights.load_bytes(m["tensors.safetensors"])
        arrays["1/extra"] = np.zeros(2, np.float32)
        m["tensors.safetensors"] = weights.save_bytes(arrays)
    else:
        for k in range(3, archive.MAX_PROGRAMS + 1):
            m[f"programs/{k}.json"] = m["programs/1.json"]
            m[f"code/forward.{k}.py"] = m["code/forward.1.py"]
    with pytest.raises(SerializationError):
        kiln.jit.load(_resigned(m))


def test_fuzz_mutated_multi_signature_files_never_crash_nor_load():
    data, _, _ = _saved_many()
    rng = np.random.default_rng(12)
    for _ in range(500):
        mutated = _mutate(data, rng)
        if mutated == data:
            continue
        with pytest.raises(KilnError):
            kiln.jit.load(mutated)


def test_saved_signatures_are_bounded_and_explicit_args_save_one():
    from kiln.jit.script import MAX_SAVED_SIGNATURES

    m = kiln.jit.script(Gated())
    for n in range(1, MAX_SAVED_SIGNATURES + 3):
        m(kiln.randn(n, 3))
    saved = kiln.jit.load(m.save_to_buffer()).graph_modules
    assert len(saved) == MAX_SAVED_SIGNATURES
    assert saved[0].graph.placeholders[0].meta.shape == (3, 3)
    assert len(m.forward.program(kiln.randn(6, 3)).graph_modules) == 1
