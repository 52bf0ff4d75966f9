"""Shared pytest setup: tests/ is on sys.path so any test can ``import opinfo``, and the
repository root so that oracle tests can share the PyTorch twins in ``benchmarks/``.

Kiln's on-disk build cache (kiln.base.cachedir) points into .pytest_cache unless the caller chose
one: the suite never writes to the user's cache, and its workers share the prebuilt kernels.
"""

from __future__ import annotations

import os
import pathlib
import sys

_TESTS = pathlib.Path(__file__).resolve().parent
for _path in (str(_TESTS), str(_TESTS.parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

os.environ.setdefault("KILN_CACHE_DIR", str(_TESTS.parent / ".pytest_cache" / "kiln-cache"))
