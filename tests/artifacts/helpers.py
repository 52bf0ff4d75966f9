"""Shared by the artifact tests: which backends this machine can compile for."""

from __future__ import annotations

import pytest


def has_compiler() -> bool:
    from kiln.backends.c.toolchain import find_compiler

    try:
        find_compiler()
    except Exception:  # noqa: BLE001  (no compiler, or a CC that does not run)
        return False
    return True


NEEDS_CC = pytest.mark.skipif(not has_compiler(), reason="no C compiler")
BACKENDS = ["interpret", pytest.param("c", marks=NEEDS_CC)]
