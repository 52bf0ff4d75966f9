"""PrecompileContext and whole-cache bundles (save_cache_artifacts / load_cache_artifacts)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from artifacts.helpers import BACKENDS
from kiln.artifacts import (
    BypassCacheEntry,
    EagerCacheArtifact,
    PrecompileContext,
    entries,
    load_cache_artifacts,
    save_cache_artifacts,
)
from kiln.base.trust import UntrustedArtifactError
from kiln.models import MLP


def test_record_edit_serialize_and_debug_info(caplog: pytest.LogCaptureFixture) -> None:
    PrecompileContext.clear()
    art = EagerCacheArtifact("a1", {"n": 1})
    PrecompileContext.record_artifact(art)
    art.content["n"] = 99  # a copy was stored
    PrecompileContext.edit_artifact("a1", lambda c: {**c, "m": 2})
    assert json.loads(PrecompileContext.serialize_artifact_by_key("a1")) == {"m": 2, "n": 1}
    with pytest.raises(kiln.KilnError, match="no artifact with key 'nope'"):
        PrecompileContext.edit_artifact("nope", lambda c: c)
    with pytest.raises(kiln.KilnError, match="no artifact"):
        PrecompileContext.serialize_artifact_by_key("nope")
    PrecompileContext.record_cache_entry({"artifacts": ["a1"]}, "good")
    PrecompileContext.record_cache_entry({"artifacts": ["a1", "gone"]}, "broken")
    with caplog.at_level(logging.WARNING, logger="kiln.artifacts"):
        complete = PrecompileContext.create_cache_entries()
    assert list(complete) == ["good"]
    assert "broken" in caplog.text and "gone" in caplog.text
    info = PrecompileContext.dump_debug_info(complete, {"a1": complete["good"].artifacts[0]})
    json.dumps(info)  # JSON-serializable
    assert info["skipped"][0]["key"] == "broken"
    PrecompileContext.clear()


@pytest.mark.parametrize("backend", BACKENDS)
def test_bundle_moves_a_train_step_to_another_machine(machine, backend: str,  # noqa: ANN001
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # Machines that share compiled native code share a signing secret (docs/security.md).
    monkeypatch.setenv("KILN_CACHE_SECRET", "fleet")
    kiln.manual_seed(0)
    model = MLP((6, 8, 3))
    x, y = kiln.randn(4, 6), kiln.randint(0, 3, (4,))
    step = kiln.compile(lambda x, y: F.cross_entropy(model(x), y), backend=backend)
    want = step(x, y)
    want.backward()
    data, info = save_cache_artifacts()
    assert len(info.entries) == 1 and info.artifacts["kiln.entry"] == info.entries
    machine("b")
    assert load_cache_artifacts(data).entries == info.entries
    model.zero_grad()
    again = kiln.compile(lambda x, y: F.cross_entropy(model(x), y), backend=backend)
    loss = again(x, y)
    loss.backward()
    assert again.cache_info()["traces"] == 0
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)


def test_mis_signed_bundle_is_refused(machine, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from artifacts.helpers import has_compiler

    if not has_compiler():
        pytest.skip("no C compiler")
    monkeypatch.setenv("KILN_CACHE_SECRET", "machine-a")
    kiln.compile(lambda x: x.exp(), backend="c")(kiln.ones(3))
    data, _ = save_cache_artifacts()
    machine("b")
    monkeypatch.setenv("KILN_CACHE_SECRET", "machine-b")
    with pytest.raises(UntrustedArtifactError, match="does not verify"):
        load_cache_artifacts(data)  # signed as a whole: refused as a whole


def test_save_to_cache_and_bypass(machine, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    kiln.compile(lambda x: x * 7.0)(kiln.ones(2))
    root = machine("b")
    debug = PrecompileContext.save_to_cache()
    assert len(debug["entries"]) == 1
    assert len(list((root / "compiled" / "entries").glob("??/*.kart"))) == 1

    def bypass(*args: object, **kwargs: object) -> bytes:
        raise BypassCacheEntry("not this one")

    monkeypatch.setattr(entries, "graph_entry_bytes", bypass)
    machine("c")
    out = kiln.compile(lambda x: x * 8.0)(kiln.ones(2))
    np.testing.assert_allclose(out.numpy(), [8.0, 8.0])
    assert not list((root.parent / "c" / "compiled" / "entries").glob("??/*.kart"))
