"""kiln.io.torch_checkpoint: torch.save files read without torch and without unpickling.

The checked-in fixtures (tests/io/fixtures, written once by torch 2.13) test the reader
where torch is absent; the torch tests write fresh files with the installed torch.
"""

from __future__ import annotations

import io
import pathlib
import pickle
import random
import struct
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

from benchmarks import fuzz_checkpoints as fuzz
from kiln import weights
from kiln.errors import SerializationError
from kiln.io import torch_checkpoint

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def expected() -> dict[str, np.ndarray]:
    """What tests/io/fixtures/state_dict*.pt hold (bf16 upcast to float32)."""
    w = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
    return {
        "linear.weight": w,
        "linear.bias": np.array([-1.5, 2.0], np.float32),
        "half": np.array([0.5, -1.0, 3.0], np.float16),
        "bf16": np.array([1.0, -0.25, 6.5], np.float32),
        "steps": np.arange(4, dtype=np.int64),
        "mask": np.array([True, False, True]),
        "transposed": w.T,
    }


def assert_same(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for k in want:
        assert got[k].dtype == want[k].dtype, k
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
        assert got[k].flags.c_contiguous and got[k].flags.writeable, k


@pytest.mark.parametrize("name", ["state_dict.pt", "state_dict_legacy.pt"])
def test_fixture_state_dicts_load_without_torch(name):
    assert_same(weights.load_file(FIXTURES / name), expected())
    obj = torch_checkpoint.load(FIXTURES / name)
    assert isinstance(obj, OrderedDict)


def test_bfloat16_kept_on_request():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    out = weights.load_file(FIXTURES / "state_dict.pt", keep_bfloat16=True)
    assert out["bf16"].dtype == ml_dtypes.bfloat16


def test_nested_checkpoint_flattens_to_dotted_names():
    obj = torch_checkpoint.load(FIXTURES / "checkpoint.pth")
    assert obj["epoch"] == 7 and obj["p"].tolist() == [1.0, 1.0]
    flat = weights.load_file(FIXTURES / "checkpoint.pth")
    assert list(flat) == [f"model.{k}" for k in expected()] + ["p"]


def test_a_pickled_module_is_refused_naming_the_global():
    with pytest.raises(SerializationError, match=r"module\.pt: pickle names global "
                                                 r"'torch\.nn\.modules\.linear\.Linear'"):
        weights.load_file(FIXTURES / "module.pt")


class Boom:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("payload, match", [
    (pickle.dumps(Boom(), protocol=2), r"global 'posix\.system'"),
    (pickle.dumps(Boom(), protocol=4), r"global 'posix\.system'"),
    (pickle.dumps({1, 2}, protocol=0), r"__builtin__\.set"),  # protocol 0: a REDUCE
    (b"\x80\x02cbuiltins\neval\nq\x00.", r"global 'builtins\.eval'"),
    (b"\x80\x02}q\x00(X\x01\x00\x00\x00a", "malformed pickle"),
    (b"\x80\x02h\x05.", "memo entry 5"),
    (b"\x80\x02ccollections\nOrderedDict\nK\x01\x85R.", "OrderedDict: expected no arguments"),
    (b"\x80\x02(K\x01K\x02\x86b.", "only OrderedDict may take"),
    (b"\x80\x02(.", "stack underflow"),
])  # fmt: skip
def test_hostile_pickles_are_refused(payload, match):
    with pytest.raises(SerializationError, match=match):
        torch_checkpoint.run_pickle(payload, None)


def test_storage_bounds_are_checked(tmp_path):
    pkl, data = fuzz.fixture_parts()
    data["0"] = data["0"][:8]  # linear.weight needs 24 bytes
    path = tmp_path / "short.pt"
    path.write_bytes(fuzz.zip_checkpoint(pkl, data))
    with pytest.raises(SerializationError, match=r"storage '0': 6 x float32 needs 24 bytes"):
        weights.load_file(path)


def test_compressed_entries_and_garbage_are_refused(tmp_path):
    pkl, data = fuzz.fixture_parts()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/data.pkl", pkl)
    (tmp_path / "deflated.pt").write_bytes(buf.getvalue())
    with pytest.raises(SerializationError, match="compressed"):
        weights.load_file(tmp_path / "deflated.pt")
    (tmp_path / "junk.pt").write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(SerializationError, match=r"junk\.pt"):
        weights.load_file(tmp_path / "junk.pt")


def fuzz_once(rng: random.Random, tmp: pathlib.Path) -> bool:
    path = tmp / "fuzz.pt"
    path.write_bytes(fuzz.case(rng))
    return fuzz.kiln_reads(path)  # anything but a SerializationError propagates


def test_fuzzed_checkpoints_fail_only_with_serialization_errors(tmp_path):
    rng = random.Random(1234)
    outcomes = [fuzz_once(rng, tmp_path) for _ in range(300)]
    assert outcomes.count(False) > 50  # the mutations do reach the checks


def test_random_opcode_streams_never_escape():
    rng = random.Random(7)
    ops = [b"}", b"]", b")", b"(", b"K\x01", b"X\x01\x00\x00\x00a", b"\x85", b"\x86", b"t",
           b"s", b"u", b"a", b"e", b"q\x00", b"h\x00", b"b", b"R", b"N", b"0", b"2", b"1",
           b"ccollections\nOrderedDict\n", b"ctorch\nFloatStorage\n", b"Q", b"\x94"]  # fmt: skip
    for _ in range(2000):
        body = b"".join(rng.choice(ops) for _ in range(rng.randint(1, 12)))
        try:
            torch_checkpoint.run_pickle(b"\x80\x02" + body + b".", lambda pid: pid)
        except SerializationError:
            pass


# against the installed torch ---------------------------------------------------------------


def test_files_written_by_torch(tmp_path):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    sd = OrderedDict(
        w=torch.randn(4, 5, generator=g), b=torch.randn(5, generator=g).double(),
        h=torch.randn(3, 2, generator=g).half(), i=torch.randint(-9, 9, (7,), dtype=torch.int32),
        u=torch.randint(0, 255, (3,), dtype=torch.uint8), s=torch.tensor(3.0),
        e=torch.zeros(0, 3), i8=torch.tensor([-3, 4], dtype=torch.int8),
        i16=torch.tensor([300], dtype=torch.int16),
    )  # fmt: skip
    base = torch.randn(6, 6, generator=g)
    sd["view"] = base[1:4, ::2]  # a strided view into a bigger storage
    sd["shared"] = base  # the same storage twice
    sd["bf"] = torch.randn(4, generator=g).bfloat16()
    for new_zip in (True, False):
        path = tmp_path / f"sd_{new_zip}.bin"
        torch.save(sd, path, _use_new_zipfile_serialization=new_zip)
        out = weights.load_file(path)
        ref = torch.load(path, weights_only=True)
        assert list(out) == list(ref)
        for k, v in ref.items():
            want = (v.float() if v.dtype == torch.bfloat16 else v).numpy()
            assert out[k].dtype == want.dtype and out[k].shape == want.shape, k
            np.testing.assert_array_equal(out[k], want, err_msg=k)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    torch.save(model.state_dict(), tmp_path / "m.pth")
    from kiln import nn

    mine = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    mine.load_state_dict(weights.load_file(tmp_path / "m.pth"))
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(mine.state_dict()[k].detach().numpy(), v.numpy())


def test_legacy_magic_is_checked(tmp_path):
    path = tmp_path / "x.pt"
    path.write_bytes(pickle.dumps(12345, protocol=2))
    with pytest.raises(SerializationError, match="no legacy magic"):
        weights.load_file(path)
    path.write_bytes(struct.pack("<Q", 3))
    with pytest.raises(SerializationError):
        weights.load_file(path)


def test_self_containing_and_exponential_objects_are_refused(tmp_path):
    loop: list = []
    loop.append(loop)
    laughs: list = [1]
    for _ in range(40):  # 2^40 leaves by reference, a few hundred bytes of pickle
        laughs = [laughs, laughs]
    deep: list = []
    for _ in range(150):
        deep = [deep]
    for obj, match in ((loop, "contains itself"), (laughs, "more than 1000000 steps"),
                       (deep, "nests deeper than 100")):
        path = tmp_path / "x.pt"
        path.write_bytes(fuzz.zip_checkpoint(pickle.dumps(obj, protocol=2), {}))
        with pytest.raises(SerializationError, match=match):
            torch_checkpoint.load(path)
