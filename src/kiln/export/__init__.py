"""Export: ``kiln.export(f, args)`` -> ExportedProgram; ``kiln.aot_compile`` -> one shared
library; ``kiln.aot_load`` runs it (see docs/export.md).

``kiln.export`` is this package, and it is callable: ``kiln.export(f, args, ...)`` is
:func:`kiln.export.program.export`, and ``kiln.export.save`` / ``kiln.export.load`` are
attributes like any module's. (The module's class is a ``ModuleType`` subclass with a
``__call__``, so ``import kiln.export`` and ``kiln.export(...)`` name the same object.)
The names load on first use: ``kiln.aot_load`` in a fresh process imports only the loader.

>>> import kiln
>>> ep = kiln.export(lambda x: x.relu(), (kiln.ones(2),))
>>> callable(kiln.export), kiln.export.load is kiln.export.serialize.load
(True, True)
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_NAMES = {
    "export": "kiln.export.program", "ExportedProgram": "kiln.export.program",
    "ExportGraphSignature": "kiln.export.program",
    "ConstraintViolationError": "kiln.export.program",
    "save": "kiln.export.serialize", "load": "kiln.export.serialize",
    "resolve_dynamic_shapes": "kiln.export.dims",
    "aot_compile": "kiln.export.build", "aot_load": "kiln.export.loader",
    "AOTModel": "kiln.export.loader",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kiln.export' has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """``kiln.export(...)`` calls :func:`kiln.export.program.export`."""

    def __call__(self, f: Any, args: tuple, kwargs: dict | None = None, *,
                 dynamic_shapes: Any = None) -> Any:
        from kiln.export.program import export

        return export(f, args, kwargs, dynamic_shapes=dynamic_shapes)


sys.modules[__name__].__class__ = _CallableModule
