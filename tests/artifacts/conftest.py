"""Fixtures of the artifact tests."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator

import pytest

from kiln.artifacts import PrecompileContext
from kiln.artifacts import cache as cache_mod
from kiln.artifacts import store as store_mod


@pytest.fixture
def machine(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[Callable[[str], pathlib.Path]]:
    """Turn the compile cache on in a fresh directory ("machine a"); call the result with
    another name to switch to a fresh cache directory, as on another machine."""
    monkeypatch.setenv("KILN_COMPILE_CACHE", "1")
    monkeypatch.setattr(store_mod, "_WARNED", set())
    PrecompileContext.clear()

    def switch(name: str) -> pathlib.Path:
        monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / name))
        monkeypatch.setattr(cache_mod, "_STORES", {})
        return tmp_path / name

    switch("a")
    yield switch
    PrecompileContext.clear()
