"""The torch runtime surface issue 12 added: devices, attribute suggestions, finfo/iinfo,
Generator and randperm, kiln.save/kiln.load."""

from __future__ import annotations

import io

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from kiln import nn
from kiln.errors import (
    ArgumentError,
    AttributeError_,
    DeviceError,
    KilnError,
    SerializationError,
)

# --------------------------------------------------------------------------------------
# devices


@pytest.mark.parametrize("call", [
    lambda: kiln.ones(2).to("cuda"),
    lambda: kiln.ones(2).to("cuda:0", kiln.float64),
    lambda: kiln.ones(2).to(device="mps"),
    lambda: kiln.ones(2).cuda(),
    lambda: nn.Linear(2, 2).to("cuda"),
    lambda: nn.Linear(2, 2).cuda(),
    lambda: kiln.device("cuda"),
    lambda: kiln.randperm(3, device="cuda"),
    lambda: nn.LSTM(2, 2, device="cuda"),
    lambda: nn.Linear(2, 2, device="cuda"),
    lambda: nn.Conv2d(2, 2, 3, device="cuda:0"),
    lambda: nn.LayerNorm(3, device="mps"),
    lambda: nn.ConvTranspose2d(2, 2, 3, device="cuda"),
])
def test_other_devices_say_kiln_runs_on_the_cpu(call):
    with pytest.raises(DeviceError, match="Kiln runs on the CPU only"):
        call()


def test_cpu_is_accepted_everywhere():
    x = kiln.ones(2)
    assert x.to("cpu") is x and x.cpu() is x and x.to(kiln.device("cpu")) is x
    assert x.to("cpu", kiln.float64).dtype == kiln.float64
    assert x.to(device="cpu", dtype=kiln.int64).dtype == kiln.int64
    assert x.to("cpu:0").dtype == kiln.float32
    assert x.to("float64").dtype == kiln.float64  # a dtype name is not a device
    assert x.to(kiln.ones(1, dtype=kiln.float64)).dtype == kiln.float64
    y = x.to("cpu", copy=True)
    assert y is not x and y.tolist() == x.tolist()
    m = nn.Linear(2, 2).to("cpu").to(kiln.device("cpu"), kiln.float64)
    assert m.weight.dtype == kiln.float64
    assert m.to(device="cpu", dtype=kiln.float32).weight.dtype == kiln.float32
    assert kiln.device("cpu") == "cpu" and str(kiln.device("cpu:0")) == "cpu:0"
    assert nn.Linear(2, 2, device="cpu") is not None and nn.GRU(2, 2, device=kiln.device("cpu"))
    assert not kiln.cuda.is_available()
    with pytest.raises(ArgumentError, match="Module.to: dtype must be floating"):
        m.to(kiln.int64)


def test_torch_devices_are_understood():
    torch = pytest.importorskip("torch")
    assert kiln.ones(2).to(torch.device("cpu")).device == "cpu"
    with pytest.raises(DeviceError):
        kiln.ones(2).to(torch.device("cuda"))


# --------------------------------------------------------------------------------------
# attribute suggestions


@pytest.mark.parametrize("get, owner, suggestion", [
    (lambda: kiln.zeroes, "module 'kiln'", "zeros"),
    (lambda: kiln.randprem, "module 'kiln'", "randperm"),
    (lambda: nn.Conv2D, "module 'kiln.nn'", "Conv2d"),
    (lambda: nn.LTSM, "module 'kiln.nn'", "LSTM"),
    (lambda: F.interpolat, "module 'kiln.nn.functional'", "interpolate"),
    (lambda: kiln.ones(1).unsqeeze, "'Tensor' object", "unsqueeze"),
])
def test_missing_attributes_suggest_the_closest_name(get, owner, suggestion):
    with pytest.raises(AttributeError) as info:
        get()
    assert isinstance(info.value, KilnError) and isinstance(info.value, AttributeError_)
    msg = str(info.value)
    assert msg.startswith(owner) and f"did you mean '{suggestion}'" in msg


def test_hasattr_and_protocol_probes_still_work():
    x = kiln.ones(2)
    assert not hasattr(x, "no_such_thing") and not hasattr(kiln, "no_such_thing")
    assert np.asarray(x).tolist() == [1.0, 1.0]
    assert kiln.nn.utils.clip_grad_norm_ is not None


# --------------------------------------------------------------------------------------
# finfo / iinfo


def test_importing_a_lazy_packages_submodule_builds_no_suggestion():
    import subprocess
    import sys

    code = ("import sys, kiln\nfrom kiln.artifacts import entries\n"
            "import kiln.artifacts as a\nprint('difflib' in sys.modules, a.entries is entries)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split() == ["False", "True"]
    with pytest.raises(AttributeError, match="did you mean 'load_compiled_function'"):
        kiln.artifacts.load_compiled_functon  # noqa: B018


def test_finfo_iinfo_match_torch():
    torch = pytest.importorskip("torch")
    for k, t in ((kiln.float32, torch.float32), (kiln.float64, torch.float64)):
        a, b = kiln.finfo(k), torch.finfo(t)
        for field in ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution"):
            assert getattr(a, field) == getattr(b, field), field
    for k, t in ((kiln.int32, torch.int32), (kiln.int64, torch.int64)):
        a, b = kiln.iinfo(k), torch.iinfo(t)
        assert (a.bits, a.max, a.min) == (b.bits, b.max, b.min)
    assert kiln.finfo().bits == 32
    with pytest.raises(KilnError, match="iinfo"):
        kiln.finfo(kiln.int64)


# --------------------------------------------------------------------------------------
# Generator, randperm


def test_generator_seeds_and_state():
    g = kiln.Generator().manual_seed(11)
    assert g.initial_seed() == 11
    a = kiln.randn(4, generator=g)
    b = kiln.randn(4, generator=kiln.Generator().manual_seed(11))
    assert a.tolist() == b.tolist()
    state = g.get_state()
    x = [kiln.rand(3, generator=g).tolist(), kiln.randint(0, 9, (4,), generator=g).tolist(),
         kiln.randperm(6, generator=g).tolist()]
    g.set_state(state)
    y = [kiln.rand(3, generator=g).tolist(), kiln.randint(0, 9, (4,), generator=g).tolist(),
         kiln.randperm(6, generator=g).tolist()]
    assert x == y
    # a private generator leaves the default one alone
    kiln.manual_seed(3)
    ref = kiln.rand(2).tolist()
    kiln.manual_seed(3)
    kiln.rand(5, generator=g)
    assert kiln.rand(2).tolist() == ref
    s = kiln.Generator().seed()
    assert isinstance(s, int)
    with pytest.raises(ArgumentError, match="set_state"):
        g.set_state(kiln.zeros(3))


def test_default_generator_state_round_trips():
    kiln.manual_seed(5)
    st = kiln.get_rng_state()
    a = kiln.randn(3).tolist()
    kiln.set_rng_state(st)
    assert kiln.randn(3).tolist() == a and kiln.initial_seed() == 5


def test_randperm_is_a_permutation_in_every_mode():
    kiln.manual_seed(0)
    eager = kiln.randperm(7)
    assert sorted(eager.tolist()) == list(range(7)) and eager.dtype == kiln.int64

    def f(x):
        return x + kiln.randperm(7, dtype=kiln.float32)

    for fn in (kiln.trace(f, kiln.zeros(7)), kiln.compile(f, backend="c")):
        kiln.manual_seed(0)
        assert fn(kiln.zeros(7)).tolist() == [float(v) for v in eager.tolist()]


def test_generator_is_refused_inside_a_trace():
    g = kiln.Generator()
    with pytest.raises(ArgumentError, match="generator= is eager-only"):
        kiln.trace(lambda x: x + kiln.rand(2, generator=g), kiln.zeros(2))


# --------------------------------------------------------------------------------------
# save / load


def test_save_load_round_trips_nested_containers(tmp_path):
    w = kiln.randn(2, 3, requires_grad=True)
    obj = {"model": {"w": w, "b": kiln.arange(3)}, "step": 7, "lr": 1e-3, "best": float("inf"),
           "tags": ("a", None, True), "hist": [w, kiln.tensor([True, False])], 4: "int key"}
    path = tmp_path / "ckpt.safetensors"
    kiln.save(obj, path)
    back = kiln.load(path)
    assert back["step"] == 7 and back["lr"] == 1e-3 and back["best"] == float("inf")
    assert back["tags"] == ("a", None, True) and back[4] == "int key"
    assert back["model"]["w"].tolist() == w.tolist() and back["model"]["w"].requires_grad
    assert back["hist"][0] is back["model"]["w"]  # shared tensors stay shared
    assert back["model"]["b"].dtype == kiln.int64 and back["hist"][1].dtype == kiln.bool_
    buf = io.BytesIO()
    kiln.save(kiln.ones(2), buf)
    assert kiln.load(io.BytesIO(buf.getvalue())).tolist() == [1.0, 1.0]


def test_narrow_integer_data_is_int64_and_from_numpy_refuses_it():
    # Kiln has no uint8 (docs/ops.md): values are kept as int64, masks must become bool.
    for dtype in (np.uint8, np.int16, np.int8):
        t = kiln.tensor(np.array([1, 0, 2], dtype))
        assert t.dtype == kiln.int64 and t.tolist() == [1, 0, 2]
        with pytest.raises(kiln.KilnError, match="not supported"):
            kiln.from_numpy(np.array([1, 0], dtype))
    x = kiln.arange(6).reshape(3, 2)
    mask = np.array([1, 0, 1], np.uint8)
    assert x[kiln.tensor(mask.astype(bool))].tolist() == [[0, 1], [4, 5]]


def test_save_load_keeps_0d_tensors_0d(tmp_path):
    # BatchNorm's num_batches_tracked is 0-d: a reloaded state dict must load back.
    bn = nn.BatchNorm2d(2)
    kiln.save({"bn": bn.state_dict(), "x": kiln.tensor(2.5)}, tmp_path / "bn.kiln")
    back = kiln.load(tmp_path / "bn.kiln")
    assert back["x"].shape == () and back["x"].item() == 2.5
    assert back["bn"]["num_batches_tracked"].shape == ()
    nn.BatchNorm2d(2).load_state_dict(back["bn"])


def test_state_dict_files_are_plain_safetensors(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    m = nn.Linear(3, 2)
    path = tmp_path / "m.safetensors"
    kiln.save(m.state_dict(), path)
    raw = st.load_file(str(path))
    assert sorted(raw) == ["bias", "weight"]
    m2 = nn.Linear(3, 2)
    m2.load_state_dict(kiln.load(path))
    assert m2.weight.tolist() == m.weight.tolist()
    st.save_file({"x": np.arange(4, dtype=np.int32)}, str(path))
    assert kiln.load(path)["x"].tolist() == [0, 1, 2, 3]


def test_load_refuses_pickles_and_bad_trees(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "t.pt"
    torch.save({"x": torch.ones(2)}, path)
    with pytest.raises(SerializationError, match="never unpickles"):
        kiln.load(path)
    from kiln.io.weights import save_bytes

    data = save_bytes({"x": np.ones(2, np.float32)}, {"kiln.tree": '{"t": "nope"}'})
    with pytest.raises(SerializationError, match="does not hold"):
        kiln.load(io.BytesIO(data))
    with pytest.raises(ArgumentError, match="save model.state_dict"):
        kiln.save(nn.Linear(2, 2), io.BytesIO())
    with pytest.raises(ArgumentError, match="cannot save a object"):
        kiln.save({"x": object()}, io.BytesIO())
    with pytest.raises(DeviceError):
        kiln.load(io.BytesIO(data), map_location="cuda")
