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


# The user-facing namespaces: every public function and class there shows a runnable example.
PUBLIC = ("kiln", "kiln.nn", "kiln.nn.functional", "kiln.nn.init", "kiln.optim",
          "kiln.optim.lr_scheduler", "kiln.aot", "kiln.autograd", "kiln.backends",
          "kiln.models", "kiln.base.pytree", "kiln.graph", "kiln.io.weights",
          "kiln.symbolic.sizes", "kiln.compiler", "kiln.artifacts",
          "kiln.jit")


def test_public_api_has_examples():
    """STYLE: public API gets a docstring with a runnable example (run by the test above).
    Not covered: ``kiln.ops`` (one generated wrapper per registry primitive, documented by the
    README op table and tested by the op table) and the exception classes."""
    import inspect

    missing = []
    for name in PUBLIC:
        module = importlib.import_module(name)
        names = getattr(module, "__all__", None) or [n for n in vars(module)
                                                     if not n.startswith("_")]
        for attr in names:
            obj = getattr(module, attr, None)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or \
                    not getattr(obj, "__module__", "").startswith("kiln"):
                continue
            if inspect.isclass(obj) and issubclass(obj, BaseException):
                continue
            if ">>>" not in (inspect.getdoc(obj) or ""):
                missing.append(f"{name}.{attr}")
    assert not missing, f"public API without a docstring example: {sorted(set(missing))}"
