"""The README's Python blocks run, and its op table matches the registry."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_blocks_run(tmp_path):
    for i, block in enumerate(python_blocks()):
        script = tmp_path / f"block{i}.py"
        script.write_text(block)
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                                cwd=tmp_path, timeout=600)
        assert result.returncode == 0, f"README block {i} failed:\n{block}\n{result.stderr}"


def test_op_table_is_current():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "op_table.py"), "--check",
                             str(README)], capture_output=True, text=True)
    assert result.returncode == 0, "README op table is stale: run python tools/op_table.py " \
        "--write README.md"


def test_op_table_cells_keep_c_expressions():
    # `|` inside a cell must be escaped, or `a || b` splits the row (and was once shown as
    # `a // b`, which is a C comment).
    import kiln
    from kiln.core.prims.registry import REGISTRY

    _ = kiln
    text = README.read_text()
    table = text.split("<!-- op-table:begin -->")[1].split("<!-- op-table:end -->")[0]
    for row in table.strip().splitlines()[2:]:
        cells = [c.strip().replace("\\|", "|")
                 for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]
        assert len(cells) == 5, row
        if cells[1] == "composite":  # torch-surface composites: lowered through primitives,
            # refused with them (the linear-algebra decompositions), or constants (windows)
            assert cells[3] in ("its primitives", "- (refused)", "a constant"), row
            continue
        op = REGISTRY[cells[0].strip("`")]
        want = f"`{op.c_expr}`" if op.c_expr else "- (refused)" if op.kind == "linalg" \
            else "kernel"
        assert cells[3] == want, row
