"""Export: ``kiln.export(f, args)`` -> ExportedProgram; ``kiln.aot_compile`` -> one shared
library; ``kiln.aot_load`` runs it (see docs/export.md).

``kiln.export`` is this package, and it is callable: ``kiln.export(f, args, ...)`` is
:func:`kiln.export.program.export`, and ``kiln.export.save`` / ``kiln.export.load`` are
attributes like any module's. (The module's class is a ``ModuleType`` subclass with a
``__call__``, so ``import kiln.export`` and ``kiln.export(...)`` name the same object.)

>>> import kiln
>>> ep = kiln.export(lambda x: x.relu(), (kiln.ones(2),))
>>> callable(kiln.export), kiln.export.load is load
(True, True)
"""

from __future__ import annotations

import sys
import types
from typing import Any

from kiln.export.build import aot_compile
from kiln.export.dims import resolve_dynamic_shapes
from kiln.export.loader import AOTModel, aot_load
from kiln.export.program import (
    ConstraintViolationError,
    ExportedProgram,
    ExportGraphSignature,
    export,
)
from kiln.export.serialize import load, save

__all__ = ["export", "save", "load", "ExportedProgram", "ExportGraphSignature",
           "ConstraintViolationError", "resolve_dynamic_shapes", "aot_compile", "aot_load",
           "AOTModel"]


class _CallableModule(types.ModuleType):
    """``kiln.export(...)`` calls :func:`export`."""

    def __call__(self, f: Any, args: tuple, kwargs: dict | None = None, *,
                 dynamic_shapes: Any = None) -> ExportedProgram:
        return export(f, args, kwargs, dynamic_shapes=dynamic_shapes)


sys.modules[__name__].__class__ = _CallableModule
