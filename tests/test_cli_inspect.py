"""``kiln inspect``: every kind of file Kiln writes, described without running it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import kiln
from kiln.cli import main


def test_inspect_an_exported_program(tmp_path):
    ep = kiln.export(lambda x: x.relu() * 2.0, (kiln.ones(3, 4),))
    path = tmp_path / "p.kep"
    kiln.export.save(ep, str(path))
    result = CliRunner().invoke(main, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert "program" in json.loads(result.output)["kind"]


def test_inspect_a_compiled_artifact(tmp_path):
    f = kiln.compile(lambda x: x.exp() + 1.0)
    aot = f.aot_compile(((kiln.ones(2),), {}))
    path = tmp_path / "f.kiln"
    aot.save_compiled_function(str(path))
    result = CliRunner().invoke(main, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "compiled artifact" in result.output and "section" in result.output


@pytest.mark.parametrize("content", [b"", b"KILNART\x00garbage", b"not a kiln file at all"])
def test_inspect_refuses_what_is_not_a_kiln_file(tmp_path, content):
    path = tmp_path / "x.bin"
    path.write_bytes(content)
    result = CliRunner().invoke(main, ["inspect", str(path)])
    assert result.exit_code != 0
    assert "Error" in result.output and "Traceback" not in result.output
