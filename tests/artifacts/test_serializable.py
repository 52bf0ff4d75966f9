"""Serializable callables: the container, backend functions, bundled AOT entries, fresh
processes without a C compiler, and a checked-in fixture of every format version."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from artifacts.helpers import BACKENDS, NEEDS_CC, loss_and_grads, run_without_compiler
from kiln.artifacts import ArtifactError, BundledAOTAutogradSerializableCallable
from kiln.backends import container, get_backend
from kiln.backends.interpret import InterpretedFunction
from kiln.base.trust import UntrustedArtifactError
from kiln.errors import GuardError
from kiln.models import MLP

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
ROOT = pathlib.Path(__file__).resolve().parents[2]




def test_container_round_trip_and_checks() -> None:
    data = container.write("k", {"a": b"xyz", "b": b""}, meta={"n": 1})
    art = container.read(data, kinds=("k",))
    assert art.sections == {"a": b"xyz", "b": b""} and art.meta == {"n": 1}
    assert not art.signed
    with pytest.raises(ArtifactError, match="bad magic"):
        container.read(b"NOTKILN!" + data[8:])
    with pytest.raises(ArtifactError, match="truncated"):
        container.read(data[:-1])
    with pytest.raises(ArtifactError, match="SHA-256"):
        container.read(data[:-2] + b"q" + data[-1:])
    with pytest.raises(ArtifactError, match="expected 'other'"):
        container.read(data, kinds=("other",))
    future = data[:8] + (container.FORMAT_VERSION + 1).to_bytes(4, "little") + data[12:]
    with pytest.raises(ArtifactError, match="newer Kiln"):
        container.read(future)


def test_signature_required_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILN_CACHE_SECRET", "one")
    data = container.write("k", {"a": b"code"}, sign=True)
    assert container.read(data, require_signature=True).signed
    with pytest.raises(UntrustedArtifactError, match="no signature|carries no"):
        container.read(container.write("k", {"a": b"code"}), require_signature=True)
    monkeypatch.setenv("KILN_CACHE_SECRET", "two")
    with pytest.raises(UntrustedArtifactError, match="does not verify"):
        container.read(data)


def test_foreign_platform_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILN_CACHE_SECRET", "s")
    monkeypatch.setattr(container, "this_platform", lambda: {"system": "plan9", "machine": "z"})
    data = container.write("k", {"a": b"code"}, sign=True)
    monkeypatch.undo()
    monkeypatch.setenv("KILN_CACHE_SECRET", "s")
    with pytest.raises(ArtifactError, match="plan9/z"):
        container.read(data, require_signature=True)


def test_foreign_cpu_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from kiln.backends.c import cpu

    monkeypatch.setenv("KILN_CACHE_SECRET", "s")
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"sse2"}))
    data = container.write("k", {"a": b"code"}, cpu_features=["avx512f"], sign=True)
    with pytest.raises(ArtifactError, match="lacks: avx512f"):
        container.read(data, require_signature=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_functions_are_serializable_callables(backend: str) -> None:
    gm = kiln.trace(lambda x: (x * 3.0).exp(), kiln.ones(3))
    fn = get_backend(backend)(gm, None)
    cls = type(fn)
    again = cls.deserialize_compile_artifacts(cls.serialize_compile_artifacts(fn))
    assert type(again) is cls
    x = kiln.randn(3)
    np.testing.assert_allclose(again(x)[0].numpy(), fn(x)[0].numpy(), rtol=1e-6)


@NEEDS_CC
def test_unsigned_native_function_is_refused() -> None:
    from kiln.backends.c.runtime import CFunction
    from kiln.backends.serializable import KIND

    fn = get_backend("c")(kiln.trace(lambda x: x + 1.0, kiln.ones(2)), None)
    forged = container.write(KIND, {"function": fn.serialize()}, meta={"backend": "c"})
    with pytest.raises(UntrustedArtifactError, match="not signed"):
        CFunction.deserialize_compile_artifacts(forged)
    with pytest.raises(ArtifactError, match="expected a CFunction|holds a"):
        interp = get_backend("interpret")(kiln.trace(lambda x: x + 1.0, kiln.ones(2)), None)
        CFunction.deserialize_compile_artifacts(
            InterpretedFunction.serialize_compile_artifacts(interp))


def _train_step(backend: str) -> tuple:
    kiln.manual_seed(0)
    model = MLP((8, 16, 4))
    step = kiln.compile(lambda x, y: F.cross_entropy(model(x), y), backend=backend)
    x, y = kiln.randn(5, 8), kiln.randint(0, 4, (5,))
    step(x, y).backward()
    return model, step, x, y


@pytest.mark.parametrize("backend", BACKENDS)
def test_bundled_round_trip_same_gradients(backend: str) -> None:
    model, step, x, y = _train_step(backend)
    (entry,) = step._aot.entries()
    bundled = BundledAOTAutogradSerializableCallable(entry, fn=step.fn)
    assert bundled.fw is entry.fw  # __getattr__ delegates
    model.zero_grad()
    want = step(x, y)
    want.backward()
    grads = [p.grad.numpy().copy() for p in model.parameters()]
    data = BundledAOTAutogradSerializableCallable.serialize_compile_artifacts(bundled)
    again = BundledAOTAutogradSerializableCallable.deserialize_compile_artifacts(data,
                                                                                 fn=step.fn)
    model.zero_grad()
    loss = again(x, y)
    loss.backward()
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    for g, p in zip(grads, model.parameters(), strict=True):
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-5, atol=1e-6)
    with pytest.raises(GuardError, match="input x"):
        again(kiln.randn(5, 9), y)


def test_bundled_module_binds_weights_at_load() -> None:
    kiln.manual_seed(0)
    model = MLP((4, 6, 2))
    f = kiln.compile(model)
    x = kiln.randn(3, 4)
    f(x).sum().backward()
    (entry,) = f._aot.entries()
    data = BundledAOTAutogradSerializableCallable.serialize_compile_artifacts(
        BundledAOTAutogradSerializableCallable(entry, module=model))
    other = MLP((4, 6, 2))  # other weights: the loaded function must read these
    g = BundledAOTAutogradSerializableCallable.deserialize_compile_artifacts(data, module=other)
    np.testing.assert_allclose(g(x).detach().numpy(), other(x).detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(kiln.KilnError, match="module="):
        BundledAOTAutogradSerializableCallable.deserialize_compile_artifacts(data)(x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fresh_process_without_compiler(backend: str, tmp_path: pathlib.Path) -> None:
    kiln.manual_seed(0)
    model = MLP((8, 16, 4))
    f = lambda x, y: F.cross_entropy(model(x), y)  # noqa: E731 (the script's twin)
    step = kiln.compile(f, backend=backend)
    x, y = kiln.randn(5, 8), kiln.randint(0, 4, (5,))
    want = loss_and_grads(model, step(x, y))
    (entry,) = step._aot.entries()
    data = BundledAOTAutogradSerializableCallable.serialize_compile_artifacts(
        BundledAOTAutogradSerializableCallable(entry, fn=f))
    (tmp_path / "f.kart").write_bytes(data)
    got = run_without_compiler(tmp_path, f"""
        from kiln.artifacts import BundledAOTAutogradSerializableCallable as B
        kiln.manual_seed(0)
        model = MLP((8, 16, 4))
        f = lambda x, y: F.cross_entropy(model(x), y)
        g = B.deserialize_compile_artifacts(open({str(tmp_path / "f.kart")!r}, "rb").read(),
                                            fn=f)
    """, x, y)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _fixture_function() -> tuple:
    """The program every format-version fixture holds (interpret backend: data only, so the
    fixture loads on any machine without a key)."""
    def f(x):
        return (x.sin() * x).sum()

    return f, kiln.tensor([0.5, -1.0, 2.0], requires_grad=True)


@pytest.mark.parametrize("version", container.READABLE)
def test_every_format_version_fixture_loads(version: int) -> None:
    data = (FIXTURES / f"aot_interpret_v{version}.kart").read_bytes()
    assert int.from_bytes(data[8:12], "little") == version
    g = BundledAOTAutogradSerializableCallable.deserialize_compile_artifacts(data)
    f, x = _fixture_function()
    loss = g(x)
    loss.backward()
    xs = np.array([0.5, -1.0, 2.0], np.float32)
    np.testing.assert_allclose(loss.item(), float((np.sin(xs) * xs).sum()), rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), np.sin(xs) + xs * np.cos(xs), rtol=1e-5)


def write_fixture() -> None:
    """Write this format version's fixture (keep the earlier ones: they must keep loading):
    ``cd tests && python -c "import artifacts.test_serializable as t; t.write_fixture()"``."""
    from kiln.aot import aot_function

    f, x = _fixture_function()
    aot = aot_function(f, get_backend("interpret"))
    aot(x)
    (entry,) = aot.entries()
    data = BundledAOTAutogradSerializableCallable.serialize_compile_artifacts(
        BundledAOTAutogradSerializableCallable(entry, fn=f))
    (FIXTURES / f"aot_interpret_v{container.FORMAT_VERSION}.kart").write_bytes(data)

