"""Shared pytest setup: tests/ is on sys.path so any test can ``import opinfo``."""

from __future__ import annotations

import pathlib
import sys

_TESTS = str(pathlib.Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
