"""draw_graph / to_dot: the Graphviz text itself, and the files draw_graph writes."""

import os
import re

import pytest

import kiln
from kiln.aot import aot_function, draw_graph, graph_drawer, to_dot
from kiln.errors import ArgumentError


def _labels(dot: str) -> dict[str, str]:
    """{node name: label as written in the .dot file}."""
    return dict(re.findall(r'^  "([^"]+)" \[label="((?:[^"\\]|\\.)*)"', dot, re.M))


def test_labels_use_one_backslash_line_breaks():
    # Graphviz reads \n inside a quoted label as a line break; \\n would show a literal "\n".
    dot = to_dot(kiln.trace(lambda x: x.sin().sum(0), kiln.ones(2, 2)))
    labels = _labels(dot)
    assert labels["x"] == r"x\nf32[2, 2]"
    assert labels["sum_"] == r"sum_\nsum(dims=(0,), keepdim=False)\nf32[2]"
    assert "\\\\n" not in dot


def test_a_node_named_after_its_op_shows_the_op_once():
    labels = _labels(to_dot(kiln.trace(lambda x: x.sin().sin(), kiln.ones(2))))
    assert labels["sin"] == r"sin\nf32[2]"
    assert labels["sin_1"] == r"sin_1\nsin\nf32[2]"


def test_quotes_and_backslashes_in_text_are_escaped():
    gm = kiln.trace(lambda x: x.exp(), kiln.ones(2))
    dot = to_dot(gm, name='a"b\\c')
    assert dot.startswith('digraph "a\\"b\\\\c" {')


def test_draw_graph_files_follow_the_umask(tmp_path):
    # mkstemp creates 0600 files; a drawing is an ordinary file, readable as the umask says.
    gm = kiln.trace(lambda x: x.exp(), kiln.ones(2))
    old = os.umask(0o022)
    try:
        draw_graph(gm, tmp_path / "g.dot")
        os.umask(0o077)
        draw_graph(gm, tmp_path / "private.dot")
    finally:
        os.umask(old)
    assert (tmp_path / "g.dot").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private.dot").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.dot", "private.dot"]


def test_draw_graph_as_a_compiler_is_refused_with_a_hint(tmp_path):
    for role in ("fw_compiler", "bw_compiler", "inference_compiler"):
        kwargs = {"fw_compiler": kiln.aot.nop, role: draw_graph}
        with pytest.raises(ArgumentError, match=rf"aot_function: {role} is draw_graph.*"
                                                r"graph_drawer\(path\)"):
            aot_function(lambda x: x.exp(), **kwargs)
    g = aot_function(lambda x: x.exp(), graph_drawer(tmp_path / "fw.dot"))
    g(kiln.ones(2, requires_grad=True))
    assert (tmp_path / "fw.dot").exists()
    with pytest.raises(ArgumentError, match=r"draw_graph: path must be a str or os.PathLike, "
                                            r"got list; .*graph_drawer\(path\)"):
        draw_graph(kiln.trace(lambda x: x.exp(), kiln.ones(2)), [1, 2])
