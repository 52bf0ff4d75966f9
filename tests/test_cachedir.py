"""The on-disk build cache: prebuilt native code is reused by later processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from kiln.base import cachedir

CONV_NET = textwrap.dedent("""
    import kiln, kiln.nn.functional as F
    f = kiln.compile(lambda x, w: F.max_pool2d(F.conv2d(x, w, padding=1), 2), backend="c")
    print(f(kiln.randn(1, 3, 8, 8), kiln.randn(4, 3, 3, 3)).shape)
    w = kiln.nn.Parameter(kiln.ones(3))
    opt = kiln.optim.SGD([w], lr=0.5, fused=True)
    w.grad = kiln.ones(3)
    opt.step()
    print(w.tolist())
""")


def _run(cache: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, KILN_CACHE_DIR=cache, KILN_DEBUG="2")
    return subprocess.run([sys.executable, "-c", CONV_NET], capture_output=True, text=True,
                          env=env, timeout=600)


def test_conv_runtime_and_optimizer_kernels_are_built_once(tmp_path):
    pytest.importorskip("kiln.backends.c.toolchain").find_compiler()
    first = _run(str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "-o kiln_rt_conv2d" in first.stderr  # compiled the conv runtime
    assert "compiled kiln_optim.c" in first.stderr
    assert list((tmp_path / "c-runtime").glob("*.o")) and list((tmp_path / "optim").glob("*.so"))
    second = _run(str(tmp_path))
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert "-o kiln_rt_" not in second.stderr  # linked the cached objects
    assert "loaded kiln_optim" in second.stderr


def test_damaged_optimizer_entry_is_rebuilt(tmp_path):
    first = _run(str(tmp_path))
    assert first.returncode == 0, first.stderr
    (entry,) = (tmp_path / "optim").glob("*.so")
    entry.write_bytes(b"not a library")
    again = _run(str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert "does not load" in again.stderr and "compiled kiln_optim.c" in again.stderr


@pytest.mark.parametrize("value", ["0", "off", ""])
def test_the_cache_can_be_turned_off(monkeypatch, value):
    monkeypatch.setenv("KILN_CACHE_DIR", value)
    assert cachedir.root() is None and cachedir.cache_path("x", "y") is None
    assert cachedir.load(None) is None
    cachedir.store(None, b"ignored")


def test_unwritable_cache_is_skipped(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory would go")
    monkeypatch.setenv("KILN_CACHE_DIR", str(blocker))
    assert cachedir.cache_path("section", "entry") is None
