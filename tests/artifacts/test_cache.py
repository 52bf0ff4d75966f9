"""The compile cache behind every kiln.compile: warm and full hits, weights bound at load,
bad entries rebuilt, unsafe or read-only directories, eviction, explain_miss, processes."""

from __future__ import annotations

import os
import pathlib
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from artifacts.helpers import BACKENDS, has_compiler
from kiln.artifacts import CacheWarning, explain_miss
from kiln.artifacts import store as store_mod
from kiln.models import MLP

ROOT = pathlib.Path(__file__).resolve().parents[2]




@pytest.fixture
def cache_dir(machine) -> pathlib.Path:  # noqa: ANN001
    return machine("a")


def _entries(root: pathlib.Path) -> list[pathlib.Path]:
    return sorted((root / "compiled" / "entries").glob("??/*.kart"))


def _step(model: MLP, backend: str) -> kiln.compiler.CompiledCallable:
    return kiln.compile(lambda x, y: F.cross_entropy(model(x), y), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_warm_hit_without_tracing_binds_live_weights(cache_dir: pathlib.Path,
                                                      backend: str) -> None:
    kiln.manual_seed(0)
    model = MLP((6, 8, 3))
    x, y = kiln.randn(4, 6), kiln.randint(0, 3, (4,))
    first = _step(model, backend)
    first(x, y).backward()
    assert first.cache_info()["traces"] >= 1 and len(_entries(cache_dir)) == 1
    with kiln.no_grad():  # new weights: a hit must read them, not the stored ones
        for p in model.parameters():
            p.mul_(0.5)
    model.zero_grad()
    again = _step(model, backend)  # a new CompiledCallable: an in-memory miss
    loss = again(x, y)
    loss.backward()
    assert again.cache_info()["traces"] == 0
    grads = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    want = F.cross_entropy(model(x), y)
    want.backward()
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    for g, p in zip(grads, model.parameters(), strict=True):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_inference_entry_hit(cache_dir: pathlib.Path, backend: str) -> None:
    kiln.manual_seed(1)
    model = MLP((5, 7, 2))
    x = kiln.randn(3, 5)
    with kiln.no_grad():
        kiln.compile(model, backend=backend)(x)
        other = MLP((5, 7, 2))  # same structure, other weights
        f = kiln.compile(other, backend=backend)
        got = f(x)
        assert f.cache_info()["traces"] == 0
        np.testing.assert_allclose(got.numpy(), other(x).numpy(), rtol=1e-5, atol=1e-6)


def test_full_hit_after_trace_when_the_fingerprint_differs(cache_dir: pathlib.Path,
                                                           capsys: pytest.CaptureFixture
                                                           ) -> None:
    x = kiln.randn(5)
    kiln.compile(lambda x: (x * 2.0).exp())(x)
    # Another code object (a different default argument) with the same graph: traced,
    # then found by the full key.
    f = kiln.compile(lambda x, unused=None: (x * 2.0).exp())
    os.environ["KILN_DEBUG"] = "1"
    try:
        np.testing.assert_allclose(f(x).numpy(), np.exp(2.0 * x.numpy()), rtol=1e-6)
    finally:
        del os.environ["KILN_DEBUG"]
    err = capsys.readouterr().err
    assert "[kiln.cache] hit" in err and "graph=" in err and "toolchain=" in err
    assert f.cache_info()["traces"] == 1 and len(_entries(cache_dir)) == 1


def test_corrupt_entry_is_reported_once_dropped_and_rebuilt(cache_dir: pathlib.Path) -> None:
    x = kiln.randn(4)
    kiln.compile(lambda x: x.sin() + 1.0)(x)
    (path,) = _entries(cache_dir)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.warns(CacheWarning, match="refused.*SHA-256"):
        out = kiln.compile(lambda x: x.sin() + 1.0)(x)
    np.testing.assert_allclose(out.numpy(), np.sin(x.numpy()) + 1.0, rtol=1e-6)
    (again,) = _entries(cache_dir)
    assert again.read_bytes() != bytes(data)  # rebuilt


def test_mis_signed_native_entry_is_refused(cache_dir: pathlib.Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    if not has_compiler():
        pytest.skip("no C compiler")
    monkeypatch.setenv("KILN_CACHE_SECRET", "writer")
    x = kiln.randn(4)
    kiln.compile(lambda x: x.cos() * 3.0, backend="c")(x)
    monkeypatch.setenv("KILN_CACHE_SECRET", "reader")  # another key: not our entry
    with pytest.warns(CacheWarning, match="does not verify"):
        f = kiln.compile(lambda x: x.cos() * 3.0, backend="c")
        np.testing.assert_allclose(f(x).numpy(), np.cos(x.numpy()) * 3.0, rtol=1e-6)


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_directory_others_can_write_is_refused(cache_dir: pathlib.Path) -> None:
    cache_dir.mkdir(parents=True)
    os.chmod(cache_dir, 0o777)
    with pytest.warns(CacheWarning, match="writable by other users"):
        f = kiln.compile(lambda x: x + 1.0)
        f(kiln.ones(2))
    assert not (cache_dir / "compiled").exists()
    f(kiln.ones(3))  # said once


def test_unwritable_directory_degrades_with_one_warning(cache_dir: pathlib.Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_mod, "write_atomic", refuse)
    with pytest.warns(CacheWarning, match="No space left"):
        kiln.compile(lambda x: x * 5.0)(kiln.ones(2))
    out = kiln.compile(lambda x: x * 6.0)(kiln.ones(2))  # no second warning
    assert out.tolist() == [6.0, 6.0]


def test_directories_are_owner_only(cache_dir: pathlib.Path) -> None:
    kiln.compile(lambda x: x - 1.0)(kiln.ones(2))
    for sub in ("compiled", "compiled/entries", "compiled/warm", "compiled/locks"):
        assert stat.S_IMODE((cache_dir / sub).stat().st_mode) == 0o700


def test_lru_eviction_keeps_the_cap(cache_dir: pathlib.Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    x = kiln.ones(3)
    kiln.compile(lambda x: x + 1.0)(x)
    size = _entries(cache_dir)[0].stat().st_size
    monkeypatch.setenv("KILN_CACHE_MAX_BYTES", str(int(size * 2.5)))
    for k in range(2, 6):
        kiln.compile(lambda x, k=k: x + float(k))(x)
    kept = _entries(cache_dir)
    assert 1 <= len(kept) <= 2
    assert sum(p.stat().st_size for p in kept) <= size * 2.5


def test_explain_miss_names_the_ingredient(cache_dir: pathlib.Path) -> None:
    f = kiln.compile(lambda x: x.relu() * 2.0)
    f(kiln.ones(2, 3))
    assert explain_miss(f, kiln.ones(2, 3)).startswith("hit")
    why = explain_miss(f, kiln.ones(4, 3))
    assert why.startswith("miss") and "inputs" in why and "backend" not in why
    other = kiln.compile(lambda x: x.relu() * 2.0, options={"unused": 1})
    assert "differs in: backend" in explain_miss(other, kiln.ones(2, 3))
    with pytest.raises(kiln.KilnError, match="what kiln.compile returned"):
        explain_miss(lambda x: x, kiln.ones(2))


_SCRIPT = textwrap.dedent("""
    import sys
    import kiln, kiln.nn.functional as F
    from kiln.models import MLP
    kiln.manual_seed(0)
    model = MLP((8, 16, 4))
    x, y = kiln.randn(5, 8), kiln.randint(0, 4, (5,))
    step = kiln.compile(lambda x, y: F.cross_entropy(model(x), y), backend=sys.argv[1])
    loss = step(x, y)
    loss.backward()
    print(step.cache_info()["traces"], repr(loss.item()),
          repr(float(model.layers[0].weight.grad.sum())))
""")


@pytest.mark.parametrize("backend", BACKENDS)
def test_fresh_processes_share_the_cache(cache_dir: pathlib.Path, tmp_path: pathlib.Path,
                                         backend: str) -> None:
    script = tmp_path / "step.py"
    script.write_text(_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    runs = [subprocess.run([sys.executable, str(script), backend], env=env, text=True,
                           capture_output=True, timeout=300) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr[-2000:]
    (t1, *v1), (t2, *v2) = (r.stdout.split() for r in runs)
    assert int(t1) >= 1 and int(t2) == 0  # the second process does not trace
    assert v1 == v2


def test_concurrent_processes_leave_one_intact_entry(cache_dir: pathlib.Path,
                                                     tmp_path: pathlib.Path) -> None:
    script = tmp_path / "one.py"
    script.write_text("import kiln\nprint(kiln.compile(lambda x: (x * 3.0).tanh())"
                      "(kiln.ones(4)).tolist())\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    procs = [subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-500:] for _, e in outs]
    assert len({o for o, _ in outs}) == 1
    (entry,) = _entries(cache_dir)
    from kiln.backends import container

    container.read(entry.read_bytes())  # intact
