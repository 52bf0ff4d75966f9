"""``kiln cache ls | stats | clear | why-miss | export | import`` (click's CliRunner)."""

from __future__ import annotations

import pathlib

import pytest
from click.testing import CliRunner

import kiln
from kiln.artifacts import PrecompileContext
from kiln.cli.cache import cache


def _run(*args: str) -> str:
    result = CliRunner().invoke(cache, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_ls_stats_clear(machine) -> None:  # noqa: ANN001
    assert "no entries" in _run("ls")
    kiln.compile(lambda x: x * 3.0)(kiln.ones(2))
    assert "<lambda>" in _run("ls")
    out = _run("stats")
    assert "entries     1" in out and "KILN_CACHE_MAX_BYTES" in out
    assert "removed 2 file(s)" in _run("clear")  # the entry and its warm index
    assert "no entries" in _run("ls")


def test_export_then_import_on_another_machine(machine, tmp_path: pathlib.Path) -> None:  # noqa: ANN001
    PrecompileContext.clear()
    kiln.compile(lambda x: x.exp() - 1.0)(kiln.zeros(3))
    bundle = tmp_path / "cache.bundle"
    assert "exported 1 entry" in _run("export", str(bundle))
    machine("b")
    assert "imported 1 entry" in _run("import", str(bundle))
    f = kiln.compile(lambda x: x.exp() - 1.0)
    assert f(kiln.zeros(3)).tolist() == [0.0, 0.0, 0.0]
    assert f.cache_info()["traces"] == 0
    bad = tmp_path / "bad.bundle"
    bad.write_bytes(b"garbage")
    result = CliRunner().invoke(cache, ["import", str(bad)])
    assert result.exit_code != 0 and "bad magic" in result.output


def test_why_miss(machine, tmp_path: pathlib.Path) -> None:  # noqa: ANN001
    pytest.importorskip("kiln.cli.target")  # the CLI's FILE:FN loader (issue: kiln CLI)
    src = tmp_path / "model.py"
    src.write_text("def f(x):\n    return x.relu() * 2.0\n")
    assert "no entries" in _run("why-miss", f"{src}:f", "-i", "2x3", "--backend",
                                "interpret")
    import importlib.util

    spec = importlib.util.spec_from_file_location("model_for_why_miss", src)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    kiln.compile(module.f)(kiln.ones(2, 3))
    assert "inputs" in _run("why-miss", f"{src}:f", "-i", "4x3", "--backend",
                                        "interpret")


def test_prebuild_puts_the_kernels_in_the_cache_for_later_compiles(
        machine, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import os

    import kiln.nn.functional as F
    from kiln.backends.c import convrt

    # as in the fresh process `kiln cache prebuild` runs in: no objects built in this one yet
    monkeypatch.setattr(convrt, "_objects", {})
    assert "1 kernel objects ready" in _run("prebuild", "--op", "max_pool2d")
    built = list((pathlib.Path(os.environ["KILN_CACHE_DIR"]) / "c-runtime").glob(
        "kiln_rt_max_pool2d_f32-*.o"))
    assert len(built) == 1
    convrt._objects.clear()  # a new process: only the on-disk cache remembers
    stamp = built[0].stat().st_mtime_ns
    x = kiln.randn(1, 2, 4, 4)
    got = kiln.compile(lambda x: F.max_pool2d(x, 2), backend="c")(x)
    assert got.tolist() == F.max_pool2d(x, 2).tolist()
    assert built[0].stat().st_mtime_ns == stamp  # linked from the cache, not rebuilt
    result = CliRunner().invoke(cache, ["prebuild", "--op", "conv9d"])
    assert result.exit_code != 0 and "conv9d" in result.output
