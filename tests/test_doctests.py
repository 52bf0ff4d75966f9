"""The docstring examples of kiln's public modules run (doctest), so documentation stays true.

Modules that need an optional dependency that is not installed are skipped, as are private
modules (a leading underscore) whose docstrings are not documentation.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import kiln

OPTIONAL = ("torch", "networkx", "safetensors", "scipy_openblas32", "redis")


def _modules() -> list[str]:
    names = ["kiln"]
    for info in pkgutil.walk_packages(kiln.__path__, prefix="kiln."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name):
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in OPTIONAL:
            pytest.skip(f"{name} needs {e.name}")
        raise
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, name) if t.examples]
    for test in tests:
        kiln.manual_seed(0)
        runner.run(test, clear_globs=True)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {name}"
