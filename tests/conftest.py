"""Shared pytest setup: tests/ is on sys.path so any test can ``import opinfo``, and the
repository root so that oracle tests can share the PyTorch twins in ``benchmarks/``."""

from __future__ import annotations

import pathlib
import sys

_TESTS = pathlib.Path(__file__).resolve().parent
for _path in (str(_TESTS), str(_TESTS.parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)
