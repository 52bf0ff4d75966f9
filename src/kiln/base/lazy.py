"""Package attributes that load their submodule on first use (PEP 562).

A package lists ``name -> submodule`` for what it exports but does not need at import time;
:func:`lazy_attributes` gives it the module-level ``__getattr__`` and ``__dir__`` that import
the submodule when the name is first asked for, and remember the value. Names it does not
know are an ``AttributeError`` that suggests the closest known one.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any


def lazy_attributes(package: str, table: dict[str, str], namespace: dict[str, Any]
                    ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose ``namespace`` is its ``globals()``.

    >>> getattr_, dir_ = lazy_attributes("kiln.base", {"digest": "canonical"}, {})
    >>> getattr_("digest").__name__, "digest" in dir_()
    ('digest', True)
    """

    def __getattr__(name: str) -> Any:
        submodule = table.get(name)
        if submodule is None:
            from kiln.errors import AttributeError_, missing_attribute

            if _is_submodule(namespace, name):
                # `from package import submodule` asks first; the import system then loads
                # it. Cheap on purpose: suggestions (difflib) cost a millisecond per miss.
                raise AttributeError_(f"module {package!r} has no attribute {name!r} (its "
                                      f"submodule {package}.{name} is not imported yet)")

            raise missing_attribute(f"module {package!r}", name, sorted({*namespace, *table}))
        value = getattr(importlib.import_module(f"{package}.{submodule}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__


def _is_submodule(namespace: dict[str, Any], name: str) -> bool:
    return any(os.path.isfile(os.path.join(p, name + ".py")) or
               os.path.isfile(os.path.join(p, name, "__init__.py"))
               for p in namespace.get("__path__") or ())
